"""Reserving attempts before checking a credential (issue #12 §2.4), on a real SQLite file: a locked key
counts nothing more, and a successful attempt un-counts itself and lifts only a lock it set."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tests.server.test_worker_caches import make_store
from tokenward.server.rate_limit import RateLimiter, RateLimitPolicies, RateLimitPolicy, Reservation

POLICY = RateLimitPolicy(3, 60, 30, 60)


def failures(tmp_path: Path) -> dict[str, int]:
    with sqlite3.connect(tmp_path / "c.db") as db:
        return dict(db.execute("SELECT key, failures FROM rate_limits"))


def test_a_locked_key_refuses_without_counting_and_releases_the_keys_before_it(tmp_path: Path) -> None:
    async def go() -> None:
        store = make_store(tmp_path)
        limiter = RateLimiter(store, RateLimitPolicies())
        keys = [("ip:a", POLICY), ("user:a", POLICY)]
        async with store.transaction(write=True) as tx:
            for _ in range(3):
                assert isinstance(await limiter.reserve(tx, [("user:a", POLICY)]), Reservation)
            refused = await limiter.reserve(tx, keys)
            assert isinstance(refused, int) and 29 <= refused <= 30
        rows = failures(tmp_path)
        assert rows == {"ip:a": 0, "user:a": 3}  # ip:a was counted, then released; user:a not counted
        await store.close()

    asyncio.run(go())


def test_a_success_uncounts_itself_and_lifts_the_lock_it_set(tmp_path: Path) -> None:
    async def go() -> None:
        store = make_store(tmp_path)
        limiter = RateLimiter(store, RateLimitPolicies())
        keys = [("user-ip:a", POLICY), ("ip:a", POLICY)]
        async with store.transaction(write=True) as tx:
            for _ in range(2):
                await limiter.reserve(tx, keys)
            third = await limiter.reserve(tx, keys)  # reaches the limit: locks both keys
            assert isinstance(third, Reservation) and set(third.locks) == {"user-ip:a", "ip:a"}
            await limiter.succeeded(tx, third, clear="user-ip:a")
            assert await tx.lockout_seconds(["user-ip:a", "ip:a"], int(third.locks["ip:a"]) - 30) == 0
        rows = failures(tmp_path)
        assert rows == {"ip:a": 2}  # the pair key is cleared, the other keeps the two failures
        await store.close()

    asyncio.run(go())
