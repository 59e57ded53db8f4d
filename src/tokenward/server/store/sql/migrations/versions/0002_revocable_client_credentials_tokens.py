"""access_tokens.grant_id becomes nullable: revoked client-credentials tokens have no grant.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_tokens") as batch:
        batch.alter_column("grant_id", existing_type=sa.String(length=36), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM access_tokens WHERE grant_id IS NULL")
    with op.batch_alter_table("access_tokens") as batch:
        batch.alter_column("grant_id", existing_type=sa.String(length=36), nullable=False)
