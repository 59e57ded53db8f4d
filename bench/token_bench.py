"""Token endpoint throughput: Tokenward on SQLite and PostgreSQL (1 and 2 workers) against Authlib
(Flask + SQLite) and node-oidc-provider (in-memory), all driven by wrk on 127.0.0.1 in one run.

    PYTHONPATH=. .venv/bin/python -m bench.token_bench        (make bench runs it after the guard benchmarks)

Cells (req/s, p50, p99, server CPU per request) at 32 and 128 connections, BENCH_TOKEN_DURATION seconds each:
- client credentials (JWT access token, client_secret_basic) — Tokenward, Authlib, node-oidc-provider;
- refresh with rotation (public client, so no grace window; a fresh refresh token per request) — Tokenward, Authlib;
- code exchange (authorization_code + PKCE S256, a fresh code per request) — Tokenward; the same with
  ``openid offline_access`` added to the scope, so every response also carries an RS256 ID token;
- introspection of an access token by a confidential client — Tokenward.

Single-use tokens are made before each run and handed out by bench/lua/token_file.lua, each wrk thread
its own slice. Tokenward's codes come from the real browser flow over HTTP (one login, then /authorize →
/consent → 303 per code); the code-exchange runs keep the refresh tokens they receive
(token_file_capture.lua), and those feed the refresh runs. A 2 s pilot at 32 connections sizes the batches;
the tokens a run did not send go to the next run.
Authlib's refresh tokens are inserted into its database (it has no login page here).

The floor row (issue 17) is bench/floor_app.py: a bare Starlette app on Tokenward's server stack (uvicorn,
asyncio loop, httptools, one SO_REUSEPORT listener per worker) that parses the form, checks HTTP Basic in
constant time and signs one ES256 JWT with cryptography, without storage; it runs at the worker counts of the
Tokenward servers. Every server's CPU per request is measured (its whole process group, /proc stat), and the
RSS of each Tokenward and floor worker after the warm-up, after the cells and (``--workers 2``) after a top-up
towards BENCH_RSS_REQUESTS requests. The goals of issue 17 are printed last.

Peers are installed at run time into .bench-cache/ (a virtualenv from PyPI, an npm prefix); a peer that
cannot be installed or started is reported with the reason and the run goes on. A cell with more than 1%
non-2xx responses or socket errors is reported as FAILED and left out of the ratios. The goals of issues 6
and 17 are printed at the end, each marked met or missed.

Environment: BENCH_TOKEN_DURATION (seconds per cell, default 4: make bench stays under 10 minutes), BENCH_THREADS (wrk threads, default 2),
BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432; the database tw_bench is created and dropped),
BENCH_SKIP (comma-separated: authlib, node, floor, sqlite, postgresql, workers1, workers2, and Tokenward's
workloads introspection, code, openid, refresh), BENCH_CACHE,
BENCH_KEEP=1 (keep the temporary folder with the server logs), BENCH_PROFILE=1 (py-spy samples the server during
every Tokenward and floor cell; collapsed stacks in .bench-cache/profiles/, summarised by layer at the end, and the
client-credentials cells side by side in µs per request — slows the figures), BENCH_RSS_REQUESTS (default 100000)
and BENCH_RSS_SECONDS (default 15): the top-up of client credentials before the last RSS sample of a
`--workers 2` server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2

from bench import profile
from bench.machine import describe
from tokenward.protocol import pkce

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "lua"
PEERS = ROOT / "bench" / "peers"
CACHE = Path(os.environ.get("BENCH_CACHE", str(ROOT / ".bench-cache")))
TOKENWARD = str(Path(sys.executable).with_name("tokenward"))

DURATION = int(os.environ.get("BENCH_TOKEN_DURATION", "4"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
CONNECTIONS = (32, 128)
WARMUP = 1  # seconds of client credentials after each server start (2 for node: its JIT)
PILOT = 2  # seconds at 32 connections to size the batches of single-use tokens
MARGIN = 1.6  # a run gets MARGIN * expected req/s * DURATION tokens (+ one per connection); the rest is reused
ERROR_LIMIT = 0.01
WRK_TIMEOUT = "10s"
GEN_CONCURRENCY = 32
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432").rstrip("/")
PG_DB = "tw_bench"
PROFILE = bool(os.environ.get("BENCH_PROFILE"))
RSS_REQUESTS = int(os.environ.get("BENCH_RSS_REQUESTS", "100000"))
RSS_SECONDS = int(os.environ.get("BENCH_RSS_SECONDS", "15"))
SKIP = {s.strip() for s in os.environ.get("BENCH_SKIP", "").split(",") if s.strip()}

SCOPE = "profile:read"
# an exact https redirect: remembered consent applies to it (never to loopback or private-use redirects)
REDIRECT_URI = "https://bench.example/cb"
USERNAME = "bench"
PASSWORD = "bench password, not a secret"
AUTHLIB_REQUIREMENTS = ("authlib>=1.9.10,<2", "flask>=3.1,<4", "sqlalchemy>=2.0,<3", "gunicorn>=27,<28")
OIDC_PROVIDER = "oidc-provider@9"

FLOOR = "floor (Starlette)"
CC = "client credentials (JWT)"
REFRESH = "refresh with rotation"
CODE = "code exchange"
CODE_OIDC = "code exchange + openid"  # issue 13: an ID token next to the access token, same request shape
INTROSPECT = "introspection"
WORKLOADS = (CC, REFRESH, CODE, CODE_OIDC, INTROSPECT)
OIDC_SCOPE = "openid offline_access"  # prefixed to SCOPE: an OIDC request that still gets a refresh token
TODAY_CODE_RPS = 516  # issue 17: code exchange on SQLite x1 measured 439-516 req/s before it; the goal is 2x

T = TypeVar("T")
J = TypeVar("J")


def log(message: str) -> None:
    print(f"[token_bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def basic(client_id: str, secret: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


# --------------------------------------------------------------------------------------------- measuring

@dataclass
class WrkRun:
    rps: float
    p50: float  # ms
    p99: float  # ms
    requests: int
    non2xx: int
    socket_errors: int
    timeouts: int  # wrk's "timeout" socket errors (no answer within WRK_TIMEOUT), part of socket_errors
    exhausted: int  # requests sent after the thread's single-use tokens ran out
    used: dict[int, int]  # single-use bodies sent, per wrk thread
    cpu_ms: float | None  # server CPU (user+system, whole process group) per request

    @property
    def error_rate(self) -> float:
        return (self.non2xx + self.socket_errors) / max(self.requests, 1)

    @property
    def problem(self) -> str:
        if self.exhausted:
            return f"ran out of pre-made tokens ({self.exhausted} requests)"
        if self.error_rate > ERROR_LIMIT:
            return (f"{self.error_rate:.1%} errors ({self.non2xx} non-2xx, {self.socket_errors} socket errors "
                    f"of {self.requests})")
        if self.requests == 0:
            return "no responses"
        return ""


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds used so far by every live process of a process group (a server and its workers)."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            data = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = data.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_idle(pgid: int, limit: float = 15.0) -> None:
    """Let a server finish the requests a previous run left in flight (wrk stops without waiting for them):
    wait until it uses less than 10% of a core for 0.3 s."""
    deadline = time.monotonic() + limit
    before = group_cpu_seconds(pgid)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = group_cpu_seconds(pgid)
        if now - before < 0.03:
            return
        before = now


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


@dataclass
class Profiling:
    """BENCH_PROFILE: which cell the next wrk run measures (None: a warm-up or pilot, not sampled)."""

    work: Path = Path()
    tag: str | None = None
    files: list[Path] = field(default_factory=list)
    cells: dict[str, Cell] = field(default_factory=dict)  # by tag: the CPU per request of a profiled cell

    def cell(self, cell: Cell) -> None:
        self.tag = re.sub(r"[^A-Za-z0-9]+", "-",
                          f"{cell.server} {cell.store} x{cell.workers} {cell.workload} c{cell.conns}").strip("-")
        self.cells[self.tag] = cell


profiling = Profiling()

# Requests sent to each server port by this run (wrk runs, warm-ups and pilots included, and the codes and
# tokens made over HTTP): what the RSS figures are "after".
served: Counter[int] = Counter()


def wrk(url: str, script: str, args: list[str], conns: int, seconds: int, pgid: int | None) -> WrkRun:
    cmd = ["wrk", f"-t{min(THREADS, conns)}", f"-c{conns}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT}",
           "--latency", "-s", str(LUA / script), url, "--", *args]
    if pgid:
        wait_idle(pgid)
    cpu0 = group_cpu_seconds(pgid) if pgid else 0.0
    if PROFILE and pgid and profiling.tag:
        out_path = profiling.work / f"profile-{profiling.tag}.txt"
        with profile.record(pgid, out_path, CACHE):
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        if out_path not in profiling.files:
            profiling.files.append(out_path)
    else:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    cpu1 = group_cpu_seconds(pgid) if pgid else 0.0
    text = out.stdout
    if out.returncode != 0 or "Requests/sec" not in text:
        raise RuntimeError(f"wrk failed ({out.returncode}): {(out.stderr or text)[-500:]}")

    def number(pattern: str) -> int:
        m = re.search(pattern, text, re.M)
        return int(m.group(1)) if m else 0

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        return _ms(m.group(1), m.group(2)) if m else math.nan

    requests = number(r"(\d+) requests in")
    served[urlsplit(url).port or 0] += requests
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return WrkRun(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),  # type: ignore[union-attr]
        p50=pct("50"), p99=pct("99"), requests=requests,
        non2xx=number(r"Non-2xx or 3xx responses: (\d+)"),
        socket_errors=sum(int(g) for g in sock.groups()) if sock else 0,
        timeouts=int(sock.group(4)) if sock else 0,
        exhausted=number(r"^exhausted: (\d+)"),
        used={int(i): int(n) for i, n in re.findall(r"^used: (\d+) (\d+)$", text, re.M)},
        cpu_ms=(cpu1 - cpu0) * 1000 / requests if pgid and requests else None,
    )


@dataclass
class Cell:
    server: str  # Tokenward | Authlib | node-oidc-provider
    store: str  # SQLite | PostgreSQL | memory
    workers: int
    workload: str
    conns: int
    run: WrkRun | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.run is not None and not self.run.problem and not self.note

    @property
    def label(self) -> str:
        return f"{self.server} ×{self.workers}" if self.store == "none" else f"{self.server} {self.store} ×{self.workers}"


def form_post_cell(cell: Cell, url: str, body: str, headers: list[str], pgid: int) -> Cell:
    if cell.server in ("Tokenward", FLOOR):
        profiling.cell(cell)
    try:
        cell.run = wrk(url, "form_post.lua", [body, *headers], cell.conns, DURATION, pgid)
    except Exception as exc:  # a broken cell is reported, the run goes on
        cell.note = f"wrk: {exc}"
    finally:
        profiling.tag = None
    report_cell(cell)
    return cell


def report_cell(cell: Cell) -> None:
    r = cell.run
    if r is None:
        log(f"{cell.label} {cell.workload} c{cell.conns}: FAILED {cell.note}")
        return
    state = "ok" if cell.ok else f"FAILED {r.problem or cell.note}"
    log(f"{cell.label} {cell.workload} c{cell.conns}: {r.rps:.0f} req/s, p50 {r.p50:.1f} ms, "
        f"p99 {r.p99:.1f} ms — {state}")


class Supply:
    """Request bodies that each spend one single-use token: made on demand, and the ones a run did not send
    come back for the next run (so generous batches cost nothing but the last run's rest)."""

    def __init__(self, make: Callable[[int], list[str]]) -> None:
        self.make = make
        self.bodies: list[str] = []

    def take(self, n: int) -> list[str]:
        if len(self.bodies) < n:
            self.bodies += self.make(n - len(self.bodies))
        taken, self.bodies = self.bodies[:n], self.bodies[n:]
        return taken

    def give_back(self, bodies: list[str]) -> None:
        self.bodies = bodies + self.bodies


class TokenFile:
    """Runs of single-use request bodies: each wrk thread takes every THREADS-th line of the file."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.count = 0

    def run(self, url: str, supply: Supply, n: int, fallback: str, headers: list[str], conns: int, seconds: int,
            pgid: int, capture: str | None = None) -> tuple[WrkRun, list[str]]:
        """One wrk run over ``n`` bodies from ``supply``; returns it and the captured values."""
        bodies = supply.take(n)
        self.count += 1
        path = self.work / f"bodies-{self.count}.txt"
        path.write_text("\n".join(bodies) + "\n")
        threads = min(THREADS, conns)
        prefix = self.work / f"captured-{self.count}"
        if capture is None:
            run = wrk(url, "token_file.lua", [str(path), str(threads), fallback, *headers], conns, seconds, pgid)
        else:
            run = wrk(url, "token_file_capture.lua",
                      [str(path), str(threads), fallback, capture, str(prefix), *headers], conns, seconds, pgid)
        if len(run.used) == threads:
            supply.give_back([body for i in range(threads) for body in bodies[i::threads][run.used[i]:]])
        captured: list[str] = []
        for part in sorted(self.work.glob(f"captured-{self.count}.*")):
            captured.extend(line for line in part.read_text().splitlines() if line)
        return run, captured


def consuming_cells(cells: list[Cell], files: TokenFile, url: str, supply: Supply, fallback: str,
                    headers: list[str], upper_rps: float, pgid: int, capture: str | None = None) -> list[str]:
    """Measure a single-use workload: a pilot at 32 connections sizes the batches, then one run per cell.

    ``upper_rps`` (the same server's client-credentials rate) sizes the pilot's batch; if the pilot runs out
    anyway, its send rate (which then includes fast 400s) is a safe over-estimate. Returns what the runs
    captured (the refresh tokens a code exchange hands out).
    """
    captured: list[str] = []
    try:
        pilot, got = files.run(url, supply, math.ceil(upper_rps * PILOT) + 32, fallback, headers, 32, PILOT, pgid,
                               capture)
    except Exception as exc:
        for cell in cells:
            cell.note = f"pilot: {exc}"
            report_cell(cell)
        return captured
    captured.extend(got)
    rate = sum(pilot.used.values()) / PILOT if pilot.exhausted else pilot.rps
    log(f"  pilot {cells[0].workload}: {pilot.rps:.0f} req/s, {pilot.requests} requests, "
        f"{pilot.exhausted} beyond the batch")
    if pilot.error_rate > ERROR_LIMIT and not pilot.exhausted:
        for cell in cells:
            cell.note = f"pilot run failed: {pilot.problem}"
            report_cell(cell)
        return captured
    for cell in cells:
        for attempt in (1, 2):
            profiling.cell(cell)
            try:
                cell.run, got = files.run(url, supply, math.ceil(rate * DURATION * MARGIN) + cell.conns, fallback,
                                          headers, cell.conns, DURATION, pgid, capture)
            except Exception as exc:
                cell.note = f"wrk: {exc}"
                break
            finally:
                profiling.tag = None
            captured.extend(got)
            rate = max(rate, cell.run.rps)
            if not cell.run.exhausted or attempt == 2:
                break
            # Faster than the pilot said: once more with a batch sized by this run's send rate (an over-estimate).
            rate = max(rate, sum(cell.run.used.values()) / DURATION)
            log(f"  {cell.workload} c{cell.conns} ran out of tokens at {cell.run.rps:.0f} req/s; once more")
        report_cell(cell)
    return captured


# --------------------------------------------------------------------------------------------- processes

@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pgid(self) -> int:
        return self.popen.pid

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
            except ProcessLookupError:
                pass


def start_process(cmd: list[str], log_path: Path, ready_url: str, env: dict[str, str] | None = None,
                  cwd: Path | None = None, timeout: float = 60) -> Process:
    """Start ``cmd`` in its own session (so its workers can be measured and stopped together) and wait until
    ``ready_url`` answers anything below 500."""
    with open(log_path, "ab") as out:
        popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                 start_new_session=True)
    proc = Process(popen, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited with {popen.returncode}: {proc.log_tail()}")
        try:
            if httpx2.get(ready_url, timeout=2).status_code < 500:
                return proc
        except httpx2.HTTPError:
            pass
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError(f"{cmd[0]} did not answer {ready_url} within {timeout:.0f} s: {proc.log_tail()}")


def worker_pids(pid: int) -> list[int]:
    """The processes that answer requests: the supervisor's worker children (uvicorn spawns them through
    multiprocessing), or the server process itself when it runs one worker in-process."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmdline:
            children.append(int(entry))
    return sorted(children) or [pid]


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


@dataclass
class Memory:
    """VmRSS of each worker (pid → KiB) at points of a server's life, with the requests it had by then."""

    label: str
    port: int
    samples: list[tuple[str, int, dict[int, int | None]]] = field(default_factory=list)

    def sample(self, pid: int, when: str) -> None:
        self.samples.append((when, served[self.port], {p: rss_kib(p) for p in worker_pids(pid)}))


memories: list[Memory] = []


def top_up(memory: Memory, url: str, body: str, headers: list[str], rps: float) -> bool:
    """More client credentials at 32 connections, until the server has had RSS_REQUESTS requests or for
    RSS_SECONDS at most, so that the second RSS sample comes after a long run."""
    missing = RSS_REQUESTS - served[memory.port]
    if missing <= 0 or RSS_SECONDS <= 0:
        return False
    seconds = max(1, min(RSS_SECONDS, math.ceil(missing / max(rps, 1.0))))
    log(f"  {missing} requests short of {RSS_REQUESTS} for the RSS sample: {seconds} s more client credentials")
    try:
        wrk(url, "form_post.lua", [body, *headers], 32, seconds, None)
    except Exception as exc:  # the RSS sample is still taken, after fewer requests
        log(f"  top-up failed: {exc}")
    return True


# --------------------------------------------------------------------------------------------- Tokenward

class RawHttp:
    """A minimal HTTP/1.1 keep-alive connection: makes codes and refresh tokens at the server's pace with little
    client CPU (the load generator shares the server's two cores)."""

    def __init__(self, port: int, cookie: str) -> None:
        self.port = port
        self.cookie = cookie
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, target: str, body: str = "") -> tuple[int, dict[str, str], bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nCookie: {self.cookie}\r\n"
        if method == "POST":
            head += "Content-Type: application/x-www-form-urlencoded\r\n"
        served[self.port] += 1
        self.writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n{body}".encode())
        raw = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(raw[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in raw[1:] if line)}
        length = int(headers.get("content-length", "0"))
        data = await self.reader.readexactly(length) if length else b""
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _produce(jobs: list[J], make: Callable[[RawHttp, J], Awaitable[T]], port: int, cookie: str) -> list[T]:
    """``make(connection, job)`` for every job, GEN_CONCURRENCY at a time."""
    results: list[T] = []
    pending = iter(jobs)

    async def worker() -> None:
        conn = RawHttp(port, cookie)
        try:
            for job in pending:
                results.append(await make(conn, job))
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(min(GEN_CONCURRENCY, len(jobs)))))
    return results


