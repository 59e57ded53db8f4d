"""The authorization endpoint (RFC 6749 §4.1.1-§4.1.2, RFC 7636, RFC 8252 §7.3, RFC 9207).

Until the client and its redirect URI are trusted, errors are shown on a page and never redirected
(§4.1.2.1); after that, every outcome is a redirect carrying ``state`` unchanged and ``iss``.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlencode

from tokenward.protocol import oidc, pkce
from tokenward.protocol import redirect_uri as redirect_rules
from tokenward.protocol.errors import (
    InvalidRequestError,
    InvalidScopeError,
    OAuthError,
    RequestNotSupportedError,
    RequestUriNotSupportedError,
    UnauthorizedClientError,
    UnsupportedResponseTypeError,
)
from tokenward.protocol.form import parse_query
from tokenward.protocol.scope import Scope
from tokenward.protocol.types import GrantType
from tokenward.server.crypto import random_token, token_hash
from tokenward.server.grants.base import AUTHORIZATION_CODE_PREFIX, select_audience
from tokenward.server.id_token import read_own_id_token
from tokenward.server.keys import KeyRing
from tokenward.server.model import AuthorizationCode, AuthorizationRequest, Client, OidcContext, Session
from tokenward.server.settings import Settings
from tokenward.server.store.protocols import Transaction

# RFC 6749 A.5 says VSCHAR; non-ASCII is let through (some clients send it), control characters are not:
# they cannot be stored (PostgreSQL text has no NUL) and have no business in a redirect.
_STATE = re.compile(r"[^\x00-\x1f\x7f]*")

# Issue #12 §2.6: a pending request is stored for 15 minutes by anyone who asks, so nothing it carries may be
# unbounded. ``state`` and ``nonce`` are echoed back opaque values (RFC 6749 §4.1.1, OIDC Core §3.1.2.1):
# 1024 UTF-8 bytes is far above what any client library sends (22 to 64). Every other parameter is capped at
# 2048 bytes (a long loopback or https redirect URI, a scope list); scope, resource and redirect_uri must
# further match the client's registration, and code_challenge is at most 128 characters (RFC 7636 §4.2).
MAX_STATE_BYTES = 1024
MAX_PARAMETER_BYTES = 2048
_STATE_TOO_LONG = "state must not exceed 1024 bytes."
_PARAMETER_TOO_LONG = "A parameter exceeds 2048 bytes (state and nonce: 1024)."
_OPAQUE = ("state", "nonce")


class AuthorizationPageError(Exception):
    """The request cannot be trusted enough to redirect: show ``message`` on an error page (400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthorizationRedirectError(Exception):
    """A redirectable error: the client and redirect URI are trusted."""

    def __init__(self, redirect_uri: str, state: str | None, error: OAuthError,
                 response_mode: str | None = None) -> None:
        super().__init__(error.error)
        self.redirect_uri = redirect_uri
        self.state = state
        self.error = error
        self.response_mode = response_mode


def response_parameters(settings: Settings, params: dict[str, str], state: str | None) -> dict[str, str]:
    """What goes back to the client: ``params``, ``state`` unchanged and ``iss`` (RFC 9207)."""
    query = dict(params)
    if state is not None:
        query["state"] = state
    query["iss"] = settings.issuer
    return query


def redirect_to_client(settings: Settings, redirect_uri: str, params: dict[str, str], state: str | None) -> str:
    """The redirect back to the client: its URI plus the response parameters in the query."""
    separator = "&" if "?" in redirect_uri else "?"
    return redirect_uri + separator + urlencode(response_parameters(settings, params, state))


def error_redirect(settings: Settings, err: AuthorizationRedirectError) -> str:
    return redirect_to_client(settings, err.redirect_uri, err.error.to_wire(), err.state)


async def validate_authorization_request(
    tx: Transaction, settings: Settings, query: str, now: int, session_hash: bytes, keys: KeyRing | None = None,
) -> AuthorizationRequest:
    """Check every parameter and return the pending request to store; raises one of the two errors above.

    The order is OIDC Core's: ``client_id`` and ``redirect_uri`` first (until then nothing is redirected),
    then ``request`` / ``request_uri`` (the other parameters could be inside them), then the rest.
    ``keys`` reads an ``id_token_hint``; without it a hint is refused."""
    try:
        params, duplicates = parse_query(query)
    except InvalidRequestError:
        raise AuthorizationPageError("The authorization request is malformed.") from None
    if duplicates & {"client_id", "redirect_uri"}:
        raise AuthorizationPageError("The client_id or redirect_uri parameter was sent more than once.")
    client_id = params.get("client_id")
    if client_id is None:
        raise AuthorizationPageError("The request has no client_id.")
    client = await tx.get_client(client_id)
    if client is None:
        raise AuthorizationPageError("The client is not registered here.")
    redirect_uri, explicit = _select_redirect_uri(client, params.get("redirect_uri"))

    state = None if "state" in duplicates else params.get("state")
    if state is not None and not _STATE.fullmatch(state):
        raise AuthorizationRedirectError(redirect_uri=redirect_uri, state=None, error=InvalidRequestError(
            "state must not contain control characters."))
    if state is not None and len(state.encode()) > MAX_STATE_BYTES:  # not echoed: it is the oversized part
        raise AuthorizationRedirectError(redirect_uri=redirect_uri, state=None, error=InvalidRequestError(
            _STATE_TOO_LONG))

    response_mode: str | None = None

    def fail(error: OAuthError) -> AuthorizationRedirectError:
        return AuthorizationRedirectError(redirect_uri=redirect_uri, state=state, error=error,
                                          response_mode=response_mode)

    try:
        if "request" in params:
            raise RequestNotSupportedError("Request objects are not supported; send the parameters directly.")
        if "request_uri" in params:
            raise RequestUriNotSupportedError("request_uri is not supported.")
        if duplicates:
            raise InvalidRequestError("A parameter was sent more than once.")
        _check_sizes(params)
        response_mode = oidc.parse_response_mode(params.get("response_mode"))
        response_type = params.get("response_type")
        if response_type is None:
            raise InvalidRequestError("response_type is required.")
        if response_type != "code":
            raise UnsupportedResponseTypeError("Only response_type=code is supported.")
        if GrantType.AUTHORIZATION_CODE not in client.grant_types:
            raise UnauthorizedClientError("This client may not use the authorization code flow.")
        if (client.pkce_optional and not client.public and "code_challenge" not in params
                and "code_challenge_method" not in params):
            challenge = ""  # the confidential client's opt-out (issue #13); a sent challenge always binds
        else:
            challenge = pkce.validate_challenge(params.get("code_challenge"), params.get("code_challenge_method"))
        requested = Scope.parse(params.get("scope"))
        if not requested <= allowed_scope(client):
            raise InvalidScopeError("The requested scope is not allowed for this client.")
        audience = select_audience(client, params.get("resource"), settings)
        context = OidcContext(response_mode=response_mode)
        if oidc.OPENID in requested:
            context = await _oidc_context(params, response_mode, settings, keys)
    except OAuthError as error:
        raise fail(error) from None

    return AuthorizationRequest(
        id=secrets.token_urlsafe(24), client_id=client.client_id, redirect_uri=redirect_uri,
        redirect_uri_explicit=explicit, scope=requested or client.scope, state=state,
        code_challenge=challenge, audience=audience, csrf_token=secrets.token_urlsafe(24),
        session_hash=session_hash, created_at=now, expires_at=now + settings.authorization_request_ttl,
        oidc=context if context != OidcContext() else None,
    )


async def _oidc_context(params: dict[str, str], response_mode: str | None, settings: Settings,
                        keys: KeyRing | None) -> OidcContext:
    """The OIDC Core §3.1.2.1 parameters of an ``openid`` request; ``display``, ``ui_locales``,
    ``claims_locales`` and ``acr_values`` are accepted and have no effect."""
    hint_subject = None
    hint = params.get("id_token_hint")
    if hint is not None:
        claims = await read_own_id_token(keys, hint, settings.issuer) if keys is not None else None
        if claims is None:
            raise InvalidRequestError("id_token_hint is not an ID token issued here.")
        hint_subject = str(claims["sub"])
    return OidcContext(
        nonce=params.get("nonce"), claims=oidc.parse_claims_request(params.get("claims")),
        prompt=oidc.parse_prompt(params.get("prompt")), max_age=oidc.parse_max_age(params.get("max_age")),
        login_hint=params.get("login_hint"), response_mode=response_mode, hint_subject=hint_subject)


def is_openid(request: AuthorizationRequest) -> bool:
    return oidc.OPENID in request.scope


def allowed_scope(client: Client) -> frozenset[str]:
    """What a client may ask for: its registered scope, plus ``offline_access`` when it may use the refresh
    grant — the discovery documents advertise it, and clients such as the MCP SDK add it by themselves (OIDC
    Core §11); for a plain OAuth request it changes nothing, the refresh grant already brings a refresh token."""
    if GrantType.REFRESH_TOKEN in client.grant_types:
        return client.scope | {oidc.OFFLINE_ACCESS}
    return client.scope


def _check_sizes(params: dict[str, str]) -> None:
    """Every parameter within its cap (the name is not echoed: input never is)."""
    for name, value in params.items():
        limit = MAX_STATE_BYTES if name in _OPAQUE else MAX_PARAMETER_BYTES
        if len(value.encode()) > limit:
            raise InvalidRequestError(_PARAMETER_TOO_LONG)


def _select_redirect_uri(client: Client, requested: str | None) -> tuple[str, bool]:
    if requested is None:
        if len(client.redirect_uris) == 1 and not redirect_rules.is_loopback(client.redirect_uris[0]):
            return client.redirect_uris[0], False
        raise AuthorizationPageError("The request has no redirect_uri.")
    if not redirect_rules.matches(requested, list(client.redirect_uris)):
        raise AuthorizationPageError("The redirect_uri is not registered for this client.")
    return requested, True


async def issue_code(tx: Transaction, settings: Settings, request: AuthorizationRequest, session: Session,
                     now: int) -> dict[str, str] | None:
    """Create the authorization code for an approved request and return the response parameters; None
    when a concurrent submission already answered the request (one request, one code: RFC 6749 §4.1.2).

    An ``openid`` code carries what its ID token needs (OIDC Core §3.1.3.6): the nonce, the claims request,
    when the user authenticated (the signed-in session's start) and the session's ``sid``."""
    if session.user_id is None or not await tx.delete_authorization_request(request.id):
        return None
    context = None
    if is_openid(request):
        requested = request.oidc or OidcContext()
        context = OidcContext(nonce=requested.nonce, claims=requested.claims, auth_time=session.created_at,
                              sid=session.sid)
    code = random_token(AUTHORIZATION_CODE_PREFIX)
    await tx.save_code(AuthorizationCode(
        code_hash=token_hash(code), client_id=request.client_id, user_id=session.user_id,
        redirect_uri=request.redirect_uri, redirect_uri_explicit=request.redirect_uri_explicit,
        code_challenge=request.code_challenge, scope=request.scope, audience=request.audience,
        created_at=now, expires_at=now + settings.code_ttl, oidc=context))
    return response_parameters(settings, {"code": code}, request.state)
