"""Grants and their refresh tokens (``GrantStore``, ``RefreshTokenStore``).

A grant is one token family: every rotation and revocation locks its row first (RFC 9700 §4.14.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update

from tokenward.protocol.scope import Scope
from tokenward.server.model import ConnectedApp, Grant, OidcContext, RefreshToken
from tokenward.server.store.sql import tables as t
from tokenward.server.store.sql.base import SqlAggregate

_rt = t.refresh_tokens.c
_at = t.access_tokens.c
_g = t.grants.c

INSERT_GRANT = insert(t.grants)
GET_GRANT = select(t.grants).where(t.grants.c.id == bindparam("p_grant_id"))
LOCK_GRANT = GET_GRANT.with_for_update()
LOCK_REFRESH_FAMILY = select(t.grants).where(t.grants.c.id == select(_rt.grant_id).where(
    _rt.token_hash == bindparam("p_hash")).scalar_subquery()).with_for_update()
REVOKE_GRANT = update(t.grants).where(t.grants.c.id == bindparam("p_grant_id"), t.grants.c.revoked_at.is_(None)
                                      ).values(revoked_at=bindparam("p_now"))
REVOKE_GRANT_REFRESH_TOKENS = update(t.refresh_tokens).where(
    _rt.grant_id == bindparam("p_grant_id"), _rt.revoked_at.is_(None)).values(revoked_at=bindparam("p_now"))
REVOKE_GRANT_ACCESS_TOKENS = update(t.access_tokens).where(
    _at.grant_id == bindparam("p_grant_id"), _at.revoked_at.is_(None)).values(revoked_at=bindparam("p_now"))

INSERT_REFRESH_TOKEN = insert(t.refresh_tokens)
GET_REFRESH_TOKEN = select(t.refresh_tokens).where(_rt.token_hash == bindparam("p_hash"))
CONSUME_REFRESH_TOKEN = (update(t.refresh_tokens)
                         .where(_rt.token_hash == bindparam("p_hash"), _rt.consumed_at.is_(None),
                                _rt.revoked_at.is_(None))
                         .values(consumed_at=bindparam("p_now"))
                         .returning(*t.refresh_tokens.c))
KEEP_SUCCESSOR = update(t.refresh_tokens).where(_rt.token_hash == bindparam("p_hash")).values(
    successor_hash=bindparam("p_successor_hash"), successor_sealed=bindparam("p_sealed"))
CLAIM_GRACE_RETRY = (update(t.refresh_tokens)
                     .where(_rt.token_hash == bindparam("p_hash"), _rt.grace_used_at.is_(None),
                            _rt.revoked_at.is_(None))
                     .values(grace_used_at=bindparam("p_now"))
                     .returning(_rt.token_hash))

LIVE_GRANTS_OF_USER = select(
    _g.client_id, _g.scope, _g.created_at,
    select(func.max(_rt.created_at)).where(_rt.grant_id == _g.id).scalar_subquery().label("last_rotation"),
).where(_g.user_id == bindparam("p_user_id"), _g.revoked_at.is_(None), _g.expires_at > bindparam("p_now"))
CONSENTS_OF_USER = select(t.consents.c.client_id, t.consents.c.scope, t.consents.c.created_at).where(
    t.consents.c.user_id == bindparam("p_user_id"))
LIVE_GRANT_IDS_OF_USER_CLIENT = select(_g.id).where(
    _g.user_id == bindparam("p_user_id"), _g.client_id == bindparam("p_client_id"), _g.revoked_at.is_(None))


def _grant(row: Any) -> Grant:
    return Grant(id=row.id, client_id=row.client_id, user_id=row.user_id, scope=Scope.parse(row.scope),
                 audience=row.audience, created_at=row.created_at, expires_at=row.expires_at,
                 revoked_at=row.revoked_at, oidc=OidcContext.from_json(row.oidc))


def _refresh(row: Any) -> RefreshToken:
    return RefreshToken(token_hash=row.token_hash, grant_id=row.grant_id, client_id=row.client_id,
                        scope=Scope.parse(row.scope), created_at=row.created_at, expires_at=row.expires_at,
                        consumed_at=row.consumed_at, revoked_at=row.revoked_at, successor_hash=row.successor_hash,
                        successor_sealed=row.successor_sealed, grace_used_at=row.grace_used_at)


class SqlGrants(SqlAggregate):
    """Grants: created by code exchange, locked by rotation, revoked with everything under them."""

    async def save_grant(self, grant: Grant) -> None:
        await self._conn.execute(INSERT_GRANT, {
            "id": grant.id, "client_id": grant.client_id, "user_id": grant.user_id, "scope": str(grant.scope),
            "audience": grant.audience, "created_at": grant.created_at, "expires_at": grant.expires_at,
            "revoked_at": grant.revoked_at, "oidc": grant.oidc.to_json() if grant.oidc else None})

    async def get_grant(self, grant_id: str, *, lock: bool = False) -> Grant | None:
        row = await self._first(LOCK_GRANT if lock else GET_GRANT, {"p_grant_id": grant_id})
        return _grant(row) if row else None

    async def lock_refresh_family(self, token_hash: bytes) -> Grant | None:
        row = await self._first(LOCK_REFRESH_FAMILY, {"p_hash": token_hash})
        return _grant(row) if row else None

    async def revoke_grant(self, grant_id: str, now: int) -> None:
        await self.get_grant(grant_id, lock=True)  # the family lock first, as rotation takes it
        params = {"p_grant_id": grant_id, "p_now": now}
        await self._conn.execute(REVOKE_GRANT, params)
        await self._conn.execute(REVOKE_GRANT_REFRESH_TOKENS, params)
        await self._conn.execute(REVOKE_GRANT_ACCESS_TOKENS, params)

    async def list_grants(self, *, user_id: str | None = None, client_id: str | None = None,
                          active_at: int | None = None) -> Sequence[Grant]:
        query = select(t.grants).order_by(t.grants.c.created_at)
        if user_id is not None:
            query = query.where(t.grants.c.user_id == user_id)
        if client_id is not None:
            query = query.where(t.grants.c.client_id == client_id)
        if active_at is not None:
            query = query.where(t.grants.c.revoked_at.is_(None), t.grants.c.expires_at > active_at)
        return [_grant(r) for r in await self._conn.execute(query)]

    async def revoke_user(self, user_id: str, now: int) -> int:
        grants = await self.list_grants(user_id=user_id, active_at=now)
        for grant in grants:
            await self.revoke_grant(grant.id, now)
        # Unredeemed codes and requests waiting on the consent page came from the old credentials too.
        await self._conn.execute(delete(t.authorization_codes).where(
            t.authorization_codes.c.user_id == user_id, t.authorization_codes.c.consumed_at.is_(None)))
        await self._conn.execute(delete(t.authorization_requests).where(t.authorization_requests.c.session_hash.in_(
            select(t.sessions.c.id_hash).where(t.sessions.c.user_id == user_id))))
        await self._conn.execute(delete(t.device_authorizations).where(  # approved, not yet collected
            t.device_authorizations.c.user_id == user_id, t.device_authorizations.c.status == "approved"))
        await self._conn.execute(delete(t.sessions).where(t.sessions.c.user_id == user_id))
        return len(grants)

    async def revoke_user_client(self, user_id: str, client_id: str, now: int) -> int:
        params = {"p_user_id": user_id, "p_client_id": client_id}
        grant_ids = [r.id for r in await self._conn.execute(LIVE_GRANT_IDS_OF_USER_CLIENT, params)]
        for grant_id in grant_ids:
            await self.revoke_grant(grant_id, now)
        # A code issued just before the revocation would otherwise start a new family afterwards.
        await self._conn.execute(delete(t.authorization_codes).where(
            t.authorization_codes.c.user_id == user_id, t.authorization_codes.c.client_id == client_id,
            t.authorization_codes.c.consumed_at.is_(None)))
        return len(grant_ids)

    async def list_connected_apps(self, user_id: str, now: int) -> Sequence[ConnectedApp]:
        found: dict[str, tuple[Scope, int, int]] = {}

        def add(client_id: str, scope: str, first: int, last: int) -> None:
            known = found.get(client_id)
            if known is None:
                found[client_id] = (Scope.parse(scope), first, last)
            else:
                found[client_id] = (Scope(known[0] | Scope.parse(scope)), min(known[1], first), max(known[2], last))

        for row in await self._conn.execute(LIVE_GRANTS_OF_USER, {"p_user_id": user_id, "p_now": now}):
            add(row.client_id, row.scope, row.created_at, max(row.created_at, row.last_rotation or 0))
        for row in await self._conn.execute(CONSENTS_OF_USER, {"p_user_id": user_id}):
            add(row.client_id, row.scope, row.created_at, row.created_at)
        if not found:
            return []
        names = {r.client_id: r.name for r in await self._conn.execute(
            select(t.clients.c.client_id, t.clients.c.name).where(t.clients.c.client_id.in_(list(found))))}
        apps = [ConnectedApp(client_id=cid, client_name=names.get(cid, cid), scope=scope, first_granted=first,
                             last_used=last) for cid, (scope, first, last) in found.items()]
        return sorted(apps, key=lambda a: (a.client_name.casefold(), a.client_id))


class SqlRefreshTokens(SqlAggregate):
    """Refresh tokens, by their hash; rotation consumes one and keeps its successor."""

    async def save_refresh_token(self, token: RefreshToken) -> None:
        await self._conn.execute(INSERT_REFRESH_TOKEN, {
            "token_hash": token.token_hash, "grant_id": token.grant_id, "client_id": token.client_id,
            "scope": str(token.scope), "created_at": token.created_at, "expires_at": token.expires_at})

    async def get_refresh_token(self, token_hash: bytes) -> RefreshToken | None:
        row = await self._first(GET_REFRESH_TOKEN, {"p_hash": token_hash})
        return _refresh(row) if row else None

    async def consume_refresh_token(self, token_hash: bytes, now: int) -> RefreshToken | None:
        row = await self._first(CONSUME_REFRESH_TOKEN, {"p_hash": token_hash, "p_now": now})
        return _refresh(row) if row else None

    async def keep_successor(self, token_hash: bytes, successor_hash: bytes, sealed: bytes) -> None:
        await self._conn.execute(KEEP_SUCCESSOR, {
            "p_hash": token_hash, "p_successor_hash": successor_hash, "p_sealed": sealed})

    async def claim_grace_retry(self, token_hash: bytes, now: int) -> bool:
        return await self._first(CLAIM_GRACE_RETRY, {"p_hash": token_hash, "p_now": now}) is not None
