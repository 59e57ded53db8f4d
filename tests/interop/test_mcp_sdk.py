"""The official MCP SDK against ``examples/mcp_server.py`` (its server side, token verification by Tokenward's
guard through ``tokenward.resource.mcp``) and a real ``tokenward serve`` (both backends), the example running as
its own process exactly as a user would start it.

The SDK's client side does the work an MCP client does: its streamable HTTP client calls the ``whoami`` tool with
a token from Tokenward; its PRM helpers read the 401 challenge and the RFC 9728 document; its OAuth providers
(client credentials, and the authorization-code provider with PKCE driving Tokenward's login and consent forms)
discover the authorization server from the MCP server alone, ask for a token with ``resource`` = the MCP server's
identifier, and refresh when it expires. Dynamic registration (``/register``) is not there yet, so the code-flow
client is pre-registered (``clients add --audience http://HOST:PORT/mcp``), as docs/mcp.md says."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.auth.utils import (
    build_protected_resource_metadata_discovery_urls,
    extract_resource_metadata_from_www_auth,
    handle_protected_resource_response,
)
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from tests.support import PASSWORD, ClientInfo, ServerProcess, authorize, exchange_code, free_port, hidden_fields

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mcp_server.py"
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                         "clientInfo": {"name": "raw", "version": "0"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@dataclass
class McpServer:
    resource: str  # http://127.0.0.1:PORT/mcp: the endpoint, the resource identifier, the tokens' audience
    log: Path


@pytest.fixture(scope="module")
def mcp_server(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpServer]:
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    log = tmp_path_factory.mktemp("mcp") / "mcp.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(EXAMPLE), "--issuer", server.base_url, "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        metadata = f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp"
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError(f"the MCP example exited: {log.read_text()[-2000:]}")
            try:
                if httpx2.get(metadata, timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the MCP example did not start")
        yield McpServer(resource, log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


class MemoryStorage:
    """The SDK's ``TokenStorage``: tokens and (pre-registered) client information in memory."""

    def __init__(self, client_info: OAuthClientInformationFull | None = None) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info = client_info
        self.history: list[OAuthToken] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.history.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def claims_of(jwt: str) -> dict[str, Any]:
    segment = jwt.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return claims


async def call_whoami(url: str, http: httpx2.AsyncClient) -> dict[str, Any]:
    """The SDK's streamable HTTP client and session: initialize, then call the tool."""
    async with streamable_http_client(url, http_client=http) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        result = await session.call_tool("whoami", {})
        assert not result.is_error, result
        assert result.structured_content is not None
        return dict(result.structured_content)


def whoami_with_token(url: str, token: str) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            return await call_whoami(url, http)
    return anyio.run(go)


def raw_initialize(url: str, token: str | None = None) -> httpx2.Response:
    headers = dict(MCP_HEADERS)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx2.post(url, json=INITIALIZE, headers=headers, timeout=10)


def mcp_client(server: ServerProcess, resource: str, **options: Any) -> ClientInfo:
    options.setdefault("grant_types", ("client_credentials",))
    options.setdefault("redirect_uri", None)
    return server.add_client(audiences=(resource,), **options)


def client_credentials_token(server: ServerProcess, client: ClientInfo, resource: str,
                             scope: str = "profile:read") -> str:
    r = server.token(client, {"grant_type": "client_credentials", "scope": scope, "resource": resource})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def test_sdk_client_calls_tool_with_a_users_token_and_gets_subject_and_scopes(server: ServerProcess,
                                                                               mcp_server: McpServer) -> None:
    client = server.add_client(audiences=(mcp_server.resource,))
    auth = authorize(server, client, server.add_user(), scope="profile:read profile:write",
                     extra={"resource": mcp_server.resource})
    issued = exchange_code(server, client, auth, resource=mcp_server.resource)
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    claims = claims_of(token)
    assert claims["aud"] == mcp_server.resource

    seen = whoami_with_token(mcp_server.resource, token)
    assert seen == {"subject": claims["sub"], "client_id": client.client_id,
                    "scopes": ["profile:read", "profile:write"]}
    assert seen["subject"] != client.client_id  # the user, not the client


