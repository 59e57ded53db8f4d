"""The lock back-off of brute-force protection (``rate_limit.lock_seconds``): a pure function, so its
figures are checked here directly; the e2e rate-limit tests check that the store applies it."""

from __future__ import annotations

import pytest

from tokenward.server.rate_limit import lock_seconds


@pytest.mark.parametrize("failures", [0, 1, 4])
def test_no_lock_when_failures_are_below_the_limit(failures: int) -> None:
    assert lock_seconds(failures, limit=5, lock=30, max_lock=900) == 0


def test_first_lock_lasts_lock_seconds_when_the_limit_is_reached() -> None:
    assert lock_seconds(5, limit=5, lock=30, max_lock=900) == 30


def test_lock_doubles_with_every_further_failure_when_below_the_cap() -> None:
    assert [lock_seconds(f, limit=5, lock=30, max_lock=900) for f in range(5, 10)] == [30, 60, 120, 240, 480]


def test_lock_stops_at_max_lock_when_doubling_would_exceed_it() -> None:
    assert [lock_seconds(f, limit=5, lock=30, max_lock=900) for f in range(9, 13)] == [480, 900, 900, 900]


def test_lock_is_max_lock_when_failures_are_huge() -> None:
    """The exponent is capped, so a key hammered for days still costs a small multiplication."""
    assert lock_seconds(10**9, limit=5, lock=30, max_lock=10**12) == 30 * 2**20
    assert lock_seconds(10**9, limit=5, lock=30, max_lock=900) == 900


def test_lock_never_shrinks_when_failures_grow() -> None:
    locks = [lock_seconds(f, limit=3, lock=7, max_lock=1000) for f in range(0, 40)]
    assert locks == sorted(locks)