class TokenwardDb:
    """One database (SQLite file or PostgreSQL database) with the benchmark's clients and user."""

    def __init__(self, store: str, db_url: str, work: Path) -> None:
        self.store = store
        self.db_url = db_url
        self.work = work
        self.env = {**os.environ, "TOKENWARD_KEK_FILE": str(work / "tokenward.kek"),
                    # Codes are made before the runs that spend them; rate limits stay at their defaults but
                    # for pending authorization requests per IP (300 a minute; the codes all come from here).
                    "TOKENWARD_CODE_TTL": "3600", "TOKENWARD_RATE_LIMIT_AUTHORIZE_IP": "100000000/60"}
        self.cc_id = self.cc_secret = self.public_id = ""

    def admin(self, *args: str, stdin: str | None = None) -> str:
        out = subprocess.run([TOKENWARD, *args, "--db", self.db_url], input=stdin, capture_output=True, text=True,
                             env=self.env, cwd=self.work, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"tokenward {' '.join(args[:2])} failed: {out.stderr[-800:]}")
        return out.stdout

    def provision(self) -> None:
        cc = json.loads(self.admin("clients", "add", "bench-cc", "--grant-type", "client_credentials",
                                   "--scope", SCOPE, "--json"))
        public = json.loads(self.admin("clients", "add", "bench-public", "--public", "--redirect-uri", REDIRECT_URI,
                                       "--grant-type", "authorization_code", "--grant-type", "refresh_token",
                                       "--scope", f"{OIDC_SCOPE} {SCOPE}", "--json"))
        self.admin("users", "add", USERNAME, "--password-stdin", stdin=PASSWORD)
        self.cc_id, self.cc_secret, self.public_id = cc["client_id"], cc["client_secret"], public["client_id"]

    def authorize_params(self, verifier: str, scope: str = SCOPE) -> str:
        return urlencode({"response_type": "code", "client_id": self.public_id, "redirect_uri": REDIRECT_URI,
                          "scope": scope, "state": "bench", "code_challenge": pkce.s256(verifier),
                          "code_challenge_method": "S256"})

    def login(self, base: str) -> str:
        """Log in once through the real pages (and consent to both scopes); returns the session cookie for
        later codes."""
        with httpx2.Client(base_url=base, follow_redirects=False, timeout=30) as browser:
            self._sign_in_and_consent(browser, SCOPE)
            self._sign_in_and_consent(browser, f"{OIDC_SCOPE} {SCOPE}")
            return "; ".join(f"{k}={v}" for k, v in browser.cookies.items())

    def _sign_in_and_consent(self, browser: httpx2.Client, scope: str) -> None:
        r = browser.get("/authorize?" + self.authorize_params(pkce.new_verifier(), scope))
        location = r.headers.get("location", "")
        if location.startswith("/login"):
            form = hidden_fields(browser.get(location).text)
            r = browser.post("/login", data={**form, "username": USERNAME, "password": PASSWORD})
            location = r.headers.get("location", "")
        if location.startswith("/consent"):
            page = browser.get(location)
            if page.status_code == 200:
                page = browser.post("/consent", data={**hidden_fields(page.text), "decision": "allow"})
            location = page.headers.get("location", "")
        if "code=" not in location:
            raise RuntimeError(f"login flow did not end with a code: {r.status_code} {location!r}")

    async def _code(self, conn: RawHttp, scope: str | None = None) -> tuple[str, str]:
        verifier = pkce.new_verifier()
        status, headers, _ = await conn.request("GET", "/authorize?" + self.authorize_params(verifier,
                                                                                            scope or SCOPE))
        if status != 303 or not headers.get("location", "").startswith("/consent"):
            raise RuntimeError(f"/authorize answered {status} {headers.get('location')!r}")
        status, headers, _ = await conn.request("GET", headers["location"])
        code = parse_qs(urlsplit(headers.get("location", "")).query).get("code", [""])[0]
        if status != 303 or not code:
            raise RuntimeError(f"/consent answered {status} {headers.get('location')!r}")
        return code, verifier

    def exchange_body(self, code: str, verifier: str) -> str:
        return urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
                          "code_verifier": verifier, "client_id": self.public_id})

    def refresh_body(self, token: str) -> str:
        return urlencode({"grant_type": "refresh_token", "refresh_token": token, "client_id": self.public_id})

    async def _refresh_token(self, conn: RawHttp, exchange_body: str | None) -> str:
        """Exchange a code made earlier (``exchange_body``), or else one made now, for a refresh token."""
        if exchange_body is None:
            exchange_body = self.exchange_body(*await self._code(conn))
        status, _, body = await conn.request("POST", "/token", exchange_body)
        if status != 200:
            raise RuntimeError(f"code exchange answered {status}: {body[:200]!r}")
        token: str = json.loads(body)["refresh_token"]
        return token

    def codes(self, port: int, cookie: str, count: int, scope: str = SCOPE) -> list[tuple[str, str]]:
        started = time.monotonic()
        made = asyncio.run(_produce([scope] * count, self._code, port, cookie))
        log(f"  made {count} codes over HTTP in {time.monotonic() - started:.1f} s")
        return made

    def refresh_tokens(self, port: int, cookie: str, count: int, codes: Supply) -> list[str]:
        """``count`` refresh tokens: first from codes left over by the code-exchange runs, then from new codes."""
        started = time.monotonic()
        spare = codes.bodies[:count]
        codes.bodies = codes.bodies[count:]
        jobs: list[str | None] = [*spare, *[None] * (count - len(spare))]
        made = asyncio.run(_produce(jobs, self._refresh_token, port, cookie))
        log(f"  made {count} refresh tokens over HTTP ({len(spare)} from spare codes) in "
            f"{time.monotonic() - started:.1f} s")
        return made


