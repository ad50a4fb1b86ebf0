"""login_version on users: logout and a new password end every login of the user

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 03:45:00

Logins made before this migration carry the bare user id, which no longer loads: everyone
logs in once more after the upgrade.
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('login_version', sa.Integer(), server_default='1', nullable=False))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('login_version')
