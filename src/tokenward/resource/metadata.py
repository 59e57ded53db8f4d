"""OAuth 2.0 Protected Resource Metadata (RFC 9728): the document a resource server publishes so that a client
refused with a 401 can find which authorization server to ask, and for which resource (MCP's 2025-11-25
authorization spec requires it of every MCP server).

One pure builder for the three adapters (ASGI middleware, FastAPI, Flask): they only serve ``body()`` at
``path`` and put ``url`` into their ``WWW-Authenticate`` challenges (RFC 9728 §5.1). Standard library only.

The document's ``resource`` is the verifier's audience (``ResourceMetadata.for_verifier``): a client checks that
it equals the identifier it derived the metadata URL from (§3.3), asks the authorization server for a token for it
(RFC 8707 ``resource``), and the verifier accepts only tokens whose ``aud`` is it. One string, three places.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from tokenward.resource.discovery import insecure_reason

WELL_KNOWN = "/.well-known/oauth-protected-resource"
CACHE_CONTROL = "public, max-age=300"  # a public document; five minutes bounds how long a change takes to show


class _HasIssuerAndAudience(Protocol):
    issuer: str
    audience: str


def check_resource_identifier(resource: str, *, allow_http: bool = False) -> str:
    """``resource`` if it can be a resource identifier: an https URL (http on a loopback host, or with
    ``allow_http``) without fragment (RFC 9728 §1.2) and, here, without query (a query would have to be matched
    on every request for the well-known URL; no deployment needs one). Else ``ValueError``."""
    reason = insecure_reason("resource", resource, allow_http=allow_http)
    if reason is not None:
        raise ValueError(f"{reason} to serve RFC 9728 metadata (the verifier's audience must be the API's URL)")
    parts = urlsplit(resource)
    if parts.fragment or "#" in resource:
        raise ValueError("a resource identifier has no fragment (RFC 9728 §1.2)")
    if parts.query or "?" in resource:
        raise ValueError("a resource identifier with a query is not supported")
    return resource


def metadata_path(resource: str) -> str:
    """Where the metadata of ``resource`` lives (RFC 9728 §3.1): the well-known segment between the host and the
    identifier's path, a terminating ``/`` of the path removed. ``https://api.example/mcp`` →
    ``/.well-known/oauth-protected-resource/mcp``; ``https://api.example`` → ``/.well-known/oauth-protected-resource``.
    """
    path = urlsplit(resource).path.rstrip("/")
    return WELL_KNOWN + path


def metadata_url(resource: str) -> str:
    """The absolute URL of ``metadata_path(resource)`` on the identifier's own origin (never the Host header)."""
    parts = urlsplit(resource)
    return f"{parts.scheme}://{parts.netloc}{metadata_path(resource)}"


@dataclass(frozen=True, slots=True)
class ResourceMetadata:
    """One resource's RFC 9728 §2 document. Only header bearer tokens are accepted (RFC 6750 §2.1, OAuth 2.1),
    so ``bearer_methods_supported`` is ``["header"]``."""

    resource: str
    authorization_servers: tuple[str, ...]
    scopes_supported: tuple[str, ...] = ()
    resource_name: str | None = None
    resource_documentation: str | None = None
    allow_http: bool = False

    def __post_init__(self) -> None:
        check_resource_identifier(self.resource, allow_http=self.allow_http)
        if not self.authorization_servers or not all(isinstance(s, str) and s for s in self.authorization_servers):
            raise ValueError("authorization_servers needs at least one issuer identifier")

    @classmethod
    def for_verifier(cls, verifier: _HasIssuerAndAudience, *, scopes_supported: Iterable[str] = (),
                     resource_name: str | None = None, resource_documentation: str | None = None,
                     allow_http: bool | None = None) -> ResourceMetadata:
        """The document of the API ``verifier`` guards: ``resource`` is its audience, the one authorization
        server its issuer; ``allow_http`` defaults to the verifier's."""
        if allow_http is None:
            allow_http = bool(getattr(verifier, "allow_http", False))
        return cls(resource=verifier.audience, authorization_servers=(verifier.issuer,),
                   scopes_supported=tuple(scopes_supported), resource_name=resource_name,
                   resource_documentation=resource_documentation, allow_http=allow_http)

    @property
    def path(self) -> str:
        return metadata_path(self.resource)

    @property
    def url(self) -> str:
        return metadata_url(self.resource)

    def document(self) -> dict[str, Any]:
        """The JSON object (RFC 9728 §2); optional members appear only when set."""
        doc: dict[str, Any] = {"resource": self.resource, "authorization_servers": list(self.authorization_servers),
                               "bearer_methods_supported": ["header"]}
        if self.scopes_supported:
            doc["scopes_supported"] = list(self.scopes_supported)
        if self.resource_name:
            doc["resource_name"] = self.resource_name
        if self.resource_documentation:
            doc["resource_documentation"] = self.resource_documentation
        return doc

    def body(self) -> bytes:
        return json.dumps(self.document()).encode()

    def headers(self) -> dict[str, str]:
        """Response headers of the document: JSON, cacheable, and readable from browser-based clients (CORS), as
        MCP clients running in a browser fetch it cross-origin."""
        return {"Content-Type": "application/json", "Cache-Control": CACHE_CONTROL,
                "Access-Control-Allow-Origin": "*"}