def hidden_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


def tokenward_workloads() -> list[str]:
    skipped = {"introspection": INTROSPECT, "code": CODE, "openid": CODE_OIDC, "refresh": REFRESH}
    return [w for w in WORKLOADS if w not in {skipped[k] for k in SKIP if k in skipped}]


def bench_tokenward(db: TokenwardDb, workers: int, work: Path) -> list[Cell]:
    def cell(workload: str, conns: int) -> Cell:
        return Cell("Tokenward", db.store, workers, workload, conns)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log(f"Tokenward on {db.store}, {workers} worker(s), port {port}")
    try:
        server = start_process([TOKENWARD, "serve", "--host", "127.0.0.1", "--port", str(port), "--db", db.db_url,
                                "--workers", str(workers)], work / f"tokenward-{db.store}-{workers}.log",
                               base + "/.well-known/oauth-authorization-server", env=db.env, cwd=work)
    except Exception as exc:
        return [Cell("Tokenward", db.store, workers, w, c, note=f"server did not start: {exc}")
                for w in tokenward_workloads() for c in CONNECTIONS]
    cells: list[Cell] = []
    files = TokenFile(work)
    try:
        auth = basic(db.cc_id, db.cc_secret)
        cc_body = urlencode({"grant_type": "client_credentials", "scope": SCOPE})
        url = base + "/token"
        wrk(url, "form_post.lua", [cc_body, auth], 32, WARMUP, None)
        memory = Memory(f"Tokenward {db.store} ×{workers}", port)
        memories.append(memory)
        memory.sample(server.pgid, "warm-up")
        for conns in CONNECTIONS:
            cells.append(form_post_cell(cell(CC, conns), url, cc_body, [auth], server.pgid))

        if "introspection" not in SKIP:
            access_token = httpx2.post(url, data={"grant_type": "client_credentials", "scope": SCOPE},
                                       auth=(db.cc_id, db.cc_secret)).json()["access_token"]
            check = httpx2.post(base + "/introspect", data={"token": access_token}, auth=(db.cc_id, db.cc_secret))
            intro_body = urlencode({"token": access_token, "token_type_hint": "access_token"})
            for conns in CONNECTIONS:
                c = cell(INTROSPECT, conns)
                if check.status_code != 200 or not check.json().get("active"):
                    c.note = f"introspection check failed: {check.status_code} {check.text[:200]}"
                    report_cell(c)
                    cells.append(c)
                else:
                    cells.append(form_post_cell(c, base + "/introspect", intro_body, [auth], server.pgid))

        upper = max([c.run.rps for c in cells if c.workload == CC and c.run] or [1000.0])
        if not {"code", "refresh"} <= SKIP:
            cookie = db.login(base)
            codes = Supply(lambda n: [db.exchange_body(code, verifier)
                                      for code, verifier in db.codes(port, cookie, n)])
            captured: list[str] = []
            if "code" not in SKIP:
                exchange = [cell(CODE, conns) for conns in CONNECTIONS]
                cells.extend(exchange)
                captured = consuming_cells(exchange, files, url, codes, db.exchange_body("tw_ac_exhausted", "x" * 43),
                                           [], upper, server.pgid, capture="refresh_token")
            if "openid" not in SKIP:
                oidc_codes = Supply(lambda n: [db.exchange_body(code, verifier) for code, verifier
                                               in db.codes(port, cookie, n, f"{OIDC_SCOPE} {SCOPE}")])
                with_id = [cell(CODE_OIDC, conns) for conns in CONNECTIONS]
                cells.extend(with_id)
                pilot = httpx2.post(url, content=oidc_codes.take(1)[0],
                                    headers={"Content-Type": "application/x-www-form-urlencoded"}).json()
                if "id_token" not in pilot or "refresh_token" not in pilot:
                    raise RuntimeError(f"the openid code exchange returned no ID token: {sorted(pilot)}")
                consuming_cells(with_id, files, url, oidc_codes,
                                db.exchange_body("tw_ac_exhausted", "x" * 43), [], upper, server.pgid)
            if "refresh" not in SKIP:
                tokens = Supply(lambda n: [db.refresh_body(t) for t in db.refresh_tokens(port, cookie, n, codes)])
                tokens.give_back([db.refresh_body(t) for t in captured])
                refresh = [cell(REFRESH, conns) for conns in CONNECTIONS]
                cells.extend(refresh)
                consuming_cells(refresh, files, url, tokens, db.refresh_body("tw_rt_exhausted"), [], upper,
                                server.pgid)
        memory.sample(server.pgid, "cells")
        if workers == 2 and top_up(memory, url, cc_body, [auth], upper):
            memory.sample(server.pgid, "top-up")
    except Exception as exc:
        log(f"Tokenward {db.store} ×{workers} aborted: {exc}")
        done = {(c.workload, c.conns) for c in cells}
        for w in tokenward_workloads():
            for conns in CONNECTIONS:
                if (w, conns) not in done:
                    cells.append(Cell("Tokenward", db.store, workers, w, conns, note=f"aborted: {exc}"))
    finally:
        server.stop()
    return cells


