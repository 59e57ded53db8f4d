"""The device verification page ``GET/POST /device`` (RFC 8628 §3.3): a thin adapter over
:mod:`tokenward.server.endpoints.device_verification`.

One URL, four forms: the code (``user_code``), the sign-in (``username``, ``password``), the decision
(``decision`` = ``allow``/``deny``); which step a POST is follows from the fields it carries. Cross-site posts
are refused; frame, CSP and cache headers come from the security middleware like on every page.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from tokenward.protocol.errors import InvalidRequestError
from tokenward.protocol.form import parse_form
from tokenward.server.endpoints.device_verification import (
    DeviceDecided,
    DeviceErrorPage,
    Outcome,
    ShowCodeForm,
    ShowDeviceConsent,
    ShowDeviceSignIn,
)
from tokenward.server.web.http import read_body
from tokenward.server.web.pages import SCOPE_DESCRIPTIONS, client_ip, error_page, render, server_of
from tokenward.server.web.security import same_origin_post, session_hash_from, set_session_cookie


def _when(ts: int) -> str:
    ago = max(0, int(time.time()) - ts)
    minutes = ago // 60
    text = "just now" if ago < 60 else f"{minutes} minute{'s' if minutes != 1 else ''} ago"
    return f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(ts))} ({text})"


def respond(request: Request, outcome: Outcome) -> Response:
    response: Response
    retry_after: int | None = None
    secret: str | None = None
    match outcome:
        case DeviceErrorPage():
            response = error_page(request, outcome.message, outcome.status)
            retry_after = outcome.retry_after
        case ShowCodeForm():
            response = render(request, "device.html", {"outcome": outcome}, outcome.status)
            retry_after, secret = outcome.retry_after, outcome.session_secret
        case ShowDeviceSignIn():
            response = render(request, "device_login.html", {"outcome": outcome}, outcome.status)
            retry_after = outcome.retry_after
        case ShowDeviceConsent():
            scopes = [(s, SCOPE_DESCRIPTIONS.get(s, s)) for s in outcome.scopes]
            response = render(request, "device_consent.html", {
                "outcome": outcome, "scopes": scopes, "when": _when(outcome.device.created_at)})
            secret = outcome.session_secret
        case DeviceDecided():
            response = render(request, "device_done.html", {"outcome": outcome})
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    if secret is not None:
        set_session_cookie(response, server_of(request).settings, secret)
    return response


async def device(request: Request) -> Response:
    """GET shows the code form; POST enters the code, signs in, or decides (by the fields it carries)."""
    server = server_of(request)
    flow = server.device_verification
    session = session_hash_from(request, server.settings)
    if request.method == "GET":
        return respond(request, await flow.show(request.query_params.get("user_code"), session, client_ip(request)))
    if not same_origin_post(request, server.settings):
        return error_page(request, "This form was submitted from another site.", 403)
    try:
        form = parse_form(await read_body(request, server.settings.max_body_bytes))
    except InvalidRequestError:
        return error_page(request, "The form could not be read.")
    csrf, code = form.get("csrf_token"), form.get("user_code", "")
    if "decision" in form:
        return respond(request, await flow.decide(session, csrf, code, form.get("decision")))
    if "username" in form or "password" in form:
        return respond(request, await flow.sign_in(session, csrf, code, form.get("username", ""),
                                                   form.get("password", ""), client_ip(request)))
    return respond(request, await flow.enter_code(session, csrf, code, client_ip(request)))
