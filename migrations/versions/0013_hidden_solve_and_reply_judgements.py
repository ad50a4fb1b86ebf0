"""hidden solve answer on sessions, the LLM judge's scores per reply

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26 05:30:00

sessions.solved_message_id / solved_answer: the model's final answer to the student's latest
problem (asked once per new problem, never shown to the student), used by the guardrail.
reply_judgements: the LLM judge's MRBench ratings of a finished reply, or "unrated".
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('solved_message_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('solved_answer', sa.String(length=200), nullable=True))
    op.create_table(
        'reply_judgements',
        sa.Column('message_id', sa.BigInteger(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('reveals_answer', sa.Boolean(), nullable=True),
        sa.Column('identifies_mistake', sa.SmallInteger(), nullable=True),
        sa.Column('gives_guidance', sa.SmallInteger(), nullable=True),
        sa.Column('actionable', sa.SmallInteger(), nullable=True),
        sa.Column('model', sa.String(length=128), nullable=True),
        sa.Column('raw', sa.Text(), nullable=True),
        sa.Column('judged_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint("status IN ('rated', 'unrated')", name=op.f('ck_reply_judgements_status')),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_reply_judgements_message_id_messages'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('message_id', name=op.f('pk_reply_judgements')),
    )


def downgrade():
    op.drop_table('reply_judgements')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_column('solved_answer')
        batch_op.drop_column('solved_message_id')
