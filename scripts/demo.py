"""``make demo``: the seed tutorial's story, end to end, in about two minutes.

An authorization server with 30-second access tokens, the protected profile API, and a client that signs
a user in (headless Chromium plays the user, or ``--interactive`` prints the link for you) and then calls
``GET /user/profile`` every few seconds. Tokens renew themselves before they expire; every call, renewal
and refresh-token rotation is printed, with short fingerprints instead of token values.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2

from tokenward.client import BearerAuth, MemoryTokenStore, Token, discover, login

BIN = Path(sys.executable).parent
USER, PASSWORD = "demo", "demo-password-42"
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fingerprint(value: str | None) -> str:
    return "-" if value is None else hashlib.sha256(value.encode()).hexdigest()[:8]


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {text}", flush=True)


def wait_http(url: str) -> None:
    for _ in range(300):
        try:
            httpx2.get(url, timeout=1)
            return
        except httpx2.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def play_the_user(url: str) -> None:
    """Headless Chromium signs in as the demo user and clicks Allow, as a person would."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page()
        page.goto(url)
        page.get_by_label("Username").fill(USER)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="Allow").click()
        page.wait_for_url("http://127.0.0.1:*/callback*")
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interactive", action="store_true", help="print the sign-in link instead of Chromium")
    parser.add_argument("--seconds", type=int, default=80, help="how long the client keeps calling the API")
    args = parser.parse_args()
    interactive = args.interactive or not Path(CHROMIUM).exists()

    work = Path(tempfile.mkdtemp(prefix="tokenward-demo-"))
    as_port, api_port = free_port(), free_port()
    issuer, api = f"http://127.0.0.1:{as_port}", f"http://127.0.0.1:{api_port}"
    env = {**os.environ, "TOKENWARD_DB": f"sqlite:///{work / 'demo.db'}", "TOKENWARD_KEK_FILE": str(work / "kek")}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        say(f"1. authorization server at {issuer} (access tokens live 30 s)")
        procs.append(subprocess.Popen([str(BIN / "tokenward"), "serve", "--port", str(as_port),
                                       "--access-token-ttl", "30", "--log-level", "warning"], env=env, cwd=work,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        wait_http(issuer + "/jwks.json")
        subprocess.run([str(BIN / "tokenward"), "users", "add", USER, "--password-stdin"], input=PASSWORD + "\n",
                       env=env, text=True, check=True, capture_output=True)
        client = json.loads(subprocess.run(
            [str(BIN / "tokenward"), "clients", "add", "demo-cli", "--public", "--redirect-uri",
             "http://127.0.0.1/callback", "--scope", "profile:read", "--json"],
            env=env, text=True, check=True, capture_output=True).stdout)
        say(f"   user '{USER}' and public client {client['client_id']} registered")

        say(f"2. protected API at {api}/user/profile (needs profile:read)")
        procs.append(subprocess.Popen([str(BIN / "tokenward"), "demo-api", "--issuer", issuer, "--port",
                                       str(api_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        wait_http(api + "/health")

        say("3. the client signs the user in (authorization code + PKCE, loopback redirect)")
        metadata = discover(issuer, allow_http=True)
        store = MemoryTokenStore()
        if interactive:
            token = login(metadata, client["client_id"], store=store, scope="profile:read", open_browser=None,
                          on_url=lambda url: print(f"\n   Open this link, sign in as {USER} / {PASSWORD}, "
                                                   f"and click Allow:\n   {url}\n", flush=True))
        else:
            token = login(metadata, client["client_id"], store=store, scope="profile:read",
                          open_browser=play_the_user)
        say(f"   signed in: access token {fingerprint(token.access_token)}, "
            f"refresh token {fingerprint(token.refresh_token)} (fingerprints, not the tokens)")

        def renewed(new: Token, old: Token | None) -> None:
            say(f"   ↻ renewed before expiry: access {fingerprint(old.access_token if old else None)} → "
                f"{fingerprint(new.access_token)}; refresh token rotated "
                f"{fingerprint(old.refresh_token if old else None)} → {fingerprint(new.refresh_token)}")

        auth = BearerAuth(metadata.token_endpoint, client["client_id"], store=store, on_refresh=renewed)
        say(f"4. calling the API every 5 s for {args.seconds} s; tokens renew themselves")
        with httpx2.Client(auth=auth, timeout=10) as http:
            deadline = time.monotonic() + args.seconds
            while time.monotonic() < deadline:
                r = http.get(api + "/user/profile")
                body = r.json()
                left = body.get("token_expires_at", 0) - time.time()
                say(f"   GET /user/profile → {r.status_code} sub={body.get('sub', '?')[:8]}… "
                    f"scope={body.get('scope')} (token expires in {left:.0f} s)")
                time.sleep(5)
        say("5. done: the user signed in once; the client kept working across several token lifetimes")
        return 0
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
