"""Find an issuer's JWKS through its metadata (RFC 8414 §3, falling back to OpenID discovery)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx2


class DiscoveryError(Exception):
    """The issuer's metadata could not be fetched or does not name this issuer."""


def metadata_urls(issuer: str) -> list[str]:
    """RFC 8414 §3.1 inserts the well-known segment between host and path; OIDC appends it."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    origin = f"{parts.scheme}://{parts.netloc}"
    return [f"{origin}/.well-known/oauth-authorization-server{path}",
            f"{issuer.rstrip('/')}/.well-known/openid-configuration"]


def _check(issuer: str, document: Any) -> dict[str, Any]:
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        raise DiscoveryError("the metadata names another issuer (RFC 8414 §3.3)")
    if not isinstance(document.get("jwks_uri"), str):
        raise DiscoveryError("the metadata has no jwks_uri")
    return document


def discover_sync(issuer: str, timeout: float = 5.0) -> dict[str, Any]:
    last: Exception | None = None
    for url in metadata_urls(issuer):
        try:
            response = httpx2.get(url, timeout=timeout)
            if response.status_code == 200:
                return _check(issuer, response.json())
        except (httpx2.HTTPError, ValueError) as exc:
            last = exc
    raise DiscoveryError(f"no metadata found for {issuer}") from last


async def discover(issuer: str, http_timeout: float = 5.0) -> dict[str, Any]:
    last: Exception | None = None
    async with httpx2.AsyncClient(timeout=http_timeout) as http:
        for url in metadata_urls(issuer):
            try:
                response = await http.get(url)
                if response.status_code == 200:
                    return _check(issuer, response.json())
            except (httpx2.HTTPError, ValueError) as exc:
                last = exc
    raise DiscoveryError(f"no metadata found for {issuer}") from last
