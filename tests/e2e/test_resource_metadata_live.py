"""RFC 9728 protected-resource metadata from all three adapters on real servers — the ASGI middleware under
uvicorn, the FastAPI demo API as the real ``tokenward demo-api --audience <its URL>`` command, a Flask app under
werkzeug — each trusting a real ``tokenward serve`` (both backends).

For each: the document sits where RFC 9728 §3.1 puts it for the identifier (path-suffixed for one with a path),
its ``resource`` is exactly the identifier the client derived the URL from (§3.3), it names the Tokenward server;
401 and 403 challenges carry ``resource_metadata`` (§5.1) and 403 the missing ``scope``; and a token the client
asked for with that identifier as RFC 8707 ``resource`` is accepted, the one line-up the docs describe."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from flask import Flask, g
from werkzeug.serving import make_server

from tests.e2e.test_middleware_live import LiveAsgi, RecordingApp
from tests.support import TOKENWARD, ServerProcess, free_port
from tokenward.resource import JwtVerifier
from tokenward.resource.asgi import BearerAuthMiddleware, Receive, Scope, Send
from tokenward.resource.flask import FlaskGuard
from tokenward.resource.metadata import ResourceMetadata

pytestmark = pytest.mark.e2e

CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass
class Api:
    """A protected API whose resource identifier is ``resource``; ``/user/profile`` needs ``profile:read``."""

    resource: str
    profile_url: str


def well_known_url(resource: str) -> str:
    """RFC 9728 §3.1 written out independently of the code under test."""
    parts = urlsplit(resource)
    path = parts.path[:-1] if parts.path.endswith("/") else parts.path
    return f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource{path}"


def challenge_params(response: httpx2.Response) -> dict[str, str]:
    value = response.headers["www-authenticate"]
    assert value.startswith("Bearer ")
    return dict(CHALLENGE_PARAM.findall(value))


def client_token(server: ServerProcess, resource: str, scope: str = "profile:read") -> str:
    """Client credentials with RFC 8707 ``resource`` = the API's identifier, registered as the client's audience."""
    client = server.add_client(grant_types=("client_credentials",), audiences=(resource,), redirect_uri=None)
    r = server.token(client, {"grant_type": "client_credentials", "scope": scope, "resource": resource})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def assert_metadata_and_challenges(server: ServerProcess, api: Api) -> None:
    # §3.1/§3.3: fetch from the URL the identifier gives, and the document must name that same identifier
    url = well_known_url(api.resource)
    r = httpx2.get(url, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = r.json()
    assert document["resource"] == api.resource
    assert document["authorization_servers"] == [server.base_url]
    assert document["bearer_methods_supported"] == ["header"]
    assert "profile:read" in document["scopes_supported"]
    assert document["resource_name"]

    # the Tokenward server named there is the one that issues tokens for this resource
    as_metadata = httpx2.get(document["authorization_servers"][0] + "/.well-known/oauth-authorization-server")
    assert as_metadata.json()["issuer"] == server.base_url

    missing = httpx2.get(api.profile_url, timeout=10)
    assert missing.status_code == 401
    params = challenge_params(missing)
    assert params["resource_metadata"] == url and "error" not in params

    tampered = client_token(server, api.resource)[:-3] + "AAA"
    invalid = httpx2.get(api.profile_url, headers={"Authorization": f"Bearer {tampered}"}, timeout=10)
    assert invalid.status_code == 401
    params = challenge_params(invalid)
    assert params["error"] == "invalid_token" and params["resource_metadata"] == url

    write_only = client_token(server, api.resource, scope="profile:write")
    forbidden = httpx2.get(api.profile_url, headers={"Authorization": f"Bearer {write_only}"}, timeout=10)
    assert forbidden.status_code == 403
    params = challenge_params(forbidden)
    assert params["error"] == "insufficient_scope" and params["scope"] == "profile:read"
    assert params["resource_metadata"] == url

    # the token a client asks for with resource=<identifier> is the one this API accepts
    ok = httpx2.get(api.profile_url, headers={"Authorization": f"Bearer {client_token(server, api.resource)}"},
                    timeout=10)
    assert ok.status_code == 200, ok.text

    elsewhere = httpx2.get(api.profile_url,
                           headers={"Authorization": f"Bearer {client_token(server, 'https://other.example/api')}"},
                           timeout=10)
    assert elsewhere.status_code == 401 and challenge_params(elsewhere)["resource_metadata"] == url


class Deferred:
    """An ASGI app to be set once the listening socket, and so the API's own URL, is known."""

    app: BearerAuthMiddleware

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def asgi_api(server: ServerProcess) -> Iterator[Api]:
    """Resource identifier with a path (``…/api``): the document is at the path-suffixed well-known URL."""
    deferred = Deferred()
    live = LiveAsgi(deferred)  # the socket is bound here, so the URL is known before uvicorn starts
    resource = live.url + "/api"
    verifier = JwtVerifier(issuer=server.base_url, audience=resource)
    metadata = ResourceMetadata.for_verifier(verifier, scopes_supported=["profile:read"], resource_name="ASGI API")
    # Set before the server starts: its lifespan startup calls the app at once (seen in CI: set after, the
    # startup raced it, failed, and every request waited in the backlog until it timed out).
    deferred.app = BearerAuthMiddleware(RecordingApp(), verifier, realm="asgi", required_scopes=("profile:read",),
                                        resource_metadata=metadata)
    with live:
        yield Api(resource, resource + "/user/profile")


