"""The device authorization endpoint (RFC 8628 §3.1-§3.2): ``POST /device_authorization``.

Client authentication is the token endpoint's (and counts failures the same way); the client must be
registered for the device grant (a per-client opt-in: the grant is the one phishing campaigns abuse, §5.4).
The answer carries a 256-bit device code and an 8-letter user code, both stored only as hashes, the user code
unique among live requests. The device's IP address and user agent are kept to be shown on the consent page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from tokenward.protocol.device import display_user_code, new_user_code
from tokenward.protocol.errors import (
    InvalidRequestError,
    InvalidScopeError,
    SlowDownError,
    TemporarilyUnavailableError,
    UnauthorizedClientError,
)
from tokenward.protocol.scope import Scope
from tokenward.protocol.types import GrantType
from tokenward.server.audit import audit
from tokenward.server.client_auth import authenticate_request
from tokenward.server.client_cache import ClientCache
from tokenward.server.crypto import random_token, token_hash
from tokenward.server.grants.base import select_audience
from tokenward.server.model import DeviceAuthorization
from tokenward.server.rate_limit import RateLimiter
from tokenward.server.settings import Settings
from tokenward.server.store.protocols import Store

DEVICE_CODE_PREFIX = "tw_dc_"
MAX_USER_AGENT = 512
_DRAWS = 5  # user-code collisions among live requests are ~1 in 10^7 per draw even with 2,500 live ones


def verification_uri(settings: Settings) -> str:
    """``<issuer>/device``: built from the configured issuer, never from the request's Host."""
    return settings.issuer.rstrip("/") + "/device"


@dataclass(frozen=True, slots=True)
class DeviceAuthorizationResponse:
    """The §3.2 response; the device code never appears in a repr."""

    device_code: str = field(repr=False)
    user_code: str  # as displayed, XXXX-XXXX
    verification_uri: str
    expires_in: int
    interval: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "device_code": self.device_code, "user_code": self.user_code,
            "verification_uri": self.verification_uri,
            "verification_uri_complete": f"{self.verification_uri}?{urlencode({'user_code': self.user_code})}",
            "expires_in": self.expires_in, "interval": self.interval,
        }


class DeviceAuthorizationEndpoint:
    """``POST /device_authorization``. Used by: the web adapter (web/app.py)."""

    def __init__(self, settings: Settings, store: Store, limiter: RateLimiter, clients: ClientCache) -> None:
        self.settings = settings
        self.store = store
        self.limiter = limiter
        self.clients = clients

    async def handle(self, authorization: str | None, form: dict[str, str], ip: str | None = None,
                     user_agent: str | None = None) -> DeviceAuthorizationResponse:
        limited = await self.limiter.client_keys(self.clients, authorization, form, ip)
        async with self.limiter.counting_client_failures(limited):
            await self.limiter.check(limited)
            if authorization is None and "client_id" not in form:  # §3.1: REQUIRED without client auth
                raise InvalidRequestError("client_id is required.")
            client = await authenticate_request(self.clients, authorization, form)
        if GrantType.DEVICE_CODE not in client.grant_types:
            raise UnauthorizedClientError("This client may not use the device authorization grant.")
        requested = Scope.parse(form.get("scope"))
        if not requested <= client.scope:
            raise InvalidScopeError("The requested scope is not allowed for this client.")
        audience = select_audience(client, form.get("resource"), self.settings)
        created = self.limiter.device_authorization_keys(ip)
        wait = await self.limiter.retry_after(created)
        if wait:
            raise SlowDownError("Too many device authorization requests; try again later.", retry_after=wait)

        now = int(time.time())
        device_code = random_token(DEVICE_CODE_PREFIX)
        async with self.store.transaction(write=True) as tx:
            for _ in range(_DRAWS):
                user_code = new_user_code()
                stored = await tx.save_device_authorization(DeviceAuthorization(
                    device_code_hash=token_hash(device_code), user_code_hash=token_hash(user_code),
                    client_id=client.client_id, scope=requested or client.scope, audience=audience,
                    created_at=now, expires_at=now + self.settings.device_code_ttl,
                    interval=self.settings.device_poll_interval, ip=ip,
                    user_agent=(user_agent or "")[:MAX_USER_AGENT] or None), now)
                if stored:
                    break
            else:
                raise TemporarilyUnavailableError("No user code is free right now; try again.")
        await self.limiter.record(created)  # counts requests, not failures: the limit caps stored rows
        audit("device.authorization_created", client_id=client.client_id, grant_type=GrantType.DEVICE_CODE.value)
        return DeviceAuthorizationResponse(
            device_code=device_code, user_code=display_user_code(user_code),
            verification_uri=verification_uri(self.settings), expires_in=self.settings.device_code_ttl,
            interval=self.settings.device_poll_interval)
