"""The guard's introspection verifier (RFC 7662) against a real server: active, revoked (seen within the
cache time), unknown, another audience, bad resource-server credentials, and the cache."""

from __future__ import annotations

import asyncio
import json
import time

import httpx2
import pytest

from tests.support import ServerProcess, authorize, exchange_code
from tokenward.protocol.bearer import InsufficientScopeError, InvalidTokenError
from tokenward.resource import IntrospectionVerifier
from tokenward.resource.asgi import PRINCIPAL_KEY, BearerAuthMiddleware, Receive, Scope, Send
from tokenward.resource.introspection import IntrospectionError

API = "urn:tokenward:api"


def test_introspection_verifier_follows_token_state_on_the_server(server: ServerProcess) -> None:
    app = server.add_client()
    api = server.add_client(grant_types=("client_credentials",), redirect_uri=None, audiences=(API,))
    assert api.client_secret and app.client_secret
    verifier = IntrospectionVerifier(issuer=server.base_url, audience=API, client_id=api.client_id,
                                     client_secret=api.client_secret, cache_seconds=1.0)
    tokens = exchange_code(server, app, authorize(server, app, server.add_user())).json()
    principal = verifier.verify_sync(tokens["access_token"], ["profile:read"])
    assert principal.client_id == app.client_id and principal.scopes == {"profile:read"}
    assert asyncio.run(verifier.verify(tokens["access_token"])).subject == principal.subject
    assert verifier.request_count == 1  # the second answer came from the cache
    with pytest.raises(InsufficientScopeError):
        verifier.verify_sync(tokens["access_token"], ["admin"])

    httpx2.post(server.base_url + "/revoke", data={"token": tokens["refresh_token"]},
                auth=(app.client_id, app.client_secret))
    time.sleep(1.1)  # the cache lets a revocation through within cache_seconds
    with pytest.raises(InvalidTokenError):
        verifier.verify_sync(tokens["access_token"])
    with pytest.raises(InvalidTokenError):
        verifier.verify_sync("not-a-token")


def test_introspection_verifier_refuses_other_audience_and_reports_bad_credentials(server: ServerProcess) -> None:
    other = server.add_client(grant_types=("client_credentials",), redirect_uri=None,
                              audiences=("https://other.example",))
    api = server.add_client(grant_types=("client_credentials",), redirect_uri=None, audiences=(API,))
    assert other.client_secret and api.client_secret
    token = server.token(other, {"grant_type": "client_credentials"}).json()["access_token"]
    verifier = IntrospectionVerifier(issuer=server.base_url, audience=API, client_id=api.client_id,
                                     client_secret=api.client_secret)
    with pytest.raises(InvalidTokenError):
        verifier.verify_sync(token)  # the server answers {"active": false}: not our audience
    wrong = IntrospectionVerifier(issuer=server.base_url, audience=API, client_id=api.client_id,
                                  client_secret="wrong")
    with pytest.raises(IntrospectionError) as error:
        wrong.verify_sync(token)
    assert error.value.status == 503 and "wrong" not in repr(wrong)


async def _through_middleware(verifier: IntrospectionVerifier, token: str) -> httpx2.Response:
    """One request through the guard's ASGI middleware in front of a trivial app."""
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = json.dumps({"sub": scope[PRINCIPAL_KEY].subject}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    transport = httpx2.ASGITransport(app=BearerAuthMiddleware(app, verifier, realm="api"))
    async with httpx2.AsyncClient(transport=transport, base_url="http://api.test") as http:
        return await http.get("/thing", headers={"Authorization": f"Bearer {token}"})


def test_introspection_verifier_refuses_a_refresh_token_presented_as_an_access_token(server: ServerProcess) -> None:
    """A client that is its own API (its credentials introspect, its audience is the API) sees its refresh
    tokens as active in introspection; they are ``token_type: refresh_token``, never a bearer access token
    (RFC 7662 §2.2, RFC 6749 §1.5), so the guard answers 401 invalid_token (issue #12 §2.11)."""
    app = server.add_client(audiences=(API,))
    assert app.client_secret
    tokens = exchange_code(server, app, authorize(server, app, server.add_user())).json()
    answer = httpx2.post(server.base_url + "/introspect", data={"token": tokens["refresh_token"]},
                         auth=(app.client_id, app.client_secret)).json()
    assert answer["active"] is True and answer["token_type"] == "refresh_token" and answer["aud"] == API
    verifier = IntrospectionVerifier(issuer=server.base_url, audience=API, client_id=app.client_id,
                                     client_secret=app.client_secret)
    with pytest.raises(InvalidTokenError):
        verifier.verify_sync(tokens["refresh_token"])
    refused = asyncio.run(_through_middleware(verifier, tokens["refresh_token"]))
    assert refused.status_code == 401 and refused.headers["cache-control"] == "no-store"
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert refused.json()["error"] == "invalid_token"
    accepted = asyncio.run(_through_middleware(verifier, tokens["access_token"]))  # the access token still works
    assert accepted.status_code == 200 and accepted.json()["sub"] == answer["sub"]
