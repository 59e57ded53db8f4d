"""The guard's introspection verifier (RFC 7662) against a real server: active, revoked (seen within the
cache time), unknown, another audience, bad resource-server credentials, and the cache."""

from __future__ import annotations

import asyncio
import time

import httpx2
import pytest

from tests.support import ServerProcess, authorize, exchange_code
from tokenward.protocol.bearer import InsufficientScopeError, InvalidTokenError
from tokenward.resource import IntrospectionVerifier
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
