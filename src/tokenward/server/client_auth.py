"""Client authentication at the token endpoint (RFC 6749 §2.3, §3.2.1).

Confidential clients may use client_secret_basic or client_secret_post; public clients use ``none``.
Every failure is the same ``invalid_client`` so a caller cannot tell unknown ids from wrong secrets.
"""

from __future__ import annotations

from typing import Protocol

from tokenward.protocol.credentials import ClientCredentials, parse_client_credentials
from tokenward.protocol.errors import InvalidClientError
from tokenward.protocol.types import ClientAuthMethod
from tokenward.server.crypto import hash_matches, token_hash
from tokenward.server.model import Client

_UNKNOWN_CLIENT_HASH = token_hash("tokenward-no-such-client")


class ClientLookup(Protocol):
    """A transaction or the per-worker ClientCache."""

    async def get_client(self, client_id: str) -> Client | None: ...


def authenticate_client(credentials: ClientCredentials | None, client: Client | None) -> Client:
    """Return the authenticated client or raise InvalidClientError (401).

    Used by: the token endpoint (and later revocation and introspection).
    """
    if credentials is None:
        raise InvalidClientError("Client authentication failed.", debug="no client credentials")
    if credentials.method is ClientAuthMethod.NONE:
        if client is None or not client.public:
            raise InvalidClientError("Client authentication failed.",
                                     debug="no secret for a confidential or unknown client")
        return client
    # A secret was presented: compare in constant time even when the client is unknown or public.
    stored = client.secret_hash if client is not None and client.secret_hash else _UNKNOWN_CLIENT_HASH
    ok = hash_matches(credentials.secret or "", stored)
    if client is None or client.public or client.secret_hash is None or not ok:
        raise InvalidClientError("Client authentication failed.", debug="unknown client or wrong secret")
    return client


async def authenticate_request(clients: ClientLookup, authorization: str | None, form: dict[str, str]) -> Client:
    """Parse the request's client credentials, look the client up and authenticate it.

    Used by: the token, revocation and introspection endpoints.
    """
    credentials = parse_client_credentials(authorization, form)
    found = await clients.get_client(credentials.client_id) if credentials is not None else None
    return authenticate_client(credentials, found)
