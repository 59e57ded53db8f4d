"""JWT access-token validation (RFC 9068 §4) hardened per RFC 8725.

A small, strict compact-JWS path on ``cryptography`` instead of a general JOSE library: every header and
claim rule is explicit here, nothing optional is honoured (``jku``, ``x5u``, ``jwk``, ``x5c`` are never
read; any ``crit`` is refused), and the overhead over the raw signature check stays a few microseconds.
Differential tests run the same tokens through joserfc and PyJWT.

A verified token is cached (bounded, keyed by the whole token, never past ``exp``): a token presented again
costs a dictionary lookup and the time-claim checks. A cache hit also requires that the token's key is still in
the JWKS as last fetched and that the JWKS is not older than ``jwks_max_age``: a key the issuer withdrew
(``tokenward keys revoke``) stops working for cached tokens at the guard's next JWKS refresh (issue #12 §2.12).

``verify`` raises a ``BearerError`` for the token's faults, and ``DiscoveryError`` when the issuer's metadata or
JWKS cannot be had (down, an error status, garbage): the adapters answer that 503 (see ``discovery``). A failed
discovery is never kept: the next request tries again, and requests that waited for a failed attempt share its
failure instead of queueing one attempt each behind it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from tokenward.protocol.bearer import InsufficientScopeError, InvalidTokenError
from tokenward.resource.discovery import DiscoveryError, discover, discover_sync, require_secure_url
from tokenward.resource.jwks import JwksCache
from tokenward.resource.keys import SUPPORTED_ALGS
from tokenward.resource.principal import Principal

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
HEADER_CACHE_SIZE = 64
REQUIRED_CLAIMS = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")  # RFC 9068 §2.2
_REQUIRED = frozenset(REQUIRED_CLAIMS)
_NUMBER = (int, float)  # exact types: a JSON true is not a time
DEFAULT_ALGORITHMS = ("ES256", "RS256", "EdDSA")


class _UnknownKey(Exception):
    def __init__(self, kid: str) -> None:
        self.kid = kid


# The last character of a segment whose length is not a multiple of 4 carries unused bits that must be zero
# (RFC 4648 §3.5): otherwise one signature has 4 or 16 spellings, which joserfc and PyJWT refuse too.
_CANONICAL_LAST = ("", "", "AQgw", "AEIMQUYcgkosw048")  # by len(segment) % 4


def _b64decode(segment: str) -> bytes:
    """Strict base64url without padding: a character outside the alphabet is refused, never skipped, and only
    the canonical spelling is accepted."""
    if _B64URL.fullmatch(segment) is None:
        raise InvalidTokenError("The access token is malformed.")
    rest = len(segment) % 4
    if rest and segment[-1] not in _CANONICAL_LAST[rest]:  # a length of 4n+1 is never valid base64
        raise InvalidTokenError("The access token is malformed.")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise InvalidTokenError("The access token is malformed.") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity are a Python extension (RFC 8259 §6)


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ValueError("duplicate member name")
    return value


# Claims: RFC 7519 §4 lets a parser keep the lexically last of duplicate member names, as json does; the
# C decoder without hooks is 1-3 µs faster per token than one that rejects duplicates. The header is decoded
# once per distinct header (see the header cache), so there duplicates are refused (RFC 8725 §3.1, J18).
_DECODER = json.JSONDecoder(parse_constant=_no_constant)
_HEADER_DECODER = json.JSONDecoder(parse_constant=_no_constant, object_pairs_hook=_unique)


def _json_object(raw: bytes, decoder: json.JSONDecoder = _DECODER) -> dict[str, Any]:
    try:
        value = decoder.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise InvalidTokenError("The access token is malformed.") from None
    if not isinstance(value, dict):
        raise InvalidTokenError("The access token is malformed.")
    return value


class JwtVerifier:
    """Validates RFC 9068 access tokens of one issuer for one audience.

    Used by: the ASGI middleware, the FastAPI dependency and the Flask decorator of this package.

    ``issuer`` and ``jwks_uri`` must be https, or http on a loopback host; anything else raises
    ``InsecureUrlError`` here, and a discovered ``jwks_uri`` is held to the same rule (an https issuer's must be
    https). ``allow_http=True`` lifts this for tests and development (issue #12 §2.13).
    """

    def __init__(self, *, issuer: str, audience: str, jwks_uri: str | None = None,
                 algorithms: Iterable[str] = DEFAULT_ALGORITHMS, leeway: int = 60, max_token_bytes: int = 8192,
                 cache_size: int = 10_000, min_refetch_interval: float = 30.0, jwks_max_age: float = 3600.0,
                 clock: Callable[[], float] = time.time, allow_http: bool = False) -> None:
        self.algorithms = frozenset(algorithms)
        unsupported = self.algorithms - SUPPORTED_ALGS.keys()
        if unsupported:  # no "none", no HMAC: a resource server holds no shared secret
            raise ValueError(f"unsupported algorithms: {sorted(unsupported)}")
        self.allow_http = allow_http
        self.issuer = require_secure_url("issuer", issuer, allow_http=allow_http)
        self.audience = audience
        self.leeway = leeway
        self.max_token_bytes = max_token_bytes
        self.cache_size = cache_size
        self._clock = clock
        self._min_refetch_interval = min_refetch_interval
        self._jwks_max_age = jwks_max_age
        self._jwks: JwksCache | None = self._new_jwks(jwks_uri) if jwks_uri else None
        self._discovery_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self._discovery_thread_lock = threading.Lock()
        self._discovery_failures = 0  # failed discoveries so far; waiters compare it to share a failure
        self._discovery_error = ""
        self._cache: dict[str, tuple[Principal, str]] = {}  # token -> (principal, kid of its key)
        self._cache_lock = threading.Lock()
        self._headers: dict[str, tuple[str, str]] = {}  # header segment -> (alg, kid), already checked

    # -- construction from metadata
    def _new_jwks(self, jwks_uri: str) -> JwksCache:
        return JwksCache(jwks_uri, min_refetch_interval=self._min_refetch_interval, max_age=self._jwks_max_age,
                         allow_http=self.allow_http)

    @property
    def jwks(self) -> JwksCache:
        if self._jwks is None:
            raise RuntimeError("the verifier has no JWKS yet; call discover() or pass jwks_uri")
        return self._jwks

    async def ensure_ready(self) -> None:
        """Discover the JWKS once; concurrent first requests wait for the same discovery (and its failure)."""
        if self._jwks is None:
            failures = self._discovery_failures
            async with self._discovery_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
                if self._jwks is None:
                    self._shared_failure(failures)
                    try:
                        metadata = await discover(self.issuer, allow_http=self.allow_http)
                        cache = self._new_jwks(metadata["jwks_uri"])
                        await cache.refresh()
                        self._jwks = self._fetched(cache)
                    except DiscoveryError as error:
                        self._failed(error)
                        raise

    def ensure_ready_sync(self) -> None:
        if self._jwks is None:
            failures = self._discovery_failures
            with self._discovery_thread_lock:
                if self._jwks is None:
                    self._shared_failure(failures)
                    try:
                        cache = self._new_jwks(discover_sync(self.issuer, allow_http=self.allow_http)["jwks_uri"])
                        cache.refresh_sync()
                        self._jwks = self._fetched(cache)
                    except DiscoveryError as error:
                        self._failed(error)
                        raise

    def _shared_failure(self, failures_before_waiting: int) -> None:
        if self._discovery_failures != failures_before_waiting:  # the attempt we waited for failed
            raise DiscoveryError(self._discovery_error)

    def _failed(self, error: DiscoveryError) -> None:
        self._discovery_error = str(error)
        self._discovery_failures += 1

    @staticmethod
    def _fetched(cache: JwksCache) -> JwksCache:
        if not cache.fetched:  # JwksCache logged why; an empty key set would turn every token into a 401
            raise DiscoveryError(f"the issuer's JWKS could not be fetched from {cache.jwks_uri}")
        return cache

    # -- verification
    async def verify(self, token: str, required_scopes: Iterable[str] = ()) -> Principal:
        principal = self._from_cache(token)
        if principal is None:
            await self.ensure_ready()
            try:
                principal = self._verify(token)
            except _UnknownKey as unknown:
                await self.jwks.refresh(unknown.kid)
                principal = self._verify_known(token)
        return self._authorize(principal, required_scopes)

    def verify_sync(self, token: str, required_scopes: Iterable[str] = ()) -> Principal:
        principal = self._from_cache(token)
        if principal is None:
            self.ensure_ready_sync()
            try:
                principal = self._verify(token)
            except _UnknownKey as unknown:
                self.jwks.refresh_sync(unknown.kid)
                principal = self._verify_known(token)
        return self._authorize(principal, required_scopes)

    @staticmethod
    def _authorize(principal: Principal, required: Iterable[str]) -> Principal:
        needed = frozenset(required)
        if not needed <= principal.scopes:
            raise InsufficientScopeError("The access token lacks a required scope.", scope=" ".join(sorted(needed)))
        return principal

    def _from_cache(self, token: str) -> Principal | None:
        entry = self._cache.get(token)
        if entry is None:
            return None
        principal, kid = entry
        jwks = self._jwks
        if jwks is None or jwks.get(kid) is None or jwks.is_stale():
            # Its key left the JWKS at the last refresh, or the JWKS is due for one: verify in full (which
            # refetches when stale), so a withdrawn key stops working for cached tokens too.
            with self._cache_lock:
                self._cache.pop(token, None)
            return None
        now = self._clock()
        if now > principal.expires_at + self.leeway:
            with self._cache_lock:  # every change to the cache holds the lock; lookups need none
                self._cache.pop(token, None)  # another thread may have removed it already
            raise InvalidTokenError("The access token has expired.")
        nbf = principal.claims.get("nbf")
        if nbf is not None and now + self.leeway < nbf:
            raise InvalidTokenError("The access token is not valid yet.")
        return principal

    def _verify_known(self, token: str) -> Principal:
        """The second attempt, after a refetch: stale keys are used if the issuer could not be reached."""
        try:
            return self._verify(token, allow_stale=True)
        except _UnknownKey:
            if not self.jwks.fetched:  # a configured jwks_uri that never answered: no key is known at all
                raise DiscoveryError(f"the issuer's JWKS could not be fetched from {self.jwks.jwks_uri}") from None
            raise InvalidTokenError("The access token was signed with an unknown key.") from None

    def _verify(self, token: str, *, allow_stale: bool = False) -> Principal:
        if len(token) > self.max_token_bytes:
            raise InvalidTokenError("The access token is too large.")
        if not token.isascii():
            raise InvalidTokenError("The access token is malformed.")
        segments = token.split(".")
        if len(segments) != 3:
            raise InvalidTokenError("The access token is not a signed JWT.")
        header_b64, payload_b64, signature_b64 = segments
        checked = self._headers.get(header_b64)
        if checked is None:
            checked = self._check_header(_json_object(_b64decode(header_b64), _HEADER_DECODER))
            if len(self._headers) >= HEADER_CACHE_SIZE:
                self._headers.clear()
            self._headers[header_b64] = checked
        alg, kid = checked
        key = self.jwks.get(kid)
        if key is None or (not allow_stale and self.jwks.is_stale()):  # stale: a retired key must stop working
            raise _UnknownKey(kid)
        if not key.allows(alg):
            raise InvalidTokenError("The access token's key does not match its algorithm.")
        signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
        if not key.verify(alg, _b64decode(signature_b64), signing_input):
            raise InvalidTokenError("The access token's signature is invalid.")

        claims = _json_object(_b64decode(payload_b64))
        principal = self._check_claims(claims)
        if self.cache_size > 0:
            with self._cache_lock:  # Flask and other WSGI servers verify from many threads
                if len(self._cache) >= self.cache_size:
                    del self._cache[next(iter(self._cache))]  # the oldest entry
                self._cache[token] = (principal, kid)
        return principal

    def _check_header(self, header: dict[str, Any]) -> tuple[str, str]:
        """The header rules; all tokens of one key share a header, so the result is cached per header."""
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise InvalidTokenError("The access token's algorithm is not allowed.")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower().removeprefix("application/") != "at+jwt":
            raise InvalidTokenError("The token is not a JWT access token (typ at+jwt).")
        if "crit" in header:  # no extension is understood here (RFC 7515 §4.1.11)
            raise InvalidTokenError("The access token has unsupported critical headers.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidTokenError("The access token has no key id.")
        return alg, kid

    def _check_claims(self, claims: dict[str, Any]) -> Principal:
        """RFC 9068 §4 claim rules; written out flat because this runs once per new token."""
        if not claims.keys() >= _REQUIRED:
            raise InvalidTokenError("The access token lacks required claims.")
        if claims["iss"] != self.issuer:
            raise InvalidTokenError("The access token comes from another issuer.")
        aud = claims["aud"]
        if type(aud) is str:
            audiences: tuple[str, ...] = (aud,)
        elif type(aud) is list and all(type(a) is str for a in aud):
            audiences = tuple(aud)
        else:
            audiences = ()
        if self.audience not in audiences:
            raise InvalidTokenError("The access token is meant for another audience.")
        exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf")
        if type(exp) not in _NUMBER or type(iat) not in _NUMBER or (nbf is not None and type(nbf) not in _NUMBER):
            raise InvalidTokenError("The access token's time claims are malformed.")
        now = self._clock()
        if now > exp + self.leeway:
            raise InvalidTokenError("The access token has expired.")
        if nbf is not None and now + self.leeway < nbf:
            raise InvalidTokenError("The access token is not valid yet.")
        if iat > now + self.leeway:
            raise InvalidTokenError("The access token was issued in the future.")
        sub, client_id, jti = claims["sub"], claims["client_id"], claims["jti"]
        scope = claims.get("scope", "")
        if type(sub) is not str or type(client_id) is not str or type(jti) is not str or type(scope) is not str:
            raise InvalidTokenError("The access token's claims are malformed.")
        return Principal(subject=sub, client_id=client_id, scopes=frozenset(scope.split()), audience=audiences,
                         expires_at=int(exp), issuer=self.issuer, token_id=jti, claims=claims)
