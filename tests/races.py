"""Single-use races against a running ``tokenward serve``, shared by tests/e2e/test_races.py (a few trials
in ``make test``) and bench/soak.py (``make soak``, hundreds of trials).

A trial gets a fresh code (or a fresh refresh token) for one public client and fires the same /token form
``CONCURRENCY`` times at once: every request has its own thread and a fresh TCP connection, all released
together by a barrier, so each burst is spread over the workers anew. The expected outcome is exactly one
200 and ``invalid_grant`` for the rest, never a 5xx. The losers present a credential that has already been
used, which revokes what the winner received (RFC 9700 §4.14.2, OAuth 2.1 §4.1.3): afterwards the family
has no active refresh token at all — neither the presented credential nor the winner's refresh token works.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx2

from tests.support import TOKENWARD, Authorization, ServerProcess, authorize, exchange_code

CONCURRENCY = 16
WORKERS = 4
REDIRECT_URI = "http://127.0.0.1/cb"
LOOPBACK = "http://127.0.0.1:9/cb"  # any port on a loopback redirect URI (RFC 8252 §7.3)


@dataclass
class Answer:
    status: int  # 0: no HTTP answer (connection error, timeout)
    error: str  # the OAuth error code, or the exception's class name; "" on success
    body: dict[str, Any]
    seconds: float  # from the barrier's release to the answer

    @property
    def label(self) -> str:
        return "ok" if self.status == 200 else f"{self.status}:{self.error}"


@dataclass
class Burst:
    answers: list[Answer]
    seconds: float  # from the first release to the last answer

    @property
    def outcomes(self) -> Counter[str]:
        return Counter(a.label for a in self.answers)

    @property
    def successes(self) -> list[Answer]:
        return [a for a in self.answers if a.status == 200]

    @property
    def server_errors(self) -> int:
        """5xx answers and requests that got no answer at all."""
        return sum(1 for a in self.answers if a.status >= 500 or a.status == 0)


class Racer:
    """``size`` threads with an HTTP client each; ``fire`` sends one form from all of them at once."""

    def __init__(self, size: int = CONCURRENCY, timeout: float = 30.0) -> None:
        self.size = size
        # No keep-alive: every request opens its own connection, which any worker may accept. Plain HTTP, so
        # no TLS context is built (that costs ~50 ms of CPU per client).
        self._clients = [httpx2.Client(timeout=timeout, verify=False,
                                       limits=httpx2.Limits(max_keepalive_connections=0)) for _ in range(size)]
        self._pool = ThreadPoolExecutor(size)

    def fire(self, url: str, form: dict[str, str]) -> Burst:
        barrier = threading.Barrier(self.size, timeout=60)

        def one(http: httpx2.Client) -> tuple[float, Answer]:
            barrier.wait()
            start = time.perf_counter()
            try:
                r = http.post(url, data=form)
            except httpx2.HTTPError as e:
                return start, Answer(0, type(e).__name__, {}, time.perf_counter() - start)
            elapsed = time.perf_counter() - start
            try:
                body = r.json()
            except ValueError:
                body = {}
            body = body if isinstance(body, dict) else {}
            return start, Answer(r.status_code, "" if r.status_code == 200 else str(body.get("error")), body, elapsed)

        results = list(self._pool.map(one, self._clients))
        first = min(start for start, _ in results)
        answers = [a for _, a in results]
        return Burst(answers, max(start + a.seconds for start, a in results) - first)

    def close(self) -> None:
        self._pool.shutdown()
        for http in self._clients:
            http.close()


@dataclass
class Race:
    burst: Burst
    problems: list[str] = field(default_factory=list)


class Racecourse:
    """One public client and one signed-in user on ``server``; each ``refresh()`` or ``code()`` is one trial."""

    def __init__(self, server: ServerProcess, size: int = CONCURRENCY) -> None:
        self.server = server
        self.client = server.add_client(public=True, redirect_uri=REDIRECT_URI)
        self.user = server.add_user()
        self.browser = httpx2.Client(base_url=server.base_url, follow_redirects=False, timeout=30)
        self.racer = Racer(size)
        self.expected = Counter({"ok": 1, "400:invalid_grant": size - 1})

    def __enter__(self) -> Racecourse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.racer.close()
        self.browser.close()

    def refresh(self) -> Race:
        """Sixteen refreshes of one refresh token."""
        refresh_token = exchange_code(self.server, self.client, self._authorize()).json()["refresh_token"]
        return self._race({"grant_type": "refresh_token", "refresh_token": refresh_token,
                           "client_id": self.client.client_id}, presented=refresh_token)

    def code(self) -> Race:
        """Sixteen redemptions of one authorization code."""
        auth = self._authorize()
        return self._race({"grant_type": "authorization_code", "code": auth.code, "redirect_uri": auth.redirect_uri,
                           "code_verifier": auth.verifier, "client_id": self.client.client_id})

    def active_grants(self) -> list[dict[str, Any]]:
        """The client's grants that are neither revoked nor expired, as ``tokenward grants list`` shows them."""
        out = subprocess.run([TOKENWARD, "grants", "list", "--client", self.client.client_id, "--json",
                              "--db", self.server.db_url], capture_output=True, text=True, timeout=60, check=True)
        found: list[dict[str, Any]] = json.loads(out.stdout)
        return found

    def _authorize(self) -> Authorization:
        return authorize(self.server, self.client, self.user, browser=self.browser, redirect_uri=LOOPBACK)

    def _race(self, form: dict[str, str], presented: str | None = None) -> Race:
        race = Race(self.racer.fire(self.server.base_url + "/token", form))
        outcomes = race.burst.outcomes
        if outcomes != self.expected:
            race.problems.append(f"outcomes {dict(outcomes)}, expected {dict(self.expected)}")
        # After the burst the family has no active refresh token: not the winner's (the losers' reuse revoked
        # the family), and not the one presented (consumed once, now revoked).
        leftovers = [("the winner's refresh token", str(a.body.get("refresh_token"))) for a in race.burst.successes]
        if presented is not None:
            leftovers.append(("the raced refresh token", presented))
        for what, token in leftovers:
            r = self.browser.post("/token", data={"grant_type": "refresh_token", "refresh_token": token,
                                                  "client_id": self.client.client_id})
            error = r.json().get("error") if r.headers.get("content-type", "").startswith("application/json") else None
            if (r.status_code, error) != (400, "invalid_grant"):
                race.problems.append(f"{what} is still accepted after the race: {r.status_code} {error}")
        return race
