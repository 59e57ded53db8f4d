"""Requests/s of a protected API: the same app with Tokenward's guard (pure ASGI middleware, and the FastAPI
demo's dependency) against the app without any check, driven by wrk on 127.0.0.1.

The tokens come from a real ``tokenward serve`` (client credentials), so the guard does the real work:
the first request verifies the signature, the rest hit the verified-token cache.
"""

from __future__ import annotations

import asyncio
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

from bench.machine import describe

TOKENWARD = str(Path(sys.executable).with_name("tokenward"))
DURATION = os.environ.get("BENCH_DURATION", "5s")
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))

APP_MODULE = '''
import sys
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from tokenward.resource import JwtVerifier
from tokenward.resource.asgi import BearerAuthMiddleware

async def profile(request):
    p = request.scope.get("tokenward.principal")
    return JSONResponse({"sub": p.subject if p else "anonymous", "profile": {"display_name": "demo"}})

bare = Starlette(routes=[Route("/user/profile", profile)])
guarded = BearerAuthMiddleware(Starlette(routes=[Route("/user/profile", profile)]),
                               JwtVerifier(issuer=sys.argv[1] if len(sys.argv) > 1 else "", audience="urn:tokenward:api"),
                               required_scopes=["profile:read"])
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, headers: dict[str, str] | None = None) -> None:
    for _ in range(300):
        try:
            httpx2.get(url, headers=headers, timeout=1)
            return
        except httpx2.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def run_wrk(url: str, token: str) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}", "--latency",
                          "-H", f"Authorization: Bearer {token}", url], capture_output=True, text=True, check=True)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out.stdout).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out.stdout)
        assert m, out.stdout
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    return {"rps": rps, "p50": pct("50"), "p99": pct("99"), "errors": float(non2xx.group(1)) if non2xx else 0.0}


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk (make bench installs it)")
    print(f"# Protected API benchmark — {describe()}")
    print(f"# wrk -t2 -c{CONNECTIONS} -d{DURATION}, one uvicorn worker per app, all on 127.0.0.1\n")
    work = Path(tempfile.mkdtemp(prefix="tw-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        as_port = free_port()
        issuer = f"http://127.0.0.1:{as_port}"
        db = f"sqlite:///{work / 'tw.db'}"
        env = {**os.environ, "TOKENWARD_KEK_FILE": str(work / "kek")}
        procs.append(subprocess.Popen([TOKENWARD, "serve", "--port", str(as_port), "--db", db], cwd=work, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        wait_http(issuer + "/jwks.json")
        client = json.loads(subprocess.run(
            [TOKENWARD, "clients", "add", "bench", "--grant-type", "client_credentials", "--scope", "profile:read",
             "--db", db, "--json"], capture_output=True, text=True, check=True, env=env).stdout)
        token = httpx2.post(issuer + "/token", data={"grant_type": "client_credentials"},
                            auth=(client["client_id"], client["client_secret"])).json()["access_token"]

        (work / "apps.py").write_text(APP_MODULE)
        results = {}
        for name, target in (("no guard (bare Starlette)", "apps:bare"),
                             ("Tokenward ASGI middleware", "apps:guarded"),
                             ("FastAPI demo (tokenward demo-api)", None)):
            port = free_port()
            if target is None:
                cmd = [TOKENWARD, "demo-api", "--issuer", issuer, "--port", str(port)]
            else:
                cmd = [sys.executable, "-c", "import sys, uvicorn; sys.argv=['x', sys.argv[1]]; "
                       f"uvicorn.run('{target}', port={port}, log_level='warning', access_log=False)", issuer]
            procs.append(subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True, env={**os.environ, "PYTHONPATH": str(work)}))
            url = f"http://127.0.0.1:{port}/user/profile"
            wait_http(url)
            check = httpx2.get(url, headers={"Authorization": f"Bearer {token}"})
            assert check.status_code == 200, check.text
            results[name] = run_wrk(url, token)
        base = results["no guard (bare Starlette)"]["rps"]
        print("| app | req/s | p50 ms | p99 ms | non-2xx | vs bare |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, r in results.items():
            print(f"| {name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']:.0f} | "
                  f"{r['rps'] / base:.2f}× |")
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(asyncio.sleep(0))
    main()
