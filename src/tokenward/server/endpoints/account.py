"""The user's own page (issue #13 part 3) without HTTP: sign in, see the connected apps, revoke one, sign out.

Revoking a client ends every grant family the user gave it (RFC 7009 §2.1's effect, chosen by the user:
refresh tokens answer ``invalid_grant``, access tokens are inactive at introspection and userinfo) and forgets
the remembered consent, so the client's next authorization asks again. Every form carries the CSRF token of
endpoints/end_session.py (an HMAC of the session cookie); the sign-in step is the shared one (sign_in.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tokenward.server.audit import audit
from tokenward.server.endpoints.end_session import (
    FORM_EXPIRED,
    Browser,
    LoggedOut,
    end_sso_session,
    form_csrf_token,
)
from tokenward.server.endpoints.sign_in import SignIn, SignInRefused, new_session_secret
from tokenward.server.model import ConnectedApp, User
from tokenward.server.rate_limit import RateLimiter
from tokenward.server.settings import Settings
from tokenward.server.store.protocols import Store

CHOOSE = "Choose an app to revoke, or Sign out."


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountLogin:
    """The sign-in form (username, password, csrf_token), posting to the account's sign-in step.
    ``cookie_secret`` is set when the browser had no cookie yet: the adapter sets it, the token is its HMAC."""

    csrf_token: str
    cookie_secret: str | None = field(default=None, repr=False)
    error: str | None = None
    status: int = 200
    retry_after: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountPage:
    user: User
    apps: Sequence[ConnectedApp]
    csrf_token: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountError:
    message: str
    status: int = 400


@dataclass(frozen=True, slots=True, kw_only=True)
class BackToAccount:
    """303 to /account (post/redirect/get), with the new session cookie after a sign-in."""

    session_secret: str | None = field(default=None, repr=False)


AccountOutcome = AccountLogin | AccountPage | AccountError | BackToAccount | LoggedOut


class Account:
    """Used by: the web adapter's GET/POST /account and POST /account/login (web/account_pages.py)."""

    def __init__(self, settings: Settings, store: Store, limiter: RateLimiter,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.sign_in_step = SignIn(limiter, settings.session_ttl)
        self.clock = clock

    @staticmethod
    def _login(browser: Browser, refused: SignInRefused | None = None) -> AccountLogin:
        secret, csrf = None, browser.csrf_token
        if csrf is None:
            secret = new_session_secret()  # not stored: a row is created only by a successful sign-in
            csrf = form_csrf_token(secret)
        if refused is None:
            return AccountLogin(csrf_token=csrf, cookie_secret=secret)
        return AccountLogin(csrf_token=csrf, cookie_secret=secret, error=refused.message, status=refused.status,
                            retry_after=refused.retry_after)

    async def show(self, browser: Browser) -> AccountOutcome:
        """GET /account: the connected apps of the signed-in user, or the sign-in form."""
        now = int(self.clock())
        async with self.store.transaction() as tx:
            session = await tx.get_session(browser.session_hash, now) if browser.session_hash else None
            user = await tx.get_user(session.user_id) if session and session.user_id else None
            if user is None or browser.csrf_token is None:
                return self._login(browser)
            apps = await tx.list_connected_apps(user.id, now)
        return AccountPage(user=user, apps=apps, csrf_token=browser.csrf_token)

    async def sign_in(self, browser: Browser, csrf_token: str | None, username: str, password: str,
                      ip: str | None) -> AccountOutcome:
        """POST /account/login: the shared sign-in step, then a fresh session (never the old cookie)."""
        if not browser.csrf_ok(csrf_token):
            return AccountError(message=FORM_EXPIRED, status=403)
        async with self.store.transaction(write=True) as tx:
            attempt = await self.sign_in_step.reserve(tx, username, ip)
        result = attempt if isinstance(attempt, SignInRefused) else await self.sign_in_step.verify(attempt, password)
        if isinstance(result, SignInRefused):
            audit("login.failed", sub=result.user_id, **({"reason": "locked"} if result.locked else {}))
            return self._login(browser, result)
        secret = new_session_secret()
        async with self.store.transaction(write=True) as tx:
            await self.sign_in_step.open_session(tx, result, browser.session_hash, int(self.clock()), secret)
        audit("login.succeeded", sub=result.user.id)
        return BackToAccount(session_secret=secret)

    async def act(self, browser: Browser, form: dict[str, str]) -> AccountOutcome:
        """POST /account: ``revoke=<client_id>`` or ``sign_out``."""
        if not browser.csrf_ok(form.get("csrf_token")):
            return AccountError(message=FORM_EXPIRED, status=403)
        now = int(self.clock())
        async with self.store.transaction(write=True) as tx:
            session = await tx.get_session(browser.session_hash, now) if browser.session_hash else None
            if session is None or session.user_id is None:
                return BackToAccount()  # signed out meanwhile: the sign-in form
            if "sign_out" in form:
                await end_sso_session(tx, session, via="account")
                return LoggedOut()
            client_id = form.get("revoke")
            if client_id is None or "\x00" in client_id:
                return AccountError(message=CHOOSE)
            revoked = await tx.revoke_user_client(session.user_id, client_id, now)
            forgotten = await tx.forget_consent(session.user_id, client_id)
        if revoked or forgotten:
            audit("grant.revoked_by_user", client_id=client_id, sub=session.user_id, grants=revoked)
        return BackToAccount()
