"""The client library as a relying party of node-oidc-provider (npm; a certified OpenID provider, pinned by
tests/interop/node-provider/package-lock.json, installed by ``make node-provider``), an independent provider:
``login()`` with ``openid`` discovers it, sends a nonce, asks for ``offline_access`` because its discovery
lists it, validates its RS256 ID token against its JWKS, reads its userinfo and builds its logout URL
(issue #13 Part 4). Its development login and consent pages are driven over HTTP."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from urllib.parse import urljoin

import httpx2
import pytest

from tokenward.client import IdTokenError, MemoryTokenStore, login
from tokenward.client.discovery import discover
from tokenward.client.flow import HttpResponse
from tokenward.client.oidc import (
    end_session_url,
    id_token_algorithms,
    jwks_request,
    parse_jwks,
    parse_userinfo,
    userinfo_request,
    validate_id_token,
)

pytestmark = pytest.mark.e2e

NODE_DIR = Path(__file__).with_name("node-provider")
CLIENT_ID = "tokenward-cli"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Provider:
    def __init__(self, issuer: str, callback_port: int) -> None:
        self.issuer = issuer
        self.callback_port = callback_port


@pytest.fixture
def provider() -> Iterator[Provider]:
    if not (NODE_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("oidc-provider is not installed: run `make node-provider` (npm ci from package-lock.json)")
    port, callback = free_port(), free_port()
    proc = subprocess.Popen(["node", "provider.mjs", str(port), CLIENT_ID, f"http://127.0.0.1:{callback}/callback"],
                            cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        yield Provider(f"http://127.0.0.1:{port}", callback)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', re.S)
INPUT = re.compile(r"<input[^>]*>")
ATTR = re.compile(r'(name|value)="([^"]*)"')


def browse(url: str, username: str) -> httpx2.Response:
    """The user at node-oidc-provider's development pages: sign in (any password), confirm the consent, and
    follow the redirect to the loopback listener. Returns the listener's answer."""
    with httpx2.Client(follow_redirects=False, timeout=10) as browser:
        r = browser.get(url)
        for _ in range(8):
            while r.status_code in (302, 303):
                target = urljoin(str(r.url), r.headers["location"])
                if target.startswith("http://127.0.0.1") and "/callback" in target and "/interaction/" not in target:
                    return browser.get(target)
                r = browser.get(target)
            forms = [(action, body) for action, body in FORM.findall(r.text) if "abort" not in action]
            assert r.status_code == 200 and forms, r.text[:500]
            action, body = forms[0]
            data: dict[str, str] = {}
            for tag in INPUT.findall(body):
                attrs = dict(ATTR.findall(tag))
                if "name" in attrs:
                    data[attrs["name"]] = unescape(attrs.get("value", ""))
            if "login" in data:
                data.update(login=username, password="any")
            r = browser.post(urljoin(str(r.url), unescape(action)), data=data)
    raise AssertionError("the provider's pages never redirected to the client")


def test_client_completes_oidc_login_against_node_oidc_provider_and_validates_its_id_token(
        provider: Provider) -> None:
    metadata = discover(provider.issuer, openid=True)
    store = MemoryTokenStore()
    urls: list[str] = []
    pages: list[httpx2.Response] = []

    def user_in_browser(url: str) -> None:
        urls.append(url)
        threading.Thread(target=lambda: pages.append(browse(url, "alice")), daemon=True).start()

    token = login(metadata, CLIENT_ID, store=store, scope="openid profile email", open_browser=None,
                  on_url=user_in_browser, timeout=30, port=provider.callback_port)
    params = httpx2.URL(urls[0]).params
    assert params["nonce"] and params["code_challenge_method"] == "S256"
    assert "offline_access" in params["scope"].split()  # its discovery lists offline_access
    assert pages and pages[0].status_code == 200
    assert store.load() == token and token.id_token and token.id_claims is not None
    claims = token.id_claims
    assert claims["iss"] == provider.issuer and claims["aud"] == CLIENT_ID and claims["sub"] == "alice"
    assert claims["nonce"] == params["nonce"]

    request = userinfo_request(str(metadata.userinfo_endpoint), token.access_token)
    reply = httpx2.get(request.url, headers=dict(request.headers))
    info = parse_userinfo(HttpResponse(reply.status_code, {k.lower(): v for k, v in reply.headers.items()},
                                       reply.content), claims["sub"])
    assert info["sub"] == "alice" and info["email"] == "alice@example.com"

    assert metadata.end_session_endpoint is not None
    bye = httpx2.get(end_session_url(metadata.end_session_endpoint, client_id=CLIENT_ID, id_token=token.id_token,
                                     post_logout_redirect_uri="http://127.0.0.1/bye"))
    assert bye.status_code == 200  # its logout confirmation page: the hint and the registered URI were accepted


def test_client_refuses_node_oidc_provider_id_token_when_signed_for_another_client(provider: Provider) -> None:
    """node-oidc-provider's real ID token, checked as if this client were another one: its ``aud`` names the
    real client, so the audience check refuses it (the check is not Tokenward-specific)."""
    metadata = discover(provider.issuer, openid=True)
    store = MemoryTokenStore()

    def user_in_browser(url: str) -> None:
        threading.Thread(target=lambda: browse(url, "bob"), daemon=True).start()

    token = login(metadata, CLIENT_ID, store=store, scope="openid", open_browser=None, on_url=user_in_browser,
                  timeout=30, port=provider.callback_port)
    assert token.id_token is not None
    jwks = httpx2.get(jwks_request(metadata).url)
    keys = parse_jwks(HttpResponse(jwks.status_code, {}, jwks.content))
    with pytest.raises(IdTokenError) as info:
        validate_id_token(token.id_token, keys, issuer=metadata.issuer, client_id="someone-else",
                          algorithms=id_token_algorithms(metadata), now=float(token.obtained_at))
    assert info.value.reason == "audience"
