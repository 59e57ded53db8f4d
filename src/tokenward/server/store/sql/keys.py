"""Signing keys (``KeyStore``): the private half sealed, retirement scheduled ahead."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update

from tokenward.server.model import SigningKey
from tokenward.server.store.sql import tables as t
from tokenward.server.store.sql.base import SqlAggregate


def _key(row: Any) -> SigningKey:
    return SigningKey(kid=row.kid, alg=row.alg, public_jwk=row.public_jwk,
                      private_jwk_sealed=row.private_jwk_sealed, created_at=row.created_at,
                      activates_at=row.activates_at, retires_at=row.retires_at, expires_at=row.expires_at)


class SqlKeys(SqlAggregate):
    """Signing keys, oldest first."""

    async def list_signing_keys(self) -> Sequence[SigningKey]:
        rows = await self._conn.execute(select(t.signing_keys).order_by(t.signing_keys.c.created_at))
        return [_key(r) for r in rows]

    async def save_signing_key(self, key: SigningKey) -> None:
        await self._conn.execute(insert(t.signing_keys).values(
            kid=key.kid, alg=key.alg, public_jwk=key.public_jwk, private_jwk_sealed=key.private_jwk_sealed,
            created_at=key.created_at, activates_at=key.activates_at, retires_at=key.retires_at,
            expires_at=key.expires_at))

    async def schedule_key_retirement(self, kid: str, retires_at: int, expires_at: int) -> None:
        await self._conn.execute(update(t.signing_keys).where(t.signing_keys.c.kid == kid).values(
            retires_at=retires_at, expires_at=expires_at))
