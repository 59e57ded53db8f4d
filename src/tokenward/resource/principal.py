"""What a validated access token says about the caller."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: ``subject`` is the user (or the client itself for client credentials, RFC 9068 §2.2)."""

    subject: str
    client_id: str
    scopes: frozenset[str]
    audience: tuple[str, ...]
    expires_at: int
    issuer: str
    token_id: str | None = None
    claims: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def has_scopes(self, *required: str) -> bool:
        return set(required) <= self.scopes


class TokenVerifier(Protocol):
    """What the adapters need: JwtVerifier (local, signature) and IntrospectionVerifier (asks the issuer)."""

    async def verify(self, token: str, required_scopes: Iterable[str] = ()) -> Principal: ...

    def verify_sync(self, token: str, required_scopes: Iterable[str] = ()) -> Principal: ...
