"""``serve --workers N`` spreads connections over all N workers (issue #17: every worker takes its share).

With one shared listening socket the kernel hands a new connection to whichever worker is waiting in
accept, and under load that is mostly the same one: one core of two did the work. On Linux each worker now
listens on its own ``SO_REUSEPORT`` socket, and the kernel spreads connections over them by their address
hash. Counted from the access log's pid: under concurrent load every worker must answer at least 25 % of
an even share.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest

from tests.e2e.test_workers_share import pids_by_request, worker_pids
from tests.support import TOKENWARD, ServerProcess

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT balancing is Linux behaviour")

CONNECTIONS = 32  # keep-alive connections opened at once, as a load generator (wrk) or a proxy's pool does
REQUESTS = 20  # on each


@pytest.mark.parametrize("workers", [2, 3])
def test_every_worker_answers_its_share_of_concurrent_connections(fresh_server: ServerProcess, workers: int) -> None:
    server = fresh_server
    server.start(workers=workers)
    pids = worker_pids(server)
    assert len(pids) == workers

    opened = threading.Barrier(CONNECTIONS)

    def client(_: int) -> list[str]:
        ids = []
        with httpx2.Client(base_url=server.base_url) as keep_alive:
            opened.wait()  # every connection is opened at the same moment
            for _ in range(REQUESTS):
                r = keep_alive.get("/jwks.json")
                assert r.status_code == 200
                ids.append(r.headers["x-request-id"])
        return ids

    with ThreadPoolExecutor(CONNECTIONS) as pool:
        request_ids = [i for ids in pool.map(client, range(CONNECTIONS)) for i in ids]
    answered = Counter(pids_by_request(server, request_ids, timeout=15).values())
    assert set(answered) <= pids
    even = len(request_ids) / workers
    assert all(answered[pid] >= 0.25 * even for pid in pids), \
        f"requests per worker {dict(answered)}; each needs at least {0.25 * even:.0f}"


def test_a_port_already_taken_stops_serve_at_once(tmp_path: Path) -> None:
    """The supervisor reserves the port before any worker starts: a taken port is an error, not workers
    that crash and restart forever."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run([TOKENWARD, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
                              "--db", f"sqlite:///{tmp_path / 't.db'}"], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "TOKENWARD_KEK_FILE": str(tmp_path / "kek")})
    assert run.returncode != 0
    assert f"cannot listen on 127.0.0.1 port {port}" in run.stderr + run.stdout
