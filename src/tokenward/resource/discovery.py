"""Find an issuer's JWKS through its metadata (RFC 8414 §3, falling back to OpenID discovery).

Every URL the guard fetches from or trusts — the issuer, ``jwks_uri``, the introspection endpoint — must be
https (RFC 8414 §2), or http on a loopback host (127.0.0.0/8, ``::1``, ``localhost``); an https issuer may not
name an http ``jwks_uri`` at all (keys fetched in the clear would undo the TLS of the metadata). ``allow_http``
lifts both rules for tests and development, as in ``tokenward.client`` (issue #12 §2.13).

When the metadata or the JWKS cannot be had (the issuer is down, answers an error or garbage), verification
raises ``DiscoveryError`` and every adapter answers 503 ``temporarily_unavailable`` (``IssuerUnavailableError``)
with a JSON body and ``Cache-Control: no-store``, logging one warning line without a stack trace. RFC 6750 §3.1
has no code for this: the token's fault is unknown, so neither 401 nor a 500 would be true.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any
from urllib.parse import urlsplit

import httpx2

from tokenward.protocol.bearer import BearerError

log = logging.getLogger("tokenward.resource")
UNREACHABLE = "The token issuer could not be reached."


class DiscoveryError(Exception):
    """The issuer's metadata or JWKS could not be fetched, does not name this issuer, or names an insecure URL."""


class IssuerUnavailableError(BearerError):
    """The token cannot be judged because the issuer cannot be asked (metadata, JWKS or introspection): 503
    ``temporarily_unavailable`` (the OAuth code for it, RFC 6749 §4.1.2.1), never 401 or 500."""

    error = "temporarily_unavailable"
    status = 503


def bearer_error_for(exc: BearerError | DiscoveryError) -> BearerError:
    """What an adapter answers for a failed verification; each 503 answer is logged (one line, its reason)."""
    if isinstance(exc, DiscoveryError):
        log.warning("token issuer unavailable, answering 503: %s", exc)
        return IssuerUnavailableError(UNREACHABLE)
    if isinstance(exc, IssuerUnavailableError):
        log.warning("token issuer unavailable, answering 503: %s", exc.description)
    return exc


class InsecureUrlError(ValueError):
    """A configured URL is not https (nor http on a loopback host): a configuration error, raised at once."""


def is_loopback_host(host: str | None) -> bool:
    """127.0.0.0/8, ``::1`` or ``localhost`` (exactly: other names may resolve anywhere)."""
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_reason(name: str, url: object, *, allow_http: bool, https_only: bool = False) -> str | None:
    """Why ``url`` may not be used for ``name`` (None if it may). ``https_only``: http even on loopback is
    refused (a URL named by an https issuer's metadata)."""
    if not isinstance(url, str) or not url:
        return f"{name} is missing or not a string"
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"{name} must be an absolute https URL"
    if parts.scheme == "https" or allow_http:
        return None
    if https_only:
        return f"{name} must use https (the issuer uses https; allow_http=True lifts this for tests)"
    if not is_loopback_host(parts.hostname):
        return f"{name} must use https (http only on a loopback host; allow_http=True lifts this for tests)"
    return None


def require_secure_url(name: str, url: str, *, allow_http: bool) -> str:
    """``url`` if it may be configured for ``name``; else ``InsecureUrlError``."""
    reason = insecure_reason(name, url, allow_http=allow_http)
    if reason is not None:
        raise InsecureUrlError(reason)
    return url


def check_discovered_url(issuer: str, name: str, url: object, *, allow_http: bool) -> str:
    """A URL found in ``issuer``'s metadata: https, or http on loopback for an http (loopback) issuer."""
    reason = insecure_reason(name, url, allow_http=allow_http, https_only=urlsplit(issuer).scheme == "https")
    if reason is not None:
        raise DiscoveryError(reason)
    assert isinstance(url, str)
    return url


def metadata_urls(issuer: str) -> list[str]:
    """RFC 8414 §3.1 inserts the well-known segment between host and path; OIDC appends it."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    origin = f"{parts.scheme}://{parts.netloc}"
    return [f"{origin}/.well-known/oauth-authorization-server{path}",
            f"{issuer.rstrip('/')}/.well-known/openid-configuration"]


def check_metadata(issuer: str, document: Any, *, allow_http: bool = False) -> dict[str, Any]:
    """The metadata names exactly ``issuer`` (RFC 8414 §3.3) and a ``jwks_uri`` the guard may fetch."""
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        raise DiscoveryError("the metadata names another issuer (RFC 8414 §3.3)")
    if not isinstance(document.get("jwks_uri"), str):
        raise DiscoveryError("the metadata has no jwks_uri")
    check_discovered_url(issuer, "jwks_uri", document["jwks_uri"], allow_http=allow_http)
    return document


def discover_sync(issuer: str, timeout: float = 5.0, *, allow_http: bool = False) -> dict[str, Any]:
    require_secure_url("issuer", issuer, allow_http=allow_http)
    last: Exception | None = None
    for url in metadata_urls(issuer):
        try:
            response = httpx2.get(url, timeout=timeout)
            if response.status_code == 200:
                return check_metadata(issuer, response.json(), allow_http=allow_http)
        except (httpx2.HTTPError, ValueError) as exc:
            last = exc
    raise DiscoveryError(f"no metadata found for {issuer}") from last


async def discover(issuer: str, http_timeout: float = 5.0, *, allow_http: bool = False) -> dict[str, Any]:
    require_secure_url("issuer", issuer, allow_http=allow_http)
    last: Exception | None = None
    async with httpx2.AsyncClient(timeout=http_timeout) as http:
        for url in metadata_urls(issuer):
            try:
                response = await http.get(url)
                if response.status_code == 200:
                    return check_metadata(issuer, response.json(), allow_http=allow_http)
            except (httpx2.HTTPError, ValueError) as exc:
                last = exc
    raise DiscoveryError(f"no metadata found for {issuer}") from last
