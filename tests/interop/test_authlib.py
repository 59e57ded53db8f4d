"""Authlib's ``OAuth2Session`` (requests) as an independent client, configured from the metadata document alone.

Authlib allows http on loopback (RFC 8252 §7.3) without ``AUTHLIB_INSECURE_TRANSPORT``, so nothing is switched
off here. The login and consent pages are driven with a cookie-keeping httpx2 client standing in for a browser.
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2 import rfc8414, rfc9207

from tests.support import PASSWORD, ClientInfo, ServerProcess

REDIRECT_URI = "http://127.0.0.1/callback"  # registered; the request uses a port (loopback rule)
SCOPE = "profile:read profile:write"


def discover(server: ServerProcess) -> dict[str, Any]:
    r = httpx2.get(server.base_url + "/.well-known/oauth-authorization-server")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    metadata: dict[str, Any] = r.json()
    return metadata


def form_fields(html: str) -> dict[str, str]:
    """The hidden ``request`` and ``csrf_token`` inputs, whatever the attribute order."""
    fields = {}
    for tag in re.findall(r"<input\b[^>]*>", html):
        name = re.search(r'\bname="([^"]*)"', tag)
        value = re.search(r'\bvalue="([^"]*)"', tag)
        if name and value and 'type="hidden"' in tag:
            fields[name.group(1)] = value.group(1)
    assert {"request", "csrf_token"} <= set(fields), html
    return fields


def user_agent_authorizes(authorization_url: str, username: str) -> str:
    """Follow /authorize → login → consent (Allow) and return the redirect URL sent to the client."""
    with httpx2.Client(follow_redirects=False) as browser:
        r = browser.get(authorization_url)
        assert r.status_code == 303, r.text
        login = httpx2.URL(authorization_url).join(r.headers["location"])
        page = browser.get(login)
        assert page.status_code == 200, page.text
        r = browser.post(login.copy_with(query=None),
                         data={**form_fields(page.text), "username": username, "password": PASSWORD})
        assert r.status_code == 303, r.text
        consent = login.join(r.headers["location"])
        page = browser.get(consent)
        assert page.status_code == 200, page.text
        r = browser.post(consent.copy_with(query=None), data={**form_fields(page.text), "decision": "allow"})
        assert r.status_code == 303, r.text
        location: str = r.headers["location"]
        return location


def public_session(client: ClientInfo, redirect_uri: str) -> OAuth2Session:
    return OAuth2Session(client.client_id, token_endpoint_auth_method="none", redirect_uri=redirect_uri,
                         scope=SCOPE, code_challenge_method="S256")


def code_flow(server: ServerProcess) -> tuple[OAuth2Session, dict[str, Any], dict[str, Any], str]:
    """Run the code flow with Authlib; returns the session, metadata, token and the redirect URL received."""
    metadata = discover(server)
    client = server.add_client(public=True, redirect_uri=REDIRECT_URI, scope=SCOPE)
    user = server.add_user()
    session = public_session(client, "http://127.0.0.1:8765/callback")
    verifier = secrets.token_urlsafe(48)
    url, state = session.create_authorization_url(metadata["authorization_endpoint"], code_verifier=verifier)
    sent = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert sent["code_challenge_method"] == "S256" and sent["code_challenge"]

    redirect_url = user_agent_authorizes(url, user)
    assert redirect_url.startswith("http://127.0.0.1:8765/callback?")
    received = {k: v[0] for k, v in parse_qs(urlsplit(redirect_url).query).items()}
    assert received["state"] == state
    token = session.fetch_token(metadata["token_endpoint"], authorization_response=redirect_url,
                                code_verifier=verifier)
    return session, metadata, dict(token), redirect_url


def test_authlib_validates_metadata_including_rfc9207_iss_support(server: ServerProcess) -> None:
    metadata = discover(server)
    rfc8414.AuthorizationServerMetadata(metadata).validate(
        metadata_classes=[rfc9207.AuthorizationServerMetadata])
    assert metadata["issuer"] == server.base_url
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert "S256" in metadata["code_challenge_methods_supported"]
    assert {"client_secret_basic", "client_secret_post", "none"} <= set(
        metadata["token_endpoint_auth_methods_supported"])
    assert {"authorization_code", "refresh_token", "client_credentials"} <= set(
        metadata["grant_types_supported"])


def test_authlib_code_flow_with_pkce_yields_tokens_and_iss_when_user_allows(server: ServerProcess) -> None:
    _, metadata, token, redirect_url = code_flow(server)
    # Authlib does not check RFC 9207 itself; a client that read the metadata must.
    iss = parse_qs(urlsplit(redirect_url).query)["iss"]
    assert iss == [metadata["issuer"]]
    assert token["token_type"] == "Bearer"
    assert token["access_token"].count(".") == 2
    assert token["refresh_token"]
    assert token["expires_in"] > 0 and token["expires_at"] > 0
    assert set(token["scope"].split()) == set(SCOPE.split())


def test_authlib_refresh_rotates_and_old_refresh_token_fails_with_invalid_grant(server: ServerProcess) -> None:
    session, metadata, token, _ = code_flow(server)
    old = token["refresh_token"]
    new = session.refresh_token(metadata["token_endpoint"], refresh_token=old)
    assert new["access_token"] and new["access_token"] != token["access_token"]
    assert new["refresh_token"] and new["refresh_token"] != old
    assert set(new["scope"].split()) == set(SCOPE.split())

    with pytest.raises(OAuthError) as exc:
        session.refresh_token(metadata["token_endpoint"], refresh_token=old)
    assert exc.value.error == "invalid_grant"


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_client_credentials_when_confidential_client_authenticates(
        server: ServerProcess, method: str) -> None:
    metadata = discover(server)
    client = server.add_client(redirect_uri=None, grant_types=("client_credentials",), scope=SCOPE)
    assert client.client_secret
    kwargs = {} if method == "client_secret_basic" else {"token_endpoint_auth_method": method}
    session = OAuth2Session(client.client_id, client.client_secret, scope="profile:read", **kwargs)
    seen: list[requests.PreparedRequest] = []
    session.hooks["response"].append(lambda r, *a, **k: seen.append(r.request))

    token = session.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert token["token_type"] == "Bearer"
    assert token["access_token"].count(".") == 2
    assert token["scope"] == "profile:read"
    assert "refresh_token" not in token  # RFC 6749 §4.4.3

    (request,) = seen
    body = parse_qs(str(request.body))
    if method == "client_secret_basic":
        assert request.headers["Authorization"].startswith("Basic ")
        assert "client_secret" not in body
    else:
        assert "Authorization" not in request.headers
        assert body["client_secret"] == [client.client_secret]


def test_authlib_client_credentials_fails_with_invalid_client_when_secret_is_wrong(
        server: ServerProcess) -> None:
    metadata = discover(server)
    client = server.add_client(redirect_uri=None, grant_types=("client_credentials",))
    session = OAuth2Session(client.client_id, "not-the-secret", scope="profile:read")
    with pytest.raises(OAuthError) as exc:
        session.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert exc.value.error == "invalid_client"
