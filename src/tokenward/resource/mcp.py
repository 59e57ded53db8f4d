"""Tokenward's guard as the official MCP SDK's token verifier (``mcp.server.auth.provider.TokenVerifier``).

An MCP server is an OAuth resource server (MCP 2025-11-25 authorization spec): the SDK reads the bearer token,
asks a ``TokenVerifier`` what it is worth, enforces ``AuthSettings.required_scopes`` (403 ``insufficient_scope``),
serves the RFC 9728 metadata and answers 401 with ``resource_metadata``. This module plugs a ``JwtVerifier`` (or
``IntrospectionVerifier``) into that interface, so every RFC 9068 / RFC 8725 check of the guard applies, and
``auth_settings`` derives the SDK's settings from the same verifier, so the metadata's ``resource``, the token's
required ``aud`` and the SDK's own resource check are one string::

    verifier = JwtVerifier(issuer="https://auth.example", audience="https://mcp.example/mcp")
    server = MCPServer("files", token_verifier=McpTokenVerifier(verifier), auth=auth_settings(verifier))

Needs the ``mcp`` extra (``pip install tokenward[mcp]``); the rest of ``tokenward.resource`` never imports it.

The SDK's interface has two answers, a token or ``None`` (401). A token the guard refuses is ``None``; so is a
token that cannot be judged because the issuer's keys were never fetched (``DiscoveryError``, which the guard's
own adapters answer 503): that is logged as a warning, and it only happens until the first successful JWKS fetch,
since afterwards a failed refresh falls back to the keys already known.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from pydantic import Field

from tokenward.protocol.bearer import BearerError
from tokenward.resource.discovery import DiscoveryError, bearer_error_for
from tokenward.resource.principal import Principal, TokenVerifier


class GuardVerifier(TokenVerifier, Protocol):
    """A Tokenward verifier with the issuer it trusts and the audience (this server's identifier) it requires:
    ``JwtVerifier`` and ``IntrospectionVerifier``."""

    issuer: str
    audience: str


class TokenwardAccessToken(AccessToken):
    """The SDK's ``AccessToken`` with the raw token kept out of ``repr`` (and so out of logs and tracebacks)."""

    token: str = Field(repr=False)


def access_token_for(principal: Principal, token: str, resource: str) -> TokenwardAccessToken:
    """What the SDK knows of the caller: ``subject`` (RFC 9068 ``sub``: the user, or the client itself for client
    credentials), ``client_id``, the scopes, ``exp``; ``resource`` is this server's identifier, which the verifier
    has just found in the token's ``aud``; ``claims`` carries ``iss``, which the SDK binds sessions to."""
    return TokenwardAccessToken(
        token=token, client_id=principal.client_id, scopes=sorted(principal.scopes), expires_at=principal.expires_at,
        resource=resource if resource in principal.audience else None, subject=principal.subject,
        claims=dict(principal.claims))


class McpTokenVerifier:
    """``mcp.server.auth.provider.TokenVerifier`` (structurally) over a Tokenward verifier."""

    def __init__(self, verifier: GuardVerifier) -> None:
        self.verifier = verifier

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            principal = await self.verifier.verify(token)
        except (BearerError, DiscoveryError) as error:
            bearer_error_for(error)  # logs the issuer-unavailable cases; a refused token is not worth a line
            return None
        return access_token_for(principal, token, self.verifier.audience)


def auth_settings(verifier: GuardVerifier, *, required_scopes: Iterable[str] = (),
                  service_documentation_url: str | None = None) -> AuthSettings:
    """The SDK's ``AuthSettings`` for a server guarded by ``verifier``: the authorization server is the verifier's
    issuer, the resource identifier (and so the RFC 9728 ``resource``) its audience, and the SDK checks
    ``AccessToken.resource`` too (``validate_token_resource``), a second lock on the same door."""
    # Validated from strings, not built as AnyHttpUrl first: AuthSettings keeps an empty path empty, where a bare
    # AnyHttpUrl("http://host:8000") would become ".../" and the metadata would name another issuer (RFC 8414 §3.3).
    return AuthSettings.model_validate({
        "issuer_url": verifier.issuer, "resource_server_url": verifier.audience,
        "required_scopes": list(required_scopes) or None, "validate_token_resource": True,
        "service_documentation_url": service_documentation_url})
