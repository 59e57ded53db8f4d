"""The browser side of the code flow: /authorize, the login page and the consent page.

A pending authorization request lives in the database, bound to the browser's session cookie, and both
forms carry its CSRF token; any worker can serve any step.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from tokenward.protocol import redirect_uri as redirect_rules
from tokenward.protocol.errors import AccessDeniedError, InvalidRequestError
from tokenward.protocol.form import parse_form
from tokenward.protocol.types import GrantType
from tokenward.server.audit import audit
from tokenward.server.authorization_server import AuthorizationServer
from tokenward.server.crypto import token_hash
from tokenward.server.endpoints.authorize import (
    AuthorizationPageError,
    AuthorizationRedirectError,
    error_redirect,
    issue_code,
    redirect_to_client,
    validate_authorization_request,
)
from tokenward.server.model import AuthorizationRequest, Session
from tokenward.server.passwords import verify_password_async
from tokenward.server.store.protocols import Transaction
from tokenward.server.web.http import read_body
from tokenward.server.web.security import (
    csrf_matches,
    new_session_secret,
    same_origin_post,
    session_hash_from,
    set_session_cookie,
)

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))

SCOPE_DESCRIPTIONS = {
    "profile:read": "Read your profile",
    "profile:write": "Change your profile",
}
# Scopes whose grant changes nothing the page could describe: for a plain OAuth request a refresh token comes
# with the client's refresh grant, not with offline_access (#9 gives it meaning for openid requests).
_NOT_LISTED = frozenset({"offline_access"})


def server_of(request: Request) -> AuthorizationServer:
    server: AuthorizationServer = request.app.state.server
    return server


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    return templates.TemplateResponse(request, name, context, status_code=status)


ALREADY_ANSWERED = "This sign-in request has already been answered. Go back to the application."


def error_page(request: Request, message: str, status: int = 400) -> Response:
    return render(request, "error.html", {"message": message}, status)


def see_other(url: str) -> Response:
    """303 after every form POST and authorization step (RFC 9700 §4.12: never 307)."""
    return RedirectResponse(url, status_code=303)


async def authorize(request: Request) -> Response:
    """GET /authorize: validate, remember the request for this browser, then log in or ask consent.

    Nothing is written until the request is fully valid (issue #12 §2.6): an unknown client, a bad redirect
    or a bad parameter costs a read, never a session or pending-request row, and sets no cookie. Creating a
    pending request (kept ``authorization_request_ttl``) is limited per IP address.
    """
    server = server_of(request)
    settings = server.settings
    now = int(time.time())
    session_hash = session_hash_from(request, settings)
    new_secret: str | None = None
    async with server.store.transaction() as tx:
        session = await tx.get_session(session_hash, now) if session_hash else None
        if session is None:
            new_secret = new_session_secret()
        bound_to = session.id_hash if session else token_hash(new_secret or "")
        try:
            pending = await validate_authorization_request(tx, settings, request.url.query, now, bound_to)
        except AuthorizationPageError as exc:
            return error_page(request, exc.message)
        except AuthorizationRedirectError as exc:
            return see_other(error_redirect(settings, exc))
    limited = server.limiter.authorize_keys(request.client.host if request.client else None)
    wait = await server.limiter.retry_after(limited)
    if wait:
        response = error_page(request, f"Too many sign-in requests from your network. Try again in {wait} seconds.",
                              429)
        response.headers["Retry-After"] = str(wait)
        return response
    async with server.store.transaction(write=True) as tx:
        if session is None:
            session = Session(id_hash=pending.session_hash, user_id=None, created_at=now,
                              expires_at=now + settings.session_ttl)
            await tx.save_session(session)
        await tx.save_authorization_request(pending)
    await server.limiter.record(limited)  # counts requests, not failures: the limit caps stored rows
    step = "consent" if session.user_id else "login"
    response = see_other(f"/{step}?request={pending.id}")
    if new_secret is not None:
        set_session_cookie(response, settings, new_secret)
    return response


async def _pending(request: Request, tx: Transaction, request_id: str | None,
                   now: int) -> tuple[AuthorizationRequest, Session] | Response:
    """The pending request, only if it belongs to this browser's session; otherwise an error page."""
    settings = server_of(request).settings
    session_hash = session_hash_from(request, settings)
    pending = await tx.get_authorization_request(request_id, now) if request_id else None
    session = await tx.get_session(session_hash, now) if session_hash else None
    if pending is None or session is None or not csrf_matches(pending.session_hash.hex(), session.id_hash.hex()):
        return error_page(request, "This sign-in request has expired or belongs to another browser. "
                                   "Go back to the application and start again.")
    return pending, session


async def _form(request: Request) -> dict[str, str] | Response:
    settings = server_of(request).settings
    if not same_origin_post(request, settings):
        return error_page(request, "This form was submitted from another site.", 403)
    try:
        return parse_form(await read_body(request, settings.max_body_bytes))
    except InvalidRequestError:
        return error_page(request, "The form could not be read.")


async def login(request: Request) -> Response:
    """GET shows the login form; POST checks the password, starts a fresh session and goes to consent."""
    server = server_of(request)
    settings = server.settings
    now = int(time.time())
    if request.method == "GET":
        async with server.store.transaction() as tx:
            found = await _pending(request, tx, request.query_params.get("request"), now)
            if isinstance(found, Response):
                return found
            pending, session = found
            if session.user_id:
                return see_other(f"/consent?request={pending.id}")
            client = await tx.get_client(pending.client_id)
        return render(request, "login.html", {"pending": pending, "client": client, "error": None})

    form = await _form(request)
    if isinstance(form, Response):
        return form
    username, password = form.get("username", ""), form.get("password", "")
    limited = server.limiter.login_keys(username, request.client.host if request.client else None)
    async with server.store.transaction(write=True) as tx:
        found = await _pending(request, tx, form.get("request"), now)
        if isinstance(found, Response):
            return found
        pending, session = found
        if not csrf_matches(pending.csrf_token, form.get("csrf_token")):
            return error_page(request, "The form has expired. Go back to the application and start again.", 403)
        # Counted before argon2 runs, atomically: concurrent guesses cannot all pass the check.
        reserved = await server.limiter.reserve(tx, limited)
        user = await tx.get_user_by_username(username)
        client = await tx.get_client(pending.client_id)
    if isinstance(reserved, int):  # same answer whether or not the user exists
        audit("login.failed", client_id=pending.client_id, reason="locked")
        response = render(request, "login.html", {"pending": pending, "client": client, "error":
                          f"Too many failed sign-in attempts. Try again in {reserved} seconds."}, 429)
        response.headers["Retry-After"] = str(reserved)
        return response
    # argon2 runs outside the transaction so a slow hash never holds the database lock, and in the hash
    # pool so it never stalls the event loop.
    ok = await verify_password_async(user.password_hash if user else None, password)
    if not ok or user is None:  # the failure was counted by the reservation
        audit("login.failed", client_id=pending.client_id, sub=user.id if user else None)
        return render(request, "login.html", {"pending": pending, "client": client,
                                              "error": "The username or password is incorrect."}, 401)
    secret = new_session_secret()  # a new session id at login (no session fixation)
    async with server.store.transaction(write=True) as tx:
        await server.limiter.succeeded(tx, reserved, clear=limited[0][0])
        await tx.delete_session(session.id_hash)
        await tx.save_session(Session(id_hash=token_hash(secret), user_id=user.id, created_at=now,
                                      expires_at=now + settings.session_ttl))
        await tx.rebind_authorization_request(pending.id, token_hash(secret))
    audit("login.succeeded", client_id=pending.client_id, sub=user.id)
    response = see_other(f"/consent?request={pending.id}")
    set_session_cookie(response, settings, secret)
    return response


async def consent(request: Request) -> Response:
    """GET asks for consent (or skips it if remembered); POST records the decision and redirects back."""
    server = server_of(request)
    settings = server.settings
    now = int(time.time())
    if request.method == "GET":
        async with server.store.transaction(write=True) as tx:
            found = await _pending(request, tx, request.query_params.get("request"), now)
            if isinstance(found, Response):
                return found
            pending, session = found
            if session.user_id is None:
                return see_other(f"/login?request={pending.id}")
            if (not _native_redirect(pending.redirect_uri)
                    and await tx.has_consent(session.user_id, pending.client_id, pending.scope)):
                return _code_redirect(request, await issue_code(tx, settings, pending, session.user_id, now))
            client = await tx.get_client(pending.client_id)
        scopes = [(s, SCOPE_DESCRIPTIONS.get(s, s)) for s in sorted(pending.scope) if s not in _NOT_LISTED]
        lasting = client is not None and GrantType.REFRESH_TOKEN in client.grant_types  # a refresh token follows
        return render(request, "consent.html",
                      {"pending": pending, "client": client, "scopes": scopes, "lasting": lasting})

    form = await _form(request)
    if isinstance(form, Response):
        return form
    async with server.store.transaction(write=True) as tx:
        found = await _pending(request, tx, form.get("request"), now)
        if isinstance(found, Response):
            return found
        pending, session = found
        if session.user_id is None:
            return see_other(f"/login?request={pending.id}")
        if not csrf_matches(pending.csrf_token, form.get("csrf_token")):
            return error_page(request, "The form has expired. Go back to the application and start again.", 403)
        decision = form.get("decision")
        if decision == "allow":
            await tx.save_consent(session.user_id, pending.client_id, pending.scope, now)
            location = await issue_code(tx, settings, pending, session.user_id, now)
            if location is not None:
                audit("consent.granted", client_id=pending.client_id, sub=session.user_id)
            return _code_redirect(request, location)
        if decision == "deny":
            if not await tx.delete_authorization_request(pending.id):
                return _code_redirect(request, None)
            audit("consent.denied", client_id=pending.client_id, sub=session.user_id)
            denied = AccessDeniedError("The user denied the request.").to_wire()
            return see_other(redirect_to_client(settings, pending.redirect_uri, denied, pending.state))
    return error_page(request, "Choose Allow or Deny.")


def _native_redirect(uri: str) -> bool:
    """A loopback or private-use-scheme redirect (RFC 8252 §7.1, §7.3) does not identify the app: any app on
    the device can claim it, so remembered consent is never applied to it silently (RFC 8252 §8.6)."""
    return redirect_rules.is_loopback(uri) or redirect_rules.is_private_use(uri)


def _code_redirect(request: Request, location: str | None) -> Response:
    """The redirect to the client, or (the request was answered by a concurrent submission) a plain page."""
    if location is None:
        return error_page(request, ALREADY_ANSWERED, 400)
    return see_other(location)


async def home(request: Request) -> Response:
    settings = server_of(request).settings
    return render(request, "home.html", {"issuer": settings.issuer})
