"""Access-token records (``AccessTokenStore``): what introspection and revocation need of a JWT."""

from __future__ import annotations

from sqlalchemy import bindparam, insert, select, update

from tokenward.server.model import AccessTokenRecord
from tokenward.server.store.sql import tables as t
from tokenward.server.store.sql.base import SqlAggregate

_at = t.access_tokens.c

INSERT_ACCESS_TOKEN = insert(t.access_tokens)
GET_ACCESS_TOKEN = select(t.access_tokens).where(_at.jti == bindparam("p_jti"))
REVOKE_ACCESS_TOKEN = update(t.access_tokens).where(_at.jti == bindparam("p_jti"), _at.revoked_at.is_(None)).values(
    revoked_at=bindparam("p_now"))


class SqlAccessTokens(SqlAggregate):
    """One row per issued access token, by ``jti``; a revoked unknown token gets a row too."""

    async def save_access_token(self, record: AccessTokenRecord) -> None:
        await self._conn.execute(INSERT_ACCESS_TOKEN, {
            "jti": record.jti, "grant_id": record.grant_id, "client_id": record.client_id,
            "expires_at": record.expires_at})

    async def get_access_token(self, jti: str) -> AccessTokenRecord | None:
        row = await self._first(GET_ACCESS_TOKEN, {"p_jti": jti})
        if row is None:
            return None
        return AccessTokenRecord(jti=row.jti, grant_id=row.grant_id, client_id=row.client_id,
                                 expires_at=row.expires_at, revoked_at=row.revoked_at)

    async def revoke_access_token(self, jti: str, client_id: str, expires_at: int, now: int) -> None:
        result = await self._conn.execute(REVOKE_ACCESS_TOKEN, {"p_jti": jti, "p_now": now})
        if result.rowcount == 0 and await self.get_access_token(jti) is None:
            await self._conn.execute(INSERT_ACCESS_TOKEN, {
                "jti": jti, "grant_id": None, "client_id": client_id, "expires_at": expires_at, "revoked_at": now})
