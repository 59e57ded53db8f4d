"""OAuth error responses (RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3, RFC 8707 §2).

Errors have two channels: ``description`` is shown to the client and must never contain user input or
secrets; ``debug`` is for the server log only (it is tagged with the request id there).
"""

from __future__ import annotations

from typing import ClassVar


class OAuthError(Exception):
    """Base of every protocol error; one subclass per RFC error code."""

    error: ClassVar[str] = "server_error"
    status: ClassVar[int] = 400

    def __init__(self, description: str = "", *, debug: str = "") -> None:
        super().__init__(description)
        self.description = description
        self.debug = debug

    def to_wire(self) -> dict[str, str]:
        """The §5.2 JSON body (also the §4.1.2.1 redirect parameters)."""
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


class InvalidRequestError(OAuthError):
    error = "invalid_request"


class InvalidClientError(OAuthError):
    """Client authentication failed (RFC 6749 §5.2); always 401 with a Basic challenge."""

    error = "invalid_client"
    status = 401


class InvalidGrantError(OAuthError):
    error = "invalid_grant"


class ReuseDetectedError(InvalidGrantError):
    """A consumed code or refresh token was presented again: ``invalid_grant``, and the grant family was
    revoked in the same transaction, which must commit although the request fails (RFC 9700 §4.14.2): the
    raiser calls ``tx.keep_on_error()`` before raising it."""


class UnauthorizedClientError(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantTypeError(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedResponseTypeError(OAuthError):
    error = "unsupported_response_type"


class InvalidScopeError(OAuthError):
    error = "invalid_scope"


class InvalidTargetError(OAuthError):
    """RFC 8707 §2: the requested resource is unknown or not allowed for this client."""

    error = "invalid_target"


class AccessDeniedError(OAuthError):
    error = "access_denied"
    status = 403


class ServerError(OAuthError):
    error = "server_error"
    status = 500


class TemporarilyUnavailableError(OAuthError):
    error = "temporarily_unavailable"
    status = 503


class MethodNotAllowedError(InvalidRequestError):
    """A wrong HTTP method on an OAuth endpoint: 405 with the JSON body of ``invalid_request``."""

    status = 405


class RequestTooLargeError(InvalidRequestError):
    status = 413


class RequestTimeoutError(InvalidRequestError):
    """The client sent its body too slowly (408): one slow client must not hold a worker."""

    status = 408


class SlowDownError(OAuthError):
    """Too many failed attempts: 429 with ``Retry-After``. ``slow_down`` is the registered OAuth error code
    for "ask less often" (RFC 8628 §3.5, IANA OAuth Extensions Error Registry)."""

    error = "slow_down"
    status = 429

    def __init__(self, description: str = "", *, retry_after: int, debug: str = "") -> None:
        super().__init__(description, debug=debug)
        self.retry_after = max(1, retry_after)


class SignInRequiredError(OAuthError):
    """``prompt=none`` and the user must sign in first (OIDC Core §3.1.2.6)."""

    error = "login_required"


class ConsentRequiredError(OAuthError):
    """``prompt=none`` and the user has not consented to this client and scope (OIDC Core §3.1.2.6)."""

    error = "consent_required"


class InteractionRequiredError(OAuthError):
    """``prompt=none`` and some other page would have to be shown (OIDC Core §3.1.2.6)."""

    error = "interaction_required"


class RequestNotSupportedError(OAuthError):
    """A ``request`` object was sent; Tokenward does not accept request objects (OIDC Core §6)."""

    error = "request_not_supported"


class RequestUriNotSupportedError(OAuthError):
    """A ``request_uri`` was sent; none is accepted yet (OIDC Core §6, RFC 9126 once PAR exists)."""

    error = "request_uri_not_supported"


class AuthorizationPendingError(OAuthError):
    """RFC 8628 §3.5: the user has not yet approved or denied the device request; poll again later."""

    error = "authorization_pending"


class PollTooFastError(OAuthError):
    """RFC 8628 §3.5 ``slow_down``: still pending, and the client polled before its interval had passed, which
    grows by 5 s for this and every later poll. A 400 token error, unlike the 429 lock of ``SlowDownError``."""

    error = "slow_down"


class DeviceDeniedError(AccessDeniedError):
    """RFC 8628 §3.5 ``access_denied`` at the token endpoint: the user denied the device request (400, §5.2)."""

    status = 400


class ExpiredTokenError(OAuthError):
    """RFC 8628 §3.5: the device code expired before it was redeemed; the device must start again."""

    error = "expired_token"
