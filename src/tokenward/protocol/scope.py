"""Scopes (RFC 6749 §3.3): a space-separated set of scope-tokens."""

from __future__ import annotations

import re

from .errors import InvalidScopeError

_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")


class Scope(frozenset[str]):
    """An immutable set of scope-tokens whose ``str`` is the canonical (sorted) wire form."""

    @classmethod
    def parse(cls, value: str | None) -> Scope:
        """Parse a wire value; an empty or missing value is the empty scope (RFC 6749 §3.2).

        Raises InvalidScopeError for characters outside the §3.3 scope-token grammar.
        Used by: /authorize, the token grants, the CLI's ``--scope``.
        """
        if not value:
            return cls()
        tokens = [t for t in value.split(" ") if t]
        if any(not _SCOPE_TOKEN.fullmatch(t) for t in tokens):
            raise InvalidScopeError("The scope is malformed.")
        return cls(tokens)

    def __str__(self) -> str:
        return " ".join(sorted(self))

    def __repr__(self) -> str:
        return f"Scope({str(self)!r})"
