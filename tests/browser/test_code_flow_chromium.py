"""A real headless Chromium drives /authorize → login → consent → a real loopback redirect listener.

The client registers ``http://127.0.0.1/callback`` and the browser is sent to ``http://127.0.0.1:<port>/callback``
(RFC 8252 §7.3: any port on a loopback redirect URI). Chromium is Debian's ``/usr/bin/chromium``; never run
``playwright install`` (design README, "Browser tests").
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest
from playwright.sync_api import Page, expect

from tests.support import PASSWORD, ClientInfo, ServerProcess

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/tw-shots")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Callback:
    """A loopback HTTP listener standing in for a native app's redirect endpoint."""

    port: int
    queries: list[dict[str, str]] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"


@pytest.fixture
def callback() -> Iterator[Callback]:
    box: list[Callback] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/callback":
                box[0].queries.append({k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()})
                box[0].received.set()
            body = b"<!doctype html><title>Done</title><p>You can close this window.</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(Callback(port=int(httpd.server_address[1])))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield box[0]
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@dataclass
class Started:
    client: ClientInfo
    user: str
    verifier: str
    state: str


def start_flow(server: ServerProcess, page: Page, callback: Callback, scope: str) -> Started:
    """Register a public loopback client and a user, then open /authorize in the browser (lands on /login)."""
    # Sync Playwright runs an asyncio loop on this thread; the admin helpers use asyncio.run, so use another.
    with ThreadPoolExecutor(1) as pool:
        client = pool.submit(lambda: server.add_client(public=True, redirect_uri="http://127.0.0.1/callback",
                                                       scope="profile:read profile:write")).result()
        user = pool.submit(server.add_user).result()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = "s/" + secrets.token_urlsafe(12) + " +&="
    query = urlencode({"response_type": "code", "client_id": client.client_id, "scope": scope,
                       "redirect_uri": callback.redirect_uri, "state": state,
                       "code_challenge": challenge, "code_challenge_method": "S256"})
    page.goto(f"{server.metadata()['authorization_endpoint']}?{query}")
    expect(page).to_have_url(page_url(server, "login"))
    return Started(client, user, verifier, state)


def page_url(server: ServerProcess, name: str) -> re.Pattern[str]:
    """The URL of one of the server's pages for a pending request: ``<base>/<name>?request=<id>``."""
    return re.compile(re.escape(server.base_url) + rf"/{name}\?request=[^&]+$")


def sign_in(page: Page, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def shoot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    data = path.read_bytes()
    assert len(data) > len(PNG_MAGIC) and data.startswith(PNG_MAGIC), f"{path} is not a PNG"
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, SHOTS / name)


def wait_for_callback(callback: Callback) -> dict[str, str]:
    assert callback.received.wait(15), "the loopback listener received no redirect"
    assert len(callback.queries) == 1, callback.queries
    return callback.queries[0]


def test_chromium_completes_code_flow_with_pkce_when_user_allows(
        server: ServerProcess, page: Page, callback: Callback, tmp_path: Path) -> None:
    metadata = server.metadata()
    flow = start_flow(server, page, callback, "profile:read profile:write")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shoot(page, tmp_path, "login.png")

    sign_in(page, flow.user, PASSWORD)
    expect(page).to_have_url(page_url(server, "consent"))
    expect(page.get_by_role("heading", name="Allow access?")).to_be_visible()
    scopes = page.get_by_role("listitem")
    expect(scopes).to_have_count(3)  # two scopes, and the refresh token the client's refresh grant brings
    expect(scopes.filter(has_text="profile:read")).to_contain_text("Read your profile")
    expect(scopes.filter(has_text="profile:write")).to_contain_text("Change your profile")
    expect(scopes.nth(2)).to_have_text("Keep this access while you are away, until you revoke it")
    shoot(page, tmp_path, "consent.png")

    page.get_by_role("button", name="Allow").click()
    got = wait_for_callback(callback)
    expect(page).to_have_url(re.compile(re.escape(callback.redirect_uri) + r"\?.+"))
    assert set(got) == {"code", "state", "iss"}
    assert got["code"]
    assert got["state"] == flow.state
    assert got["iss"] == metadata["issuer"]

    r = httpx2.post(metadata["token_endpoint"], data={
        "grant_type": "authorization_code", "code": got["code"], "redirect_uri": callback.redirect_uri,
        "client_id": flow.client.client_id, "code_verifier": flow.verifier})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["access_token"] and body["refresh_token"]
    assert set(body["scope"].split()) == {"profile:read", "profile:write"}


def test_chromium_delivers_access_denied_with_state_and_iss_when_user_denies(
        server: ServerProcess, page: Page, callback: Callback) -> None:
    flow = start_flow(server, page, callback, "profile:read")
    sign_in(page, flow.user, PASSWORD)
    expect(page).to_have_url(page_url(server, "consent"))
    page.get_by_role("button", name="Deny").click()
    got = wait_for_callback(callback)
    assert got["error"] == "access_denied"
    assert "code" not in got
    assert got["state"] == flow.state
    assert got["iss"] == server.metadata()["issuer"]


def test_chromium_shows_error_and_stays_on_login_when_password_is_wrong(
        server: ServerProcess, page: Page, callback: Callback) -> None:
    flow = start_flow(server, page, callback, "profile:read")
    sign_in(page, flow.user, PASSWORD + "!")
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("incorrect")
    assert page.url.startswith(server.base_url + "/login")
    expect(page.get_by_label("Password")).to_be_visible()
    assert not callback.received.wait(0.5)
    assert callback.queries == []

