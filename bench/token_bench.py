"""Token endpoint throughput: Tokenward on SQLite and PostgreSQL (1 and 2 workers) against Authlib
(Flask + SQLite) and node-oidc-provider (in-memory), all driven by wrk on 127.0.0.1 in one run.

    PYTHONPATH=. .venv/bin/python -m bench.token_bench        (make bench runs it after the guard benchmarks)

Cells (req/s, p50, p99, server CPU per request) at 32 and 128 connections, BENCH_TOKEN_DURATION seconds each:
- client credentials (JWT access token, client_secret_basic) — Tokenward, Authlib, node-oidc-provider;
- refresh with rotation (public client, so no grace window; a fresh refresh token per request) — Tokenward, Authlib;
- code exchange (authorization_code + PKCE S256, a fresh code per request) — Tokenward;
- introspection of an access token by a confidential client — Tokenward.

Single-use tokens are made before each run and handed out by bench/lua/token_file.lua, each wrk thread
its own slice. Tokenward's codes come from the real browser flow over HTTP (one login, then /authorize →
/consent → 303 per code); the code-exchange runs keep the refresh tokens they receive
(token_file_capture.lua), and those feed the refresh runs. A 2 s pilot at 32 connections sizes the batches;
the tokens a run did not send go to the next run.
Authlib's refresh tokens are inserted into its database (it has no login page here).

Peers are installed at run time into .bench-cache/ (a virtualenv from PyPI, an npm prefix); a peer that
cannot be installed or started is reported with the reason and the run goes on. A cell with more than 1%
non-2xx responses or socket errors is reported as FAILED and left out of the ratios. The goals of issue 6
are printed last, each marked met or missed.

Environment: BENCH_TOKEN_DURATION (seconds per cell, default 4: make bench stays under 10 minutes), BENCH_THREADS (wrk threads, default 2),
BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432; the database tw_bench is created and dropped),
BENCH_SKIP (comma-separated: authlib, node, sqlite, postgresql, workers1, workers2), BENCH_CACHE,
BENCH_KEEP=1 (keep the temporary folder with the server logs), BENCH_PROFILE=1 (py-spy samples the server during
every Tokenward cell; collapsed stacks in .bench-cache/profiles/, summarised by layer at the end — slows the figures).
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
SKIP = {s.strip() for s in os.environ.get("BENCH_SKIP", "").split(",") if s.strip()}

SCOPE = "profile:read"
# an exact https redirect: remembered consent applies to it (never to loopback or private-use redirects)
REDIRECT_URI = "https://bench.example/cb"
USERNAME = "bench"
PASSWORD = "bench password, not a secret"
AUTHLIB_REQUIREMENTS = ("authlib>=1.9.10,<2", "flask>=3.1,<4", "sqlalchemy>=2.0,<3", "gunicorn>=27,<28")
OIDC_PROVIDER = "oidc-provider@9"

CC = "client credentials (JWT)"
REFRESH = "refresh with rotation"
CODE = "code exchange"
INTROSPECT = "introspection"
WORKLOADS = (CC, REFRESH, CODE, INTROSPECT)

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

    def cell(self, cell: Cell) -> None:
        self.tag = re.sub(r"[^A-Za-z0-9]+", "-", f"{cell.store} x{cell.workers} {cell.workload} c{cell.conns}").strip("-")


profiling = Profiling()


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
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return WrkRun(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),  # type: ignore[union-attr]
        p50=pct("50"), p99=pct("99"), requests=requests,
        non2xx=number(r"Non-2xx or 3xx responses: (\d+)"),
        socket_errors=sum(int(g) for g in sock.groups()) if sock else 0,
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
        return f"{self.server} {self.store} ×{self.workers}"


def form_post_cell(cell: Cell, url: str, body: str, headers: list[str], pgid: int) -> Cell:
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
                    # Codes are made before the runs that spend them; rate limits stay at their defaults.
                    "TOKENWARD_CODE_TTL": "3600"}
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
                                       "--scope", SCOPE, "--json"))
        self.admin("users", "add", USERNAME, "--password-stdin", stdin=PASSWORD)
        self.cc_id, self.cc_secret, self.public_id = cc["client_id"], cc["client_secret"], public["client_id"]

    def authorize_params(self, verifier: str) -> str:
        return urlencode({"response_type": "code", "client_id": self.public_id, "redirect_uri": REDIRECT_URI,
                          "scope": SCOPE, "state": "bench", "code_challenge": pkce.s256(verifier),
                          "code_challenge_method": "S256"})

    def login(self, base: str) -> str:
        """Log in once through the real pages (and consent); returns the session cookie for later codes."""
        with httpx2.Client(base_url=base, follow_redirects=False, timeout=30) as browser:
            r = browser.get("/authorize?" + self.authorize_params(pkce.new_verifier()))
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
            return "; ".join(f"{k}={v}" for k, v in browser.cookies.items())

    async def _code(self, conn: RawHttp, _job: None = None) -> tuple[str, str]:
        verifier = pkce.new_verifier()
        status, headers, _ = await conn.request("GET", "/authorize?" + self.authorize_params(verifier))
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

    def codes(self, port: int, cookie: str, count: int) -> list[tuple[str, str]]:
        started = time.monotonic()
        made = asyncio.run(_produce([None] * count, self._code, port, cookie))
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
                for w in WORKLOADS for c in CONNECTIONS]
    cells: list[Cell] = []
    files = TokenFile(work)
    try:
        auth = basic(db.cc_id, db.cc_secret)
        cc_body = urlencode({"grant_type": "client_credentials", "scope": SCOPE})
        url = base + "/token"
        wrk(url, "form_post.lua", [cc_body, auth], 32, WARMUP, None)
        for conns in CONNECTIONS:
            cells.append(form_post_cell(cell(CC, conns), url, cc_body, [auth], server.pgid))

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
        cookie = db.login(base)
        codes = Supply(lambda n: [db.exchange_body(code, verifier) for code, verifier in db.codes(port, cookie, n)])
        exchange = [cell(CODE, conns) for conns in CONNECTIONS]
        cells.extend(exchange)
        captured = consuming_cells(exchange, files, url, codes, db.exchange_body("tw_ac_exhausted", "x" * 43), [],
                                   upper, server.pgid, capture="refresh_token")
        tokens = Supply(lambda n: [db.refresh_body(t) for t in db.refresh_tokens(port, cookie, n, codes)])
        tokens.give_back([db.refresh_body(t) for t in captured])
        refresh = [cell(REFRESH, conns) for conns in CONNECTIONS]
        cells.extend(refresh)
        consuming_cells(refresh, files, url, tokens, db.refresh_body("tw_rt_exhausted"), [], upper, server.pgid)
    except Exception as exc:
        log(f"Tokenward {db.store} ×{workers} aborted: {exc}")
        done = {(c.workload, c.conns) for c in cells}
        for w in WORKLOADS:
            for conns in CONNECTIONS:
                if (w, conns) not in done:
                    cells.append(Cell("Tokenward", db.store, workers, w, conns, note=f"aborted: {exc}"))
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
          "TOKENWARD_CODE_TTL=3600 so codes made before a run stay valid. Refresh uses a public client "
          "(no grace window); introspection is of a client-credentials access token by its own client.")
    print("# Authlib: Flask + SQLAlchemy ORM on SQLite (WAL), gunicorn 2 sync workers, RFC 9068 ES256 tokens, "
          "token row saved, refresh rotates (new pair, old revoked). node-oidc-provider: one process, "
          "in-memory adapter, client credentials with a resource indicator → JWT (at+jwt, ES256).\n")
    print_table(cells)
    for note in notes:
        print(f"\nNOTE: {note}")
    print_goals(cells)
    for path in profiling.files:
        print("\n" + profile.summarize(path))
    print(f"\ntoken bench wall time: {elapsed:.0f} s")


if __name__ == "__main__":
    main()
