"""thumbs up and down in the daily rollups; the LLM judge's scores found by when they were made

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26 06:45:00

``rollup_daily`` counts the students' thumbs up and down on tutor replies (``messages.feedback``)
per day x subject x grade. ``reply_judgements`` gains an index on ``judged_at``, which the
dashboard's judge table reads by range. Days rolled up before have zeros; ``flask --app app
analytics rollup --since YYYY-MM-DD`` recomputes them.
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('rollup_daily', schema=None) as batch_op:
        batch_op.add_column(sa.Column('thumbs_up', sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column('thumbs_down', sa.Integer(), server_default="0", nullable=False))
    op.create_index('ix_reply_judgements_judged_at', 'reply_judgements', ['judged_at'])


def downgrade():
    op.drop_index('ix_reply_judgements_judged_at', table_name='reply_judgements')
    with op.batch_alter_table('rollup_daily', schema=None) as batch_op:
        batch_op.drop_column('thumbs_down')
        batch_op.drop_column('thumbs_up')
