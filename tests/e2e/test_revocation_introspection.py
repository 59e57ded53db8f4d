"""Revocation (RFC 7009) and introspection (RFC 7662) against a real server."""

from __future__ import annotations

import subprocess
import time

import httpx2

from tests.support import TOKENWARD, ClientInfo, ServerProcess, authorize, exchange_code

INACTIVE = {"active": False}


def post(server: ServerProcess, path: str, client: ClientInfo | None, data: dict[str, str]) -> httpx2.Response:
    auth = httpx2.BasicAuth(client.client_id, client.client_secret) if client and client.client_secret else None
    if client is not None and client.client_secret is None:
        data = {**data, "client_id": client.client_id}
    return httpx2.post(server.base_url + path, data=data, auth=auth)


def user_tokens(server: ServerProcess, client: ClientInfo) -> dict[str, str]:
    auth = authorize(server, client, server.add_user())
    r = exchange_code(server, client, auth)
    assert r.status_code == 200
    return dict(r.json())


def test_revoking_refresh_token_revokes_family_and_its_access_token(server: ServerProcess) -> None:
    client = server.add_client()
    tokens = user_tokens(server, client)
    assert post(server, "/introspect", client, {"token": tokens["access_token"]}).json()["active"] is True
    r = post(server, "/revoke", client, {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    refresh = server.token(client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    assert post(server, "/introspect", client, {"token": tokens["access_token"]}).json() == INACTIVE
    assert post(server, "/introspect", client, {"token": tokens["refresh_token"]}).json() == INACTIVE


def test_revoking_access_token_with_wrong_hint_still_revokes_it(server: ServerProcess) -> None:
    client = server.add_client(grant_types=("client_credentials",), redirect_uri=None)
    token = server.token(client, {"grant_type": "client_credentials"}).json()["access_token"]
    assert post(server, "/revoke", client, {"token": token, "token_type_hint": "refresh_token"}).status_code == 200
    assert post(server, "/introspect", client, {"token": token}).json() == INACTIVE


def test_revocation_of_another_clients_token_is_refused_and_token_stays_active(server: ServerProcess) -> None:
    owner, other = server.add_client(), server.add_client()
    tokens = user_tokens(server, owner)
    for token in (tokens["refresh_token"], tokens["access_token"]):
        r = post(server, "/revoke", other, {"token": token})
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert post(server, "/introspect", owner, {"token": tokens["access_token"]}).json()["active"] is True
    refresh = server.token(owner, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 200


def test_revocation_answers_200_for_unknown_tokens_and_errors_for_bad_requests(server: ServerProcess) -> None:
    client = server.add_client()
    for garbage in ("nope", "tw_rt_" + "A" * 43, "a.b.c", "eyJhbGciOiJub25lIn0.e30."):
        assert post(server, "/revoke", client, {"token": garbage}).status_code == 200
    missing = post(server, "/revoke", client, {})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    anonymous = httpx2.post(server.base_url + "/revoke", data={"token": "x", "client_id": client.client_id})
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    assert httpx2.get(server.base_url + "/revoke").status_code == 405
    public = server.add_client(public=True, redirect_uri="http://127.0.0.1/cb")
    assert post(server, "/revoke", public, {"token": "x"}).status_code == 200


def test_introspection_describes_active_access_token_with_rfc7662_fields(server: ServerProcess) -> None:
    client = server.add_client()
    tokens = user_tokens(server, client)
    body = post(server, "/introspect", client, {"token": tokens["access_token"]}).json()
    assert body["active"] is True
    assert {"active", "scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "token_type"} <= set(body)
    assert body["client_id"] == client.client_id and body["scope"] == "profile:read"
    assert body["iss"] == server.base_url and body["token_type"] == "Bearer"
    refresh = post(server, "/introspect", client, {"token": tokens["refresh_token"]}).json()
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"
    assert refresh["sub"] == body["sub"]


def test_introspection_answers_exactly_inactive_for_tokens_the_caller_may_not_see(server: ServerProcess) -> None:
    client = server.add_client()
    tokens = user_tokens(server, client)
    at = tokens["access_token"]
    tampered = at[:-4] + ("AAAA" if not at.endswith("AAAA") else "BBBB")
    resource_server = server.add_client(grant_types=("client_credentials",), redirect_uri=None,
                                        audiences=("https://other-api.example",))
    assert post(server, "/introspect", client, {"token": tampered}).json() == INACTIVE
    assert post(server, "/introspect", client, {"token": "unknown"}).json() == INACTIVE
    assert post(server, "/introspect", resource_server, {"token": at}).json() == INACTIVE  # other audience
    rotated = server.token(client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    assert post(server, "/introspect", client, {"token": tokens["refresh_token"]}).json() == INACTIVE  # consumed


def test_resource_server_introspects_tokens_for_its_own_audience(server: ServerProcess) -> None:
    api = "https://profile-api.example"
    app_client = server.add_client(audiences=(api,))
    resource_server = server.add_client(grant_types=("client_credentials",), redirect_uri=None, audiences=(api,))
    tokens = user_tokens(server, app_client)
    body = post(server, "/introspect", resource_server, {"token": tokens["access_token"]}).json()
    assert body["active"] is True and body["aud"] == api
    # but never refresh tokens of other clients
    assert post(server, "/introspect", resource_server, {"token": tokens["refresh_token"]}).json() == INACTIVE


def test_introspection_requires_confidential_client_authentication(server: ServerProcess) -> None:
    client = server.add_client()
    token = user_tokens(server, client)["access_token"]
    anonymous = httpx2.post(server.base_url + "/introspect", data={"token": token})
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    public = server.add_client(public=True, redirect_uri="http://127.0.0.1/cb")
    refused = post(server, "/introspect", public, {"token": token})
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    missing = post(server, "/introspect", client, {})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


def test_expired_access_token_introspects_inactive(fresh_server: ServerProcess) -> None:
    fresh_server.start("--access-token-ttl", "3")
    client = fresh_server.add_client(grant_types=("client_credentials",), redirect_uri=None)
    token = fresh_server.token(client, {"grant_type": "client_credentials"}).json()["access_token"]
    assert post(fresh_server, "/introspect", client, {"token": token}).json()["active"] is True
    time.sleep(4.1)
    assert post(fresh_server, "/introspect", client, {"token": token}).json() == INACTIVE


def test_metadata_lists_revocation_and_introspection_endpoints(server: ServerProcess) -> None:
    meta = server.metadata()
    assert meta["revocation_endpoint"] == server.base_url + "/revoke"
    assert meta["introspection_endpoint"] == server.base_url + "/introspect"
    assert "none" not in meta["introspection_endpoint_auth_methods_supported"]


def test_access_token_of_a_removed_client_introspects_inactive(fresh_server: ServerProcess) -> None:
    """A resource server introspecting a service's token: active while the service is registered, inactive
    once it is removed (the server's client cache off, so removal shows at once)."""
    fresh_server.start(env={"TOKENWARD_CLIENT_CACHE_SECONDS": "0"})
    api = "https://inventory-api.example"
    service = fresh_server.add_client(grant_types=("client_credentials",), redirect_uri=None, audiences=(api,))
    resource_server = fresh_server.add_client(grant_types=("client_credentials",), redirect_uri=None,
                                              audiences=(api,))
    token = fresh_server.token(service, {"grant_type": "client_credentials"}).json()["access_token"]
    assert post(fresh_server, "/introspect", resource_server, {"token": token}).json()["active"] is True
    removed = subprocess.run([TOKENWARD, "clients", "remove", f"--db={fresh_server.db_url}", "--",
                              service.client_id], capture_output=True, text=True, timeout=60, check=False)
    assert removed.returncode == 0, removed.stderr
    assert post(fresh_server, "/introspect", resource_server, {"token": token}).json() == INACTIVE