def test_asgi_middleware_serves_metadata_at_the_path_suffixed_url_and_names_it(server: ServerProcess,
                                                                                asgi_api: Api) -> None:
    assert_metadata_and_challenges(server, asgi_api)
    # only the identifier's own well-known URL: the root one would name a different resource (§3.3)
    root = httpx2.get(well_known_url(asgi_api.resource.rsplit("/", 1)[0]), timeout=10)
    assert root.status_code == 401
    assert httpx2.head(well_known_url(asgi_api.resource), timeout=10).status_code == 200
    post = httpx2.post(well_known_url(asgi_api.resource), timeout=10)
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"


@pytest.fixture(scope="module")
def demo_api(server: ServerProcess) -> Iterator[Api]:
    port = free_port()
    resource = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([TOKENWARD, "demo-api", "--issuer", server.base_url, "--port", str(port),
                             "--audience", resource], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        for _ in range(200):
            try:
                if httpx2.get(resource + "/health", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                time.sleep(0.05)
        else:
            raise RuntimeError("demo-api did not start")
        yield Api(resource, resource + "/user/profile")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def test_demo_api_with_its_url_as_audience_serves_that_resource(server: ServerProcess, demo_api: Api) -> None:
    assert_metadata_and_challenges(server, demo_api)
    assert httpx2.get(demo_api.resource + "/.well-known/oauth-protected-resource").json()["resource"] == (
        demo_api.resource)  # no trailing slash added: the identifier is compared as a string
    spec = httpx2.get(demo_api.resource + "/openapi.json").json()
    assert not any(path.startswith("/.well-known") for path in spec["paths"])


def test_demo_api_with_a_urn_audience_serves_no_metadata(server: ServerProcess) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([TOKENWARD, "demo-api", "--issuer", server.base_url, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(200):
            try:
                if httpx2.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                time.sleep(0.05)
        assert httpx2.get(base + "/.well-known/oauth-protected-resource").status_code == 404
        assert httpx2.get(base + "/user/profile").headers["www-authenticate"] == 'Bearer realm="tokenward-demo"'
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def test_demo_api_refuses_an_audience_url_that_cannot_be_an_identifier(server: ServerProcess) -> None:
    out = subprocess.run([TOKENWARD, "demo-api", "--issuer", server.base_url, "--port", str(free_port()),
                          "--audience", "http://api.example/#x"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--audience" in out.stderr and "Traceback" not in out.stderr


@pytest.fixture(scope="module")
def flask_api(server: ServerProcess) -> Iterator[Api]:
    port = free_port()
    resource = f"http://127.0.0.1:{port}/v1"
    verifier = JwtVerifier(issuer=server.base_url, audience=resource)
    guard = FlaskGuard(verifier, realm="flask", resource_metadata=ResourceMetadata.for_verifier(
        verifier, scopes_supported=["profile:read"], resource_name="Flask API"))
    app = Flask("prm")
    guard.serve_metadata(app)

    @app.get("/v1/user/profile")
    @guard.require_scopes("profile:read")
    def profile() -> dict[str, object]:
        return {"sub": g.principal.subject}

    http = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield Api(resource, resource + "/user/profile")
    http.shutdown()


def test_flask_guard_serves_metadata_and_names_it_in_challenges(server: ServerProcess, flask_api: Api) -> None:
    assert_metadata_and_challenges(server, flask_api)