def bench_floor(workers: int, work: Path) -> list[Cell]:
    """The floor row: bench/floor_app.py (Starlette, Basic check, one ES256 signature, no storage) on
    Tokenward's server stack with the same worker count."""
    cells = [Cell(FLOOR, "none", workers, CC, conns) for conns in CONNECTIONS]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client_id, secret = "bench-floor", base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    env = {**os.environ, "FLOOR_CLIENT_ID": client_id, "FLOOR_CLIENT_SECRET": secret, "FLOOR_ISSUER": base,
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    log(f"floor: bench/floor_app.py, {workers} worker(s), port {port}")
    try:
        server = start_process([sys.executable, "-m", "bench.floor_app", str(port), str(workers)],
                               work / f"floor-{workers}.log", base + "/health", env=env, cwd=ROOT)
    except Exception as exc:
        for c in cells:
            c.note = f"server did not start: {exc}"
        return cells
    try:
        r = httpx2.post(base + "/token", data={"grant_type": "client_credentials", "scope": SCOPE},
                        auth=(client_id, secret))
        token = r.json().get("access_token", "") if r.status_code == 200 else ""
        if token.count(".") != 2:
            raise RuntimeError(f"no JWT access token: {r.status_code} {r.text[:200]}")
        if httpx2.post(base + "/token", data={"grant_type": "client_credentials"},
                       auth=(client_id, secret + "x")).status_code != 401:
            raise RuntimeError("a wrong client secret was not refused")
        body = urlencode({"grant_type": "client_credentials", "scope": SCOPE})
        auth = basic(client_id, secret)
        url = base + "/token"
        wrk(url, "form_post.lua", [body, auth], 32, WARMUP, None)
        memory = Memory(f"{FLOOR} ×{workers}", port)
        memories.append(memory)
        memory.sample(server.pgid, "warm-up")
        for c in cells:
            form_post_cell(c, url, body, [auth], server.pgid)
        memory.sample(server.pgid, "cells")
    except Exception as exc:
        for c in cells:
            c.note = c.note or f"aborted: {exc}"
    finally:
        server.stop()
    return cells


# --------------------------------------------------------------------------------------------- peers

def install_authlib() -> Path:
    """A separate virtualenv with Authlib, Flask, SQLAlchemy and gunicorn from PyPI (reused while the pins match)."""
    venv = CACHE / "authlib-venv"
    stamp = venv / ".bench-requirements"
    python = venv / "bin" / "python"
    wanted = "\n".join(AUTHLIB_REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log("installing Authlib, Flask, SQLAlchemy and gunicorn from PyPI into " + str(venv))
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    out = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          *AUTHLIB_REQUIREMENTS], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"pip install failed: {out.stderr.strip()[-600:]}")
    stamp.write_text(wanted)
    return python


