"""The browser pages of the code flow: /authorize, the login page and the consent page.

A thin adapter over :mod:`tokenward.server.endpoints.authorization_flow`: it reads the cookie, the query and
the forms, refuses cross-site form posts, and renders each outcome (a page, or a 303: RFC 9700 §4.12, never
307). Every decision is the flow's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from tokenward.protocol.errors import InvalidRequestError
from tokenward.protocol.form import parse_form
from tokenward.server.authorization_server import AuthorizationServer
from tokenward.server.endpoints.authorization_flow import (
    ErrorPage,
    FormPost,
    GoTo,
    Outcome,
    RedirectWithCode,
    RedirectWithError,
    ShowConsent,
    ShowLogin,
)
from tokenward.server.web.http import read_body
from tokenward.server.web.security import PAGE_CSP, same_origin_post, session_hash_from, set_session_cookie

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))

SCOPE_DESCRIPTIONS = {
    "profile:read": "Read your profile",
    "profile:write": "Change your profile",
}


def server_of(request: Request) -> AuthorizationServer:
    server: AuthorizationServer = request.app.state.server
    return server


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    return templates.TemplateResponse(request, name, context, status_code=status)


def error_page(request: Request, message: str, status: int = 400) -> Response:
    return render(request, "error.html", {"message": message}, status)


def see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def respond(request: Request, outcome: Outcome) -> Response:
    """Render one outcome of the flow."""
    response: Response
    retry_after: int | None = None
    match outcome:
        case ErrorPage():
            response = error_page(request, outcome.message, outcome.status)
            retry_after = outcome.retry_after
        case GoTo():
            response = see_other(f"/{outcome.step}?request={outcome.request_id}")
            if outcome.session_secret is not None:
                set_session_cookie(response, server_of(request).settings, outcome.session_secret)
        case ShowLogin():
            response = render(request, "login.html", {"pending": outcome.pending, "client": outcome.client,
                                                      "error": outcome.error, "login_hint": outcome.login_hint},
                              outcome.status)
            retry_after = outcome.retry_after
        case ShowConsent():
            scopes = [(s, SCOPE_DESCRIPTIONS.get(s, s)) for s in outcome.scopes]
            response = render(request, "consent.html", {"pending": outcome.pending, "client": outcome.client,
                                                        "scopes": scopes, "lasting": outcome.lasting})
        case RedirectWithCode() | RedirectWithError():
            response = see_other(outcome.location)
        case FormPost():
            # The form submits itself from a same-origin script file: no inline script, so the CSP stays
            # strict (script-src 'self' only here); without scripts the user presses Continue.
            response = render(request, "form_post.html", {"action": outcome.action, "fields": outcome.fields})
            response.headers["Content-Security-Policy"] = PAGE_CSP + "; script-src 'self'"
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


async def _form(request: Request) -> dict[str, str] | Response:
    settings = server_of(request).settings
    if not same_origin_post(request, settings):
        return error_page(request, "This form was submitted from another site.", 403)
    try:
        return parse_form(await read_body(request, settings.max_body_bytes))
    except InvalidRequestError:
        return error_page(request, "The form could not be read.")


async def authorize(request: Request) -> Response:
    """GET /authorize (RFC 6749 §4.1.1), and POST with the same parameters as a form body (OIDC Core
    §3.1.2.1). A relying party's page posts it from its own origin, so no same-origin check here."""
    server = server_of(request)
    if request.method == "POST":
        try:
            query = (await read_body(request, server.settings.max_body_bytes)).decode("utf-8")
        except (InvalidRequestError, UnicodeDecodeError):
            return error_page(request, "The authorization request is malformed.")
    else:
        query = request.url.query
    return respond(request, await server.authorization.start(
        query, session_hash_from(request, server.settings), client_ip(request)))


async def login(request: Request) -> Response:
    """GET shows the login form; POST checks the password, starts a fresh session and goes to consent."""
    server = server_of(request)
    session = session_hash_from(request, server.settings)
    if request.method == "GET":
        return respond(request, await server.authorization.show_login(request.query_params.get("request"), session))
    form = await _form(request)
    if isinstance(form, Response):
        return form
    return respond(request, await server.authorization.sign_in(
        form.get("request"), session, form.get("csrf_token"), form.get("username", ""), form.get("password", ""),
        client_ip(request)))


async def consent(request: Request) -> Response:
    """GET asks for consent (or skips it if remembered); POST records the decision and redirects back."""
    server = server_of(request)
    session = session_hash_from(request, server.settings)
    if request.method == "GET":
        return respond(request, await server.authorization.show_consent(request.query_params.get("request"),
                                                                        session))
    form = await _form(request)
    if isinstance(form, Response):
        return form
    return respond(request, await server.authorization.decide(form.get("request"), session,
                                                              form.get("csrf_token"), form.get("decision")))


async def home(request: Request) -> Response:
    settings = server_of(request).settings
    return render(request, "home.html", {"issuer": settings.issuer})
