"""Remembered consent (``ConsentStore``): a user's Allow for a client and scope."""

from __future__ import annotations

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tokenward.protocol.scope import Scope
from tokenward.server.store.sql import tables as t
from tokenward.server.store.sql.base import SqlAggregate

GET_CONSENTED_SCOPES = select(t.consents.c.scope).where(
    t.consents.c.user_id == bindparam("p_user_id"), t.consents.c.client_id == bindparam("p_client_id"))
FORGET_CONSENT = delete(t.consents).where(
    t.consents.c.user_id == bindparam("p_user_id"), t.consents.c.client_id == bindparam("p_client_id"))
INSERT_CONSENT = {
    "sqlite": sqlite_insert(t.consents).on_conflict_do_nothing(),
    "postgresql": pg_insert(t.consents).on_conflict_do_nothing(),
}


class SqlConsents(SqlAggregate):
    """Consent rows; a request is covered by any one row whose scope contains it."""

    async def has_consent(self, user_id: str, client_id: str, scope: Scope) -> bool:
        rows = await self._conn.execute(GET_CONSENTED_SCOPES, {"p_user_id": user_id, "p_client_id": client_id})
        return any(scope <= Scope.parse(r.scope) for r in rows)

    async def save_consent(self, user_id: str, client_id: str, scope: Scope, now: int) -> None:
        if await self.has_consent(user_id, client_id, scope):
            return
        # A concurrent Allow may insert the same row between the read and the write: ignore it, never a 500.
        await self._conn.execute(INSERT_CONSENT[self._conn.dialect.name], {
            "user_id": user_id, "client_id": client_id, "scope": str(scope), "created_at": now})

    async def forget_consent(self, user_id: str, client_id: str) -> int:
        result = await self._conn.execute(FORGET_CONSENT, {"p_user_id": user_id, "p_client_id": client_id})
        return int(result.rowcount)
