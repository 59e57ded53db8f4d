"""Single use under concurrency: 16 simultaneous redemptions against ``serve --workers 2`` on one SQLite
file give exactly one success and fifteen ``invalid_grant``, never a 5xx (repeated 20 times each)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest

from tests.conftest import BACKENDS, dispose, new_server
from tests.support import ServerProcess, authorize, exchange_code

CONCURRENCY = 16
TRIALS = 20


@pytest.fixture(scope="module", params=BACKENDS)
def two_workers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = new_server(tmp_path_factory.mktemp("race"), request.param)
    proc.start(workers=2)
    yield proc
    dispose(proc)


def fire_together(url: str, forms: list[dict[str, str]]) -> Counter[str]:
    """POST every form at once (a barrier releases all threads together); count outcomes."""
    barrier = threading.Barrier(len(forms))

    def one(form: dict[str, str]) -> str:
        with httpx2.Client(timeout=30) as http:
            barrier.wait()
            r = http.post(url, data=form)
        return "ok" if r.status_code == 200 else f"{r.status_code}:{r.json().get('error')}"

    with ThreadPoolExecutor(len(forms)) as pool:
        return Counter(pool.map(one, forms))


def test_concurrent_refreshes_of_one_token_give_exactly_one_success(two_workers: ServerProcess) -> None:
    client = two_workers.add_client(public=True, redirect_uri="http://127.0.0.1/cb")
    user = two_workers.add_user()
    with httpx2.Client(base_url=two_workers.base_url, follow_redirects=False) as browser:
        for trial in range(TRIALS):
            auth = authorize(two_workers, client, user, browser=browser, redirect_uri="http://127.0.0.1:9/cb")
            refresh = exchange_code(two_workers, client, auth).json()["refresh_token"]
            form = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": client.client_id}
            outcome = fire_together(two_workers.base_url + "/token", [form] * CONCURRENCY)
            assert outcome == Counter({"ok": 1, "400:invalid_grant": CONCURRENCY - 1}), (trial, outcome)


def test_concurrent_redemptions_of_one_code_give_exactly_one_success(two_workers: ServerProcess) -> None:
    client = two_workers.add_client(public=True, redirect_uri="http://127.0.0.1/cb")
    user = two_workers.add_user()
    with httpx2.Client(base_url=two_workers.base_url, follow_redirects=False) as browser:
        for trial in range(TRIALS):
            auth = authorize(two_workers, client, user, browser=browser, redirect_uri="http://127.0.0.1:9/cb")
            form = {"grant_type": "authorization_code", "code": auth.code, "redirect_uri": auth.redirect_uri,
                    "code_verifier": auth.verifier, "client_id": client.client_id}
            outcome = fire_together(two_workers.base_url + "/token", [form] * CONCURRENCY)
            assert outcome == Counter({"ok": 1, "400:invalid_grant": CONCURRENCY - 1}), (trial, outcome)


def test_many_concurrent_requests_never_exhaust_the_connection_pool(two_workers: ServerProcess) -> None:
    """A request holding a connection never waits for a second one: 96 simultaneous client-credentials
    and refresh requests against 2 workers with 16-connection pools all get their answer quickly."""
    service = two_workers.add_client(grant_types=("client_credentials",), redirect_uri=None)
    assert service.client_secret
    forms = [{"grant_type": "client_credentials", "client_id": service.client_id,
              "client_secret": service.client_secret}] * 96
    started = time.monotonic()
    outcome = fire_together(two_workers.base_url + "/token", forms)
    assert outcome == Counter({"ok": 96}), outcome
    assert time.monotonic() - started < 20
