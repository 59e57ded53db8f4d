"""Token revocation (RFC 7009): ``POST /revoke``.

``token_type_hint`` only orders the lookup (§2.1: the search extends to all types). Unknown or malformed
tokens answer 200 (§2.2). Revoking a refresh token revokes its whole grant: the other refresh tokens of the
family and the access tokens issued under it. A client may revoke only its own tokens; another client's
token stays active and the caller gets 400 ``invalid_request`` (§2.1: "the request is refused").
"""

from __future__ import annotations

import time

from tokenward.protocol.errors import InvalidRequestError
from tokenward.protocol.hints import lookup_order
from tokenward.server.audit import audit
from tokenward.server.client_auth import authenticate_request
from tokenward.server.client_cache import ClientCache
from tokenward.server.crypto import token_hash
from tokenward.server.jwt_access_token import read_own_access_token
from tokenward.server.keys import KeyRing
from tokenward.server.rate_limit import RateLimiter
from tokenward.server.settings import Settings
from tokenward.server.store.protocols import Store, Transaction

NOT_YOURS = "The token was not issued to this client."


class RevocationEndpoint:
    def __init__(self, settings: Settings, store: Store, keys: KeyRing, limiter: RateLimiter,
                 clients: ClientCache) -> None:
        self.settings = settings
        self.store = store
        self.keys = keys
        self.limiter = limiter
        self.clients = clients

    async def handle(self, authorization: str | None, form: dict[str, str], ip: str | None = None) -> None:
        token = form.get("token")
        limited = await self.limiter.client_keys(self.clients, authorization, form, ip)
        async with self.limiter.counting_client_failures(limited):
            await self.limiter.check(limited)
            client = await authenticate_request(self.clients, authorization, form)
        if token is None:
            raise InvalidRequestError("token is required.")
        async with self.store.transaction(write=True) as tx:
            now = int(time.time())
            order = lookup_order(form.get("token_type_hint"), self._refresh, self._access)
            for revoke in order:
                revoked = await revoke(tx, client.client_id, token, now)
                if revoked is not None:
                    audit("token.revoked", client_id=client.client_id, token_type=revoked)
                    return
            audit("token.revoked", client_id=client.client_id, token_type="unknown")

    async def _refresh(self, tx: Transaction, client_id: str, token: str, now: int) -> str | None:
        record = await tx.get_refresh_token(token_hash(token))
        if record is None:
            return None
        if record.client_id != client_id:
            raise InvalidRequestError(NOT_YOURS)
        await tx.revoke_grant(record.grant_id, now)
        return "refresh_token"

    async def _access(self, tx: Transaction, client_id: str, token: str, now: int) -> str | None:
        claims = await read_own_access_token(self.keys, token, self.settings.issuer)
        if claims is None:
            return None
        if claims.get("client_id") != client_id:
            raise InvalidRequestError(NOT_YOURS)
        await tx.revoke_access_token(claims["jti"], client_id, claims["exp"], now)
        return "access_token"