def test_no_token_gets_401_whose_challenge_leads_the_sdk_to_the_metadata(server: ServerProcess,
                                                                         mcp_server: McpServer) -> None:
    refused = raw_initialize(mcp_server.resource)
    assert refused.status_code == 401
    url = extract_resource_metadata_from_www_auth(refused)
    assert url == mcp_server.resource.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")

    async def discover() -> Any:
        async with httpx2.AsyncClient(timeout=10) as http:
            for candidate in build_protected_resource_metadata_discovery_urls(url, mcp_server.resource):
                found = await handle_protected_resource_response(await http.get(candidate))
                if found is not None:
                    return found
        return None

    metadata = anyio.run(discover)
    assert metadata is not None
    # RFC 9728 §3.3: the document names the very identifier the client used; the issuer exactly as Tokenward's
    assert str(metadata.resource) == mcp_server.resource
    assert [str(s) for s in metadata.authorization_servers] == [server.base_url]
    raw = httpx2.get(url, timeout=10).json()
    assert raw["resource"] == mcp_server.resource and raw["authorization_servers"] == [server.base_url]
    assert raw["scopes_supported"] == ["profile:read"]


def test_sdk_client_credentials_provider_discovers_tokenward_and_calls_tool(server: ServerProcess,
                                                                           mcp_server: McpServer) -> None:
    """The SDK's own OAuth flow, pre-registered client: 401 → PRM → RFC 8414 metadata → token with ``resource``."""
    client = mcp_client(server, mcp_server.resource)
    assert client.client_secret is not None
    storage = MemoryStorage()
    provider = ClientCredentialsOAuthProvider(server_url=mcp_server.resource, storage=storage,
                                              client_id=client.client_id, client_secret=client.client_secret,
                                              scope="profile:read", issuer=server.base_url)

    async def go() -> dict[str, Any]:
        async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
            return await call_whoami(mcp_server.resource, http)

    seen = anyio.run(go)
    assert seen == {"subject": client.client_id, "client_id": client.client_id, "scopes": ["profile:read"]}
    assert storage.tokens is not None
    assert claims_of(storage.tokens.access_token)["aud"] == mcp_server.resource


def test_sdk_code_flow_provider_signs_in_through_tokenward_forms_and_refreshes(server: ServerProcess,
                                                                              mcp_server: McpServer) -> None:
    """The SDK's authorization-code provider (PKCE, ``resource``, RFC 9207 ``iss``) with a pre-registered public
    client; the test user signs in and allows on Tokenward's pages. The 3-second token then expires, and the SDK
    refreshes it (a new access token from the rotated refresh token) before its next call."""
    redirect_uri = "http://127.0.0.1:9/callback"
    client = server.add_client(public=True, redirect_uri=redirect_uri, audiences=(mcp_server.resource,),
                               access_token_ttl=3)
    username = server.add_user()
    landed: dict[str, str] = {}

    async def sign_in(authorization_url: str) -> None:
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as browser:
            r = await browser.get(authorization_url)
            assert r.status_code == 303, r.text
            location = server.base_url + r.headers["location"]
            page = await browser.get(location)
            r = await browser.post(server.base_url + "/login",
                                   data={**hidden_fields(page.text), "username": username, "password": PASSWORD})
            assert r.status_code == 303, r.text
            page = await browser.get(server.base_url + r.headers["location"])
            assert page.status_code == 200 and "Allow" in page.text
            r = await browser.post(server.base_url + "/consent", data={**hidden_fields(page.text), "decision": "allow"})
            assert r.status_code == 303, r.text
            landed.update({k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).query).items()})

    async def callback() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=landed["code"], state=landed.get("state"), iss=landed.get("iss"))

    storage = MemoryStorage(OAuthClientInformationFull(
        client_id=client.client_id, redirect_uris=[AnyUrl(redirect_uri)], token_endpoint_auth_method="none",
        grant_types=["authorization_code", "refresh_token"], response_types=["code"], scope="profile:read"))
    provider = OAuthClientProvider(
        server_url=mcp_server.resource, storage=storage, redirect_handler=sign_in, callback_handler=callback,
        client_metadata=OAuthClientMetadata(redirect_uris=[AnyUrl(redirect_uri)], token_endpoint_auth_method="none",
                                            grant_types=["authorization_code", "refresh_token"],
                                            response_types=["code"], scope="profile:read"))

    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
            first = await call_whoami(mcp_server.resource, http)
            assert storage.tokens is not None
            expires = claims_of(storage.tokens.access_token)["exp"]
            await anyio.sleep(max(0.0, expires - time.time()) + 1.5)  # the token's own lifetime has to pass
            second = await call_whoami(mcp_server.resource, http)
            return first, second

    first, second = anyio.run(go)
    assert landed["iss"] == server.base_url
    assert first["client_id"] == second["client_id"] == client.client_id
    # The SDK adds offline_access because the server's metadata lists it (MCP authorization, SEP-835);
    # a client with the refresh grant may always ask for it.
    assert first["scopes"] == second["scopes"] == ["offline_access", "profile:read"]
    assert first["subject"] == second["subject"] != client.client_id
    assert len(storage.history) == 2  # the code exchange, then one refresh
    initial, refreshed = storage.history
    assert refreshed.access_token != initial.access_token
    assert refreshed.refresh_token and refreshed.refresh_token != initial.refresh_token  # rotated
    assert claims_of(refreshed.access_token)["aud"] == mcp_server.resource


