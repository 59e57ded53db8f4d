"""``tokenward login | token | call | logout`` as subprocesses, with the user's steps done over HTTP
(tests/client/test_login_chromium.py does the same login with a real browser)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.client.kit import LOOPBACK, ProtectedApi, audit_events, browse_login
from tests.support import PASSWORD, TOKENWARD, ClientInfo, ServerProcess
from tokenward.client import default_store

pytestmark = pytest.mark.e2e


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TOKENWARD, *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


@pytest.fixture
def logged_in(server: ServerProcess, config_home: Path) -> Iterator[tuple[ClientInfo, str]]:
    """A public client and a user, signed in with ``tokenward login --no-browser`` (tokens in config_home)."""
    client = server.add_client(public=True, redirect_uri=LOOPBACK, scope="profile:read profile:write")
    user = server.add_user()
    issuer = server.metadata()["issuer"]
    proc = subprocess.Popen([TOKENWARD, "login", "--issuer", issuer, f"--client-id={client.client_id}",
                             "--scope", "profile:read", "--no-browser", "--timeout", "30", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith(server.metadata()["authorization_endpoint"] + "?"), url
        page = browse_login(url, user, PASSWORD)
        assert page.status_code == 200 and "Signed in" in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["issuer"] == issuer and summary["client_id"] == client.client_id and summary["refresh_token"]
    assert "Signed in" in err
    yield client, issuer


def test_login_stores_encrypted_tokens_in_xdg_config_home_when_user_allows(
        server: ServerProcess, logged_in: tuple[ClientInfo, str], config_home: Path) -> None:
    client, issuer = logged_in
    token = default_store(issuer, client.client_id).load()
    assert token is not None and token.refresh_token and token.scope == "profile:read"
    files = {p.relative_to(config_home).as_posix() for p in config_home.rglob("*") if p.is_file()}
    assert "tokenward/client.json" in files and "tokenward/token-store.key" in files
    for path in config_home.rglob("*"):
        if path.is_file():
            assert (path.stat().st_mode & 0o077) == 0, path
            assert token.access_token not in path.read_text(errors="replace")
            assert token.refresh_token not in path.read_text(errors="replace")
    assert json.loads((config_home / "tokenward" / "client.json").read_text())["current"] == {
        "issuer": issuer, "client_id": client.client_id, "scope": "profile:read"}


def test_token_and_call_renew_expired_tokens_and_persist_rotation_when_run_after_login(
        server: ServerProcess, api: ProtectedApi, logged_in: tuple[ClientInfo, str]) -> None:
    client, issuer = logged_in
    printed = cli("token")
    assert printed.returncode == 0, printed.stderr
    first = default_store(issuer, client.client_id).load()
    assert first is not None and printed.stdout.strip() == first.access_token
    assert api.verify(printed.stdout.strip()) is not None

    store = default_store(issuer, client.client_id)
    stale = store.load()
    assert stale is not None
    store.save(replace(stale, expires_at=0.0, obtained_at=0.0))
    called = cli("call", api.url + "/user/profile")
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["client_id"] == client.client_id
    assert "renewed" in called.stderr and "rotated" in called.stderr
    renewed = default_store(issuer, client.client_id).load()
    assert renewed is not None and renewed.refresh_token != first.refresh_token
    assert renewed.access_token not in called.stderr + called.stdout
    assert audit_events(server, client.client_id, "token.refreshed") == 1

    as_json = cli("token", "--json")
    assert json.loads(as_json.stdout)["access_token"] == renewed.access_token


def test_call_prints_status_and_fails_when_api_refuses(api: ProtectedApi,
                                                       logged_in: tuple[ClientInfo, str]) -> None:
    client, issuer = logged_in
    token = default_store(issuer, client.client_id).load()
    assert token is not None
    api.verify = lambda t: None  # type: ignore[method-assign]
    called = cli("call", api.url + "/user/profile", "--json")
    assert called.returncode == 1 and "answered 401" in called.stderr
    assert json.loads(called.stdout) == {"status": 401, "body": {"error": "invalid_token"}}


def test_logout_revokes_and_forgets_tokens_when_logged_in(server: ServerProcess,
                                                          logged_in: tuple[ClientInfo, str]) -> None:
    client, issuer = logged_in
    token = default_store(issuer, client.client_id).load()
    assert token is not None and token.refresh_token
    out = cli("logout", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"issuer": issuer, "client_id": client.client_id, "revoked": True,
                                      "forgotten": True}
    assert default_store(issuer, client.client_id).load() is None
    refused = server.token(client, {"grant_type": "refresh_token", "refresh_token": token.refresh_token})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    again = cli("token")
    assert again.returncode == 1 and "tokenward login" in again.stderr


def test_token_says_login_required_when_refresh_token_was_revoked(
        server: ServerProcess, logged_in: tuple[ClientInfo, str]) -> None:
    client, issuer = logged_in
    store = default_store(issuer, client.client_id)
    token = store.load()
    assert token is not None
    server.token(client, {"grant_type": "refresh_token", "refresh_token": token.refresh_token or ""})  # rotate
    store.save(replace(token, expires_at=0.0, obtained_at=0.0))  # the spent one stays stored: reuse → revoked
    out = cli("token", "--issuer", issuer, "--client-id", client.client_id)
    assert out.returncode == 1
    assert "login" in out.stderr and f"--client-id {client.client_id}" in out.stderr
    assert default_store(issuer, client.client_id).load() is None


def test_login_fails_cleanly_when_issuer_metadata_names_another_issuer(server: ServerProcess,
                                                                       config_home: Path) -> None:
    out = cli("login", "--issuer", server.metadata()["issuer"] + "/", "--client-id", "x", "--no-browser")
    assert out.returncode == 1 and "RFC 8414" in out.stderr and out.stdout == ""
