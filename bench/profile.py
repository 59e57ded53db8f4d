"""Where a benchmark cell's server time goes: py-spy samples every process of the server's group while wrk
runs, and the collapsed stacks are summed into layers (HTTP, logging, JWT, database, ...) and top functions.

Used by bench.token_bench when BENCH_PROFILE is set (sampling costs throughput: figures from such a run are
for the profile only). py-spy is installed on demand into the bench cache, like the peers.

    PYTHONPATH=. .venv/bin/python -m bench.profile FILE.txt     (summarise a profile again)
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PY_SPY = "py-spy>=0.4,<0.5"
RATE = 250  # samples per second per process

# Each sample goes to the innermost frame that matches a layer (first match in this order wins for a frame),
# so stdlib helpers (base64, uuid, urllib) count for the layer that called them. C code shows as the Python
# frame that called it: the send(2) syscall as asyncio's transport.write, sqlite3 as SQLAlchemy's do_*.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logging", ("logging/", "tokenward/server/logs.py")),
    ("JSON encoding/decoding (json)", ("json/",)),
    ("JWT sign/verify (joserfc, cryptography)", ("cryptography/", "jwt/", "jwt_access_token.py", "joserfc/",
                                                 "tokenward/server/jws.py",
                                                 "sign (bench/floor_app.py", "b64url (bench/floor_app.py")),
    ("password / secret hashing", ("argon2/", "passwords.py")),
    ("PostgreSQL driver (psycopg)", ("psycopg/", "psycopg_pool/")),
    # sqlite3 is C: its time shows in the SQLAlchemy frames that call it.
    ("SQLite (C calls from SQLAlchemy)", ("do_execute (sqlalchemy/", "do_commit (sqlalchemy/", "do_rollback (sqlalchemy/",
                                          "do_begin (sqlalchemy/", "fetchall (sqlalchemy/", "fetchone (sqlalchemy/",
                                          "_sqlite_begin (tokenward/", "_sqlite_connect (tokenward/")),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("Tokenward store", ("tokenward/server/store/",)),
    ("Tokenward client authentication", ("tokenward/server/client_auth.py", "tokenward/server/client_cache.py")),
    ("Tokenward rate limits", ("tokenward/server/rate_limit.py",)),
    ("Tokenward middleware (request context, audit, security headers)",
     ("RequestContextMiddleware", "tokenward/server/web/security.py", "tokenward/server/audit.py")),
    ("form parsing (body read, urlencoded)", ("tokenward/protocol/form.py", "read_body (tokenward/server/web/http.py",
                                              "to_form (tokenward/server/web/http.py", "urllib/parse.py",
                                              "starlette/formparsers.py")),
    ("Tokenward HTTP limits (http_limits)", ("tokenward/server/web/http_limits.py",)),
    ("Tokenward grants + endpoints", ("tokenward/server/", "tokenward/protocol/")),
    ("floor app handler", ("bench/floor_app.py",)),
    ("Starlette middleware + routing", ("starlette/middleware/", "starlette/_exception_handler.py",
                                        "starlette/routing.py", "starlette/applications.py")),
    ("Starlette requests/responses", ("starlette/",)),
    ("uvicorn + httptools", ("uvicorn/", "httptools/", "h11/")),
    ("socket writes (transport.write: the send syscall)", ("_SelectorSocketTransport.write (asyncio/",)),
    ("asyncio event loop (other)", ("asyncio/", "uvloop/")),
)


def _bin(cache: Path) -> Path:
    prefix = cache / "py-spy"
    binary = prefix / "bin" / "py-spy"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--prefix", str(prefix), PY_SPY], check=True)
    return binary


@contextmanager
def record(pid: int, out: Path, cache: Path) -> Iterator[None]:
    """Sample ``pid`` and its subprocesses (the uvicorn workers) until the block ends; collapsed stacks → ``out``."""
    spy = subprocess.Popen([str(_bin(cache)), "record", "--pid", str(pid), "--subprocesses", "--rate", str(RATE),
                            "--format", "raw", "--output", str(out), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        spy.send_signal(2)  # SIGINT: py-spy writes the file and exits
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()


def _stacks(path: Path) -> Iterator[tuple[list[str], int]]:
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            # Frames look like "function (path/to/file.py:123)"; the first is the process/thread name.
            yield stack.split(";"), int(count)


def _count(path: Path) -> tuple[Counter[str], Counter[str], int]:
    layers: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for frames, count in _stacks(path):
        total += count
        leaf = frames[-1]
        leaves[leaf.split(":")[0] + ")" if "(" in leaf else leaf] += count
        for frame in reversed(frames):
            layer = next((name for name, marks in LAYERS if any(m in frame for m in marks)), None)
            if layer is not None:
                layers[layer] += count
                break
        else:
            layers["other (idle, interpreter)"] += count
    return layers, leaves, total


def summarize(path: Path, top: int = 12, cpu_ms: float | None = None) -> str:
    """Layers and top functions as shares of the samples; with ``cpu_ms`` (the cell's server CPU per
    request) also as µs of CPU per request."""
    layers, leaves, total = _count(path)
    if not total:
        return f"{path.name}: no samples"

    def per(n: int) -> str:
        return f"  {1000 * cpu_ms * n / total:7.1f} µs/req" if cpu_ms else ""

    lines = [f"{path.name}: {total} samples" + (f", {1000 * cpu_ms:.0f} µs of server CPU per request" if cpu_ms else "")]
    lines += [f"  {100 * n / total:5.1f}%{per(n)}  {name}" for name, n in layers.most_common()]
    lines.append("  top functions (self time):")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in leaves.most_common(top)]
    return "\n".join(lines)


def compare(profiles: list[tuple[str, Path, float | None]]) -> str:
    """One markdown table: µs of server CPU per request by layer (share of samples times the cell's CPU per
    request), one column per (name, profile file, CPU ms per request); the share where the CPU is unknown."""
    counted = [(name, *_count(path), cpu) for name, path, cpu in profiles]
    order = [name for name, _ in LAYERS] + ["other (idle, interpreter)"]
    lines = ["| layer | " + " | ".join(name for name, *_ in counted) + " |",
             "|---|" + "---:|" * len(counted)]
    for layer in order:
        if not any(c[1][layer] for c in counted):
            continue
        cells = []
        for _, layers, _, total, cpu in counted:
            n = layers[layer]
            share = n / total if total else 0.0
            cells.append(f"{1000 * cpu * share:,.0f} µs ({100 * share:.0f}%)" if cpu else f"{100 * share:.0f}%")
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    lines.append("| **total** | " + " | ".join(f"{1000 * cpu:,.0f} µs ({total} samples)" if cpu else f"{total} samples"
                                            for _, _, _, total, cpu in counted) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(summarize(Path(arg)))
