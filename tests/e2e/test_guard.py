"""The resource-server guard against a real ``tokenward serve``: the FastAPI demo API (run as the real
``tokenward demo-api`` command), a Flask app, and signing-key rotation on the server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx2
import pytest
from flask import Flask, g
from werkzeug.serving import make_server

from tests.support import TOKENWARD, ServerProcess, authorize, exchange_code, free_port
from tokenward.resource import JwtVerifier
from tokenward.resource.flask import FlaskGuard


def start_demo_api(issuer: str, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([TOKENWARD, "demo-api", "--issuer", issuer, "--port", str(port), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx2.get(base + "/health", timeout=1).status_code == 200:
                return proc, base
        except httpx2.HTTPError:
            time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError("demo-api did not start")


@pytest.fixture(scope="module")
def demo_api(server: ServerProcess) -> Iterator[str]:
    proc, base = start_demo_api(server.base_url)
    yield base
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)


def user_token(server: ServerProcess, scope: str = "profile:read", **client_options: object) -> str:
    client = server.add_client(**client_options)  # type: ignore[arg-type]
    auth = authorize(server, client, server.add_user(), scope=scope)
    body = exchange_code(server, client, auth).json()
    return str(body["access_token"])


def test_demo_api_returns_profile_when_token_has_profile_read(server: ServerProcess, demo_api: str) -> None:
    token = user_token(server)
    r = httpx2.get(demo_api + "/user/profile", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    body = r.json()
    assert body["scope"] == "profile:read" and body["sub"] and body["client_id"]


def test_demo_api_answers_rfc6750_errors_when_credentials_are_wrong(server: ServerProcess, demo_api: str) -> None:
    none = httpx2.get(demo_api + "/user/profile")
    assert none.status_code == 401
    assert none.headers["www-authenticate"] == 'Bearer realm="tokenward-demo"'

    token = user_token(server)
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    bad = httpx2.get(demo_api + "/user/profile", headers={"Authorization": f"Bearer {tampered}"})
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]

    in_query = httpx2.get(demo_api + "/user/profile", params={"access_token": token})
    assert in_query.status_code == 401 and "error=" not in in_query.headers["www-authenticate"]

    twice = httpx2.get(demo_api + "/user/profile", params={"access_token": token},
                       headers={"Authorization": f"Bearer {token}"})
    assert twice.status_code == 400 and 'error="invalid_request"' in twice.headers["www-authenticate"]

    lower = httpx2.get(demo_api + "/user/profile", headers={"Authorization": f"bearer {token}"})
    assert lower.status_code == 200

    write_only = user_token(server, scope="profile:write")
    forbidden = httpx2.get(demo_api + "/user/profile", headers={"Authorization": f"Bearer {write_only}"})
    assert forbidden.status_code == 403
    challenge = forbidden.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="profile:read"' in challenge

    other_audience = user_token(server, audiences=("https://other-api.example",))
    wrong_aud = httpx2.get(demo_api + "/user/profile", headers={"Authorization": f"Bearer {other_audience}"})
    assert wrong_aud.status_code == 401 and 'error="invalid_token"' in wrong_aud.headers["www-authenticate"]


def test_demo_api_documents_bearer_security_scheme_in_openapi(demo_api: str) -> None:
    spec = httpx2.get(demo_api + "/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["TokenwardBearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                          "description": "An RFC 9068 access token."}
    assert spec["paths"]["/user/profile"]["get"]["security"] == [{"TokenwardBearer": ["profile:read"]}]


@pytest.fixture
def flask_api(server: ServerProcess) -> Iterator[str]:
    app = Flask("guarded")
    guard = FlaskGuard(JwtVerifier(issuer=server.base_url, audience="urn:tokenward:api"), realm="flask-api")

    @app.get("/user/profile")
    @guard.require_scopes("profile:read")
    def profile() -> dict[str, object]:
        return {"sub": g.principal.subject, "scopes": sorted(g.principal.scopes)}

    port = free_port()
    http = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    http.shutdown()


def test_flask_decorator_protects_view_when_tokens_come_from_tokenward(server: ServerProcess, flask_api: str) -> None:
    token = user_token(server)
    ok = httpx2.get(flask_api + "/user/profile", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json()["scopes"] == ["profile:read"]
    missing = httpx2.get(flask_api + "/user/profile")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == 'Bearer realm="flask-api"'
    write_only = user_token(server, scope="profile:write")
    forbidden = httpx2.get(flask_api + "/user/profile", headers={"Authorization": f"Bearer {write_only}"})
    assert forbidden.status_code == 403 and 'error="insufficient_scope"' in forbidden.headers["www-authenticate"]
    assert json.loads(forbidden.text)["error"] == "insufficient_scope"


def test_key_rotation_on_server_keeps_validation_working(fresh_server: ServerProcess) -> None:
    server = fresh_server
    server.start(env={"TOKENWARD_KEY_CACHE_SECONDS": "0"})
    proc, api = start_demo_api(server.base_url)
    try:
        before = user_token(server)
        assert httpx2.get(api + "/user/profile", headers={"Authorization": f"Bearer {before}"}).status_code == 200
        rotated = subprocess.run([TOKENWARD, "keys", "rotate", "--prepublish", "0", "--db", server.db_url, "--json"],
                                 capture_output=True, text=True, timeout=60, check=False,
                                 env={**os.environ, "TOKENWARD_KEK_FILE": str(server.workdir / "tokenward.kek")})
        assert rotated.returncode == 0, rotated.stderr
        time.sleep(1.1)  # the guard refetches a JWKS at most once a second
        after = user_token(server)
        assert after.split(".")[0] != before.split(".")[0]  # a new kid in the header
        for token in (after, before):
            r = httpx2.get(api + "/user/profile", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.headers.get("www-authenticate")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
