"""Key rotation with pre-publication against a real 2-worker server: while it issues tokens and a guard
validates every one of them there is not a single validation failure; the scheduled rotation (the
maintenance loop with short settings) publishes the new kid in /jwks.json before any token carries it, and a
guard that fetched the JWKS during pre-publication validates the new key's tokens without fetching again."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest

from tests.e2e.test_workers_share import fresh, pids_by_request, worker_pids
from tests.support import TOKENWARD, ServerProcess
from tokenward.protocol.bearer import BearerError
from tokenward.resource import JwtVerifier


def kid_of(token: str) -> str:
    import base64

    return str(json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "==="))["kid"])


def test_rotation_under_load_causes_no_validation_failure(fresh_server: ServerProcess) -> None:
    server = fresh_server
    server.start(workers=2, env={"TOKENWARD_KEY_CACHE_SECONDS": "1"})
    client = server.add_client(grant_types=("client_credentials",), redirect_uri=None)
    guard = JwtVerifier(issuer=server.base_url, audience="urn:tokenward:api")
    outcomes: Counter[str] = Counter()
    kids: list[str] = []
    stop = threading.Event()

    def issue_and_validate() -> None:
        while not stop.is_set():
            r = server.token(client, {"grant_type": "client_credentials"})
            if r.status_code != 200:
                outcomes[f"token {r.status_code}"] += 1
                continue
            token = r.json()["access_token"]
            kids.append(kid_of(token))
            try:
                guard.verify_sync(token)
                outcomes["valid"] += 1
            except BearerError as error:
                outcomes[f"rejected {error.description}"] += 1

    def wait_for(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline, f"not observed in 60 s: {what} ({outcomes})"
            time.sleep(0.05)

    workers = [threading.Thread(target=issue_and_validate) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        wait_for(lambda: outcomes["valid"] >= 20, "20 tokens validated before the rotation")
        rotated = subprocess.run([TOKENWARD, "keys", "rotate", "--prepublish", "3", "--db", server.db_url, "--json"],
                                 capture_output=True, text=True, timeout=60, check=False,
                                 env={**os.environ, "TOKENWARD_KEK_FILE": str(server.workdir / "tokenward.kek")})
        assert rotated.returncode == 0, rotated.stderr
        new_es256 = next(k["kid"] for k in json.loads(rotated.stdout) if k["alg"] == "ES256")
        wait_for(lambda: kids.count(new_es256) >= 50, "50 tokens of the new key")  # the switch, then some
    finally:
        stop.set()
        for w in workers:
            w.join()

    assert set(outcomes) == {"valid"}, outcomes
    assert kids[0] != new_es256 and kids[-1] == new_es256  # signing switched after pre-publication
    # This guard fetched before the rotation: its first fetch, and exactly one refetch for the new kid (the
    # 4 threads wait for one fetch; an unknown kid is refetched at most once per min_refetch_interval).
    assert guard.jwks.fetch_count == 2


class CountingJwksProxy:
    """A loopback HTTP server that relays ``GET /jwks.json`` to the issuer and keeps every body it relayed:
    a guard's fetches counted from outside the guard."""

    def __init__(self, jwks_url: str) -> None:
        self.bodies: list[dict[str, Any]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                upstream = httpx2.get(jwks_url, timeout=5)
                proxy.bodies.append(upstream.json())
                self.send_response(upstream.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                self.wfile.write(upstream.content)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"

    def kids(self, fetch: int) -> set[str]:
        """The ES256 kids of the ``fetch``-th JWKS relayed (the client signs with ES256)."""
        return {k["kid"] for k in self.bodies[fetch]["keys"] if k["alg"] == "ES256"}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Seen:
    """One observation, in the order the single observer made them: a JWKS answer or an issued token."""

    what: str  # "jwks" or "token"
    kids: frozenset[str]  # the JWKS's kids, or the token header's one kid
    token: str = ""


BURST = 4  # concurrent JWKS requests on fresh connections per observation: an idle worker accepts some
ROTATION_SECONDS = 14  # the first rotation is due 8 s after start: the first guard fetches well before;
# the next one 14 s after the first, 8 s after the switch: the observer stops long before
PREPUBLISH_SECONDS = 6  # > TOKENWARD_KEY_CACHE_SECONDS: every worker publishes the key before any signs
NEW_KEY_TOKENS = 5  # tokens of the new key the observer collects after the switch


@pytest.fixture
def rotating_server(fresh_server: ServerProcess) -> Iterator[ServerProcess]:
    """A 2-worker server whose maintenance loop rotates the keys every ROTATION_SECONDS, pre-publishing the
    next key PREPUBLISH_SECONDS before it signs; workers re-read the key table every second."""
    fresh_server.start(workers=2, env={"TOKENWARD_KEY_CACHE_SECONDS": "1", "TOKENWARD_MAINTENANCE_SECONDS": "1",
                                       "TOKENWARD_KEY_ROTATION_SECONDS": str(ROTATION_SECONDS),
                                       "TOKENWARD_KEY_PREPUBLISH_SECONDS": str(PREPUBLISH_SECONDS)})
    yield fresh_server


def test_scheduled_rotation_publishes_the_new_kid_before_it_signs_and_a_guard_needs_no_refetch(
        rotating_server: ServerProcess) -> None:
    server = rotating_server
    client = server.add_client(grant_types=("client_credentials",), redirect_uri=None)
    early_proxy, ready_proxy = CountingJwksProxy(server.base_url + "/jwks.json"), \
        CountingJwksProxy(server.base_url + "/jwks.json")
    try:
        # A guard that fetches the JWKS now, before the first scheduled rotation (due 8 s after start).
        early = JwtVerifier(issuer=server.base_url, audience="urn:tokenward:api", jwks_uri=early_proxy.url)
        first = server.token(client, {"grant_type": "client_credentials"}).json()["access_token"]
        old_kid = kid_of(first)
        early.verify_sync(first)
        assert len(early_proxy.bodies) == early.jwks.fetch_count == 1
        assert early_proxy.kids(0) == {old_kid}, "the first rotation came before the first guard's fetch"

        ready = JwtVerifier(issuer=server.base_url, audience="urn:tokenward:api", jwks_uri=ready_proxy.url)
        ready_fetched_at: int | None = None
        workers = worker_pids(server)
        assert len(workers) == 2, workers
        publishing: set[int] = set()  # the workers whose JWKS answer showed the new kid
        publishing_at_switch: set[int] | None = None
        seen: list[Seen] = []
        new_kid = ""
        deadline = time.monotonic() + 60
        # One observer, strictly in turn: a burst of JWKS requests on fresh connections (so both workers
        # answer some; each answer's worker is known from its access-log line), then one token. The second
        # guard fetches once both workers publish the new kid: a worker re-reads the key table each second,
        # so for that long after the first one publishes the other may still answer without it.
        with ThreadPoolExecutor(BURST) as pool:
            while sum(1 for s in seen if s.what == "token" and s.kids == {new_kid}) < NEW_KEY_TOKENS:
                assert time.monotonic() < deadline, "no switch to a new signing key observed in 60 s"
                answers = list(pool.map(lambda _: fresh(server, "GET", "/jwks.json"), range(BURST)))
                with_new: list[str] = []
                for answer in answers:
                    kids = frozenset(k["kid"] for k in answer.json()["keys"] if k["alg"] == "ES256")
                    seen.append(Seen("jwks", kids))
                    if not new_kid and kids - early_proxy.kids(0):
                        (new_kid,) = kids - early_proxy.kids(0)
                    if new_kid in kids:
                        with_new.append(answer.headers["x-request-id"])
                if with_new and publishing != workers:
                    publishing |= set(pids_by_request(server, with_new).values())
                if publishing == workers and ready_fetched_at is None:
                    ready.verify_sync(first)  # during pre-publication: the old key still signs
                    ready_fetched_at = len(seen)
                r = server.token(client, {"grant_type": "client_credentials"})
                assert r.status_code == 200, r.text
                token = r.json()["access_token"]
                kid = kid_of(token)
                seen.append(Seen("token", frozenset({kid}), token))
                assert kid == old_kid or (new_kid and kid == new_kid), \
                    f"a token signed by {kid} before /jwks.json published it (published: {sorted(kids)})"
                if kid == new_kid and publishing_at_switch is None:
                    publishing_at_switch = set(publishing)

        # (a) The new kid was in /jwks.json before any token carried it, on both workers, and some tokens
        # were still signed by the old key after that (pre-publication); from the first new-key token on,
        # every JWKS answer, from either worker, carries both the new kid and the old one (kept published
        # until its tokens expire).
        published = next(i for i, s in enumerate(seen) if s.what == "jwks" and new_kid in s.kids)
        signs = next(i for i, s in enumerate(seen) if s.what == "token" and s.kids == {new_kid})
        assert published < signs
        assert publishing_at_switch == workers, (publishing_at_switch, workers)
        assert ready_fetched_at is not None and ready_fetched_at < signs
        assert any(s.what == "token" and s.kids == {old_kid} for s in seen[published:signs])
        assert all({new_kid, old_kid} <= s.kids for s in seen[signs:] if s.what == "jwks")
        assert all(s.kids == {new_kid} for s in seen[signs:] if s.what == "token")  # no switching back

        # (b) The guard that fetched during pre-publication validates every new-key token with that one
        # fetch; the guard that fetched before publication needs exactly one refetch.
        new_tokens = [s.token for s in seen[signs:] if s.what == "token"]
        assert ready_proxy.kids(0) >= {old_kid, new_kid}
        for token in new_tokens:
            assert ready.verify_sync(token).client_id == client.client_id
            assert early.verify_sync(token).client_id == client.client_id
        assert len(ready_proxy.bodies) == ready.jwks.fetch_count == 1
        assert len(early_proxy.bodies) == early.jwks.fetch_count == 2
        assert new_kid not in early_proxy.kids(0) and new_kid in early_proxy.kids(1)
    finally:
        early_proxy.close()
        ready_proxy.close()
