"""Redirect URI rules: exact match, except the port of loopback URIs (RFC 9700 §4.1.3, RFC 8252 §7.3);
native apps may also register a private-use scheme (RFC 8252 §7.1)."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")
BROWSER_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob", "about"})  # never a client's
# As written: "http://", a loopback literal, an optional port, then nothing or the path, query or fragment.
# Matched on the raw string because urlsplit lower-cases the scheme and takes "127.0.0.1:80@evil" as userinfo.
_LOOPBACK = re.compile(r"(http://(?:127\.0\.0\.1|\[::1\]))(?::[0-9]*)?((?:[/?#].*)?)", re.DOTALL)


class RedirectUriError(ValueError):
    """A redirect URI that may not be registered; the message is safe to show an administrator."""


def _split(uri: str) -> SplitResult | None:
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    return parts


def is_loopback(uri: str) -> bool:
    """True for ``http://127.0.0.1…`` and ``http://[::1]…`` exactly as written (no ``localhost``, no userinfo)."""
    return _LOOPBACK.fullmatch(uri) is not None and _split(uri) is not None


def _without_port(uri: str) -> str:
    """A loopback URI exactly as written, minus its port; every other character still counts."""
    match = _LOOPBACK.fullmatch(uri)
    return match.group(1) + match.group(2) if match else uri


# RFC 8252 §7.1: a native app's private-use scheme is a reverse domain name it controls ("com.example.app"),
# followed by a single slash and a path: com.example.app:/oauth2redirect. Requiring the dot keeps out
# javascript:, data:, file: and other schemes with meaning to a browser (§8.4).
_PRIVATE_USE = re.compile(r"[a-z][a-z0-9+-]*(?:\.[a-z0-9+-]+)+:/(?!/)")


def is_private_use(uri: str) -> bool:
    """True for a native app's private-use-scheme URI as RFC 8252 §7.1 writes it (lower-case scheme)."""
    return _PRIVATE_USE.match(uri) is not None


def validate_registration(uri: str) -> str:
    """Refuse URIs no client may register: relative, fragment, userinfo, plain http off loopback, or a
    scheme without an authority that is not a reverse-domain private-use scheme (RFC 8252 §7.1).

    Used by: ``tokenward clients add``.
    """
    parts = _split(uri)
    if parts is None or not parts.scheme or not (parts.netloc or is_private_use(uri)):
        raise RedirectUriError("a redirect URI must be an absolute URI (https://…, http://127.0.0.1…, "
                               "or a native app's reverse-domain scheme such as com.example.app:/callback)")
    if parts.scheme.lower() in BROWSER_SCHEMES:
        raise RedirectUriError(f"{parts.scheme}: URIs cannot be redirect URIs")
    if "#" in uri:
        raise RedirectUriError("a redirect URI must not contain a fragment")
    if "@" in parts.netloc:
        raise RedirectUriError("a redirect URI must not contain user information")
    if parts.scheme == "http" and not is_loopback(uri):
        raise RedirectUriError("http redirect URIs are only allowed on 127.0.0.1 or [::1]")
    if any(c in uri for c in " \"<>\\^`{|}") or any(ord(c) < 0x21 or ord(c) > 0x7E for c in uri):
        raise RedirectUriError("a redirect URI must be plain ASCII without spaces or quotes")
    return uri


def matches(requested: str, registered: list[str]) -> bool:
    """Simple string comparison (RFC 3986 §6.2.1), ignoring only the port of loopback URIs."""
    if requested in registered:
        return True
    if not is_loopback(requested):
        return False
    stripped = _without_port(requested)
    return any(is_loopback(candidate) and _without_port(candidate) == stripped for candidate in registered)
