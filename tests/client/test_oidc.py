"""The client as an OpenID Connect relying party against a real ``tokenward serve`` (issue #13 Part 4).

A good ID token is validated and kept; tampered, foreign-key, wrong-nonce, wrong-audience, wrong-issuer,
expired and wrong-at_hash ID tokens are refused with nothing stored. The bad tokens come from a small local
"provider" in front of the real server: it serves the real metadata with its own ``token_endpoint`` and
``jwks_uri``, forwards ``/token`` to the real server, and re-signs the ID token's claims (changed as a test
asks) with its own RSA key, or sends it unchanged, or byte-tampered, or signed by a key it does not publish.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest
from joserfc import jws, jwt
from joserfc.jwk import OctKey, RSAKey

from tests.client.kit import LOOPBACK, browse_login, expired
from tests.support import PASSWORD, ServerProcess
from tokenward.client import EncryptedFileTokenStore, IdTokenError, KeyFileKey, MemoryTokenStore, TokenManager, login
from tokenward.client.discovery import ServerMetadata, discover, parse_metadata
from tokenward.client.oidc import at_hash, login_scope

pytestmark = pytest.mark.e2e

Rewrite = Callable[[str, dict[str, Any]], str]


class ResigningProvider:
    """Real metadata and a forwarding ``/token``; ``rewrite(id_token, body)`` returns the ID token to send."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.key = RSAKey.generate_key(2048, parameters={"kid": "proxy-rs256", "alg": "RS256", "use": "sig"})
        self.unpublished = RSAKey.generate_key(2048, parameters={"kid": "proxy-rs256", "alg": "RS256"})
        self.rewrite: Rewrite = lambda token, body: token
        self.publish_real_keys = False
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if provider.publish_real_keys:
                    self._send(200, httpx2.get(server.base_url + "/jwks.json").content)
                else:
                    self._send(200, json.dumps({"keys": [provider.key.as_dict(private=False)]}).encode())

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                reply = httpx2.post(server.base_url + "/token", content=body, headers=headers)
                data = reply.json()
                if reply.status_code == 200 and "id_token" in data:
                    data["id_token"] = provider.rewrite(data["id_token"], data)
                self._send(reply.status_code, json.dumps(data).encode())

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def metadata(self, **extra: Any) -> ServerMetadata:
        document = {**self.server.metadata(), "token_endpoint": self.url + "/token", "jwks_uri": self.url + "/jwks",
                    **extra}
        return parse_metadata(document["issuer"], document)

    def resign(self, change: Callable[[dict[str, Any]], None], key: RSAKey | None = None) -> Rewrite:
        """Re-sign the real ID token's claims after ``change`` with this provider's key (or ``key``)."""
        def rewrite(token: str, body: dict[str, Any]) -> str:
            claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
            change(claims)
            signer = key or self.key
            return jwt.encode({"alg": "RS256", "typ": "JWT", "kid": signer.kid}, claims, signer)
        return rewrite

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def provider(server: ServerProcess) -> Iterator[ResigningProvider]:
    proxy = ResigningProvider(server)
    yield proxy
    proxy.close()


def sign_in(server: ServerProcess, metadata: ServerMetadata, scope: str = "openid profile", *,
            store: Any = None, client_scope: str = "openid profile offline_access profile:read"
            ) -> tuple[str, Any, list[str]]:
    """A public client and a user; ``login()`` with the user's browser steps done over HTTP. Returns the
    client id, the store and the authorization URLs the client produced."""
    client = server.add_client(public=True, redirect_uri=LOOPBACK, scope=client_scope)
    user = server.add_user()
    store = store if store is not None else MemoryTokenStore()
    urls: list[str] = []

    def user_in_browser(url: str) -> None:
        urls.append(url)
        threading.Thread(target=lambda: browse_login(url, user, PASSWORD), daemon=True).start()

    login(metadata, client.client_id, store=store, scope=scope, open_browser=None, on_url=user_in_browser,
          timeout=20)
    return client.client_id, store, urls


def test_login_sends_nonce_and_keeps_verified_claims_encrypted_when_id_token_is_good(
        server: ServerProcess, tmp_path: Path) -> None:
    metadata = discover(server.metadata()["issuer"], openid=True)
    store = EncryptedFileTokenStore(tmp_path / "t.json", key=KeyFileKey(tmp_path / "k"), context="x")
    client_id, _, urls = sign_in(server, metadata, store=store)
    nonce = httpx2.URL(urls[0]).params["nonce"]
    assert len(base64.urlsafe_b64decode(nonce + "==")) >= 16  # ≥ 128 bits
    token = store.load()
    assert token is not None and token.id_token and token.id_claims is not None
    claims = token.id_claims
    assert claims["iss"] == metadata.issuer and claims["aud"] == client_id and claims["nonce"] == nonce
    assert claims["at_hash"] == at_hash(token.access_token, "RS256")
    raw = (tmp_path / "t.json").read_text()
    assert claims["sub"] not in raw and token.id_token not in raw  # encrypted at rest
    assert "[redacted]" in repr(token) and token.id_token not in repr(token)


def test_plain_oauth_login_sends_no_nonce_and_keeps_no_claims(server: ServerProcess) -> None:
    metadata = discover(server.metadata()["issuer"])
    _, store, urls = sign_in(server, metadata, scope="profile:read")
    assert "nonce" not in httpx2.URL(urls[0]).params
    token = store.load()
    assert token is not None and token.id_token is None and token.id_claims is None


