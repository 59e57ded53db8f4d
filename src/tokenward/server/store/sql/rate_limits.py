"""Failure counters and locks per key (``RateLimitStore``), shared by every worker and host."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import bindparam, case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tokenward.server.rate_limit import lock_seconds
from tokenward.server.store.sql import tables as t
from tokenward.server.store.sql.base import SqlAggregate

_limits = t.rate_limits.c

LOCKOUTS = select(_limits.locked_until).where(_limits.key.in_(bindparam("p_keys", expanding=True)),
                                              _limits.locked_until > bindparam("p_now"))
LOCKED_KEYS = select(_limits.key, _limits.locked_until).where(_limits.locked_until > bindparam("p_now"))
START_FAILURE_WINDOW = {
    "sqlite": sqlite_insert(t.rate_limits).on_conflict_do_nothing(index_elements=["key"]),
    "postgresql": pg_insert(t.rate_limits).on_conflict_do_nothing(index_elements=["key"]),
}
LOCK_FAILURES = select(t.rate_limits).where(_limits.key == bindparam("p_key")).with_for_update()
SET_FAILURES = update(t.rate_limits).where(_limits.key == bindparam("p_key")).values(
    failures=bindparam("p_failures"), window_start=bindparam("p_window_start"),
    locked_until=bindparam("p_locked_until"))
# Un-count a reserved attempt that succeeded, and lift the lock only if that attempt set it.
RELEASE_ATTEMPT = update(t.rate_limits).where(_limits.key == bindparam("p_key")).values(
    failures=case((_limits.failures > 0, _limits.failures - 1), else_=0),
    locked_until=case((_limits.locked_until == bindparam("p_locked_until"), 0), else_=_limits.locked_until))
CLEAR_FAILURES = delete(t.rate_limits).where(_limits.key == bindparam("p_key"))


class SqlRateLimits(SqlAggregate):
    """Counting is read-count-write under the key's row lock; how long a lock lasts is ``rate_limit.lock_seconds``."""

    async def lockout_seconds(self, keys: Sequence[str], now: int) -> int:
        rows = await self._conn.execute(LOCKOUTS, {"p_keys": list(keys), "p_now": now})
        return max((r.locked_until - now for r in rows), default=0)

    async def locked_keys(self, now: int) -> Mapping[str, int]:
        rows = await self._conn.execute(LOCKED_KEYS, {"p_now": now})
        return {r.key: r.locked_until for r in rows}

    async def count_attempt(self, key: str, now: int, *, limit: int, window: int, lock: int, max_lock: int,
                            refuse_when_locked: bool) -> tuple[bool, int]:
        # The row lock (PostgreSQL: SELECT ... FOR UPDATE; SQLite: BEGIN IMMEDIATE) makes read-count-write
        # one step: concurrent attempts on a key queue here, each seeing the count the previous one left.
        await self._conn.execute(START_FAILURE_WINDOW[self._conn.dialect.name], {
            "key": key, "window_start": now, "failures": 0, "locked_until": 0})
        row = await self._first(LOCK_FAILURES, {"p_key": key})
        admitted = row.locked_until <= now
        if not admitted and refuse_when_locked:
            return False, int(row.locked_until)
        failures, start = row.failures + 1, row.window_start
        if start + window <= now and admitted:  # a new window
            failures, start = 1, now
        locked_until = row.locked_until
        if failures >= limit:
            locked_until = now + lock_seconds(failures, limit=limit, lock=lock, max_lock=max_lock)
        await self._conn.execute(SET_FAILURES, {
            "p_key": key, "p_failures": failures, "p_window_start": start, "p_locked_until": locked_until})
        return admitted, int(locked_until)

    async def release_attempt(self, key: str, locked_until: int) -> None:
        await self._conn.execute(RELEASE_ATTEMPT, {"p_key": key, "p_locked_until": locked_until})

    async def clear_failures(self, key: str) -> None:
        await self._conn.execute(CLEAR_FAILURES, {"p_key": key})
