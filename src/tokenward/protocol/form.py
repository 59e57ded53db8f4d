"""``application/x-www-form-urlencoded`` bodies (RFC 6749 Appendix B, §3.1 and §3.2).

Parameters sent twice are ``invalid_request``; empty values count as omitted.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from .errors import InvalidRequestError

MAX_FIELDS = 64
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def is_form_content_type(content_type: str | None) -> bool:
    """True for ``application/x-www-form-urlencoded`` with or without parameters such as charset."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == FORM_CONTENT_TYPE


def parse_form(body: bytes) -> dict[str, str]:
    """Decode a form body strictly as UTF-8; raises InvalidRequestError on duplicates or bad encoding.

    Used by: every POST endpoint (token, login, consent, and later revocation and introspection).
    """
    try:
        text = body.decode("ascii")
        if _BAD_ESCAPE.search(text):  # "%zz", "%4", a lone "%" (RFC 3986 §2.1); parse_qsl keeps them verbatim
            raise ValueError("malformed percent-escape")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=False, encoding="utf-8", errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequestError("The request body is not a valid form.") from None
    return _collect(pairs)


def parse_query(query: str) -> tuple[dict[str, str], frozenset[str]]:
    """A URL query (the authorization request, RFC 6749 §4.1.1): first values and the names sent twice.

    /authorize needs both: a duplicate ``client_id`` is an error page, a duplicate ``scope`` a redirect.
    """
    try:
        if _BAD_ESCAPE.search(query):
            raise ValueError("malformed percent-escape")
        pairs = parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="strict",
                          max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequestError("The request query is malformed.") from None
    first: dict[str, str] = {}
    duplicates: set[str] = set()
    for name, value in pairs:
        if name in first:
            duplicates.add(name)
        else:
            first[name] = value
    return {k: v for k, v in first.items() if v != ""}, frozenset(duplicates)


class DuplicateParameterError(InvalidRequestError):
    """A parameter was sent twice; ``name`` tells /authorize whether it may still redirect."""

    def __init__(self, name: str) -> None:
        super().__init__("A parameter was sent more than once.", debug=f"duplicate parameter {name[:40]!r}")
        self.name = name


def _collect(pairs: list[tuple[str, str]]) -> dict[str, str]:
    seen: dict[str, str] = {}
    for name, value in pairs:
        if name in seen:
            raise DuplicateParameterError(name)
        seen[name] = value
    return {k: v for k, v in seen.items() if v != ""}