def install_oidc_provider() -> Path:
    """oidc-provider from npm into its own prefix, with our config script beside its node_modules."""
    prefix = CACHE / "node-oidc"
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RuntimeError("node and npm are not installed")
    package = prefix / "node_modules" / "oidc-provider" / "package.json"
    stamp = prefix / ".bench-requirement"
    if not (package.exists() and stamp.exists() and stamp.read_text() == OIDC_PROVIDER):
        log(f"installing {OIDC_PROVIDER} from npm into {prefix}")
        prefix.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                              "--loglevel=error", OIDC_PROVIDER], capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"npm install failed: {out.stderr.strip()[-600:]}")
        stamp.write_text(OIDC_PROVIDER)
    script = prefix / "oidc_provider.mjs"
    shutil.copyfile(PEERS / "oidc_provider.mjs", script)
    return script


def bench_oidc_provider(script: Path, work: Path) -> list[Cell]:
    cells = [Cell("node-oidc-provider", "memory", 1, CC, conns) for conns in CONNECTIONS]
    port = free_port()
    client_id, secret = "bench-cc", base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    env = {**os.environ, "OIDC_BENCH_CLIENT_ID": client_id, "OIDC_BENCH_CLIENT_SECRET": secret}
    base = f"http://127.0.0.1:{port}"
    version = json.loads((script.parent / "node_modules" / "oidc-provider" / "package.json").read_text())["version"]
    log(f"node-oidc-provider {version}, node {subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()}, port {port}")
    try:
        server = start_process(["node", str(script), str(port)], work / "oidc-provider.log",
                               base + "/.well-known/openid-configuration", env=env, cwd=script.parent)
    except Exception as exc:
        for c in cells:
            c.note = f"server did not start: {exc}"
        return cells
    try:
        body = urlencode({"grant_type": "client_credentials", "scope": SCOPE})
        auth = basic(client_id, secret)
        r = httpx2.post(base + "/token", data={"grant_type": "client_credentials", "scope": SCOPE},
                        auth=(client_id, secret))
        token = r.json().get("access_token", "") if r.status_code == 200 else ""
        if token.count(".") != 2:
            raise RuntimeError(f"no JWT access token: {r.status_code} {r.text[:200]}")
        wrk(base + "/token", "form_post.lua", [body, auth], 32, 2 * WARMUP, None)
        for c in cells:
            form_post_cell(c, base + "/token", body, [auth], server.pgid)
    except Exception as exc:
        for c in cells:
            c.note = c.note or f"aborted: {exc}"
    finally:
        server.stop()
    return cells


