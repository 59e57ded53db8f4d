"""The browser pages of RP-initiated logout (/end_session) and of the user's account (/account).

A thin adapter over :mod:`tokenward.server.endpoints.end_session` and :mod:`tokenward.server.endpoints.account`:
it reads the cookie, the query and the forms, refuses cross-site form posts of our own forms, and renders each
outcome (a page, or a 303). The relying party's logout request itself may come from its own site (GET, or a
form POST: RP-Initiated Logout §2), so only the confirmation and account forms are same-origin only.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from tokenward.protocol.errors import InvalidRequestError
from tokenward.protocol.form import parse_form, parse_query
from tokenward.server.endpoints.account import (
    AccountError,
    AccountLogin,
    AccountOutcome,
    AccountPage,
    BackToAccount,
)
from tokenward.server.endpoints.end_session import Browser, ConfirmLogout, LoggedOut, LogoutError, LogoutOutcome
from tokenward.server.web.http import read_body
from tokenward.server.web.pages import SCOPE_DESCRIPTIONS, client_ip, error_page, render, see_other, server_of
from tokenward.server.web.security import same_origin_post, session_cookie_name, set_session_cookie


def isotime(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def browser_of(request: Request) -> Browser:
    return Browser(request.cookies.get(session_cookie_name(server_of(request).settings)) or None)


def clear_session_cookie(response: Response, request: Request) -> None:
    settings = server_of(request).settings
    response.delete_cookie(session_cookie_name(settings), path="/", httponly=True, samesite="lax",
                           secure=settings.secure_cookies)


async def _own_form(request: Request) -> dict[str, str] | Response:
    """A form of our own pages: same-origin only (the CSRF token is checked by the pipeline)."""
    settings = server_of(request).settings
    if not same_origin_post(request, settings):
        return error_page(request, "This form was submitted from another site.", 403)
    try:
        return parse_form(await read_body(request, settings.max_body_bytes))
    except InvalidRequestError:
        return error_page(request, "The form could not be read.")


def respond_logout(request: Request, outcome: LogoutOutcome) -> Response:
    response: Response
    match outcome:
        case LogoutError():
            return error_page(request, outcome.message, outcome.status)
        case ConfirmLogout():
            return render(request, "end_session.html", {"csrf_token": outcome.csrf_token, "fields": outcome.fields,
                                                        "client": outcome.client})
        case LoggedOut():
            if outcome.location is not None:
                response = see_other(outcome.location)
            else:
                response = render(request, "signed_out.html", {"client": outcome.client})
            clear_session_cookie(response, request)
            return response


def respond_account(request: Request, outcome: AccountOutcome) -> Response:
    response: Response
    match outcome:
        case AccountError():
            return error_page(request, outcome.message, outcome.status)
        case AccountLogin():
            response = render(request, "account_login.html", {"csrf_token": outcome.csrf_token,
                                                              "error": outcome.error}, outcome.status)
            if outcome.cookie_secret is not None:
                set_session_cookie(response, server_of(request).settings, outcome.cookie_secret)
            if outcome.retry_after is not None:
                response.headers["Retry-After"] = str(outcome.retry_after)
            return response
        case AccountPage():
            apps = [{"client_id": app.client_id, "name": app.client_name, "first_granted": isotime(app.first_granted),
                     "last_used": isotime(app.last_used),
                     "scopes": [(s, SCOPE_DESCRIPTIONS.get(s)) for s in sorted(app.scope)]} for app in outcome.apps]
            return render(request, "account.html", {"user": outcome.user, "apps": apps,
                                                    "csrf_token": outcome.csrf_token})
        case BackToAccount():
            response = see_other("/account")
            if outcome.session_secret is not None:
                set_session_cookie(response, server_of(request).settings, outcome.session_secret)
            return response
        case LoggedOut():
            return respond_logout(request, outcome)


async def end_session(request: Request) -> Response:
    """GET or POST /end_session (OpenID Connect RP-Initiated Logout 1.0 §2)."""
    server = server_of(request)
    try:
        if request.method == "POST":
            params = parse_form(await read_body(request, server.settings.max_body_bytes))
        else:
            params, duplicates = parse_query(request.url.query)
            if duplicates:
                raise InvalidRequestError("A parameter was sent more than once.")
    except InvalidRequestError:
        return error_page(request, "The logout request is malformed.")
    return respond_logout(request, await server.end_session.request(params, browser_of(request)))


async def end_session_confirm(request: Request) -> Response:
    """POST /end_session/confirm: the Sign out button of the confirmation page."""
    form = await _own_form(request)
    if isinstance(form, Response):
        return form
    return respond_logout(request, await server_of(request).end_session.confirm(form, browser_of(request)))


async def account(request: Request) -> Response:
    """GET /account: the connected apps, or the sign-in form; POST: revoke an app, or sign out."""
    server = server_of(request)
    if request.method == "GET":
        return respond_account(request, await server.account.show(browser_of(request)))
    form = await _own_form(request)
    if isinstance(form, Response):
        return form
    return respond_account(request, await server.account.act(browser_of(request), form))


async def account_login(request: Request) -> Response:
    """POST /account/login: the same username/password/csrf_token fields as the login page."""
    if request.method != "POST":
        return see_other("/account")
    form = await _own_form(request)
    if isinstance(form, Response):
        return form
    return respond_account(request, await server_of(request).account.sign_in(
        browser_of(request), form.get("csrf_token"), form.get("username", ""), form.get("password", ""),
        client_ip(request)))
