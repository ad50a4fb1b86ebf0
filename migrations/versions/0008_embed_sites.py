"""embed students keyed by host site and the site's id for them

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 04:00:00

Embed students so far came from one key (EMBED_SECRET): they belong to the site "default".
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('embed_site', sa.String(length=64), nullable=True))
    op.execute("UPDATE users SET embed_site = 'default' WHERE external_id IS NOT NULL")
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint('uq_users_external_id', type_='unique')
        batch_op.create_unique_constraint('uq_users_embed_site_external_id', ['embed_site', 'external_id'])


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint('uq_users_embed_site_external_id', type_='unique')
        batch_op.create_unique_constraint('uq_users_external_id', ['external_id'])
        batch_op.drop_column('embed_site')
