"""Pure ASGI middleware (no BaseHTTPMiddleware): validate the bearer token, put the Principal in the scope
under ``"tokenward.principal"``, or answer the RFC 6750 error itself.

With ``resource_metadata`` it also serves the RFC 9728 document at its well-known path (``GET``/``HEAD``, no token
needed) and names its URL in every challenge (``resource_metadata="…"``, RFC 9728 §5.1).

An issuer that cannot be asked (``DiscoveryError``, ``IntrospectionError``) gets 503 ``temporarily_unavailable``
with the same JSON body, challenge and ``Cache-Control: no-store``, and one warning log line, never a 500."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from tokenward.protocol.bearer import BearerError, bearer_token_from_headers
from tokenward.resource.discovery import DiscoveryError, bearer_error_for
from tokenward.resource.metadata import ResourceMetadata
from tokenward.resource.principal import TokenVerifier

PRINCIPAL_KEY = "tokenward.principal"

# The ASGI 3 interface, spelled out so the guard needs no web framework installed.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def query_has_token(query_string: bytes) -> bool:
    return any(name == "access_token" for name, _ in parse_qsl(query_string.decode("latin-1"),
                                                                 keep_blank_values=True))


def authorization_values(scope: Scope) -> list[str]:
    return [value.decode("latin-1") for name, value in scope["headers"] if name == b"authorization"]


async def send_bearer_error(send: Send, error: BearerError, realm: str,
                            resource_metadata: ResourceMetadata | None = None) -> None:
    body = json.dumps(error.to_wire()).encode()
    challenge = error.challenge(realm, resource_metadata.url if resource_metadata else None)
    await send({"type": "http.response.start", "status": error.status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", challenge.encode()), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


async def send_resource_metadata(scope: Scope, send: Send, metadata: ResourceMetadata) -> None:
    """The RFC 9728 document for ``GET`` and ``HEAD``; 405 with ``Allow`` for any other method."""
    if scope["method"] not in ("GET", "HEAD"):
        body = json.dumps({"error": "method_not_allowed"}).encode()
        await send({"type": "http.response.start", "status": 405, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"allow", b"GET, HEAD"), (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": body})
        return
    body = metadata.body()
    headers = [(name.lower().encode(), value.encode()) for name, value in metadata.headers().items()]
    await send({"type": "http.response.start", "status": 200,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


class BearerAuthMiddleware:
    """Protects every HTTP route of ``app`` except ``public_paths`` (exact paths, e.g. ``/health``), and serves
    ``resource_metadata`` (RFC 9728) at its well-known path when given."""

    def __init__(self, app: ASGIApp, verifier: TokenVerifier, *, realm: str = "api",
                 required_scopes: Iterable[str] = (), public_paths: Iterable[str] = (),
                 resource_metadata: ResourceMetadata | None = None) -> None:
        self.app = app
        self.verifier = verifier
        self.realm = realm
        self.required_scopes = tuple(required_scopes)
        self.public_paths = frozenset(public_paths)
        self.resource_metadata = resource_metadata

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metadata = self.resource_metadata
        if metadata is not None and scope["type"] == "http" and scope["path"] == metadata.path:
            await send_resource_metadata(scope, send, metadata)
            return
        if scope["type"] != "http" or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        try:
            token = bearer_token_from_headers(authorization_values(scope), query_has_token(scope["query_string"]))
            principal = await self.verifier.verify(token, self.required_scopes)
        except (BearerError, DiscoveryError) as error:
            await send_bearer_error(send, bearer_error_for(error), self.realm, metadata)
            return
        scope[PRINCIPAL_KEY] = principal
        await self.app(scope, receive, send)
