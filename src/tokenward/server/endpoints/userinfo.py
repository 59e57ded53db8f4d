"""The UserInfo endpoint (OpenID Connect Core 1.0 §5.3): ``GET`` or ``POST /userinfo`` with a bearer token.

How a token is recognised: it must be an access token this server signed (``typ`` ``at+jwt``, our ``iss``, a
still-published key; ``read_own_access_token``), unexpired, with ``openid`` in its ``scope``. Its ``aud`` is
not checked: userinfo belongs to the authorization server, and a client asking for ``openid`` gets a token
for its API's audience, not for us (Core §5.3.1 only asks for an access token obtained through an OIDC
request). Its ``jti`` names the ``access_tokens`` row, which names the grant: a revoked token, a revoked or
deleted grant (a code replay revokes the grant, RFC 6749 §4.1.2), a removed user or client all answer
``invalid_token``. The claims are released by the token's scope and the grant's ``claims`` request
``userinfo`` member (§5.4, §5.5; ``oidc.release``), read fresh from the user record on every call.
"""

from __future__ import annotations

import json
import time
from typing import Any

from tokenward.protocol.bearer import (
    InsufficientScopeError,
    InvalidBearerRequestError,
    InvalidTokenError,
    bearer_token_from_headers,
)
from tokenward.protocol.oidc import OPENID, release
from tokenward.server.client_cache import ClientCache
from tokenward.server.jwt_access_token import read_own_access_token
from tokenward.server.keys import KeyRing
from tokenward.server.rate_limit import RateLimiter
from tokenward.server.settings import Settings
from tokenward.server.store.protocols import Store

INVALID = "The access token is invalid, expired or revoked."


def userinfo_token(authorization_values: list[str], form_token: str | None, query_has_token: bool) -> str:
    """The one bearer token of the request: the ``Authorization`` header (RFC 6750 §2.1) or the form body's
    ``access_token`` (§2.2), never both; a token in the query is never used (OAuth 2.1 §5.1)."""
    if form_token is not None:
        if authorization_values:
            raise InvalidBearerRequestError("Send the token in one place only.")
        if query_has_token:
            raise InvalidBearerRequestError("Send the token in one place only.")
        return form_token
    return bearer_token_from_headers(authorization_values, query_has_token)


class UserinfoEndpoint:
    def __init__(self, settings: Settings, store: Store, keys: KeyRing, limiter: RateLimiter,
                 clients: ClientCache) -> None:
        self.settings = settings
        self.store = store
        self.keys = keys
        self.limiter = limiter
        self.clients = clients

    async def handle(self, token: str, ip: str | None = None) -> dict[str, Any]:
        """The claims for ``token``; raises a ``BearerError`` (401/403) or ``SlowDownError`` (429)."""
        limited = self.limiter.userinfo_keys(ip)
        await self.limiter.check(limited)
        try:
            return await self._claims(token)
        except InvalidTokenError:
            await self.limiter.record(limited)
            raise

    async def _claims(self, token: str) -> dict[str, Any]:
        claims = await read_own_access_token(self.keys, token, self.settings.issuer)
        now = int(time.time())
        if claims is None or claims["exp"] <= now:
            raise InvalidTokenError(INVALID)
        scopes = frozenset(str(claims.get("scope", "")).split())
        async with self.store.transaction() as tx:
            record = await tx.get_access_token(claims["jti"])
            if record is None or record.revoked_at is not None or record.grant_id is None:
                raise InvalidTokenError(INVALID)
            grant = await tx.get_grant(record.grant_id)
            if grant is None or grant.revoked_at is not None or grant.user_id is None:
                raise InvalidTokenError(INVALID)
            user = await tx.get_user(grant.user_id)
        if user is None or await self.clients.get_client(record.client_id) is None:
            raise InvalidTokenError(INVALID)
        if OPENID not in scopes:
            raise InsufficientScopeError("The access token does not have the openid scope.", scope=OPENID)
        requested: dict[str, Any] | None = None
        if grant.oidc is not None and grant.oidc.claims:
            requested = json.loads(grant.oidc.claims).get("userinfo")
        user_claims = dict(user.claims)
        if user.updated_at is not None:
            user_claims["updated_at"] = user.updated_at
        return {**release(user_claims, scopes, requested, username=user.username), "sub": user.id}
