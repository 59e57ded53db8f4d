"""Authorization codes (``CodeStore``), single use by a conditional UPDATE (RFC 6749 §4.1.2)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, insert, select, update

from tokenward.protocol.scope import Scope
from tokenward.server.model import AuthorizationCode, OidcContext
from tokenward.server.store.sql import tables as t
from tokenward.server.store.sql.base import SqlAggregate

_codes = t.authorization_codes.c

INSERT_CODE = insert(t.authorization_codes)
GET_CODE = select(t.authorization_codes).where(_codes.code_hash == bindparam("p_hash"))
CONSUME_CODE = (update(t.authorization_codes)
                .where(_codes.code_hash == bindparam("p_hash"), _codes.consumed_at.is_(None))
                .values(consumed_at=bindparam("p_now"), grant_id=bindparam("p_grant_id"))
                .returning(_codes.code_hash))


def _code(row: Any) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=row.code_hash, client_id=row.client_id, user_id=row.user_id, redirect_uri=row.redirect_uri,
        redirect_uri_explicit=bool(row.redirect_uri_explicit), code_challenge=row.code_challenge,
        scope=Scope.parse(row.scope), audience=row.audience, created_at=row.created_at,
        expires_at=row.expires_at, consumed_at=row.consumed_at, grant_id=row.grant_id,
        oidc=OidcContext.from_json(row.oidc),
    )


class SqlCodes(SqlAggregate):
    """Codes, by their hash; ``consume_code`` has exactly one winner."""

    async def save_code(self, code: AuthorizationCode) -> None:
        await self._conn.execute(INSERT_CODE, {
            "code_hash": code.code_hash, "client_id": code.client_id, "user_id": code.user_id,
            "redirect_uri": code.redirect_uri, "redirect_uri_explicit": code.redirect_uri_explicit,
            "code_challenge": code.code_challenge, "scope": str(code.scope), "audience": code.audience,
            "created_at": code.created_at, "expires_at": code.expires_at,
            "oidc": code.oidc.to_json() if code.oidc else None})

    async def get_code(self, code_hash: bytes) -> AuthorizationCode | None:
        row = await self._first(GET_CODE, {"p_hash": code_hash})
        return _code(row) if row else None

    async def consume_code(self, code_hash: bytes, grant_id: str, now: int) -> bool:
        row = await self._first(CONSUME_CODE, {"p_hash": code_hash, "p_now": now, "p_grant_id": grant_id})
        return row is not None
