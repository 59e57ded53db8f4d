"""RFC 8414 discovery: the well-known URL, the §3.3 exact issuer check, https endpoints, the OIDC fallback."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest

from tokenward.client.discovery import discover, discover_async, metadata_urls
from tokenward.client.errors import DiscoveryError

ISSUER = "https://as.example/tenant"


def document(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorize",
                           "token_endpoint": ISSUER + "/token", "revocation_endpoint": ISSUER + "/revoke",
                           "code_challenge_methods_supported": ["S256"],
                           "authorization_response_iss_parameter_supported": True}
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def serving(routes: dict[str, Any]) -> httpx2.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        body = routes.get(str(request.url))
        return httpx2.Response(404) if body is None else httpx2.Response(200, json=body)
    return httpx2.Client(transport=httpx2.MockTransport(handler))


def test_well_known_url_is_inserted_before_issuer_path_when_issuer_has_one() -> None:
    assert metadata_urls(ISSUER) == ["https://as.example/.well-known/oauth-authorization-server/tenant",
                                     "https://as.example/tenant/.well-known/openid-configuration"]


def test_discovery_reads_endpoints_when_issuer_matches_exactly() -> None:
    with serving({metadata_urls(ISSUER)[0]: document()}) as http:
        metadata = discover(ISSUER, http=http)
    assert metadata.token_endpoint == ISSUER + "/token" and metadata.iss_parameter_supported


def test_discovery_falls_back_to_openid_configuration_when_rfc8414_document_is_missing() -> None:
    with serving({metadata_urls(ISSUER)[1]: document()}) as http:
        assert discover(ISSUER, http=http).authorization_endpoint == ISSUER + "/authorize"


@pytest.mark.parametrize(("doc", "message"), [
    (document(issuer=ISSUER + "/"), "another issuer"),
    (document(issuer="https://evil.example/tenant"), "another issuer"),
    (document(token_endpoint="http://as.example/token"), "https"),
    (document(token_endpoint=None), "token_endpoint"),
    (document(code_challenge_methods_supported=["plain"]), "S256"),
])
def test_discovery_is_refused_when_document_is_unsafe(doc: dict[str, Any], message: str) -> None:
    with serving({metadata_urls(ISSUER)[0]: doc}) as http, pytest.raises(DiscoveryError, match=message):
        discover(ISSUER, http=http)


@pytest.mark.parametrize("issuer", ["http://as.example", "https://as.example?x=1", "as.example"])
def test_issuer_is_refused_when_not_https_or_has_query(issuer: str) -> None:
    with pytest.raises(DiscoveryError):
        discover(issuer, http=serving({}))


def test_http_issuer_is_allowed_when_it_is_loopback() -> None:
    local = "http://127.0.0.1:8000"
    doc = document(issuer=local, token_endpoint=local + "/token", authorization_endpoint=local + "/authorize",
                   revocation_endpoint=None)
    with serving({metadata_urls(local)[0]: doc}) as http:
        assert discover(local, http=http).token_endpoint == local + "/token"


def test_discovery_raises_when_no_document_is_found() -> None:
    with serving({}) as http, pytest.raises(DiscoveryError, match="no authorization server metadata"):
        discover(ISSUER, http=http)


def test_async_discovery_checks_issuer_the_same_way() -> None:
    async def go(doc: dict[str, Any]) -> str:
        async def handler(request: httpx2.Request) -> httpx2.Response:
            return httpx2.Response(200, json=doc)
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
            return (await discover_async(ISSUER, http=http)).token_endpoint

    assert asyncio.run(go(document())) == ISSUER + "/token"
    with pytest.raises(DiscoveryError):
        asyncio.run(go(document(issuer="https://evil.example")))
