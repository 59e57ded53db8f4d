"""``token_type_hint`` (RFC 7009 §2.1, RFC 7662 §2.1): a hint orders the lookup and never limits it."""

from __future__ import annotations

from typing import TypeVar

from .types import TokenTypeHint

T = TypeVar("T")


def lookup_order(hint: str | None, refresh: T, access: T) -> tuple[T, T]:
    """Both lookups, the hinted one first; unknown hints are ignored (§2.1: "MUST extend its search").

    Used by: the revocation and introspection endpoints.
    """
    return (access, refresh) if hint == TokenTypeHint.ACCESS_TOKEN else (refresh, access)
