"""The per-worker caches that keep the token endpoint off the database: client records and rate-limit locks,
on a real SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tokenward.protocol.scope import Scope
from tokenward.protocol.types import GrantType
from tokenward.server.client_cache import ClientCache
from tokenward.server.crypto import token_hash
from tokenward.server.model import Client
from tokenward.server.rate_limit import RateLimiter, RateLimitPolicies, RateLimitPolicy
from tokenward.server.store.sql.migrate import upgrade
from tokenward.server.store.sql.store import SqlStore


def make_store(tmp_path: Path) -> SqlStore:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    upgrade(url)
    return SqlStore.from_url(url)


def service(client_id: str) -> Client:
    return Client(client_id=client_id, name=client_id, public=False, secret_hash=token_hash("s"),
                  redirect_uris=(), grant_types=(GrantType.CLIENT_CREDENTIALS,), scope=Scope.parse("read"),
                  audiences=(), access_token_ttl=None, signing_alg=None, created_at=0)


def test_client_cache_serves_a_removed_client_until_its_ttl_then_forgets_it(tmp_path: Path) -> None:
    async def go() -> None:
        store = make_store(tmp_path)
        async with store.transaction(write=True) as tx:
            await tx.save_client(service("svc"))
        cache = ClientCache(store, ttl=0.3)
        first = await cache.get_client("svc")
        assert first is not None and first.client_id == "svc"
        async with store.transaction(write=True) as tx:
            assert await tx.delete_client("svc")
        assert await cache.get_client("svc") == first  # within the TTL: the cached record
        await asyncio.sleep(0.35)
        assert await cache.get_client("svc") is None  # after it: the database's answer
        await store.close()

    asyncio.run(go())


def test_client_cache_remembers_unknown_ids_and_stays_bounded(tmp_path: Path) -> None:
    async def go() -> None:
        store = make_store(tmp_path)
        cache = ClientCache(store, ttl=60, max_entries=100)
        for i in range(250):
            assert await cache.get_client(f"guess-{i}") is None
        assert len(cache._entries) <= 100
        async with store.transaction(write=True) as tx:
            await tx.save_client(service("guess-249"))
        assert await cache.get_client("guess-249") is None  # negative answers are cached for the TTL too
        uncached = ClientCache(store, ttl=0)
        assert await uncached.get_client("guess-249") is not None and not uncached._entries
        await store.close()

    asyncio.run(go())


POLICIES = RateLimitPolicies(client=RateLimitPolicy(2, 60, 30, 60))


def test_lock_set_by_one_worker_reaches_another_at_its_next_sync(tmp_path: Path) -> None:
    async def go() -> None:
        store = make_store(tmp_path)
        setter, other = RateLimiter(store, POLICIES), RateLimiter(store, POLICIES)
        keys = [("client:svc", POLICIES.client)]
        await setter.record(keys)
        assert await setter.retry_after(keys) == 0  # one failure: not yet
        await setter.record(keys)
        assert 29 <= await setter.retry_after(keys) <= 30  # the worker that locks knows at once
        assert await other.retry_after(keys) == 0  # the other one at its next sync
        await other.sync()
        assert 29 <= await other.retry_after(keys) <= 30
        await store.close()

    asyncio.run(go())


def test_sync_zero_asks_the_database_on_every_check(tmp_path: Path) -> None:
    async def go() -> None:
        store = make_store(tmp_path)
        setter, exact = RateLimiter(store, POLICIES), RateLimiter(store, POLICIES, sync_seconds=0)
        keys = [("client:svc", POLICIES.client)]
        for _ in range(2):
            await setter.record(keys)
        assert 29 <= await exact.retry_after(keys) <= 30
        await setter.clear("client:svc")
        assert await exact.retry_after(keys) == 0 and await setter.retry_after(keys) == 0
        await store.close()

    asyncio.run(go())
