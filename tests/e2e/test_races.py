"""Single use under concurrency: 16 simultaneous refreshes of one token and 16 simultaneous redemptions of
one code against ``serve --workers 4`` give exactly one success and fifteen ``invalid_grant``, never a 5xx,
and leave the family without an active refresh token (TRIALS times each, on SQLite and PostgreSQL).
``make soak`` (bench/soak.py) runs the same races 200 times each."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.conftest import BACKENDS, dispose, new_server
from tests.races import WORKERS, Racecourse, Racer
from tests.support import ServerProcess

TRIALS = 32


@pytest.fixture(scope="module", params=BACKENDS)
def four_workers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = new_server(tmp_path_factory.mktemp("race"), request.param)
    proc.start(workers=WORKERS)
    yield proc
    dispose(proc)


def test_concurrent_refreshes_of_one_token_give_exactly_one_success(four_workers: ServerProcess) -> None:
    with Racecourse(four_workers) as course:
        for trial in range(TRIALS):
            race = course.refresh()
            assert not race.problems, (trial, race.problems)
        assert course.active_grants() == []


def test_concurrent_redemptions_of_one_code_give_exactly_one_success(four_workers: ServerProcess) -> None:
    with Racecourse(four_workers) as course:
        for trial in range(TRIALS):
            race = course.code()
            assert not race.problems, (trial, race.problems)
        assert course.active_grants() == []


def test_many_concurrent_requests_never_exhaust_the_connection_pool(four_workers: ServerProcess) -> None:
    """A request holding a connection never waits for a second one: 96 simultaneous client-credentials
    requests against 4 workers with their connection pools all get their answer quickly."""
    service = four_workers.add_client(grant_types=("client_credentials",), redirect_uri=None)
    assert service.client_secret
    form = {"grant_type": "client_credentials", "client_id": service.client_id, "client_secret": service.client_secret}
    racer = Racer(96)
    try:
        started = time.monotonic()
        burst = racer.fire(four_workers.base_url + "/token", form)
    finally:
        racer.close()
    assert burst.outcomes == Counter({"ok": 96}), burst.outcomes
    assert time.monotonic() - started < 20
