"""Authorization server metadata (RFC 8414), with the §3.3 issuer check.

The issuer is a plain string compared exactly: a document that names another issuer is refused, because
trusting it would let one server send the client to another's endpoints (mix-up, RFC 9700 §4.4).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx2

from tokenward.client.errors import DiscoveryError


@dataclass(frozen=True, slots=True)
class ServerMetadata:
    """The parts of an RFC 8414 document the client uses; ``document`` keeps the rest."""

    issuer: str
    token_endpoint: str
    authorization_endpoint: str | None = None
    revocation_endpoint: str | None = None
    device_authorization_endpoint: str | None = None  # RFC 8628 §4
    jwks_uri: str | None = None
    iss_parameter_supported: bool = False
    userinfo_endpoint: str | None = None  # OpenID Connect Discovery 1.0 §3
    end_session_endpoint: str | None = None  # RP-Initiated Logout 1.0 §2.1
    document: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(name: str, url: object, *, allow_http: bool) -> str:
    """Endpoints must be https (RFC 8414 §2), except on a loopback host, where http is the RFC 8252 norm."""
    if not isinstance(url, str) or not url:
        raise DiscoveryError(f"metadata {name} is missing or not a string")
    parts = urlsplit(url)
    if parts.fragment or not parts.netloc:
        raise DiscoveryError(f"metadata {name} is not an absolute URL without a fragment")
    if parts.scheme == "https" or (parts.scheme == "http" and (allow_http or is_loopback(parts.hostname))):
        return url
    raise DiscoveryError(f"metadata {name} must use https")


def check_issuer(issuer: str, *, allow_http: bool = False) -> str:
    """An issuer is an https URL without query or fragment (RFC 8414 §2); http only on loopback."""
    _check_url("issuer", issuer, allow_http=allow_http)
    if urlsplit(issuer).query:
        raise DiscoveryError("an issuer has no query component (RFC 8414 §2)")
    return issuer


def metadata_urls(issuer: str, *, openid: bool = False) -> list[str]:
    """RFC 8414 §3.1 inserts the well-known segment between host and path; OpenID discovery appends it.

    ``openid`` puts the OpenID Connect document first: only it must carry ``userinfo_endpoint`` and the ID-token
    algorithms (OpenID Connect Discovery 1.0 §4), and some providers (Google) publish no RFC 8414 document."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    urls = [f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{path}",
            f"{issuer.rstrip('/')}/.well-known/openid-configuration"]
    return urls[::-1] if openid else urls


def parse_metadata(issuer: str, document: object, *, allow_http: bool = False) -> ServerMetadata:
    """Validate a fetched document for ``issuer``: same issuer string (§3.3), sane endpoint URLs."""
    if not isinstance(document, dict):
        raise DiscoveryError("the metadata is not a JSON object")
    if document.get("issuer") != issuer:
        raise DiscoveryError(f"the metadata names another issuer than {issuer} (RFC 8414 §3.3)")

    def optional(name: str) -> str | None:
        value = document.get(name)
        return None if value is None else _check_url(name, value, allow_http=allow_http)

    methods = document.get("code_challenge_methods_supported")
    if isinstance(methods, list) and methods and "S256" not in methods:
        raise DiscoveryError("the server does not support PKCE S256")
    return ServerMetadata(
        issuer=issuer,
        token_endpoint=_check_url("token_endpoint", document.get("token_endpoint"), allow_http=allow_http),
        authorization_endpoint=optional("authorization_endpoint"),
        revocation_endpoint=optional("revocation_endpoint"),
        device_authorization_endpoint=optional("device_authorization_endpoint"),
        jwks_uri=optional("jwks_uri"),
        iss_parameter_supported=document.get("authorization_response_iss_parameter_supported") is True,
        userinfo_endpoint=optional("userinfo_endpoint"),
        end_session_endpoint=optional("end_session_endpoint"),
        document=document,
    )


def discover(issuer: str, *, http: httpx2.Client | None = None, timeout: float = 10.0,
             allow_http: bool = False, openid: bool = False) -> ServerMetadata:
    """Fetch and check ``issuer``'s metadata (RFC 8414 first, then OpenID discovery; the other way round with
    ``openid``)."""
    check_issuer(issuer, allow_http=allow_http)
    own = http is None
    client = http or httpx2.Client(timeout=timeout)
    last: Exception | None = None
    try:
        for url in metadata_urls(issuer, openid=openid):
            try:
                response = client.get(url, headers={"Accept": "application/json"})
                if response.status_code == 200:
                    return parse_metadata(issuer, response.json(), allow_http=allow_http)
            except (httpx2.HTTPError, ValueError) as exc:
                last = exc
    finally:
        if own:
            client.close()
    raise DiscoveryError(f"no authorization server metadata found for {issuer}") from last


async def discover_async(issuer: str, *, http: httpx2.AsyncClient | None = None, http_timeout: float = 10.0,
                         allow_http: bool = False, openid: bool = False) -> ServerMetadata:
    """``discover`` for async code."""
    check_issuer(issuer, allow_http=allow_http)
    own = http is None
    client = http or httpx2.AsyncClient(timeout=http_timeout)
    last: Exception | None = None
    try:
        for url in metadata_urls(issuer, openid=openid):
            try:
                response = await client.get(url, headers={"Accept": "application/json"})
                if response.status_code == 200:
                    return parse_metadata(issuer, response.json(), allow_http=allow_http)
            except (httpx2.HTTPError, ValueError) as exc:
                last = exc
    finally:
        if own:
            await client.aclose()
    raise DiscoveryError(f"no authorization server metadata found for {issuer}") from last
