"""Index the lock expiry: every worker re-reads the locked rate-limit keys once a second.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_rate_limits_locked_until", "rate_limits", ["locked_until"])


def downgrade() -> None:
    op.drop_index("ix_rate_limits_locked_until", table_name="rate_limits")
