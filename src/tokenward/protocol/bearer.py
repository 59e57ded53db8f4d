"""Bearer token usage (RFC 6750): reading the Authorization header and answering with a challenge.

Used by: the resource-server guard (tokenward.resource) in all its adapters.
"""

from __future__ import annotations

import re
from typing import ClassVar

_TOKEN68 = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")
_QUOTABLE = re.compile(r"^[\x20-\x21\x23-\x5B\x5D-\x7E]*$")


class BearerError(Exception):
    """An RFC 6750 §3.1 error; ``error`` is None for "no credentials" (a bare challenge)."""

    error: ClassVar[str | None] = None
    status: ClassVar[int] = 401

    def __init__(self, description: str = "", *, scope: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.scope = scope

    def challenge(self, realm: str, resource_metadata: str | None = None) -> str:
        """The ``WWW-Authenticate`` value; descriptions are fixed strings, never input or tokens.

        ``resource_metadata`` is the URL of the resource's RFC 9728 metadata (§5.1): a client that was refused
        learns there which authorization server to ask and for which resource."""
        parts = [f'realm="{_quote(realm)}"']
        if self.error is not None:
            parts.append(f'error="{self.error}"')
            if self.description:
                parts.append(f'error_description="{_quote(self.description)}"')
        if self.scope:
            parts.append(f'scope="{_quote(self.scope)}"')
        if resource_metadata:
            parts.append(f'resource_metadata="{_quote(resource_metadata)}"')
        return "Bearer " + ", ".join(parts)

    def to_wire(self) -> dict[str, str]:
        if self.error is None:
            return {"error": "unauthorized", "error_description": "Authentication is required."}
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


class MissingTokenError(BearerError):
    """No bearer credentials at all: 401 with a challenge and no error code (RFC 6750 §3.1)."""


class InvalidBearerRequestError(BearerError):
    error = "invalid_request"
    status = 400


class InvalidTokenError(BearerError):
    error = "invalid_token"
    status = 401


class InsufficientScopeError(BearerError):
    error = "insufficient_scope"
    status = 403


def _quote(value: str) -> str:
    return value if _QUOTABLE.fullmatch(value) else re.sub(r"[^\x20-\x21\x23-\x5B\x5D-\x7E]", "", value)


def bearer_token_from_headers(authorization_values: list[str], query_has_token: bool = False) -> str:
    """The bearer token of a request (RFC 6750 §2.1), given every ``Authorization`` header value.

    Tokens in the URL query are never accepted (OAuth 2.1 §5.1): alone they count as no credentials,
    next to a header they are a second method, which is ``invalid_request`` (RFC 6750 §2).
    """
    if len(authorization_values) > 1:
        raise InvalidBearerRequestError("Send one Authorization header.")
    if not authorization_values:
        raise MissingTokenError()
    value = authorization_values[0]
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise MissingTokenError()
    if query_has_token:
        raise InvalidBearerRequestError("Send the token in one place only.")
    token = rest.strip(" ")
    if not token or not _TOKEN68.fullmatch(token):
        raise InvalidBearerRequestError("The Authorization header is malformed.")
    return token