def _tamper(token: str, body: dict[str, Any]) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _set(**values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda claims: claims.update(values)


CASES: dict[str, tuple[Callable[[ResigningProvider], Rewrite], bool, str]] = {
    # name: (rewrite, publish the real server's keys instead of the proxy's, expected reason)
    "tampered": (lambda p: _tamper, True, "signature"),
    "foreign_key": (lambda p: p.resign(lambda c: None, key=p.unpublished), False, "signature"),
    "hmac": (lambda p: lambda t, b: jws.serialize_compact(
        {"alg": "HS256"}, t.split(".")[1].encode(), OctKey.import_key(b"k" * 32)), False, "signature"),
    "alg_none": (lambda p: lambda t, b: ".".join([base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode(),
                                                   t.split(".")[1], ""]), False, "signature"),
    "wrong_nonce": (lambda p: p.resign(_set(nonce="not-the-login-nonce")), False, "nonce"),
    "no_nonce": (lambda p: p.resign(lambda c: c.pop("nonce")), False, "nonce"),
    "wrong_aud": (lambda p: p.resign(_set(aud="another-client")), False, "audience"),
    "aud_list_without_azp": (lambda p: p.resign(lambda c: c.update(aud=[c["aud"], "other"])), False, "azp"),
    "wrong_iss": (lambda p: p.resign(_set(iss="https://evil.example")), False, "issuer"),
    "expired": (lambda p: p.resign(_set(exp=int(time.time()) - 3600)), False, "expired"),
    "iat_future": (lambda p: p.resign(_set(iat=int(time.time()) + 3600)), False, "iat"),
    "wrong_at_hash": (lambda p: p.resign(_set(at_hash="AAAAAAAAAAAAAAAAAAAAAA")), False, "at_hash"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_login_refuses_id_token_and_stores_nothing_when_a_check_fails(
        server: ServerProcess, provider: ResigningProvider, case: str) -> None:
    rewrite, real_keys, reason = CASES[case]
    provider.rewrite = rewrite(provider)
    provider.publish_real_keys = real_keys
    store = MemoryTokenStore()
    with pytest.raises(IdTokenError) as info:
        sign_in(server, provider.metadata(), store=store)
    assert info.value.reason == reason
    assert store.load() is None


def test_resigned_id_token_is_accepted_when_every_claim_is_right(server: ServerProcess,
                                                                 provider: ResigningProvider) -> None:
    """The control for the table above: the proxy's re-signing alone does not make a token fail."""
    provider.rewrite = provider.resign(lambda c: None)
    _, store, _ = sign_in(server, provider.metadata())
    token = store.load()
    assert token is not None and token.id_claims is not None


def test_login_asks_offline_access_when_advertised_and_refresh_keeps_subject(
        server: ServerProcess, provider: ResigningProvider) -> None:
    metadata = provider.metadata(scopes_supported=["openid", "profile", "offline_access"])
    assert login_scope("openid profile", metadata) == "openid profile offline_access"
    assert login_scope("openid profile", provider.metadata(scopes_supported=["openid"])) == "openid profile"
    provider.rewrite = provider.resign(lambda c: None)
    client_id, store, urls = sign_in(server, metadata)
    assert "offline_access" in httpx2.URL(urls[0]).params["scope"].split()
    first = store.load()
    assert first is not None and first.refresh_token and first.id_claims is not None
    store.save(expired(first))
    renewed = TokenManager(metadata.token_endpoint, client_id, store=store, oidc=metadata).token()
    assert renewed.access_token != first.access_token
    assert renewed.id_claims is not None and renewed.id_claims["sub"] == first.id_claims["sub"]

    provider.rewrite = provider.resign(_set(sub="someone-else"))
    store.save(expired(renewed))
    with pytest.raises(IdTokenError) as info:
        TokenManager(metadata.token_endpoint, client_id, store=store, oidc=metadata).token()
    assert info.value.reason == "refresh_mismatch"
    assert store.load() is None


def test_refresh_keeps_login_claims_when_manager_has_no_provider_metadata(server: ServerProcess) -> None:
    metadata = discover(server.metadata()["issuer"], openid=True)
    client_id, store, _ = sign_in(server, metadata, scope="openid profile offline_access")
    first = store.load()
    assert first is not None and first.refresh_token and first.id_claims is not None
    store.save(expired(first))
    renewed = TokenManager(metadata.token_endpoint, client_id, store=store).token()
    assert renewed.access_token != first.access_token
    assert renewed.id_token == first.id_token and renewed.id_claims == first.id_claims  # unverified one dropped


def test_id_token_checks_use_only_asymmetric_algorithms_from_discovery(server: ServerProcess) -> None:
    from tokenward.client.oidc import id_token_algorithms

    base = {k: v for k, v in server.metadata().items() if k != "id_token_signing_alg_values_supported"}
    doc = {**base, "id_token_signing_alg_values_supported": ["none", "HS256", "ES256", "RS256"]}
    assert id_token_algorithms(parse_metadata(base["issuer"], doc)) == ["ES256", "RS256"]
    assert id_token_algorithms(parse_metadata(base["issuer"], base)) == ["RS256"]  # Core §3.1.3.7 default
    with pytest.raises(IdTokenError):
        id_token_algorithms(parse_metadata(base["issuer"], {**base, "id_token_signing_alg_values_supported":
                                                            ["none", "HS256"]}))
