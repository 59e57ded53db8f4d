"""``make fuzz``: schemathesis against a real ``tokenward serve`` (SQLite), 10,000 cases per operation.

One ``schemathesis run`` process per operation of /openapi.json, ``FUZZ_JOBS`` of them at a time (default: one
per core), all against the same server: schemathesis's own ``--workers`` are threads that share one GIL, and
generating a case costs the client about ten times what answering it costs the server. The example database
is off (``--generation-database none``): with it Hypothesis keeps a Pareto front of the targeted metrics and
spends most of the run shrinking it.

Prints the cases sent per operation (counted by schemathesis and, separately, in the server's access log)
with the 5xx count and the tracebacks from the server log; exits non-zero on any failed check, any 5xx but a
documented 503, or any traceback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
          "response_headers_conformance,tokenward_error_hygiene")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Slowest first (seconds for 10,000 cases, two at a time on two cores: 192, 167, 156, 145, 140, 135, 123, 95),
# so that the pool does not end on a long operation alone.
SLOW_FIRST = ("POST /login", "POST /consent", "GET /authorize", "GET /login", "POST /introspect", "GET /consent",
              "POST /revoke", "POST /token")


@dataclass
class Run:
    operation: str
    log: Path
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    elapsed: float = 0.0
    generated: int = 0
    passed: int = 0
    returncode: int | None = None


def main() -> int:
    examples = int(os.environ.get("FUZZ_EXAMPLES", "10000"))
    jobs = int(os.environ.get("FUZZ_JOBS", str(os.cpu_count() or 2)))
    work = Path(tempfile.mkdtemp(prefix="tw-fuzz-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TOKENWARD_KEK_FILE": str(work / "kek"), "TOKENWARD_RATE_LIMITS": "off"}
    server = subprocess.Popen([str(BIN / "tokenward"), "serve", "--port", str(port), "--db",
                               f"sqlite:///{work / 'fuzz.db'}", "--log-level", "info"], env=env, cwd=work,
                              stdout=subprocess.DEVNULL, stderr=open(work / "server.log", "w"),  # noqa: SIM115
                              start_new_session=True)
    runs: list[Run] = []
    try:
        doc = None
        for _ in range(300):
            try:
                doc = httpx2.get(base + "/openapi.json", timeout=1).json()
                break
            except httpx2.HTTPError:
                time.sleep(0.1)
        if doc is None:
            print("the server did not answer /openapi.json", file=sys.stderr)
            return 2
        operations = [f"{method.upper()} {path}" for path, ops in doc["paths"].items() for method in ops
                      if method in METHODS]
        operations.sort(key=lambda op: SLOW_FIRST.index(op) if op in SLOW_FIRST else len(SLOW_FIRST))
        runs = [Run(op, work / f"schemathesis-{i}.log") for i, op in enumerate(operations)]
        started = time.monotonic()
        _run_all(runs, base, examples, jobs)
        elapsed = time.monotonic() - started
        return _report(runs, work / "server.log", examples, jobs, elapsed)
    finally:
        for run in runs:
            if run.process is not None and run.process.poll() is None:
                os.killpg(run.process.pid, signal.SIGTERM)
                run.process.wait(timeout=10)
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def _run_all(runs: list[Run], base: str, examples: int, jobs: int) -> None:
    """Run every operation in its own schemathesis process, ``jobs`` at a time."""
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks", "PYTHONPATH": str(ROOT)}
    pending: list[Run] = list(runs)
    running: list[Run] = []
    while pending or running:
        while pending and len(running) < jobs:
            run = pending.pop(0)
            run.started = time.monotonic()
            with open(run.log, "w") as out:
                run.process = subprocess.Popen(
                    [str(BIN / "schemathesis"), "run", f"{base}/openapi.json", "--include-name", run.operation,
                     "--checks", CHECKS, "--max-examples", str(examples), "--workers", "1",
                     "--generation-database", "none", "--no-color"],
                    stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True)
            running.append(run)
        time.sleep(0.2)
        for run in list(running):
            assert run.process is not None
            if run.process.poll() is None:
                continue
            running.remove(run)
            run.elapsed = time.monotonic() - run.started
            run.returncode = run.process.returncode
            output = run.log.read_text(errors="replace")
            summary = re.search(r"(\d+) generated, (\d+) (passed|found)", output)
            if summary:
                run.generated = int(summary.group(1))
                found = int(summary.group(2))
                run.passed = found if summary.group(3) == "passed" else run.generated - found
            if run.returncode != 0:
                print(f"\n===== {run.operation}: schemathesis exited {run.returncode} =====\n{output[-6000:]}")
            print(f"{run.operation}: {run.generated} cases in {run.elapsed:.0f} s "
                  f"({run.generated / max(run.elapsed, 1e-9):.0f}/s), exit {run.returncode}", flush=True)


def _report(runs: list[Run], server_log: Path, examples: int, jobs: int, elapsed: float) -> int:
    per_path: dict[str, list[int]] = {}
    tracebacks = 0
    for line in server_log.read_text(errors="replace").splitlines():
        tracebacks += "Traceback" in line
        if '"logger": "tokenward.access"' in line:
            entry = json.loads(line)
            counts = per_path.setdefault(f"{entry['method']} {entry['path']}", [0, 0, 0])
            counts[0] += 1
            counts[1] += entry["status"] >= 500
            counts[2] += entry["status"] >= 500 and entry["status"] != 503
    generated = sum(run.generated for run in runs)
    passed = sum(run.passed for run in runs)
    failed = [run.operation for run in runs if run.returncode != 0]
    print(f"\nmake fuzz — up to {examples} cases per operation, {len(runs)} operations, {jobs} schemathesis "
          f"processes at a time, {elapsed:.0f} s ({generated / elapsed:.0f} cases/s); {generated} generated, "
          f"{passed} passed; {tracebacks} tracebacks in the server log"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    print("| endpoint | requests | 5xx | schemathesis cases | s |\n|---|---:|---:|---:|---:|")
    by_operation = {run.operation: run for run in runs}
    other = [0, 0]
    for path, (sent, errors, _) in sorted(per_path.items(), key=lambda kv: -kv[1][0]):
        run = by_operation.pop(path, None)
        if run is None and not errors:
            other = [other[0] + sent, other[1] + errors]
            continue
        cases = f"{run.generated} | {run.elapsed:.0f}" if run else "- | -"
        print(f"| {path} | {sent} | {errors} | {cases} |")
    for run in by_operation.values():
        print(f"| {run.operation} | 0 | 0 | {run.generated} | {run.elapsed:.0f} |")
    if other[0]:
        print(f"| other (unsupported methods, probes) | {other[0]} | {other[1]} | - | - |")
    server_errors = sum(counts[2] for counts in per_path.values())
    return 1 if failed or server_errors or tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
