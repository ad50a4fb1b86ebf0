"""rollups of reply generation time, cut-short replies, and tokens per model

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 06:00:00

``rollup_daily`` gains, per day x subject x grade: replies cut at ``AI_MAX_TOKENS``
(``replies_cut_short``), the model's own generation time (``generation_count`` /
``generation_sum_ms``, beside the latency the student felt) and token totals. The new
``rollup_models`` holds replies and tokens per day x subject x grade x model, from which the
dashboard prices tokens with ``AI_PRICES``.

Days rolled up before this migration have zeros there; ``flask --app app analytics rollup
--since YYYY-MM-DD`` recomputes them from the messages (which always had these columns).
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_NEW_DAILY = {
    "replies_cut_short": sa.Integer(),
    "generation_count": sa.Integer(),
    "generation_sum_ms": sa.BigInteger(),
    "prompt_tokens": sa.BigInteger(),
    "completion_tokens": sa.BigInteger(),
}


def upgrade():
    with op.batch_alter_table('rollup_daily', schema=None) as batch_op:
        for name, kind in _NEW_DAILY.items():
            batch_op.add_column(sa.Column(name, kind, server_default="0", nullable=False))
    op.create_table(
        'rollup_models',
        sa.Column('date', sa.Date(), nullable=False),
        sa.Column('subject', sa.String(length=64), nullable=False),
        sa.Column('grade_level', sa.SmallInteger(), nullable=False),
        sa.Column('model', sa.String(length=128), nullable=False),
        sa.Column('replies', sa.Integer(), server_default="0", nullable=False),
        sa.Column('prompt_tokens', sa.BigInteger(), server_default="0", nullable=False),
        sa.Column('completion_tokens', sa.BigInteger(), server_default="0", nullable=False),
        sa.Column('tokens_estimated', sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint('date', 'subject', 'grade_level', 'model'),
    )


def downgrade():
    op.drop_table('rollup_models')
    with op.batch_alter_table('rollup_daily', schema=None) as batch_op:
        for name in reversed(list(_NEW_DAILY)):
            batch_op.drop_column(name)
