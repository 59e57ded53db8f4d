"""One OpenID Connect login in a real headless Chromium (issue #13), for a confidential relying party on
localhost (the shape of a Grafana or oauth2-proxy in development): sign in and consent with
response_mode=form_post (the page posts itself from /static/form_post.js under a strict CSP), a silent
prompt=none afterwards, RP-initiated logout back to the registered URI, and prompt=none → login_required."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_code_flow_chromium import page_url, sign_in
from tests.support import PASSWORD, ServerProcess

pytestmark = pytest.mark.browser


@dataclass
class RelyingParty:
    """The relying party's two endpoints on loopback: /cb (query or form post) and /bye (after logout)."""

    port: int
    received: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)  # (method, path, params)
    event: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def next(self) -> tuple[str, str, dict[str, str]]:
        assert self.event.wait(15), "the relying party received nothing"
        self.event.clear()
        return self.received.pop(0)


@pytest.fixture
def relying_party() -> Iterator[RelyingParty]:
    box: list[RelyingParty] = []

    class Handler(BaseHTTPRequestHandler):
        def _record(self, method: str, query: str) -> None:
            url = urlsplit(self.path)
            params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
            if url.path in ("/cb", "/bye"):  # not the browser's own /favicon.ico
                box[0].received.append((method, url.path, params))
                box[0].event.set()
            body = b"<!doctype html><title>RP</title><p>ok</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._record("GET", urlsplit(self.path).query)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            self._record("POST", self.rfile.read(length).decode())

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(RelyingParty(port=int(httpd.server_address[1])))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield box[0]
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_chromium_oidc_login_form_post_silent_login_and_logout(
        server: ServerProcess, page: Page, relying_party: RelyingParty) -> None:
    rp = relying_party
    with ThreadPoolExecutor(1) as pool:  # the admin helpers use asyncio.run: not on Playwright's loop thread
        client = pool.submit(lambda: server.add_client(
            public=False, redirect_uri=rp.url("/cb"), scope="openid profile",
            post_logout_redirect_uris=[rp.url("/bye")])).result()
        user = pool.submit(server.add_user).result()

    def authorize(extra: dict[str, str]) -> tuple[str, str]:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(12)
        query = urlencode({"response_type": "code", "client_id": client.client_id, "scope": "openid profile",
                           "redirect_uri": rp.url("/cb"), "state": state, "nonce": "n-" + state,
                           "code_challenge": challenge, "code_challenge_method": "S256", **extra})
        page.goto(f"{server.base_url}/authorize?{query}")
        return verifier, state

    verifier, state = authorize({"response_mode": "form_post"})
    expect(page).to_have_url(page_url(server, "login"))
    sign_in(page, user, PASSWORD)
    expect(page).to_have_url(page_url(server, "consent"))
    page.get_by_role("button", name="Allow").click()
    method, path, params = rp.next()  # posted by the page's own script: nobody clicked "Continue"
    assert (method, path) == ("POST", "/cb") and set(params) == {"code", "state", "iss"}
    assert params["state"] == state and params["iss"] == server.base_url
    tokens = httpx2.post(server.base_url + "/token", data={
        "grant_type": "authorization_code", "code": params["code"], "redirect_uri": rp.url("/cb"),
        "code_verifier": verifier}, auth=(client.client_id, client.client_secret or "")).json()
    id_token = tokens["id_token"]

    verifier, state = authorize({"prompt": "none"})
    method, path, params = rp.next()
    assert (method, path) == ("GET", "/cb") and "code" in params and params["state"] == state  # silently

    page.goto(server.base_url + "/end_session?" + urlencode({
        "id_token_hint": id_token, "post_logout_redirect_uri": rp.url("/bye"), "state": "bye-1"}))
    method, path, params = rp.next()
    assert (method, path, params.get("state")) == ("GET", "/bye", "bye-1")

    verifier, state = authorize({"prompt": "none"})
    method, path, params = rp.next()
    assert (path, params.get("error"), params.get("state")) == ("/cb", "login_required", state)