def bench_authlib(python: Path, work: Path) -> list[Cell]:
    cells = [Cell("Authlib", "SQLite", 2, w, conns) for w in (CC, REFRESH) for conns in CONNECTIONS]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AUTHLIB_BENCH_DB": str(work / "authlib.db"), "AUTHLIB_BENCH_ISSUER": base}
    app = str(PEERS / "authlib_app.py")
    version = subprocess.run([str(python), "-c", "import authlib, flask; print(authlib.__version__, flask.__version__)"],
                             capture_output=True, text=True, env=env).stdout.split()
    log(f"Authlib {version[0] if version else '?'} (Flask {version[1] if len(version) > 1 else '?'}, SQLite, "
        f"gunicorn 2 sync workers), port {port}")
    try:
        init = subprocess.run([str(python), app, "init"], capture_output=True, text=True, env=env, cwd=work,
                              timeout=120)
        if init.returncode != 0:
            raise RuntimeError(init.stderr[-800:])
        creds = json.loads(init.stdout)
        server = start_process([str(python), "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
                                "--no-control-socket", "--log-level", "warning", "--chdir", str(PEERS),
                                "authlib_app:app"], work / "authlib.log", base + "/health", env=env, cwd=work)
    except Exception as exc:
        for c in cells:
            c.note = f"server did not start: {exc}"
        return cells
    try:
        body = urlencode({"grant_type": "client_credentials", "scope": SCOPE})
        auth = basic(creds["client_id"], creds["client_secret"])
        wrk(base + "/token", "form_post.lua", [body, auth], 32, WARMUP, None)
        for c in cells[:2]:
            form_post_cell(c, base + "/token", body, [auth], server.pgid)
        # Refresh does strictly more work than client credentials here, so the cc rate bounds the batch.
        upper = max([c.run.rps for c in cells[:2] if c.run] or [2000.0])
        files = TokenFile(work)
        seeded = 0

        def refresh_bodies(n: int) -> list[str]:
            nonlocal seeded
            seeded += 1
            path = work / f"authlib-rt-{seeded}.txt"
            out = subprocess.run([str(python), app, "seed", str(n), str(path)], capture_output=True, text=True,
                                 env=env, cwd=work, timeout=300)
            if out.returncode != 0:
                raise RuntimeError(f"seeding refresh tokens failed: {out.stderr[-500:]}")
            return [urlencode({"grant_type": "refresh_token", "refresh_token": t, "client_id": creds["public_client_id"]})
                    for t in path.read_text().split()]

        fallback = urlencode({"grant_type": "refresh_token", "refresh_token": "exhausted",
                              "client_id": creds["public_client_id"]})
        consuming_cells(cells[2:], files, base + "/token", Supply(refresh_bodies), fallback, [], upper, server.pgid)
    except Exception as exc:
        for c in cells:
            c.note = c.note or f"aborted: {exc}"
    finally:
        server.stop()
    return cells


# --------------------------------------------------------------------------------------------- PostgreSQL