def test_token_for_another_audience_is_refused(server: ServerProcess, mcp_server: McpServer) -> None:
    other = "http://127.0.0.1:1/mcp"
    token = client_credentials_token(server, mcp_client(server, other), other)
    refused = raw_initialize(mcp_server.resource, token)
    assert refused.status_code == 401
    assert extract_resource_metadata_from_www_auth(refused) is not None
    # the same client, given this server's audience as well, is let in: it was the audience and nothing else
    both = mcp_client(server, mcp_server.resource)
    assert raw_initialize(mcp_server.resource, client_credentials_token(server, both, mcp_server.resource)
                          ).status_code == 200


def test_expired_token_is_refused(server: ServerProcess, mcp_server: McpServer) -> None:
    token = client_credentials_token(server, mcp_client(server, mcp_server.resource, access_token_ttl=3),
                                     mcp_server.resource)
    assert raw_initialize(mcp_server.resource, token).status_code == 200  # valid, and now cached by the guard
    # past exp and the guard's 60-second leeway would take a minute; the SDK's own expiry check has none
    time.sleep(max(0.0, claims_of(token)["exp"] - time.time()) + 1.1)
    refused = raw_initialize(mcp_server.resource, token)
    assert refused.status_code == 401


def test_token_without_the_required_scope_gets_403(server: ServerProcess, mcp_server: McpServer) -> None:
    token = client_credentials_token(server, mcp_client(server, mcp_server.resource), mcp_server.resource,
                                     scope="profile:write")
    refused = raw_initialize(mcp_server.resource, token)
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]


def test_tampered_token_is_refused_and_not_logged(server: ServerProcess, mcp_server: McpServer) -> None:
    token = client_credentials_token(server, mcp_client(server, mcp_server.resource), mcp_server.resource)
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert raw_initialize(mcp_server.resource, tampered).status_code == 401
    assert token not in mcp_server.log.read_text() and tampered not in mcp_server.log.read_text()


def test_adapter_itself_refuses_another_audience_and_keeps_the_token_out_of_repr(server: ServerProcess,
                                                                                  mcp_server: McpServer) -> None:
    """The guard's own ``aud`` check, before the SDK's ``validate_token_resource`` second lock."""
    from tokenward.resource import JwtVerifier
    from tokenward.resource.mcp import McpTokenVerifier

    adapter = McpTokenVerifier(JwtVerifier(issuer=server.base_url, audience=mcp_server.resource))
    other = "http://127.0.0.1:1/mcp"
    foreign = client_credentials_token(server, mcp_client(server, other), other)
    own = client_credentials_token(server, mcp_client(server, mcp_server.resource), mcp_server.resource)

    async def go() -> tuple[Any, Any]:
        return await adapter.verify_token(foreign), await adapter.verify_token(own)

    refused, accepted = anyio.run(go)
    assert refused is None
    assert accepted is not None and accepted.resource == mcp_server.resource and accepted.token == own
    assert own not in repr(accepted) and own not in str(accepted)
