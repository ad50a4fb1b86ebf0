"""reply timing across attempts, estimated tokens, replies cut at max_tokens

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 03:20:00

latency_ms now means what the student waited (question to last word: queue, retries and
generation); generation_ms is the model's own time for the attempt that answered, and
first_token_at when its first word arrived. tokens_estimated marks token counts the server did
not send (estimated instead), cut_short a reply that hit AI_MAX_TOKENS.
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_token_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('generation_ms', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('tokens_estimated', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('cut_short', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('cut_short')
        batch_op.drop_column('tokens_estimated')
        batch_op.drop_column('generation_ms')
        batch_op.drop_column('first_token_at')
