"""Usernames compare by one normalised key, kept unique (issue #12 §2.8).

The key is computed here with the rule frozen as it was written (NFKC, casefold, NFKC), not imported from
the application: a migration must mean the same thing forever. Two existing users whose names share a key
(``alice`` and ``ALICE``) cannot both keep their name, and choosing which account survives is the
operator's call, so the upgrade stops before changing anything and names them.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _key(username: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())


def upgrade() -> None:
    conn = op.get_bind()
    users = sa.table("users", sa.column("id", sa.String), sa.column("username", sa.String),
                     sa.column("username_key", sa.String))
    rows = conn.execute(sa.select(users.c.id, users.c.username)).all()
    spellings: defaultdict[str, list[str]] = defaultdict(list)
    for row in rows:
        spellings[_key(row.username)].append(row.username)
    clashes = [sorted(names) for names in spellings.values() if len(names) > 1]
    if clashes:
        listed = "; ".join(" and ".join(repr(n) for n in names) for names in sorted(clashes))
        raise RuntimeError(
            "cannot upgrade: these users would become one name (usernames now compare without case and "
            f"Unicode width): {listed}. Remove all but one of each with `tokenward users remove NAME` "
            "on the previous release, then upgrade again. Nothing was changed.")
    too_long = sorted(repr(r.username) for r in rows if len(_key(r.username)) > 150)
    if too_long:  # NFKC can expand a character 18-fold; the key column holds 150 like the name
        raise RuntimeError(f"cannot upgrade: these usernames are over 150 characters once normalised: "
                           f"{', '.join(too_long)}. Remove them on the previous release. Nothing was changed.")
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("username_key", sa.String(length=150), nullable=True))
    for row in rows:
        conn.execute(users.update().where(users.c.id == row.id).values(username_key=_key(row.username)))
    with op.batch_alter_table("users") as batch:
        batch.alter_column("username_key", existing_type=sa.String(length=150), nullable=False)
        batch.create_unique_constraint("uq_users_username_key", ["username_key"])


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_username_key", type_="unique")
        batch.drop_column("username_key")
