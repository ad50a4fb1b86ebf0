"""Thumbs up/down on tutor replies, and replies the student stopped

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 06:00:00

``messages.feedback``: +1 (thumbs up), -1 (thumbs down) or NULL (none), on tutor replies.
``messages.stopped``: the student pressed Stop; the reply holds what was written until then.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("messages", sa.Column("feedback", sa.SmallInteger(), nullable=True))
    op.create_check_constraint(op.f("ck_messages_feedback"), "messages", "feedback IN (-1, 1)")
    op.add_column("messages", sa.Column("stopped", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    op.drop_column("messages", "stopped")
    op.drop_constraint(op.f("ck_messages_feedback"), "messages", type_="check")
    op.drop_column("messages", "feedback")
