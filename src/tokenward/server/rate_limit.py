"""Brute-force protection: failed client authentications and failed logins are counted per account and per
IP address in the database, so every worker and host enforces the same limits.

From the ``limit``-th failure in a window the key is locked for ``lock`` seconds, doubling with every
further failure up to ``max_lock``; while locked, even correct credentials get 429 ``slow_down`` with
``Retry-After`` (otherwise guessing would simply continue). A successful login clears its username's count.

A login attempt is *reserved* before its password is checked: counted on every key in one atomic step
(a row lock), and checked only if no key is locked, so 60 concurrent guesses get at most ``limit``
verifications; a success un-counts it. Client-secret failures are counted as they happen; the *check*
reads a per-worker copy of the locked keys, re-read every ``sync_seconds`` (and updated at once by the
worker that sets a lock), so a request that passes the check costs no database round trip, and a failure
on an already locked key is answered 429. ``sync_seconds=0`` asks the database on every request instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from tokenward.protocol.credentials import parse_client_credentials
from tokenward.protocol.errors import InvalidClientError, InvalidRequestError, SlowDownError
from tokenward.server.addresses import address_group
from tokenward.server.client_cache import ClientCache
from tokenward.server.store.protocols import Store, StoreUnavailableError, Transaction
from tokenward.server.usernames import username_key

log = logging.getLogger("tokenward.server")


def lock_seconds(failures: int, *, limit: int, lock: int, max_lock: int) -> int:
    """How long the ``failures``-th failure of a window locks its key: 0 below ``limit``; from the
    ``limit``-th on, ``lock`` seconds doubling with every further failure, never more than ``max_lock``."""
    if failures < limit:
        return 0
    return min(lock << min(failures - limit, 20), max_lock)  # the capped shift keeps the number small


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    limit: int  # failures within ``window`` seconds that trigger a lock
    window: int
    lock: int  # first lock, seconds; doubles per further failure
    max_lock: int

    @classmethod
    def parse(cls, text: str, lock: int, max_lock: int) -> RateLimitPolicy:
        """``"10/60"``: 10 failures per 60 s; ``"10/60/30"`` also sets the first lock to 30 s."""
        parts = [int(p) for p in text.split("/")]
        return cls(parts[0], parts[1], parts[2] if len(parts) > 2 else lock, max_lock)


@dataclass(frozen=True, slots=True)
class RateLimitPolicies:
    # Per (client, address group) and per (username, address group): a stranger elsewhere cannot lock the
    # real client or user out (issue #12 §2.5); the global ceilings only slow a distributed guessing run.
    client: RateLimitPolicy = RateLimitPolicy(10, 60, 60, 3600)
    client_global: RateLimitPolicy = RateLimitPolicy(1000, 60, 60, 3600)
    client_ip: RateLimitPolicy = RateLimitPolicy(100, 60, 60, 3600)
    login_user: RateLimitPolicy = RateLimitPolicy(5, 300, 30, 900)
    login_user_global: RateLimitPolicy = RateLimitPolicy(100, 300, 30, 900)
    login_ip: RateLimitPolicy = RateLimitPolicy(30, 300, 30, 900)
    # Not failures: pending authorization requests created per IP (each is a stored row, issue #12 §2.6).
    authorize_ip: RateLimitPolicy = RateLimitPolicy(300, 60, 60, 600)
    # Wrong user codes on the device verification page (RFC 8628 §5.1: a user code is only ~34.6 bits), per
    # address group and per browser session; a correct code never clears them (a success is no reason to
    # allow more guesses).
    device_ip: RateLimitPolicy = RateLimitPolicy(10, 300, 60, 3600)
    device_session: RateLimitPolicy = RateLimitPolicy(5, 300, 60, 3600)
    # Not failures: device authorization requests created per address group (each is a stored row).
    device_authorization_ip: RateLimitPolicy = RateLimitPolicy(120, 60, 60, 600)


Keys = list[tuple[str, RateLimitPolicy]]


class RateLimiter:
    """Used by: the token, revocation and introspection endpoints (clients) and the login page (users)."""

    def __init__(self, store: Store, policies: RateLimitPolicies, *, enabled: bool = True,
                 sync_seconds: float = 1.0) -> None:
        self.store = store
        self.policies = policies
        self.enabled = enabled
        self.sync_seconds = sync_seconds
        self._locked: dict[str, int] = {}  # key → locked_until, as this worker last read it

    async def sync(self) -> None:
        """Re-read the locked keys (a handful of rows: only keys whose lock has not yet expired)."""
        async with self.store.transaction() as tx:
            self._locked = dict(await tx.locked_keys(int(time.time())))

    async def run(self) -> None:
        """Keep this worker's copy of the locks fresh; a failed read keeps the previous copy."""
        if not self.enabled or self.sync_seconds <= 0:
            return
        while True:
            try:
                await self.sync()
            except StoreUnavailableError as exc:
                log.warning("could not re-read rate-limit locks: %s", exc)
            await asyncio.sleep(self.sync_seconds)

    async def client_keys(self, clients: ClientCache, authorization: str | None, form: dict[str, str],
                          ip: str | None) -> Keys:
        """The keys a failed client authentication counts on. A public client has no secret to guess, so
        nothing a stranger sends in its name may lock it (issue #12 §2.5): only the address is counted."""
        try:
            credentials = parse_client_credentials(authorization, form)
        except InvalidRequestError:
            credentials = None
        keys: Keys = []
        group = address_group(ip) if ip else None
        if credentials is not None and credentials.secret is not None:
            known = await clients.get_client(credentials.client_id)  # cached: no round trip on the hot path
            if known is not None and known.public:
                credentials = None
        if credentials is not None and credentials.secret is not None:
            client_id = credentials.client_id[:120]
            if group:
                keys.append((f"client-ip:{client_id}@{group}", self.policies.client))
            keys.append((f"client:{client_id}", self.policies.client_global))
        if group:
            keys.append((f"ip:{group}", self.policies.client_ip))
        return keys

    def login_keys(self, username: str, ip: str | None) -> Keys:
        # The key user lookups compare (usernames.py): ALICE and full-width alice count as alice; storable, bounded.
        name = username_key(username[:200])[:120].encode("unicode_escape").decode("ascii")[:130]
        group = address_group(ip) if ip else None
        keys: Keys = []
        if group:  # first: a successful login clears it
            keys.append((f"user-ip:{name}@{group}", self.policies.login_user))
        keys.append((f"user:{name}", self.policies.login_user_global if group else self.policies.login_user))
        if group:
            keys.append((f"login-ip:{group}", self.policies.login_ip))
        return keys

    def device_keys(self, ip: str | None, session_hash: bytes | None) -> Keys:
        """Where a wrong user code counts: the address group and the browser session (RFC 8628 §5.1)."""
        keys: Keys = []
        if ip:
            keys.append((f"device-ip:{address_group(ip)}", self.policies.device_ip))
        if session_hash:
            keys.append((f"device-session:{session_hash.hex()[:32]}", self.policies.device_session))
        return keys

    def device_authorization_keys(self, ip: str | None) -> Keys:
        return [(f"device-authorization-ip:{address_group(ip)}", self.policies.device_authorization_ip)] if ip else []

    def authorize_keys(self, ip: str | None) -> Keys:
        return [(f"authorize-ip:{address_group(ip)}", self.policies.authorize_ip)] if ip else []

    def userinfo_keys(self, ip: str | None) -> Keys:
        """Invalid bearer tokens at userinfo count per address, under the client-address policy."""
        return [(f"userinfo-ip:{address_group(ip)}", self.policies.client_ip)] if ip else []

    async def retry_after(self, keys: Keys) -> int:
        """Seconds until the longest lock among ``keys`` ends (0: none is locked)."""
        if not self.enabled or not keys:
            return 0
        now = int(time.time())
        if self.sync_seconds <= 0:
            async with self.store.transaction() as tx:
                return await tx.lockout_seconds([k for k, _ in keys], now)
        return max(0, *(self._locked.get(k, 0) - now for k, _ in keys)) if self._locked else 0

    async def check(self, keys: Keys) -> None:
        wait = await self.retry_after(keys)
        if wait:
            raise SlowDownError("Too many failed attempts; try again later.", retry_after=wait)

    async def record(self, keys: Keys) -> int:
        """Count a failure on each key; returns how long a key that was *already* locked still is (0: none
        was), so the caller answers 429 rather than the failure: past the limit no request learns more."""
        if not self.enabled or not keys:
            return 0
        now = int(time.time())
        refused = 0
        async with self.store.transaction(write=True) as tx:
            for key, p in keys:
                admitted, locked_until = await tx.count_attempt(
                    key, now, limit=p.limit, window=p.window, lock=p.lock, max_lock=p.max_lock,
                    refuse_when_locked=False)
                if locked_until > now:
                    self._locked[key] = locked_until
                if not admitted:
                    refused = max(refused, locked_until - now)
        return refused

    async def reserve(self, tx: Transaction, keys: Keys) -> Reservation | int:
        """Count an attempt on every key *before* checking the credential, in one atomic step per key, so
        concurrent attempts cannot all pass a check made before any of them is counted (issue #12 §2.4).
        Returns the reservation, or the seconds to wait if a key is locked (then nothing is counted)."""
        reservation = Reservation(keys, {})
        if not self.enabled or not keys:
            return reservation
        now = int(time.time())
        for i, (key, p) in enumerate(keys):
            admitted, locked_until = await tx.count_attempt(
                key, now, limit=p.limit, window=p.window, lock=p.lock, max_lock=p.max_lock,
                refuse_when_locked=True)
            if not admitted:
                for counted, _ in keys[:i]:
                    await tx.release_attempt(counted, reservation.locks.get(counted, 0))
                self._locked[key] = locked_until
                return max(1, locked_until - now)
            if locked_until > now:  # this attempt reached the limit: the lock starts with it
                reservation.locks[key] = locked_until
                self._locked[key] = locked_until
        return reservation

    async def succeeded(self, tx: Transaction, reservation: Reservation, clear: str | None = None) -> None:
        """The reserved attempt succeeded: clear ``clear`` and un-count it on the other keys."""
        if not self.enabled:
            return
        for key, _ in reservation.keys:
            if key == clear:
                await tx.clear_failures(key)
            else:
                await tx.release_attempt(key, reservation.locks.get(key, 0))
            if key == clear or key in reservation.locks:
                self._locked.pop(key, None)

    async def clear(self, key: str) -> None:
        if self.enabled:
            async with self.store.transaction(write=True) as tx:
                await tx.clear_failures(key)
            self._locked.pop(key, None)

    @asynccontextmanager
    async def counting_client_failures(self, keys: Keys) -> AsyncIterator[None]:
        """Record a failure when the block raises ``invalid_client`` (after its transaction rolled back).

        A client secret is compared (a constant-time SHA-256 match of 256 server-generated bits) before its
        failure is counted, so a success costs no database write; the count itself is atomic, and a failure
        on a key that was already locked is answered 429, so however requests interleave across workers at
        most ``limit`` failures per key are answered 401.
        """
        try:
            yield
        except InvalidClientError as exc:
            wait = await self.record(keys)
            if wait:
                raise SlowDownError("Too many failed attempts; try again later.", retry_after=wait) from exc
            raise


@dataclass(slots=True)
class Reservation:
    """The keys an attempt was counted on, and the locks it set (``release_attempt`` lifts only those)."""

    keys: Keys
    locks: dict[str, int]
