"""Resource owners (``UserStore``); usernames are looked up by their case-folded key."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tokenward.server.model import User
from tokenward.server.store.sql import tables as t
from tokenward.server.store.sql.base import SqlAggregate, unstorable
from tokenward.server.usernames import username_key

GET_USER = select(t.users).where(t.users.c.id == bindparam("p_user_id"))
GET_USER_BY_USERNAME = select(t.users).where(t.users.c.username_key == bindparam("p_username_key"))
INSERT_USER = {  # a concurrent users add of a look-alike name loses quietly: save_user says so
    "sqlite": sqlite_insert(t.users).on_conflict_do_nothing().returning(t.users.c.id),
    "postgresql": pg_insert(t.users).on_conflict_do_nothing().returning(t.users.c.id),
}


def _user(row: Any) -> User:
    return User(id=row.id, username=row.username, password_hash=row.password_hash, created_at=row.created_at,
                claims=json.loads(row.claims) if row.claims else {}, updated_at=row.updated_at)


class SqlUsers(SqlAggregate):
    """Users: the login page reads them, the admin CLI writes them."""

    async def get_user(self, user_id: str) -> User | None:
        row = await self._first(GET_USER, {"p_user_id": user_id})
        return _user(row) if row else None

    async def get_user_by_username(self, username: str) -> User | None:
        if unstorable(username):
            return None
        row = await self._first(GET_USER_BY_USERNAME, {"p_username_key": username_key(username)})
        return _user(row) if row else None

    async def save_user(self, user: User) -> bool:
        result = await self._conn.execute(INSERT_USER[self._conn.dialect.name], {
            "id": user.id, "username": user.username, "username_key": username_key(user.username),
            "password_hash": user.password_hash, "created_at": user.created_at,
            "claims": json.dumps(user.claims) if user.claims else None, "updated_at": user.updated_at})
        return result.first() is not None  # RETURNING: rowcount is -1 for psycopg's ON CONFLICT DO NOTHING

    async def delete_user(self, user_id: str) -> bool:
        result = await self._conn.execute(delete(t.users).where(t.users.c.id == user_id))
        return result.rowcount == 1

    async def list_users(self) -> Sequence[User]:
        rows = await self._conn.execute(select(t.users).order_by(t.users.c.username))
        return [_user(r) for r in rows]

    async def set_claims(self, user_id: str, claims: dict[str, Any], now: int) -> None:
        """Replace the user's claims (OIDC Core §5.1 ``updated_at`` becomes ``now``)."""
        await self._conn.execute(update(t.users).where(t.users.c.id == user_id).values(
            claims=json.dumps(claims) if claims else None, updated_at=now))

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._conn.execute(update(t.users).where(t.users.c.id == user_id).values(password_hash=password_hash))
