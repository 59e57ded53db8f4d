"""The client credentials grant (RFC 6749 §4.4)."""

from __future__ import annotations

from tests.e2e.test_code_flow import jwt_parts, verify_with_jwks
from tests.support import ServerProcess


def test_client_credentials_issues_access_token_without_refresh_token(server: ServerProcess) -> None:
    client = server.add_client(grant_types=("client_credentials",), redirect_uri=None, scope="reports:read a:b")
    r = server.token(client, {"grant_type": "client_credentials", "scope": "reports:read"})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert "refresh_token" not in body
    assert body["scope"] == "reports:read"
    claims = verify_with_jwks(server, body["access_token"])
    assert claims["sub"] == client.client_id == claims["client_id"]
    assert claims["scope"] == "reports:read"


def test_client_credentials_grants_whole_client_scope_when_none_requested(server: ServerProcess) -> None:
    client = server.add_client(grant_types=("client_credentials",), redirect_uri=None, scope="x:y a:b")
    r = server.token(client, {"grant_type": "client_credentials"}, basic=False)
    assert r.status_code == 200 and r.json()["scope"] == "a:b x:y"


def test_client_signing_alg_selects_key_when_configured(server: ServerProcess) -> None:
    for alg in ("ES256", "RS256", "EdDSA"):
        client = server.add_client(grant_types=("client_credentials",), redirect_uri=None, signing_alg=alg)
        token = server.token(client, {"grant_type": "client_credentials"}).json()["access_token"]
        assert jwt_parts(token)[0]["alg"] == alg
        assert verify_with_jwks(server, token)["client_id"] == client.client_id
