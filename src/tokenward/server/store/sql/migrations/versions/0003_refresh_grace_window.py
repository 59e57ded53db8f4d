"""Refresh-token grace window: the sealed successor pair and its one allowed retry.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.add_column(sa.Column("successor_hash", sa.LargeBinary(length=32), nullable=True))
        batch.add_column(sa.Column("successor_sealed", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("grace_used_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_column("grace_used_at")
        batch.drop_column("successor_sealed")
        batch.drop_column("successor_hash")