@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database ``tw_bench``, dropped afterwards."""
    import psycopg

    with psycopg.connect(PG_URL + "/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PG_DB}")
        version = conn.execute("SHOW server_version").fetchone()
    log(f"PostgreSQL {version[0] if version else '?'}: database {PG_DB} created")
    try:
        yield f"{PG_URL}/{PG_DB}"
    finally:
        with psycopg.connect(PG_URL + "/postgres", autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        log(f"database {PG_DB} dropped")


# --------------------------------------------------------------------------------------------- report

def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:,.{digits}f}"


def print_table(cells: list[Cell]) -> None:
    print("| server | store | workers | workload | conns | req/s | p50 ms | p99 ms | CPU ms/req | errors | status |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for c in cells:
        r = c.run
        if r is None:
            print(f"| {c.server} | {c.store} | {c.workers} | {c.workload} | {c.conns} | — | — | — | — | — | "
                  f"FAILED: {c.note} |")
            continue
        status = "ok" if c.ok else f"FAILED: {r.problem or c.note}"
        print(f"| {c.server} | {c.store} | {c.workers} | {c.workload} | {c.conns} | {r.rps:,.0f} | {fmt(r.p50, 2)} | "
              f"{fmt(r.p99, 2)} | {fmt(r.cpu_ms, 3)} | {r.non2xx + r.socket_errors} | {status} |")


def best(cells: list[Cell], server: str, store: str, workload: str, conns: int) -> Cell | None:
    """The faster worker count that produced a valid cell."""
    found = [c for c in cells if c.server == server and c.store == store and c.workload == workload
             and c.conns == conns and c.ok]
    return max(found, key=lambda c: c.run.rps if c.run else 0.0, default=None)


def print_goals(cells: list[Cell]) -> None:
    stores = [s for s in ("SQLite", "PostgreSQL") if any(c.server == "Tokenward" and c.store == s for c in cells)]
    print("\n## Ratios Tokenward / peer and the goals of issue 6")
    print("For each store the faster of `--workers 1` and `--workers 2` is used (named in the row); a failed cell "
          "counts as missed.\n")
    print("| goal | conns | Tokenward | peer | ratio | target | result |")
    print("|---|---:|---|---|---:|---:|---|")
    met = total = 0
    comparisons = (("client credentials vs node-oidc-provider", CC, "node-oidc-provider", "memory", 1.3),
                   ("client credentials vs Authlib", CC, "Authlib", "SQLite", 8.0),
                   ("refresh with rotation vs Authlib", REFRESH, "Authlib", "SQLite", 5.0))
    for title, workload, peer, peer_store, target in comparisons:
        for store in stores:
            for conns in CONNECTIONS:
                ours = best(cells, "Tokenward", store, workload, conns)
                theirs = best(cells, peer, peer_store, workload, conns)
                total += 1
                ours_text = f"{store} ×{ours.workers}: {ours.run.rps:,.0f}" if ours and ours.run else f"{store}: failed"
                theirs_text = f"{theirs.run.rps:,.0f}" if theirs and theirs.run else "not measured"
                if ours and ours.run and theirs and theirs.run:
                    ratio = ours.run.rps / theirs.run.rps
                    ok = ratio >= target
                    met += ok
                    print(f"| {title} | {conns} | {ours_text} | {theirs_text} | {ratio:.2f}× | ≥ {target:g}× | "
                          f"{'met' if ok else 'MISSED'} |")
                else:
                    print(f"| {title} | {conns} | {ours_text} | {theirs_text} | — | ≥ {target:g}× | MISSED (no valid cell) |")
    for store in stores:
        for workload in WORKLOADS:
            ours = best(cells, "Tokenward", store, workload, 128)
            total += 1
            if ours and ours.run:
                ok = ours.run.p99 < 50.0
                met += ok
                print(f"| p99 < 50 ms: {workload} | 128 | {store} ×{ours.workers}: p99 {ours.run.p99:,.1f} ms | — | — | "
                      f"< 50 ms | {'met' if ok else 'MISSED'} |")
            else:
                print(f"| p99 < 50 ms: {workload} | 128 | {store}: failed | — | — | < 50 ms | MISSED (no valid cell) |")
    print(f"\n{met} of {total} goals met.")


def print_memory() -> None:
    if not memories:
        return
    print("\n## RSS per worker (VmRSS MiB, one figure per worker process in pid order; requests sent so far)")
    print("Requests = everything sent to that server: warm-up, pilots, cells, the codes and tokens made over "
          f"HTTP. `--workers 2` servers then get client credentials at 32 connections until {RSS_REQUESTS:,} "
          f"requests or for {RSS_SECONDS} s (BENCH_RSS_REQUESTS, BENCH_RSS_SECONDS): growth during that top-up "
          "is what a leak would show; growth before it includes caches filling (templates, statements, keys).\n")
    print("| server | after warm-up | after the cells | after the top-up | growth in the top-up |")
    print("|---|---|---|---|---|")

    def mib(sample: tuple[str, int, dict[int, int | None]] | None) -> str:
        if sample is None:
            return "—"
        _, requests, rss = sample
        sizes = " / ".join(fmt(k / 1024, 1) if k is not None else "gone" for k in rss.values())
        return f"{sizes} ({requests:,} req)"

    for m in memories:
        by = {when: (when, requests, rss) for when, requests, rss in m.samples}
        cells_, top = by.get("cells"), by.get("top-up")
        growth = "—"
        if cells_ and top:
            if cells_[2].keys() != top[2].keys():
                growth = "workers restarted"
            else:
                growth = " / ".join(f"{((b or 0) - (a or 0)) / 1024:+.1f}"
                                    for a, b in zip(cells_[2].values(), top[2].values(), strict=True))
                growth += f" over {top[1] - cells_[1]:,} req"
        print(f"| {m.label} | {mib(by.get('warm-up'))} | {mib(cells_)} | {mib(top)} | {growth} |")


def print_goals_17(cells: list[Cell]) -> None:
    """Issue 17's goals that this benchmark measures, printed last."""
    stores = [s for s in ("SQLite", "PostgreSQL") if any(c.server == "Tokenward" and c.store == s for c in cells)]
    print("\n## Ratios and the goals of issue 17")
    print("Client credentials at `--workers 2` against the floor at `--workers 2` (same server stack) and "
          "node-oidc-provider (one process); the `--workers 1` rows against the floor are for information. "
          "CPU ratio = Tokenward's server CPU per request / the peer's. A failed cell counts as missed.\n")
    print("| goal | conns | Tokenward | peer | ratio | CPU ratio | target | result |")
    print("|---|---:|---|---|---:|---:|---:|---|")
    met = total = 0

    def find(server: str, store: str, workers: int | None, workload: str, conns: int) -> Cell | None:
        """The valid cell (a failed one counts as none)."""
        found = [c for c in cells if c.server == server and c.store == store and c.workload == workload
                 and c.conns == conns and (workers is None or c.workers == workers) and c.ok]
        return found[0] if found else None

    def row(title: str, conns: int, ours: Cell | None, theirs: Cell | None, target: float | None,
            ours_name: str, workload: str = CC) -> None:
        nonlocal met, total
        measured = any(c.label == f"Tokenward {ours_name}" and c.conns == conns and c.workload == workload
                       for c in cells)
        ours_text = (f"{ours_name}: {ours.run.rps:,.0f}" if ours and ours.run
                     else f"{ours_name}: {'failed' if measured else 'not measured'}")
        theirs_text = (f"{theirs.label}: {theirs.run.rps:,.0f}" if theirs and theirs.run else "not measured")
        target_text = f"≥ {target:g}×" if target is not None else "—"
        if target is not None:
            total += 1
        if ours and ours.run and theirs and theirs.run:
            ratio = ours.run.rps / theirs.run.rps
            cpu = (fmt(ours.run.cpu_ms / theirs.run.cpu_ms, 2) + "×"
                   if ours.run.cpu_ms and theirs.run.cpu_ms else "—")
            if target is None:
                result = "info"
            else:
                ok = ratio >= target
                met += ok
                result = "met" if ok else "MISSED"
            print(f"| {title} | {conns} | {ours_text} | {theirs_text} | {ratio:.2f}× | {cpu} | {target_text} | "
                  f"{result} |")
        else:
            print(f"| {title} | {conns} | {ours_text} | {theirs_text} | — | — | {target_text} | "
                  f"{'MISSED (no valid cell)' if target is not None else 'info'} |")

    for store in stores:
        for conns in CONNECTIONS:
            row("client credentials vs the floor", conns, find("Tokenward", store, 2, CC, conns),
                find(FLOOR, "none", 2, CC, conns), 0.5, f"{store} ×2")
        for conns in CONNECTIONS:
            row("client credentials vs node-oidc-provider", conns, find("Tokenward", store, 2, CC, conns),
                find("node-oidc-provider", "memory", None, CC, conns), 1.5, f"{store} ×2")
        for conns in CONNECTIONS:
            row("client credentials ×1 vs the floor ×1", conns, find("Tokenward", store, 1, CC, conns),
                find(FLOOR, "none", 1, CC, conns), None, f"{store} ×1")
    for conns in CONNECTIONS:
        if "SQLite" in stores:
            row("refresh with rotation vs Authlib", conns, find("Tokenward", "SQLite", 2, REFRESH, conns),
                find("Authlib", "SQLite", 2, REFRESH, conns), 3.0, "SQLite ×2", REFRESH)
        if {"SQLite", "PostgreSQL"} <= set(stores):
            row("refresh with rotation, PostgreSQL vs SQLite", conns,
                find("Tokenward", "PostgreSQL", 2, REFRESH, conns), find("Tokenward", "SQLite", 2, REFRESH, conns),
                0.8, "PostgreSQL ×2", REFRESH)
    if "SQLite" in stores:
        for conns in CONNECTIONS:
            c = find("Tokenward", "SQLite", 1, CODE, conns)
            total += 1
            if c and c.run:
                ok = c.run.rps >= 2 * TODAY_CODE_RPS
                met += ok
                print(f"| code exchange vs issue 17's baseline | {conns} | SQLite ×1: {c.run.rps:,.0f} | "
                      f"{TODAY_CODE_RPS:,} req/s | {c.run.rps / TODAY_CODE_RPS:.2f}× | — | ≥ 2× | "
                      f"{'met' if ok else 'MISSED'} |")
            else:
                print(f"| code exchange vs issue 17's baseline | {conns} | SQLite ×1: failed | "
                      f"{TODAY_CODE_RPS:,} req/s | — | — | ≥ 2× | MISSED (no valid cell) |")
    if "PostgreSQL" in stores:
        for workload in (INTROSPECT, REFRESH):
            found = [c for c in cells if c.server == "Tokenward" and c.store == "PostgreSQL"
                     and c.workload == workload and c.conns == 128 and c.run]
            for c in found:
                r = c.run
                assert r is not None
                total += 1
                ok = c.ok and r.timeouts == 0 and r.p99 <= 4 * r.p50
                met += ok
                print(f"| {workload}: 0 timeouts, p99 ≤ 4× p50 | 128 | PostgreSQL ×{c.workers}: {r.timeouts} "
                      f"timeouts, p50 {fmt(r.p50, 2)} ms, p99 {fmt(r.p99, 2)} ms | — | {r.p99 / r.p50:.1f}× | — | "
                      f"0, ≤ 4× | {'met' if ok else 'MISSED'} |")
            if not found:
                total += 1
                print(f"| {workload}: 0 timeouts, p99 ≤ 4× p50 | 128 | PostgreSQL: failed | — | — | — | 0, ≤ 4× | "
                      "MISSED (no valid cell) |")
    print(f"\n{met} of {total} goals of issue 17 met (load average now {os.getloadavg()[0]:.2f}).")


