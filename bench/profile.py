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

# First match wins, looked up from the leaf towards the root: the innermost layer a sample is in.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logging", ("logging/", "tokenward/server/logs.py")),
    ("JWT sign/verify (cryptography, PyJWT)", ("cryptography/", "jwt/", "jwt_access_token.py", "joserfc/")),
    ("password / secret hashing", ("argon2/", "passwords.py")),
    ("PostgreSQL driver (psycopg)", ("psycopg/", "psycopg_pool/")),
    # sqlite3 is C: its time shows in the SQLAlchemy frames that call it.
    ("SQLite (C calls from SQLAlchemy)", ("do_execute (sqlalchemy/", "do_commit (sqlalchemy/", "do_rollback (sqlalchemy/",
                                          "do_begin (sqlalchemy/", "fetchall (sqlalchemy/", "fetchone (sqlalchemy/",
                                          "_sqlite_begin (tokenward/", "_sqlite_connect (tokenward/")),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("Tokenward store", ("tokenward/server/store/",)),
    ("Tokenward grants + endpoints", ("tokenward/server/", "tokenward/protocol/")),
    ("Starlette", ("starlette/",)),
    ("uvicorn + httptools", ("uvicorn/", "httptools/", "h11/")),
    ("asyncio event loop", ("asyncio/", "uvloop/")),
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


def summarize(path: Path, top: int = 12) -> str:
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
    if not total:
        return f"{path.name}: no samples"
    lines = [f"{path.name}: {total} samples"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in layers.most_common()]
    lines.append("  top functions (self time):")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in leaves.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(summarize(Path(arg)))
