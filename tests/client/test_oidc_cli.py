"""``tokenward login`` / ``whoami`` / ``logout`` after an OpenID Connect login, as subprocesses against a real
server, the user's browser steps done over HTTP (issue #13 Part 4)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.client.kit import LOOPBACK, browse_login
from tests.client.test_cli import cli
from tests.support import PASSWORD, TOKENWARD, ClientInfo, ServerProcess
from tokenward.client import default_store

pytestmark = pytest.mark.e2e


def openid_metadata(server: ServerProcess) -> dict[str, object]:
    r = httpx2.get(server.base_url + "/.well-known/openid-configuration")
    return dict(r.json()) if r.status_code == 200 else server.metadata()


@pytest.fixture
def oidc_login(server: ServerProcess, config_home: Path) -> Iterator[tuple[ClientInfo, str, str, str]]:
    """``tokenward login --scope "openid profile"`` completed; yields client, issuer, username and stderr."""
    client = server.add_client(public=True, redirect_uri=LOOPBACK, scope="openid profile email offline_access",
                               post_logout_redirect_uris=["https://app.example/bye"])
    user = server.add_user()
    issuer = server.metadata()["issuer"]
    proc = subprocess.Popen([TOKENWARD, "login", "--issuer", issuer, f"--client-id={client.client_id}",
                             "--scope", "openid profile offline_access", "--no-browser", "--timeout", "30",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert "nonce=" in url
        page = browse_login(url, user, PASSWORD)
        assert page.status_code == 200, page.text
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    summary = json.loads(out)
    (row,) = server.query(f"SELECT id FROM users WHERE username = '{user}'")
    assert summary["id_token_claims"]["sub"] == str(row[0])
    yield client, issuer, user, err


def test_login_prints_who_signed_in_when_login_is_openid_connect(oidc_login: tuple[ClientInfo, str, str, str],
                                                                 server: ServerProcess) -> None:
    client, issuer, _, err = oidc_login
    token = default_store(issuer, client.client_id).load()
    assert token is not None and token.id_claims is not None
    assert f"Signed in as sub {token.id_claims['sub']}" in err and "ID token verified" in err
    assert token.id_token is not None and token.id_token not in err


def test_whoami_shows_id_token_claims_and_userinfo_answer(oidc_login: tuple[ClientInfo, str, str, str],
                                                          server: ServerProcess) -> None:
    client, issuer, user, _ = oidc_login
    token = default_store(issuer, client.client_id).load()
    assert token is not None and token.id_claims is not None
    out = cli("whoami", "--json")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["id_token"]["sub"] == token.id_claims["sub"] and shown["id_token"]["iss"] == issuer
    text = cli("whoami", "--issuer", issuer, "--client-id", client.client_id)
    assert text.returncode == 0 and f"sub: {token.id_claims['sub']}" in text.stdout
    if "userinfo_endpoint" not in openid_metadata(server):
        pytest.skip("the server has no userinfo_endpoint yet (issue #13 Part 2)")
    assert shown["userinfo"]["sub"] == token.id_claims["sub"]
    assert shown["userinfo"]["preferred_username"] == user  # the profile scope's claim, from userinfo only
    assert shown["claims"]["preferred_username"] == user and "preferred_username:" in text.stdout


def test_logout_revokes_and_prints_end_session_url_when_provider_has_one(
        oidc_login: tuple[ClientInfo, str, str, str], server: ServerProcess) -> None:
    client, issuer, _, _ = oidc_login
    token = default_store(issuer, client.client_id).load()
    assert token is not None and token.refresh_token and token.id_token
    out = cli("logout", "--no-browser", "--post-logout-redirect-uri", "https://app.example/bye", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["revoked"] is True and summary["forgotten"] is True
    assert default_store(issuer, client.client_id).load() is None
    refused = server.token(client, {"grant_type": "refresh_token", "refresh_token": token.refresh_token})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    metadata = openid_metadata(server)
    if "end_session_endpoint" not in metadata:
        assert "end_session_url" not in summary
        pytest.skip("the server has no end_session_endpoint yet (issue #13 Part 2)")
    url = httpx2.URL(summary["end_session_url"])
    assert str(url).startswith(str(metadata["end_session_endpoint"]))
    assert url.params["id_token_hint"] == token.id_token and url.params["client_id"] == client.client_id
    assert url.params["post_logout_redirect_uri"] == "https://app.example/bye"
    answer = httpx2.get(str(url), follow_redirects=False)
    assert answer.status_code in (200, 302, 303), answer.text  # the provider's logout page or its redirect