# --------------------------------------------------------------------------------------------- main

def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk (make bench installs it)")
    started = time.monotonic()
    machine_before = describe()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0].strip()
    CACHE.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    cells: list[Cell] = []

    oidc_script: Path | None = None
    authlib_python: Path | None = None
    if "node" not in SKIP:
        try:
            oidc_script = install_oidc_provider()
        except Exception as exc:
            notes.append(f"node-oidc-provider not measured: {exc}")
            log(notes[-1])
    if "authlib" not in SKIP:
        try:
            authlib_python = install_authlib()
        except Exception as exc:
            notes.append(f"Authlib not measured: {exc}")
            log(notes[-1])

    worker_counts = [n for n in (1, 2) if f"workers{n}" not in SKIP]
    work = Path(tempfile.mkdtemp(prefix="tw-token-bench-"))
    if PROFILE:
        profiling.work = CACHE / "profiles"
        profiling.work.mkdir(exist_ok=True)
        log(f"BENCH_PROFILE: py-spy samples every Tokenward cell into {profiling.work} (figures are slowed)")
    try:
        if oidc_script is not None:
            cells += bench_oidc_provider(oidc_script, work)
        if authlib_python is not None:
            cells += bench_authlib(authlib_python, work)
        if "floor" not in SKIP:
            for n in worker_counts:
                cells += bench_floor(n, work)
        if "sqlite" not in SKIP:
            db = TokenwardDb("SQLite", f"sqlite:///{work / 'tokenward.db'}", work)
            db.provision()
            for n in worker_counts:
                cells += bench_tokenward(db, n, work)
        if "postgresql" not in SKIP:
            try:
                with postgres_database() as url:
                    db = TokenwardDb("PostgreSQL", url, work)
                    db.provision()
                    for n in worker_counts:
                        cells += bench_tokenward(db, n, work)
            except Exception as exc:
                notes.append(f"Tokenward on PostgreSQL not measured: {type(exc).__name__}: {exc}")
                log(notes[-1])
    finally:
        if os.environ.get("BENCH_KEEP"):
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    elapsed = time.monotonic() - started
    print(f"\n# Token endpoint benchmark — {machine_before}")
    print(f"# at the end: {describe()}")
    print(f"# {wrk_version}; -t{THREADS}, {DURATION} s per cell after a {WARMUP} s warm-up per server "
          f"(node {2 * WARMUP} s), 32 and 128 connections, --timeout {WRK_TIMEOUT}; everything on 127.0.0.1. "
          "CPU ms/req = CPU of the server's whole process group / requests (wrk's own CPU excluded). "
          "Figures are comparable only within one run.")
    print("# Tokenward: `tokenward serve` defaults (uvicorn, ES256 access tokens, log level info, rate limits on), "
          "TOKENWARD_CODE_TTL=3600 so codes made before a run stay valid, TOKENWARD_RATE_LIMIT_AUTHORIZE_IP "
          "raised (every code comes from 127.0.0.1). Refresh uses a public client "
          "(no grace window); introspection is of a client-credentials access token by its own client.")
    print("# Authlib: Flask + SQLAlchemy ORM on SQLite (WAL), gunicorn 2 sync workers, RFC 9068 ES256 tokens, "
          "token row saved, refresh rotates (new pair, old revoked). node-oidc-provider: one process, "
          "in-memory adapter, client credentials with a resource indicator → JWT (at+jwt, ES256).")
    print("# floor: bench/floor_app.py, Starlette on Tokenward's server stack (uvicorn, asyncio loop, httptools "
          "without Tokenward's http_limits, SO_REUSEPORT per worker): urlencoded form, Basic check "
          "(hmac.compare_digest), one ES256 signature with cryptography, no storage, no logging.\n")
    print_table(cells)
    for note in notes:
        print(f"\nNOTE: {note}")
    print_memory()
    print_goals(cells)
    profiled = [(profiling.cells.get(path.stem.removeprefix("profile-")), path) for path in profiling.files]
    for cell, path in profiled:
        print("\n" + profile.summarize(path, cpu_ms=cell.run.cpu_ms if cell and cell.run else None))
    for conns in CONNECTIONS:
        columns = [(c.label, path, c.run.cpu_ms if c.run else None) for c, path in profiled
                   if c is not None and c.workload == CC and c.conns == conns]
        if columns:
            print(f"\n## Where client-credentials CPU goes, {conns} connections (py-spy, µs of server CPU per "
                  "request = share of samples × the cell's CPU ms/req)")
            print("A sample counts for the innermost layer on its stack. `socket writes` is send(2) on loopback "
                  "plus time runnable but preempted there (the write wakes wrk): the floor pays it too.\n")
            print(profile.compare(columns))
    print_goals_17(cells)
    print(f"\ntoken bench wall time: {elapsed:.0f} s")


if __name__ == "__main__":
    main()
