"""The browser side of the code flow as named steps, without HTTP (RFC 6749 §4.1.1-§4.1.2, RFC 8252 §8.6):

``start`` (GET /authorize) → ``show_login`` / ``sign_in`` (the login page) → ``show_consent`` / ``decide``
(the consent page). Each step takes what the browser sent (the query, the session cookie's hash, form fields,
the peer address) and returns one :data:`Outcome`; the web adapter only renders it. A pending request lives
in the database bound to the browser's session, and both forms carry its CSRF token, so any worker can serve
any step. The clock is passed in, so every branch is testable in-process with a frozen time.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from tokenward.protocol import redirect_uri as redirect_rules
from tokenward.protocol.errors import (
    AccessDeniedError,
    ConsentRequiredError,
    OAuthError,
    SignInRequiredError,
)
from tokenward.protocol.oidc import OFFLINE_ACCESS
from tokenward.protocol.types import GrantType
from tokenward.server.audit import audit
from tokenward.server.crypto import token_hash
from tokenward.server.endpoints.authorize import (
    AuthorizationPageError,
    AuthorizationRedirectError,
    is_openid,
    issue_code,
    redirect_to_client,
    response_parameters,
    validate_authorization_request,
)
from tokenward.server.endpoints.sign_in import SignIn, SignInRefused, new_session_secret
from tokenward.server.keys import KeyRing
from tokenward.server.model import AuthorizationRequest, Client, OidcContext, Session
from tokenward.server.rate_limit import RateLimiter
from tokenward.server.settings import Settings
from tokenward.server.store.protocols import Store, Transaction

ALREADY_ANSWERED = "This sign-in request has already been answered. Go back to the application."
EXPIRED = ("This sign-in request has expired or belongs to another browser. "
           "Go back to the application and start again.")
FORM_EXPIRED = "The form has expired. Go back to the application and start again."
CHOOSE = "Choose Allow or Deny."

# Scopes whose grant the consent page does not list: for a plain OAuth request a refresh token comes with the
# client's refresh grant, not with offline_access (OpenID Connect gives it a meaning: issue #13).
NOT_LISTED = frozenset({"offline_access"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorPage:
    """A page that says what went wrong; never a redirect (the client or redirect URI is not trusted, or
    the request is gone)."""

    message: str
    status: int = 400
    retry_after: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GoTo:
    """Continue with another step of this flow (303 to ``/login`` or ``/consent``), maybe with a new
    session cookie."""

    step: Literal["login", "consent"]
    request_id: str
    session_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShowLogin:
    pending: AuthorizationRequest
    client: Client | None
    error: str | None = None
    status: int = 200
    retry_after: int | None = None
    login_hint: str | None = None  # OIDC Core §3.1.2.1: pre-fills the username


@dataclass(frozen=True, slots=True, kw_only=True)
class ShowConsent:
    pending: AuthorizationRequest
    client: Client | None
    scopes: tuple[str, ...]  # what the page lists, sorted
    lasting: bool  # a refresh token will follow: the page says the access lasts until revoked


@dataclass(frozen=True, slots=True, kw_only=True)
class RedirectWithCode:
    location: str = field(repr=False)  # carries the code


@dataclass(frozen=True, slots=True, kw_only=True)
class RedirectWithError:
    location: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FormPost:
    """``response_mode=form_post`` (OAuth 2.0 Form Post Response Mode §2): a page whose form posts
    ``fields`` to ``action`` by itself."""

    action: str
    fields: dict[str, str] = field(repr=False)


Outcome = ErrorPage | GoTo | ShowLogin | ShowConsent | RedirectWithCode | RedirectWithError | FormPost


def to_client(settings: Settings, redirect_uri: str, params: dict[str, str], state: str | None,
              response_mode: str | None, *, error: bool) -> Outcome:
    """The response to the client in the mode it asked for: a 303 with the query, or a form post."""
    if response_mode == "form_post":
        return FormPost(action=redirect_uri, fields=response_parameters(settings, params, state))
    location = redirect_to_client(settings, redirect_uri, params, state)
    return RedirectWithError(location=location) if error else RedirectWithCode(location=location)


def needs_authentication(pending: AuthorizationRequest, session: Session, now: int) -> bool:
    """Whether the user must (again) sign in before this request may go on: nobody is signed in, or an
    OIDC request asks for a fresh sign-in (``prompt=login``/``select_account``, a ``max_age`` the session
    is older than, an ``id_token_hint`` for another user: Core §3.1.2.1) that has not happened yet for it."""
    if session.user_id is None:
        return True
    context = pending.oidc
    if context is None or not is_openid(pending) or context.auth_time is not None:
        return False  # auth_time set: the user signed in for this very request
    if "login" in context.prompt or "select_account" in context.prompt:
        return True
    if context.max_age is not None and now - session.created_at > context.max_age:
        return True
    return context.hint_subject is not None and context.hint_subject != session.user_id


def native_redirect(uri: str) -> bool:
    """A loopback or private-use-scheme redirect (RFC 8252 §7.1, §7.3) does not identify the app: any app on
    the device can claim it, so remembered consent is never applied to it silently (RFC 8252 §8.6)."""
    return redirect_rules.is_loopback(uri) or redirect_rules.is_private_use(uri)


def _csrf_ok(expected: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(expected.encode(), presented.encode())




class AuthorizationFlow:
    """Used by: the web adapter's /authorize, /login and /consent pages (web/pages.py)."""

    def __init__(self, settings: Settings, store: Store, limiter: RateLimiter, keys: KeyRing | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.limiter = limiter
        self.keys = keys
        self.clock = clock
        self.sign_in_step = SignIn(limiter, settings.session_ttl)

    def _now(self) -> int:
        return int(self.clock())

    def _answer(self, pending: AuthorizationRequest, params: dict[str, str] | None, *,
                error: bool = False) -> Outcome:
        """The response to the client for ``pending``, or (a concurrent submission answered it) a page."""
        if params is None:
            return ErrorPage(message=ALREADY_ANSWERED)
        mode = pending.oidc.response_mode if pending.oidc else None
        return to_client(self.settings, pending.redirect_uri, params, pending.state, mode, error=error)

    def _refuse(self, pending: AuthorizationRequest, error: OAuthError) -> Outcome:
        return self._answer(pending, error.to_wire(), error=True)

    async def _consent_remembered(self, tx: Transaction, pending: AuthorizationRequest, user_id: str) -> bool:
        """Remembered consent applies unless the request asks to be asked (``prompt=consent``, OIDC Core
        §3.1.2.1), or a *public* client uses a native redirect: any app on the device can claim a loopback
        port or a private-use scheme and then redeem the code (RFC 8252 §8.6). A confidential client's code is
        useless without its secret, so its loopback redirect (a relying party on localhost) keeps it."""
        if pending.oidc and "consent" in pending.oidc.prompt:
            return False
        if native_redirect(pending.redirect_uri):
            client = await tx.get_client(pending.client_id)
            if client is None or client.public:
                return False
        return await tx.has_consent(user_id, pending.client_id, pending.scope)

    async def start(self, query: str, session_hash: bytes | None, ip: str | None) -> Outcome:
        """GET /authorize: validate, remember the request for this browser, then log in or ask consent.

        Nothing is written until the request is fully valid (issue #12 §2.6): an unknown client, a bad
        redirect or a bad parameter costs a read, never a session or pending-request row. Creating a pending
        request (kept ``authorization_request_ttl``) is limited per IP address.
        """
        now = self._now()
        secret: str | None = None
        async with self.store.transaction() as tx:
            session = await tx.get_session(session_hash, now) if session_hash else None
            if session is None:
                secret = new_session_secret()
            bound_to = session.id_hash if session else token_hash(secret or "")
            try:
                pending = await validate_authorization_request(tx, self.settings, query, now, bound_to,
                                                               self.keys)
            except AuthorizationPageError as exc:
                return ErrorPage(message=exc.message)
            except AuthorizationRedirectError as exc:
                return to_client(self.settings, exc.redirect_uri, exc.error.to_wire(), exc.state,
                                 exc.response_mode, error=True)
            if pending.oidc is not None and "none" in pending.oidc.prompt:
                return await self._silently(tx, pending, session, now)
        limited = self.limiter.authorize_keys(ip)
        wait = await self.limiter.retry_after(limited)
        if wait:
            return ErrorPage(message=f"Too many sign-in requests from your network. Try again in {wait} seconds.",
                             status=429, retry_after=wait)
        async with self.store.transaction(write=True) as tx:
            if session is None:
                session = Session(id_hash=pending.session_hash, user_id=None, created_at=now,
                                  expires_at=now + self.settings.session_ttl)
                await tx.save_session(session)
            await tx.save_authorization_request(pending)
        await self.limiter.record(limited)  # counts requests, not failures: the limit caps stored rows
        step: Literal["login", "consent"] = "login" if needs_authentication(pending, session, now) else "consent"
        return GoTo(step=step, request_id=pending.id, session_secret=secret)

    async def _silently(self, tx: Transaction, pending: AuthorizationRequest, session: Session | None,
                        now: int) -> Outcome:
        """``prompt=none`` (OIDC Core §3.1.2.1): answer at once or say why not; never show a page, never
        create a session. The pending request is stored and consumed in one write transaction."""
        if session is None or needs_authentication(pending, session, now) or session.user_id is None:
            return self._refuse(pending, SignInRequiredError("The user is not signed in."))
        if not await self._consent_remembered(tx, pending, session.user_id):
            return self._refuse(pending, ConsentRequiredError("The user has not consented to this request."))
        async with self.store.transaction(write=True) as wtx:
            await wtx.save_authorization_request(pending)
            return self._answer(pending, await issue_code(wtx, self.settings, pending, session, now))

    async def _pending(self, tx: Transaction, request_id: str | None, session_hash: bytes | None,
                       now: int) -> tuple[AuthorizationRequest, Session] | ErrorPage:
        """The pending request, only if it belongs to this browser's session."""
        pending = await tx.get_authorization_request(request_id, now) if request_id else None
        session = await tx.get_session(session_hash, now) if session_hash else None
        if pending is None or session is None or not hmac.compare_digest(pending.session_hash, session.id_hash):
            return ErrorPage(message=EXPIRED)
        return pending, session

    async def show_login(self, request_id: str | None, session_hash: bytes | None) -> Outcome:
        """GET /login: the form, unless this browser is already signed in."""
        async with self.store.transaction() as tx:
            found = await self._pending(tx, request_id, session_hash, self._now())
            if isinstance(found, ErrorPage):
                return found
            pending, session = found
            if not needs_authentication(pending, session, self._now()):
                return GoTo(step="consent", request_id=pending.id)
            return ShowLogin(pending=pending, client=await tx.get_client(pending.client_id),
                             login_hint=pending.oidc.login_hint if pending.oidc else None)

    async def sign_in(self, request_id: str | None, session_hash: bytes | None, csrf_token: str | None,
                      username: str, password: str, ip: str | None) -> Outcome:
        """POST /login: check the password, start a fresh session bound to the request, go to consent."""
        now = self._now()
        async with self.store.transaction(write=True) as tx:
            found = await self._pending(tx, request_id, session_hash, now)
            if isinstance(found, ErrorPage):
                return found
            pending, session = found
            if not _csrf_ok(pending.csrf_token, csrf_token):
                return ErrorPage(message=FORM_EXPIRED, status=403)
            attempt = await self.sign_in_step.reserve(tx, username, ip)
            client = await tx.get_client(pending.client_id)
        result = attempt if isinstance(attempt, SignInRefused) else await self.sign_in_step.verify(attempt, password)
        if isinstance(result, SignInRefused):
            audit("login.failed", client_id=pending.client_id, sub=result.user_id,
                  **({"reason": "locked"} if result.locked else {}))
            return ShowLogin(pending=pending, client=client, error=result.message, status=result.status,
                             retry_after=result.retry_after)
        secret = new_session_secret()
        context = replace(pending.oidc or OidcContext(), auth_time=now) if is_openid(pending) else pending.oidc
        async with self.store.transaction(write=True) as tx:
            await self.sign_in_step.open_session(tx, result, session.id_hash, now, secret)
            await tx.rebind_authorization_request(pending.id, token_hash(secret), context)
        audit("login.succeeded", client_id=pending.client_id, sub=result.user.id)
        return GoTo(step="consent", request_id=pending.id, session_secret=secret)

    async def show_consent(self, request_id: str | None, session_hash: bytes | None) -> Outcome:
        """GET /consent: ask, or answer at once when consent is remembered (never for native redirects)."""
        now = self._now()
        async with self.store.transaction(write=True) as tx:
            found = await self._pending(tx, request_id, session_hash, now)
            if isinstance(found, ErrorPage):
                return found
            pending, session = found
            if session.user_id is None or needs_authentication(pending, session, now):
                return GoTo(step="login", request_id=pending.id)
            if await self._consent_remembered(tx, pending, session.user_id):
                return self._answer(pending, await issue_code(tx, self.settings, pending, session, now))
            client = await tx.get_client(pending.client_id)
        # A refresh token follows (grants/base.py gets_refresh_token): the refresh grant, and for an OpenID
        # Connect request offline_access too (Core §11).
        lasting = (client is not None and GrantType.REFRESH_TOKEN in client.grant_types
                   and (not is_openid(pending) or OFFLINE_ACCESS in pending.scope))
        return ShowConsent(pending=pending, client=client, lasting=lasting,
                           scopes=tuple(s for s in sorted(pending.scope) if s not in NOT_LISTED))

    async def decide(self, request_id: str | None, session_hash: bytes | None, csrf_token: str | None,
                     decision: str | None) -> Outcome:
        """POST /consent: record the decision and send the browser back to the client."""
        now = self._now()
        async with self.store.transaction(write=True) as tx:
            found = await self._pending(tx, request_id, session_hash, now)
            if isinstance(found, ErrorPage):
                return found
            pending, session = found
            if session.user_id is None or needs_authentication(pending, session, now):
                return GoTo(step="login", request_id=pending.id)
            if not _csrf_ok(pending.csrf_token, csrf_token):
                return ErrorPage(message=FORM_EXPIRED, status=403)
            if decision == "allow":
                await tx.save_consent(session.user_id, pending.client_id, pending.scope, now)
                params = await issue_code(tx, self.settings, pending, session, now)
                if params is not None:
                    audit("consent.granted", client_id=pending.client_id, sub=session.user_id)
                return self._answer(pending, params)
            if decision == "deny":
                if not await tx.delete_authorization_request(pending.id):
                    return ErrorPage(message=ALREADY_ANSWERED)
                audit("consent.denied", client_id=pending.client_id, sub=session.user_id)
                return self._refuse(pending, AccessDeniedError("The user denied the request."))
        return ErrorPage(message=CHOOSE)
