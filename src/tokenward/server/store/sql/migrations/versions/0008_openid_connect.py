"""OpenID Connect (issue #13): users carry claims, clients carry their relying-party settings, and the
authentication context (nonce, auth_time, sid, the claims request) travels request → code → grant.

Every column is new and nullable, so the upgrade rewrites no row: NULL means "nothing OIDC" (no claims, no
post-logout URIs, PKCE required, the server's ID-token algorithm; a plain OAuth request, code or grant).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None



def _columns() -> dict[str, list[sa.Column]]:  # type: ignore[type-arg]
    return {
        "users": [sa.Column("claims", sa.Text(), nullable=True), sa.Column("updated_at", sa.BigInteger(), nullable=True)],
        "clients": [sa.Column("id_token_signing_alg", sa.String(length=16), nullable=True),
                    sa.Column("post_logout_redirect_uris", sa.Text(), nullable=True),
                    sa.Column("pkce_optional", sa.Boolean(), nullable=True)],
        "sessions": [sa.Column("sid", sa.String(length=36), nullable=True)],
        "authorization_requests": [sa.Column("oidc", sa.Text(), nullable=True)],
        "authorization_codes": [sa.Column("oidc", sa.Text(), nullable=True)],
        "grants": [sa.Column("oidc", sa.Text(), nullable=True)],
    }


def upgrade() -> None:
    for table, columns in _columns().items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.add_column(column)


def downgrade() -> None:
    for table, columns in _columns().items():
        with op.batch_alter_table(table) as batch:
            for column in reversed(columns):
                batch.drop_column(column.name)
