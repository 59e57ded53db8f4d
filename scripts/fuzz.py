"""``make fuzz``: schemathesis against a real ``tokenward serve`` (SQLite), 10,000 cases per operation.

Prints the cases sent per operation and the 5xx count; exits non-zero on any failed check.
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
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
          "response_headers_conformance,tokenward_error_hygiene")


def main() -> int:
    examples = int(os.environ.get("FUZZ_EXAMPLES", "10000"))
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
    try:
        for _ in range(300):
            try:
                httpx2.get(base + "/openapi.json", timeout=1)
                break
            except httpx2.HTTPError:
                time.sleep(0.1)
        started = time.monotonic()
        run = subprocess.run([str(BIN / "schemathesis"), "run", f"{base}/openapi.json", "--checks", CHECKS,
                              "--max-examples", str(examples), "--workers", "2"],
                             capture_output=True, text=True, cwd=ROOT, check=False,
                             env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks", "PYTHONPATH": str(ROOT)})
        elapsed = time.monotonic() - started
        print(run.stdout[-4000:])
        per_path: dict[str, list[int]] = {}
        tracebacks = 0
        for line in (work / "server.log").read_text().splitlines():
            tracebacks += "Traceback" in line
            if '"logger": "tokenward.access"' in line:
                entry = json.loads(line)
                counts = per_path.setdefault(f"{entry['method']} {entry['path']}", [0, 0])
                counts[0] += 1
                counts[1] += entry["status"] >= 500
        summary = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
        print(f"\nmake fuzz — up to {examples} cases per operation, {elapsed:.0f} s; "
              f"{summary.group(0) if summary else 'no summary'}; {tracebacks} tracebacks in the server log")
        print("| endpoint | requests | 5xx |\n|---|---:|---:|")
        for path, (sent, errors) in sorted(per_path.items(), key=lambda kv: -kv[1][0]):
            if sent >= 10:
                print(f"| {path} | {sent} | {errors} |")
        return run.returncode
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
