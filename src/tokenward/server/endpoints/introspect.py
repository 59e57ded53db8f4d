"""Token introspection (RFC 7662): ``POST /introspect``.

Callers must authenticate as confidential clients (§2.1: no token scanning). Anything the caller may not
learn about — unknown, expired, revoked, tampered, or a token for another audience — is exactly
``{"active": false}`` (§2.2). A caller sees a token issued to itself, and access tokens whose ``aud`` is
one of the caller's registered audiences (a resource server registers its own audience).
"""

from __future__ import annotations

import time
from typing import Any

from tokenward.protocol.errors import InvalidClientError, InvalidRequestError
from tokenward.protocol.hints import lookup_order
from tokenward.server.audit import audit
from tokenward.server.client_auth import authenticate_request
from tokenward.server.client_cache import ClientCache
from tokenward.server.crypto import token_hash
from tokenward.server.jwt_access_token import read_own_access_token
from tokenward.server.keys import KeyRing
from tokenward.server.model import Client
from tokenward.server.rate_limit import RateLimiter
from tokenward.server.settings import Settings
from tokenward.server.store.protocols import Store, Transaction

INACTIVE: dict[str, Any] = {"active": False}
ACCESS_TOKEN_FIELDS = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti")


class IntrospectionEndpoint:
    def __init__(self, settings: Settings, store: Store, keys: KeyRing, limiter: RateLimiter,
                 clients: ClientCache) -> None:
        self.settings = settings
        self.store = store
        self.keys = keys
        self.limiter = limiter
        self.clients = clients

    async def handle(self, authorization: str | None, form: dict[str, str], ip: str | None = None) -> dict[str, Any]:
        token = form.get("token")
        limited = await self.limiter.client_keys(self.clients, authorization, form, ip)
        async with self.limiter.counting_client_failures(limited):
            await self.limiter.check(limited)
            caller = await authenticate_request(self.clients, authorization, form)
            if caller.public:
                raise InvalidClientError("Public clients may not introspect tokens.")
        if token is None:
            raise InvalidRequestError("token is required.")
        async with self.store.transaction() as tx:
            now = int(time.time())
            order = lookup_order(form.get("token_type_hint"), self._refresh, self._access)
            answer = dict(INACTIVE)
            for look in order:
                found = await look(tx, caller, token, now)
                if found is not None:
                    answer = found
                    break
        # An access token dies with its client. Checked after the transaction: a client-cache miss must not
        # need a second pooled connection while this request holds one (at full pool, that waits forever).
        if answer["active"] and answer["token_type"] == "Bearer" and (
                await self.clients.get_client(str(answer.get("client_id"))) is None):
            answer = dict(INACTIVE)
        audit("token.introspected", client_id=caller.client_id, active=bool(answer["active"]))
        return answer

    async def _access(self, tx: Transaction, caller: Client, token: str, now: int) -> dict[str, Any] | None:
        claims = await read_own_access_token(self.keys, token, self.settings.issuer)
        if claims is None:
            return None
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else list(aud) if isinstance(aud, list) else []
        visible = claims.get("client_id") == caller.client_id or bool(set(audiences) & set(caller.audiences))
        if not visible or claims["exp"] <= now:
            return dict(INACTIVE)
        record = await tx.get_access_token(claims["jti"])
        if record is not None and record.revoked_at is not None:
            return dict(INACTIVE)
        # A user's token always has a record; none left means its grant (or user) was deleted. Only a
        # client-credentials token (sub == client_id) is recorded solely when revoked.
        if record is None and claims.get("sub") != claims.get("client_id"):
            return dict(INACTIVE)
        return {"active": True, "token_type": "Bearer", **{k: claims[k] for k in ACCESS_TOKEN_FIELDS if k in claims}}

    async def _refresh(self, tx: Transaction, caller: Client, token: str, now: int) -> dict[str, Any] | None:
        record = await tx.get_refresh_token(token_hash(token))
        if record is None:
            return None
        grant = await tx.get_grant(record.grant_id)
        if (record.client_id != caller.client_id or grant is None or grant.revoked_at is not None
                or record.revoked_at is not None or record.consumed_at is not None or record.expires_at <= now):
            return dict(INACTIVE)
        return {"active": True, "token_type": "refresh_token", "scope": str(record.scope),
                "client_id": record.client_id, "sub": grant.user_id or record.client_id, "aud": grant.audience,
                "iss": self.settings.issuer, "exp": record.expires_at, "iat": record.created_at}
