"""Validation by asking the issuer (RFC 7662): for opaque tokens, or APIs that must see a revocation at once.

The resource server authenticates as a confidential client. Answers are cached briefly (``cache_seconds``,
5 s by default, never past the token's ``exp``; bounded in size) so a burst of calls with one token costs
one introspection; a revocation is therefore seen within ``cache_seconds``.

Only access tokens are accepted: an active answer must say ``token_type`` ``Bearer`` (RFC 7662 §2.2, the
RFC 6749 §7.1 type). A refresh token is active in introspection too (for its own client), yet it is a
credential for the token endpoint only (RFC 6749 §1.5), never for an API; an answer without ``token_type``
is refused for the same reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx2

from tokenward.protocol.bearer import InsufficientScopeError, InvalidTokenError
from tokenward.resource.discovery import (
    UNREACHABLE,
    IssuerUnavailableError,
    check_discovered_url,
    discover,
    discover_sync,
    require_secure_url,
)
from tokenward.resource.principal import Principal


class IntrospectionError(IssuerUnavailableError):
    """The introspection endpoint could not be asked (network, 5xx, an answer that is not JSON, or our own
    credentials refused): the token's fault is unknown, so the API answers 503, not 401."""


REFUSED = "The token issuer refused the introspection request."
UNREADABLE = "The token issuer's introspection answer could not be read."


class IntrospectionVerifier:
    """Same interface as JwtVerifier: ``verify`` / ``verify_sync`` return a Principal or raise BearerError.

    ``issuer`` and the introspection endpoint (given or discovered) must be https, or http on a loopback host
    (``InsecureUrlError``; our client secret is sent there), unless ``allow_http=True`` (issue #12 §2.13)."""

    def __init__(self, *, issuer: str, audience: str, client_id: str, client_secret: str,
                 introspection_endpoint: str | None = None, cache_seconds: float = 5.0, cache_size: int = 10_000,
                 timeout: float = 5.0, clock: Callable[[], float] = time.time, allow_http: bool = False) -> None:
        self.allow_http = allow_http
        self.issuer = require_secure_url("issuer", issuer, allow_http=allow_http)
        self.audience = audience
        self._auth = (client_id, client_secret)
        self._endpoint = introspection_endpoint if introspection_endpoint is None else require_secure_url(
            "introspection_endpoint", introspection_endpoint, allow_http=allow_http)
        self.cache_seconds = cache_seconds
        self.cache_size = cache_size
        self.timeout = timeout
        self._clock = clock
        self._cache: dict[str, tuple[float, Principal | None]] = {}  # token -> (valid until, answer)
        self._lock = threading.Lock()
        self.request_count = 0

    def __repr__(self) -> str:
        return f"IntrospectionVerifier(issuer={self.issuer!r}, client_id={self._auth[0]!r})"

    # -- endpoint discovery
    async def _endpoint_async(self) -> str:
        if self._endpoint is None:
            self._endpoint = self._endpoint_from(await discover(self.issuer, allow_http=self.allow_http))
        return self._endpoint

    def _endpoint_sync(self) -> str:
        if self._endpoint is None:
            self._endpoint = self._endpoint_from(discover_sync(self.issuer, allow_http=self.allow_http))
        return self._endpoint

    def _endpoint_from(self, metadata: dict[str, Any]) -> str:
        endpoint = metadata.get("introspection_endpoint")
        if not isinstance(endpoint, str):
            raise IntrospectionError("the issuer's metadata has no introspection_endpoint")
        return check_discovered_url(self.issuer, "introspection_endpoint", endpoint, allow_http=self.allow_http)

    # -- verification
    async def verify(self, token: str, required_scopes: Iterable[str] = ()) -> Principal:
        cached = self._cached(token)
        if cached is None:
            endpoint = await self._endpoint_async()
            try:
                async with httpx2.AsyncClient(timeout=self.timeout) as http:
                    response = await http.post(endpoint, data={"token": token, "token_type_hint": "access_token"},
                                               auth=self._auth)
            except httpx2.HTTPError:
                raise IntrospectionError(UNREACHABLE) from None
            cached = self._store(token, response)
        return self._answer(cached, required_scopes)

    def verify_sync(self, token: str, required_scopes: Iterable[str] = ()) -> Principal:
        cached = self._cached(token)
        if cached is None:
            try:
                response = httpx2.post(self._endpoint_sync(), data={"token": token, "token_type_hint": "access_token"},
                                       auth=self._auth, timeout=self.timeout)
            except httpx2.HTTPError:
                raise IntrospectionError(UNREACHABLE) from None
            cached = self._store(token, response)
        return self._answer(cached, required_scopes)

    def _cached(self, token: str) -> tuple[float, Principal | None] | None:
        entry = self._cache.get(token)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry

    def _store(self, token: str, response: httpx2.Response) -> tuple[float, Principal | None]:
        self.request_count += 1
        if response.status_code != 200:
            raise IntrospectionError(REFUSED)
        try:
            body = response.json()
        except ValueError:  # an HTML error page with a 200, a truncated answer (RFC 7662 §2.2 requires JSON)
            raise IntrospectionError(UNREADABLE) from None
        principal = self._principal(body) if isinstance(body, dict) and body.get("active") is True else None
        now = self._clock()
        until = now + self.cache_seconds
        if principal is not None:
            until = min(until, principal.expires_at)
        entry = (until, principal)
        with self._lock:
            if len(self._cache) >= self.cache_size:
                self._cache.pop(next(iter(self._cache)), None)
            self._cache[token] = entry
        return entry

    def _principal(self, body: dict[str, Any]) -> Principal | None:
        token_type = body.get("token_type")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            return None  # a refresh token (token_type refresh_token), or a kind we cannot tell
        aud = body.get("aud")
        audiences = (aud,) if isinstance(aud, str) else tuple(a for a in aud if isinstance(a, str)) \
            if isinstance(aud, list) else ()
        exp, sub, client_id = body.get("exp"), body.get("sub"), body.get("client_id")
        if body.get("iss", self.issuer) != self.issuer or self.audience not in audiences:
            return None
        if not isinstance(exp, int) or not isinstance(sub, str) or not isinstance(client_id, str):
            return None
        scope = body.get("scope") if isinstance(body.get("scope"), str) else ""
        return Principal(subject=sub, client_id=client_id, scopes=frozenset(str(scope).split()),
                         audience=audiences, expires_at=exp, issuer=self.issuer,
                         token_id=body.get("jti") if isinstance(body.get("jti"), str) else None, claims=dict(body))

    def _answer(self, entry: tuple[float, Principal | None], required: Iterable[str]) -> Principal:
        principal = entry[1]
        if principal is None or principal.expires_at <= self._clock():
            raise InvalidTokenError("The access token is not active.")
        needed = frozenset(required)
        if not needed <= principal.scopes:
            raise InsufficientScopeError("The access token lacks a required scope.", scope=" ".join(sorted(needed)))
        return principal


__all__ = ["IntrospectionError", "IntrospectionVerifier"]
