"""A JWKS fetched once and refetched only when needed: on an unknown ``kid`` (single-flight, at most once
per ``min_refetch_interval``) or when older than ``max_age``."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import httpx2

from tokenward.resource.discovery import require_secure_url
from tokenward.resource.keys import VerificationKey, parse_jwks

log = logging.getLogger("tokenward.resource")


class JwksCache:
    """Keys of one issuer; safe to share between threads and between asyncio tasks.

    ``jwks_uri`` must be https, or http on a loopback host unless ``allow_http`` (``InsecureUrlError``)."""

    def __init__(self, jwks_uri: str, *, min_refetch_interval: float = 30.0, max_age: float = 3600.0,
                 timeout: float = 5.0, allow_http: bool = False) -> None:
        self.jwks_uri = require_secure_url("jwks_uri", jwks_uri, allow_http=allow_http)
        self.min_refetch_interval = min_refetch_interval
        self.max_age = max_age
        self.timeout = timeout
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at = float("-inf")  # last successful fetch
        self._attempted_at = float("-inf")  # last attempt, successful or not
        self._unknown_kid_fetch_at = float("-inf")  # last refetch caused by an unknown kid
        self._generation = 0
        self._thread_lock = threading.Lock()
        self._async_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self.fetch_count = 0

    def get(self, kid: str) -> VerificationKey | None:
        return self._keys.get(kid)

    def _may_fetch(self, kid: str | None) -> bool:
        """Stale or never fetched: retry at most once a second. Unknown kid: a key rotated in since the last
        fetch, or an attacker's random kid; refetch at most once per ``min_refetch_interval`` for those."""
        now = time.monotonic()
        if now - self._attempted_at < 1.0:
            return False
        if now - self._fetched_at > self.max_age:
            # Stale: refetch so keys the issuer retired stop being trusted. While the issuer is down, keep
            # the old keys and try again only every ``min_refetch_interval``.
            return not self._keys or now - self._attempted_at >= self.min_refetch_interval
        if kid is not None and kid not in self._keys:
            if now - self._unknown_kid_fetch_at < self.min_refetch_interval:
                return False
            self._unknown_kid_fetch_at = now
            return True
        return False

    @property
    def fetched(self) -> bool:
        """True once a fetch has succeeded: before that, an empty set means "the issuer could not be asked"."""
        return self._fetched_at != float("-inf")

    def is_stale(self) -> bool:
        return time.monotonic() - self._fetched_at > self.max_age

    def _store(self, document: object) -> None:
        self._keys = parse_jwks(document)
        self._fetched_at = time.monotonic()
        self._generation += 1

    def refresh_sync(self, kid: str | None = None) -> None:
        """Fetch if ``kid`` is unknown (or the set is stale) and nobody else just did."""
        seen = self._generation
        with self._thread_lock:
            if self._generation != seen or not self._may_fetch(kid):
                return
            self._attempted_at = time.monotonic()
            self.fetch_count += 1
            try:
                response = httpx2.get(self.jwks_uri, timeout=self.timeout)
                response.raise_for_status()
                self._store(response.json())
            except (httpx2.HTTPError, ValueError) as exc:
                log.warning("JWKS fetch failed: %s", type(exc).__name__)
            finally:
                self._attempted_at = time.monotonic()  # waiters see this attempt and do not repeat it

    async def refresh(self, kid: str | None = None) -> None:
        """The async twin of ``refresh_sync``; concurrent tasks wait for one fetch."""
        seen = self._generation
        loop = asyncio.get_running_loop()
        lock = self._async_locks.setdefault(loop, asyncio.Lock())
        async with lock:
            if self._generation != seen or not self._may_fetch(kid):
                return
            self._attempted_at = time.monotonic()
            self.fetch_count += 1
            try:
                async with httpx2.AsyncClient(timeout=self.timeout) as http:
                    response = await http.get(self.jwks_uri)
                response.raise_for_status()
                self._store(response.json())
            except (httpx2.HTTPError, ValueError) as exc:
                log.warning("JWKS fetch failed: %s", type(exc).__name__)
            finally:
                self._attempted_at = time.monotonic()  # waiters see this attempt and do not repeat it
