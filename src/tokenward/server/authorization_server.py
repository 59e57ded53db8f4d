"""The composition root: settings, store, keys and endpoints of one server process."""

from __future__ import annotations

import time
from dataclasses import dataclass

from tokenward.server.client_cache import ClientCache
from tokenward.server.crypto import SecretBox, load_or_create_kek_file
from tokenward.server.endpoints.account import Account
from tokenward.server.endpoints.authorization_flow import AuthorizationFlow
from tokenward.server.endpoints.device_authorization import DeviceAuthorizationEndpoint
from tokenward.server.endpoints.device_verification import DeviceVerification
from tokenward.server.endpoints.end_session import EndSession
from tokenward.server.endpoints.introspect import IntrospectionEndpoint
from tokenward.server.endpoints.revoke import RevocationEndpoint
from tokenward.server.endpoints.token import TokenEndpoint
from tokenward.server.endpoints.userinfo import UserinfoEndpoint
from tokenward.server.keys import KeyRing, ensure_signing_keys
from tokenward.server.rate_limit import RateLimiter
from tokenward.server.settings import Settings
from tokenward.server.store.protocols import Store
from tokenward.server.store.sql.store import SqlStore


def secret_box(settings: Settings) -> SecretBox:
    """The box sealing private signing keys: ``TOKENWARD_KEK`` if set, else the key file (created 0600)."""
    return SecretBox(settings.kek if settings.kek is not None else load_or_create_kek_file(settings.kek_file))


@dataclass(slots=True)
class AuthorizationServer:
    settings: Settings
    store: Store
    keys: KeyRing
    box: SecretBox
    token: TokenEndpoint
    revocation: RevocationEndpoint
    introspection: IntrospectionEndpoint
    device_authorization: DeviceAuthorizationEndpoint
    device_verification: DeviceVerification
    limiter: RateLimiter
    authorization: AuthorizationFlow
    userinfo: UserinfoEndpoint
    end_session: EndSession
    account: Account

    @classmethod
    async def open(cls, settings: Settings) -> AuthorizationServer:
        """Connect to the (already migrated) database and make sure a signing key exists per algorithm."""
        store = SqlStore.from_url(settings.db_url, pgbouncer=settings.pgbouncer)
        box = secret_box(settings)
        async with store.transaction(write=True) as tx:
            await ensure_signing_keys(tx, box, settings.signing_algs, int(time.time()))
        keys = KeyRing(store, box, cache_seconds=settings.key_cache_seconds)
        await keys.refresh()
        limiter = RateLimiter(store, settings.rate_limit_policies, enabled=settings.rate_limits,
                              sync_seconds=settings.rate_limit_sync_seconds)
        clients = ClientCache(store, settings.client_cache_seconds)
        return cls(settings=settings, store=store, keys=keys, box=box, limiter=limiter,
                   authorization=AuthorizationFlow(settings, store, limiter, keys),
                   end_session=EndSession(settings, store, keys), account=Account(settings, store, limiter),
                   token=TokenEndpoint(settings, store, keys, box, limiter, clients),
                   revocation=RevocationEndpoint(settings, store, keys, limiter, clients),
                   introspection=IntrospectionEndpoint(settings, store, keys, limiter, clients),
                   device_authorization=DeviceAuthorizationEndpoint(settings, store, limiter, clients),
                   userinfo=UserinfoEndpoint(settings, store, keys, limiter, clients),
                   device_verification=DeviceVerification(settings, store, limiter))

    async def close(self) -> None:
        await self.store.close()
