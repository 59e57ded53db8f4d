"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2-§3) without HTTP: ends the browser's SSO
session, then sends it back to the relying party only to a ``post_logout_redirect_uri`` registered for the
client (exact match), never anywhere else.

With an ``id_token_hint`` we signed, for the user (and ``sid``) of the current session, the logout happens at
once (§2: the hint shows the request comes from a relying party the user signed in to). Otherwise the user is
asked first (§2: "the OP SHOULD ask the End-User whether to log out"), on a page whose form carries a CSRF
token. The forms of the account page (endpoints/account.py) use the same token.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from tokenward.server.audit import audit
from tokenward.server.crypto import token_hash
from tokenward.server.endpoints.authorize import MAX_PARAMETER_BYTES, MAX_STATE_BYTES
from tokenward.server.id_token import read_own_id_token
from tokenward.server.keys import KeyRing
from tokenward.server.model import Client, Session
from tokenward.server.settings import Settings
from tokenward.server.store.protocols import Store, Transaction

FORM_EXPIRED = "The form has expired. Reload the page and try again."
MAX_HINT_BYTES = 8192  # read_own_id_token refuses longer tokens too
_PARAMETER_TOO_LONG = "A parameter exceeds 2048 bytes (state: 1024, id_token_hint: 8192)."
_CAPS = {"state": MAX_STATE_BYTES, "id_token_hint": MAX_HINT_BYTES}
LOGOUT_FIELDS = ("client_id", "post_logout_redirect_uri", "state")
_FORM_PURPOSE = b"tokenward browser form v1"


def form_csrf_token(cookie_secret: str) -> str:
    """The CSRF token of the sign-out and account forms: an HMAC of the browser's session cookie, which the
    database never sees (it keeps the cookie's hash), so only this browser's pages can carry it (OWASP CSRF
    cheat sheet, "signed double-submit cookie"). A new cookie (every sign-in) gives a new token."""
    return hmac.new(cookie_secret.encode(), _FORM_PURPOSE, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Browser:
    """What the browser presented: its session cookie's value, if any."""

    cookie_secret: str | None = field(default=None, repr=False)

    @property
    def session_hash(self) -> bytes | None:
        return token_hash(self.cookie_secret) if self.cookie_secret else None

    @property
    def csrf_token(self) -> str | None:
        return form_csrf_token(self.cookie_secret) if self.cookie_secret else None

    def csrf_ok(self, presented: str | None) -> bool:
        expected = self.csrf_token
        return expected is not None and presented is not None and hmac.compare_digest(
            expected.encode(), presented.encode())


@dataclass(frozen=True, slots=True, kw_only=True)
class LogoutError:
    """A page saying what is wrong with the request; nothing was ended, nobody is redirected."""

    message: str
    status: int = 400


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmLogout:
    """Ask the user before signing out: a form posting ``fields`` and ``csrf_token`` to the confirm step."""

    csrf_token: str
    fields: dict[str, str]
    client: Client | None


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedOut:
    """Signed out: a 303 to ``location`` (registered for the client, with ``state``), or a page saying so.
    The cookie is cleared either way."""

    location: str | None = None
    client: Client | None = None


LogoutOutcome = LogoutError | ConfirmLogout | LoggedOut


def with_state(uri: str, state: str | None) -> str:
    """The post-logout redirect with ``state`` added to the registered URI's query (§3)."""
    if state is None:
        return uri
    parts = urlsplit(uri)
    query = "&".join(q for q in (parts.query, urlencode({"state": state})) if q)
    return urlunsplit(parts._replace(query=query))


async def end_sso_session(tx: Transaction, session: Session, *, via: str, client_id: str | None = None) -> None:
    """Delete the session row (its cookie then names nothing); pending requests bound to it die with it."""
    await tx.delete_session(session.id_hash)
    if session.user_id is not None:
        audit("session.ended", client_id=client_id, sub=session.user_id, via=via)


def _audience(claims: dict[str, Any]) -> tuple[str, ...]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list):
        return tuple(a for a in aud if isinstance(a, str))
    return ()


