"""The token endpoint (RFC 6749 §3.2, §5): parse → authenticate client → check grant → exchange."""

from __future__ import annotations

import time

from tokenward.protocol.errors import (
    InvalidRequestError,
    ReuseDetectedError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from tokenward.protocol.types import GrantType
from tokenward.server.audit import audit
from tokenward.server.client_auth import authenticate_request
from tokenward.server.client_cache import ClientCache
from tokenward.server.crypto import SecretBox
from tokenward.server.grants import GRANTS
from tokenward.server.grants.base import GrantContext, GrantHandler, TokenResponse
from tokenward.server.keys import KeyRing
from tokenward.server.model import Client
from tokenward.server.rate_limit import RateLimiter
from tokenward.server.settings import Settings
from tokenward.server.store.protocols import Store


def select_grant(form: dict[str, str]) -> tuple[GrantType, GrantHandler]:
    value = form.get("grant_type")
    if value is None:
        raise InvalidRequestError("grant_type is required.")
    try:
        grant_type = GrantType(value)
    except ValueError:
        raise UnsupportedGrantTypeError("The grant_type is not supported.") from None
    return grant_type, GRANTS[grant_type]


def check_grant_allowed(client: Client, grant_type: GrantType) -> None:
    if grant_type not in client.grant_types:
        raise UnauthorizedClientError("This client may not use this grant_type.")


def require_client_id(authorization: str | None, form: dict[str, str]) -> None:
    """RFC 8628 §3.4: ``client_id`` is REQUIRED when the client does not authenticate, so a device-code poll
    that names no client at all is ``invalid_request`` rather than ``invalid_client``."""
    if (form.get("grant_type") == GrantType.DEVICE_CODE and authorization is None
            and "client_id" not in form):
        raise InvalidRequestError("client_id is required.")


class TokenEndpoint:
    """``POST /token``. Used by: the web adapter (web/app.py)."""

    def __init__(self, settings: Settings, store: Store, keys: KeyRing, box: SecretBox, limiter: RateLimiter,
                 clients: ClientCache) -> None:
        self.settings = settings
        self.store = store
        self.keys = keys
        self.box = box
        self.limiter = limiter
        self.clients = clients

    async def handle(self, authorization: str | None, form: dict[str, str], ip: str | None = None
                     ) -> TokenResponse:
        # The lock check and the (cached) client need no database round trip; each grant then opens the
        # transaction it needs: client credentials none, the others one write transaction.
        limited = await self.limiter.client_keys(self.clients, authorization, form, ip)
        async with self.limiter.counting_client_failures(limited):
            await self.limiter.check(limited)
            require_client_id(authorization, form)
            client = await authenticate_request(self.clients, authorization, form)
            grant_type, exchange = select_grant(form)
            check_grant_allowed(client, grant_type)
            ctx = GrantContext(settings=self.settings, keys=self.keys, box=self.box, store=self.store,
                               now=int(time.time()))
            try:
                issued = await exchange(ctx, client, form)
            except ReuseDetectedError:
                event = "refresh.reuse_detected" if grant_type is GrantType.REFRESH_TOKEN else "code.replay_detected"
                audit(event, client_id=client.client_id, grant_type=grant_type.value, reason="family revoked")
                raise
        audit("token.refreshed" if grant_type is GrantType.REFRESH_TOKEN else "token.issued",
              client_id=client.client_id, sub=issued.subject or client.client_id, grant_type=grant_type.value)
        return issued
