"""``serve --workers 2`` shares its state: a rate limit holds as one total and ``/metrics`` sums every
worker, proven by requests that *both* workers answered (each access-log line carries its worker's pid).

The kernel spreads connections over the workers by address hash, so any few may land on one worker: each
request goes on a fresh connection, in small concurrent bursts, and a round is retried (bounded) until
both pids appear; a test fails with the pids it saw if they never do.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2

from tests.e2e.test_metrics import sample
from tests.support import ServerProcess

ROUNDS = 8  # a round where one worker served everything is repeated, at most this often
BURST = 4  # concurrent fresh connections: an idle worker then has to accept some


def worker_pids(server: ServerProcess) -> set[int]:
    """The pids of ``serve``'s worker processes: children of the supervisor the test started (other than
    multiprocessing's resource tracker)."""
    assert server.process is not None
    pids = set()
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == server.process.pid and b"resource_tracker" not in cmdline:
            pids.add(int(proc.name))
    return pids


def pids_by_request(server: ServerProcess, request_ids: list[str], timeout: float = 5.0) -> dict[str, int]:
    """The pid in the access-log line of each request (written just after its response: poll briefly)."""
    deadline = time.monotonic() + timeout
    wanted = set(request_ids)
    while True:
        found: dict[str, int] = {}
        for line in server.log_text().splitlines():
            if '"tokenward.access"' not in line:
                continue
            entry = json.loads(line)
            if entry.get("request_id") in wanted:
                assert "pid" in entry, f"the access-log line names no worker: {line}"
                found[entry["request_id"]] = entry["pid"]
        if len(found) == len(wanted) or time.monotonic() > deadline:
            missing = wanted - set(found)
            assert not missing, f"{len(missing)} requests have no access-log line"
            return found
        time.sleep(0.05)


def fresh(server: ServerProcess, method: str, path: str, *, local_address: str = "127.0.0.1",
          **kwargs: object) -> httpx2.Response:
    """One request on its own new connection (from ``local_address``, any 127/8 address on Linux)."""
    with httpx2.Client(transport=httpx2.HTTPTransport(local_address=local_address), timeout=30) as client:
        return client.request(method, server.base_url + path, **kwargs)  # type: ignore[arg-type]


IP_LIMIT = 8
LIMITS = {"TOKENWARD_RATE_LIMITS": "on", "TOKENWARD_RATE_LIMIT_CLIENT_IP": f"{IP_LIMIT}/300/60",
          "TOKENWARD_RATE_LIMIT_CLIENT": "1000/300"}


def test_rate_limit_is_one_total_across_two_workers_that_both_counted(fresh_server: ServerProcess) -> None:
    """The per-IP limit of failed client authentications (8) holds as one total for the address: exactly 8
    failures answer 401 although both workers served some of those 8, and every later one answers 429."""
    server = fresh_server
    server.start(workers=2, env=LIMITS)
    workers = worker_pids(server)
    assert len(workers) == 2, workers
    seen: list[Counter[int]] = []
    for round_ in range(ROUNDS):
        address = f"127.0.0.{10 + round_}"  # a fresh per-IP counter each round

        def bogus(_: int, address: str = address) -> httpx2.Response:
            # an unknown client each time: only the per-IP key is shared by these requests
            return fresh(server, "POST", "/token", local_address=address, data={"grant_type": "client_credentials"},
                              auth=(f"nobody-{uuid.uuid4().hex[:8]}", "wrong"))

        with ThreadPoolExecutor(BURST) as pool:
            responses = list(pool.map(bogus, range(2 * IP_LIMIT)))
        statuses = [r.status_code for r in responses]
        assert sorted(statuses) == [401] * IP_LIMIT + [429] * IP_LIMIT, (address, statuses)
        refused = [r for r in responses if r.status_code == 429]
        assert all(r.json()["error"] == "slow_down" and int(r.headers["retry-after"]) >= 1 for r in refused)
        pid_of = pids_by_request(server, [r.headers["x-request-id"] for r in responses])
        counted = Counter(pid_of[r.headers["x-request-id"]] for r in responses if r.status_code == 401)
        assert set(counted) <= workers, (counted, workers)
        seen.append(counted)
        if len(counted) == 2:  # both workers counted failures towards the one limit of 8
            return
    raise AssertionError(f"in {ROUNDS} rounds the counted failures never came from both workers {workers}: "
                         f"{[dict(c) for c in seen]}")


def test_metrics_sum_the_requests_both_workers_served(fresh_server: ServerProcess) -> None:
    """``/metrics`` (answered by one worker) counts every token request, including those the other worker
    served: the totals equal the number of requests, and the access log shows both pids answered some."""
    server = fresh_server
    server.start("--metrics", workers=2)
    workers = worker_pids(server)
    assert len(workers) == 2, workers
    service = server.add_client(grant_types=("client_credentials",), redirect_uri=None)
    assert service.client_secret
    served: Counter[int] = Counter()

    def issue(_: int) -> httpx2.Response:
        return fresh(server, "POST", "/token", data={"grant_type": "client_credentials"},
                          auth=(service.client_id, service.client_secret or ""))

    for _ in range(ROUNDS):
        with ThreadPoolExecutor(BURST) as pool:
            responses = list(pool.map(issue, range(3 * BURST)))
        assert [r.status_code for r in responses] == [200] * len(responses)
        served.update(pids_by_request(server, [r.headers["x-request-id"] for r in responses]).values())
        if len(served) == 2:
            break
    assert set(served) == workers, f"both workers {workers} should have served token requests: {dict(served)}"
    total = sum(served.values())

    answered: Counter[int] = Counter()  # whichever worker answers /metrics, it reports both workers' counts
    for _ in range(ROUNDS):
        with ThreadPoolExecutor(BURST) as pool:
            scrapes = list(pool.map(lambda _: fresh(server, "GET", "/metrics"), range(BURST)))
        for scrape in scrapes:
            assert scrape.status_code == 200
            text = scrape.text
            assert sample(text, "tokenward_events_total", event="token.issued",
                          grant_type="client_credentials") == total, dict(served)
            assert sample(text, "tokenward_http_requests_total", endpoint="/token", status="200") == total
            assert sample(text, "tokenward_http_request_duration_seconds_count", endpoint="/token") == total
        answered.update(pids_by_request(server, [r.headers["x-request-id"] for r in scrapes]).values())
        if len(answered) == 2:
            return
    raise AssertionError(f"/metrics was never answered by both workers {workers}: {dict(answered)}")