class EndSession:
    """Used by: the web adapter's GET/POST /end_session and POST /end_session/confirm (web/account_pages.py)."""

    def __init__(self, settings: Settings, store: Store, keys: KeyRing, clock: Callable[[], float] = time.time
                 ) -> None:
        self.settings = settings
        self.store = store
        self.keys = keys
        self.clock = clock

    async def _client(self, tx: Transaction, client_id: str | None) -> Client | None:
        return await tx.get_client(client_id) if client_id and "\x00" not in client_id else None

    @staticmethod
    def _target(client: Client | None, params: dict[str, str]) -> str | None:
        """The redirect, only when registered for the client (exact string match, §3)."""
        uri = params.get("post_logout_redirect_uri")
        if client is None or uri is None or uri not in client.post_logout_redirect_uris:
            return None
        return with_state(uri, params.get("state"))

    async def request(self, params: dict[str, str], browser: Browser) -> LogoutOutcome:
        """The logout request (§2): ``id_token_hint``, ``client_id``, ``post_logout_redirect_uri``, ``state``;
        ``logout_hint`` and ``ui_locales`` are accepted and not needed (one session per browser, one language)."""
        for name, value in params.items():
            if len(value.encode()) > _CAPS.get(name, MAX_PARAMETER_BYTES):
                return LogoutError(message=_PARAMETER_TOO_LONG)
        hint = params.get("id_token_hint")
        claims = await read_own_id_token(self.keys, hint, self.settings.issuer) if hint else None
        client_id = params.get("client_id")
        if claims is not None:
            audience = _audience(claims)
            if client_id is not None and client_id not in audience:
                return LogoutError(message="The client_id does not match the id_token_hint.")
            client_id = client_id or (audience[0] if len(audience) == 1 else claims.get("azp"))
        elif hint is not None:
            # Tampered, foreign or not an ID token: it names nobody, so no redirect follows whatever else
            # the request says, and the user decides.
            client_id = None
            params = {k: v for k, v in params.items() if k == "state"}
        now = int(self.clock())
        async with self.store.transaction(write=True) as tx:
            client = await self._client(tx, client_id)
            if client_id is not None and client is None and claims is None:
                return LogoutError(message="The client_id names no registered client.")
            session = await tx.get_session(browser.session_hash, now) if browser.session_hash else None
            target = self._target(client, params)
            if session is None or session.user_id is None:
                if session is not None:
                    await tx.delete_session(session.id_hash)
                return LoggedOut(location=target, client=client)  # nobody signed in: nothing to ask
            matches = (claims is not None and claims.get("sub") == session.user_id
                       and claims.get("sid", session.sid) == session.sid)
            if matches:
                await end_sso_session(tx, session, via="end_session", client_id=client.client_id if client else None)
                return LoggedOut(location=target, client=client)
        assert browser.csrf_token is not None  # a session implies a cookie
        fields = {"state": params["state"]} if "state" in params else {}
        if client is not None:
            fields["client_id"] = client.client_id
            if target is not None:
                fields["post_logout_redirect_uri"] = params["post_logout_redirect_uri"]
        return ConfirmLogout(csrf_token=browser.csrf_token, fields=fields, client=client)

    async def confirm(self, form: dict[str, str], browser: Browser) -> LogoutOutcome:
        """The user pressed Sign out on the confirmation page: end the session, then go back only to a
        URI registered for the client the form names."""
        if not browser.csrf_ok(form.get("csrf_token")):
            return LogoutError(message=FORM_EXPIRED, status=403)
        params = {k: form[k] for k in LOGOUT_FIELDS if k in form}
        for name, value in params.items():
            if len(value.encode()) > _CAPS.get(name, MAX_PARAMETER_BYTES):
                return LogoutError(message=_PARAMETER_TOO_LONG)
        now = int(self.clock())
        async with self.store.transaction(write=True) as tx:
            client = await self._client(tx, params.get("client_id"))
            session = await tx.get_session(browser.session_hash, now) if browser.session_hash else None
            if session is not None:
                await end_sso_session(tx, session, via="end_session", client_id=client.client_id if client else None)
            return LoggedOut(location=self._target(client, params), client=client)
