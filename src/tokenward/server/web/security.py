"""Browser-facing protections: security headers, the session cookie, and CSRF checks for the forms."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenward.server.crypto import token_hash
from tokenward.server.settings import Settings

# No form-action: Chromium applies it to the redirect after the consent POST and blocks it.
PAGE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'")


class SecurityHeadersMiddleware:
    """Pure ASGI middleware adding the RFC 9700 §4.16 / §4.2.4 headers to every response."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Content-Security-Policy", PAGE_CSP)
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Cache-Control", "no-store")
                if self.hsts:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def session_cookie_name(settings: Settings) -> str:
    """``__Host-`` prefixed on https, so the cookie is host-only, Secure and Path=/."""
    return "__Host-tw_session" if settings.secure_cookies else "tw_session"


def session_hash_from(request: Request, settings: Settings) -> bytes | None:
    value = request.cookies.get(session_cookie_name(settings))
    return token_hash(value) if value else None


def set_session_cookie(response: Response, settings: Settings, secret: str) -> None:
    response.set_cookie(session_cookie_name(settings), secret, max_age=settings.session_ttl, path="/",
                        httponly=True, samesite="lax", secure=settings.secure_cookies)


def same_origin_post(request: Request, settings: Settings) -> bool:
    """Reject form posts that a browser says came from another site (Sec-Fetch-Site, Origin).

    ``Origin: null`` is accepted: our pages send ``Referrer-Policy: no-referrer``, under which browsers send
    a null Origin even for same-origin POSTs (Fetch §3.2.5). The CSRF token, bound to the pending request
    and the session, is the defence that does not depend on browser headers.
    """
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    issuer = urlsplit(settings.issuer)
    return origin == f"{issuer.scheme}://{issuer.netloc}"

