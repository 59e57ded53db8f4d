"""Client-side errors: one base class, so an app can catch everything the client library raises.

Messages never carry tokens, codes or secrets; text that comes from a server is cleaned by ``server_text``
before it reaches a message (a hostile server could echo a token back).
"""

from __future__ import annotations

import re

_TOKENISH = re.compile(r"[A-Za-z0-9_\-]{24,}(?:\.[A-Za-z0-9_\-]+){0,2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def server_text(value: object, limit: int = 200) -> str:
    """A server-provided string made safe for a message: no control characters, no long token-like runs."""
    text = _CONTROL.sub(" ", str(value))[:limit]
    return _TOKENISH.sub("[redacted]", text)


class ClientError(Exception):
    """Base of every error raised by ``tokenward.client``."""


class DiscoveryError(ClientError):
    """The issuer's RFC 8414 metadata could not be fetched, or it does not name that issuer (§3.3)."""


class StoreError(ClientError):
    """Tokens could not be read or written safely (never answered by falling back to plaintext)."""


class TokenEndpointError(ClientError):
    """The token endpoint refused a request (RFC 6749 §5.2) or failed.

    ``transient`` is True for 5xx answers and malformed bodies: the grant may still be good, so the stored
    tokens are kept and a later call can try again.
    """

    def __init__(self, error: str, description: str = "", *, status: int = 400, transient: bool = False) -> None:
        self.error = server_text(error, 64)
        self.description = server_text(description)
        self.status = status
        self.transient = transient
        text = f"token endpoint answered {status} {self.error}"
        super().__init__(f"{text}: {self.description}" if self.description else text)


class LoginRequiredError(ClientError):
    """The user must sign in again: no tokens are stored, or the refresh token was refused (``invalid_grant``).

    When raised for ``invalid_grant`` the stored tokens have already been cleared.
    """

    def __init__(self, message: str = "login required", *, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error


class AuthorizationError(ClientError):
    """The authorization response was an error, or failed the ``state`` / ``iss`` checks (RFC 9207 §2.4)."""

    def __init__(self, error: str, description: str = "") -> None:
        self.error = server_text(error, 64)
        self.description = server_text(description)
        super().__init__(f"{self.error}: {self.description}" if self.description else self.error)


class LoginTimeoutError(AuthorizationError):
    """No redirect reached the loopback listener in time."""

    def __init__(self, seconds: float) -> None:
        super().__init__("timeout", f"no authorization response within {seconds:g} s")


class IdTokenError(ClientError):
    """An ID token failed a check of OpenID Connect Core §3.1.3.7 (or §12.2 on refresh); nothing was stored.

    ``reason`` names the check (``signature``, ``issuer``, ``audience``, ``azp``, ``expired``, ``iat``,
    ``nonce``, ``at_hash``, ``refresh_mismatch``, ``malformed``, ``jwks``); the token itself is never shown.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"the ID token was refused ({reason}): {message}")


class UserInfoError(ClientError):
    """The userinfo endpoint refused the access token or answered something that is not its user's claims."""


class DeviceFlowError(AuthorizationError):
    """The device authorization grant (RFC 8628) ended without tokens; ``error`` is the server's code."""


class DeviceAccessDeniedError(DeviceFlowError):
    """The user denied the device's request (RFC 8628 §3.5 ``access_denied``)."""

    def __init__(self, description: str = "") -> None:
        super().__init__("access_denied", description or "the sign-in was denied on the verification page")


class DeviceCodeExpiredError(DeviceFlowError):
    """The device code expired before the user decided (``expired_token``, or ``expires_in`` elapsed)."""

    def __init__(self, description: str = "") -> None:
        super().__init__("expired_token", description or "the code expired before it was approved: start again")


class DeviceFlowCancelledError(DeviceFlowError):
    """Polling was stopped by the caller (``cancel`` set) before the user decided."""

    def __init__(self) -> None:
        super().__init__("cancelled", "the sign-in was cancelled on this device")
