"""Sign-in for CLIs and desktop apps (RFC 8252): authorization code + PKCE through a loopback redirect.

A one-shot HTTP listener on 127.0.0.1 and a free port receives the redirect at ``/callback`` (a server that
registered ``http://127.0.0.1/callback`` accepts any port, §7.3). It checks ``state`` and ``iss`` itself, so
the page the browser shows tells the truth, and it never logs the query (it carries the code).
"""

from __future__ import annotations

import html
import threading
import time
import webbrowser
from collections.abc import Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

import httpx2

from tokenward.client.discovery import ServerMetadata
from tokenward.client.errors import AuthorizationError, DiscoveryError, IdTokenError, LoginTimeoutError
from tokenward.client.flow import (
    AuthorizationRequest,
    ClientConfig,
    HttpResponse,
    Token,
    code_token_request,
    parse_authorization_response,
    parse_token_response,
    start_authorization,
    state_matches,
)
from tokenward.client.oidc import id_token_algorithms, jwks_request, login_scope, parse_jwks, validate_id_token
from tokenward.client.store import TokenStore

PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Referrer-Policy": "no-referrer",  # the URL holds the code: never send it onwards
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Connection": "close",
}


def _page(title: str, text: str) -> bytes:
    return (f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></html>").encode()


class LoopbackListener:
    """Waits for one authorization response on ``http://127.0.0.1:<port><path>``.

    A request whose ``state`` is not the pending one is answered 400 and ignored (it is not ours, and must
    not end the login); the first matching one ends it, with the code or with the error it carries.
    """

    def __init__(self, *, port: int = 0, path: str = "/callback") -> None:
        self.path = path
        self._pending: AuthorizationRequest | None = None
        self._code: str | None = None
        self._error: AuthorizationError | None = None
        self._done = threading.Event()
        self._guard = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="tokenward-loopback", daemon=True)
        self._thread.start()

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def expect(self, request: AuthorizationRequest) -> None:
        self._pending = request

    def wait(self, timeout: float) -> str:
        """The authorization code, or the error of the response (``LoginTimeoutError`` after ``timeout``)."""
        if not self._done.wait(timeout):
            raise LoginTimeoutError(timeout)
        if self._error is not None:
            raise self._error
        assert self._code is not None
        return self._code

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackListener:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _handle(self, target: str) -> tuple[int, bytes]:
        url = urlsplit(target)
        if url.path != self.path:
            return 404, _page("Not found", "This is the sign-in listener of a command-line app.")
        params = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        with self._guard:
            pending = self._pending
            if self._code is not None or self._error is not None:
                return 410, _page("Already done", "This sign-in is already finished. You can close this window.")
            if pending is None or not state_matches(pending, params):
                return 400, _page("Unknown sign-in", "This response does not belong to the sign-in in progress.")
            try:
                self._code = parse_authorization_response(pending, params)
            except AuthorizationError as exc:
                self._error = exc
                status, page = 400, _page("Sign-in failed", f"{exc.error}. Return to the terminal for details.")
            else:
                status, page = 200, _page("Signed in", "You can close this window and return to the terminal.")
            return status, page

    def _finish(self) -> None:
        if self._code is not None or self._error is not None:
            self._done.set()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        listener = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a browser's idle pre-connection must not hold a thread for long
            server_version = "tokenward-login"
            sys_version = ""

            def do_GET(self) -> None:
                status, body = listener._handle(self.path)
                self.send_response(status)
                for name, value in PAGE_HEADERS.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                listener._finish()

            def log_message(self, format: str, *args: object) -> None:
                """Silent: the request line carries the authorization code."""

        return Handler


def _response(reply: httpx2.Response) -> HttpResponse:
    return HttpResponse(reply.status_code, {k.lower(): v for k, v in reply.headers.items()}, reply.content)


def login(metadata: ServerMetadata, client: ClientConfig | str, *, store: TokenStore, scope: str | None = None,
          open_browser: Callable[[str], object] | None = webbrowser.open,
          on_url: Callable[[str], None] | None = None, timeout: float = 300.0, port: int = 0,
          http: httpx2.Client | None = None) -> Token:
    """Sign the user in and save the tokens to ``store``.

    ``on_url`` receives the authorization URL (print it for ``--no-browser``); ``open_browser`` opens it
    (``None`` to skip). The code is exchanged with the PKCE verifier of this very request. With ``openid`` in
    ``scope`` the login is OpenID Connect: a nonce is sent, ``offline_access`` is asked for when the provider
    lists it, and the ID token is validated (client/oidc.py) before anything is stored; its claims are kept
    in ``Token.id_claims``.
    """
    client = ClientConfig(client) if isinstance(client, str) else client
    scope = login_scope(scope, metadata)
    if metadata.authorization_endpoint is None:
        raise DiscoveryError("the server's metadata has no authorization_endpoint")
    with LoopbackListener(port=port) as listener:
        pending = start_authorization(metadata.authorization_endpoint, client.client_id, listener.redirect_uri,
                                      issuer=metadata.issuer, scope=scope,
                                      require_iss=metadata.iss_parameter_supported)
        listener.expect(pending)
        if on_url is not None:
            on_url(pending.url)
        if open_browser is not None:
            open_browser(pending.url)
        code = listener.wait(timeout)
    request = code_token_request(metadata.token_endpoint, client, code, pending.redirect_uri, pending.code_verifier)
    own = http is None
    sender = http or httpx2.Client(timeout=30)
    try:
        reply = sender.post(request.url, headers=dict(request.headers), content=request.body)
        token = parse_token_response(_response(reply), requested_scope=scope)
        if pending.nonce is not None:
            if not token.id_token:
                raise IdTokenError("missing", "the token response of an OpenID Connect login has no id_token")
            keys = parse_jwks(_response(sender.get(jwks_request(metadata).url,
                                                   headers={"Accept": "application/json"})))
            claims = validate_id_token(token.id_token, keys, issuer=metadata.issuer, client_id=client.client_id,
                                       algorithms=id_token_algorithms(metadata), now=time.time(),
                                       nonce=pending.nonce, access_token=token.access_token)
            token = replace(token, id_claims=claims)
        else:
            token = replace(token, id_token=None, id_claims=None)  # not asked for: nothing unverified is kept
    finally:
        if own:
            sender.close()
    store.save(token)
    return token
