"""Redirect URI rules: exact match, except the port of loopback URIs (RFC 9700 §4.1.3, RFC 8252 §7.3)."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")


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
    """True for ``http://127.0.0.1…`` and ``http://[::1]…`` exactly as written (no ``localhost``)."""
    parts = _split(uri)
    if parts is None or parts.scheme != "http":
        return False
    host = parts.netloc.rsplit(":", 1)[0] if not parts.netloc.endswith("]") else parts.netloc
    return host in LOOPBACK_HOSTS


def _without_port(parts: SplitResult) -> str:
    host = parts.netloc
    host = host[:host.index("]") + 1] if host.startswith("[") else host.rsplit(":", 1)[0]
    return parts._replace(netloc=host).geturl()


def validate_registration(uri: str) -> str:
    """Refuse URIs no client may register: relative, fragment, userinfo, or plain http off loopback.

    Used by: ``tokenward clients add``.
    """
    parts = _split(uri)
    if parts is None or not parts.scheme or not parts.netloc:
        raise RedirectUriError("a redirect URI must be an absolute URI")
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
    req = _split(requested)
    if req is None:
        return False
    stripped = _without_port(req)
    for candidate in registered:
        if is_loopback(candidate):
            reg = _split(candidate)
            if reg is not None and _without_port(reg) == stripped:
                return True
    return False
