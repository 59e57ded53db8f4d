"""Access-token records (``AccessTokenStore``): what introspection and revocation need of a JWT."""

from __future__ import annotations

from tokenward.server.model import AccessTokenRecord
from tokenward.server.store.sql import statements as s
from tokenward.server.store.sql.base import SqlAggregate


class SqlAccessTokens(SqlAggregate):
    """One row per issued access token, by ``jti``; a revoked unknown token gets a row too."""

    async def save_access_token(self, record: AccessTokenRecord) -> None:
        await self._conn.execute(s.INSERT_ACCESS_TOKEN, {
            "jti": record.jti, "grant_id": record.grant_id, "client_id": record.client_id,
            "expires_at": record.expires_at})

    async def get_access_token(self, jti: str) -> AccessTokenRecord | None:
        row = await self._first(s.GET_ACCESS_TOKEN, {"p_jti": jti})
        if row is None:
            return None
        return AccessTokenRecord(jti=row.jti, grant_id=row.grant_id, client_id=row.client_id,
                                 expires_at=row.expires_at, revoked_at=row.revoked_at)

    async def revoke_access_token(self, jti: str, client_id: str, expires_at: int, now: int) -> None:
        result = await self._conn.execute(s.REVOKE_ACCESS_TOKEN, {"p_jti": jti, "p_now": now})
        if result.rowcount == 0 and await self.get_access_token(jti) is None:
            await self._conn.execute(s.INSERT_ACCESS_TOKEN, {
                "jti": jti, "grant_id": None, "client_id": client_id, "expires_at": expires_at, "revoked_at": now})
