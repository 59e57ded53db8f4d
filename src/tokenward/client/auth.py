"""Self-renewing bearer auth for httpx2, httpx (sync and async clients) and requests.

The rules (issue #4, design README example 11):

- refresh *before* expiry: ``leeway`` seconds (60) or ``leeway_fraction`` (1/4) of the lifetime, whichever is
  smaller, so short-lived tokens are not refreshed on every call;
- on a 401 with ``error="invalid_token"``: refresh once and retry once, never loop, and never re-send a
  body that cannot be replayed;
- the token goes only to the origin of the request it was attached to: a 401 from another origin (the end
  of a cross-origin redirect) is returned as it is, never answered with the token or a refresh (RFC 6750
  §5.3, RFC 9700 §4.10: a bearer token is usable by whoever receives it);
- single flight: a ``threading.Lock`` (sync) or an ``asyncio.Lock`` per event loop (async), then the store's
  cross-process file lock, then *re-read the store* and refresh only if the token is still stale;
- the rotated refresh token is saved before the new access token is used, so a crash right after the
  refresh response loses nothing;
- ``invalid_grant`` clears the stored tokens and raises ``LoginRequiredError``;
- client-credentials clients just fetch a new token.

The refresh request is built and parsed by the sans-IO ``TokenManager.refresh_steps`` generator; each
adapter only carries bytes, so the httpx adapters *yield* the refresh request to the client in use
(its transport, proxies and TLS settings apply).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import httpx2

from tokenward.client.discovery import ServerMetadata, discover
from tokenward.client.errors import ClientError, IdTokenError, LoginRequiredError, StoreError, TokenEndpointError
from tokenward.client.flow import (
    ClientConfig,
    HttpRequest,
    HttpResponse,
    Token,
    client_credentials_request,
    parse_token_response,
    refresh_token_request,
)
from tokenward.client.oidc import check_refreshed, id_token_algorithms, jwks_request, parse_jwks, validate_id_token
from tokenward.client.store import MemoryTokenStore, TokenStore, default_store

if TYPE_CHECKING:
    import requests
    from requests.auth import AuthBase as _RequestsAuthBase

    _HttpxAuth = httpx2.Auth
    _NOT_READ: tuple[type[Exception], ...] = (httpx2.RequestNotRead,)
else:
    try:
        from requests.auth import AuthBase as _RequestsAuthBase
    except ImportError:  # requests is an optional extra
        _RequestsAuthBase = object
    try:
        import httpx
    except ImportError:  # legacy httpx is an optional extra
        _HttpxAuth = httpx2.Auth
        _NOT_READ = (httpx2.RequestNotRead,)
    else:
        class _HttpxAuth(httpx2.Auth, httpx.Auth):
            """Both libraries' base class, so each accepts the same object as ``auth=``."""

        _NOT_READ = (httpx2.RequestNotRead, httpx.RequestNotRead)

logger = logging.getLogger("tokenward.client")

Grant = Literal["refresh_token", "client_credentials"]
RefreshSteps = Generator[HttpRequest, HttpResponse, Token]
OnRefresh = Callable[[Token, "Token | None"], None]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, the default port spelled out (RFC 6454 §4)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


_INVALID_TOKEN = re.compile(r'\berror\s*=\s*"?invalid_token"?', re.IGNORECASE)


def is_invalid_token(status: int, challenges: list[str]) -> bool:
    """A 401 whose Bearer challenge says ``error="invalid_token"`` (RFC 6750 §3.1): a refresh may help.

    Other 401s (no token, wrong scheme) and 403 ``insufficient_scope`` would fail again with a new token.
    """
    return status == 401 and any("bearer" in c.lower() and _INVALID_TOKEN.search(c) for c in challenges)


def drive(steps: RefreshSteps, send: Callable[[HttpRequest], HttpResponse]) -> Token:
    """Run a sans-IO refresh with a blocking ``send``."""
    try:
        request = next(steps)
        while True:
            request = steps.send(send(request))
    except StopIteration as stop:
        token: Token = stop.value
        return token


async def drive_async(steps: RefreshSteps, send: Callable[[HttpRequest], Awaitable[HttpResponse]]) -> Token:
    """Run a sans-IO refresh with an awaitable ``send``."""
    try:
        request = next(steps)
        while True:
            request = steps.send(await send(request))
    except StopIteration as stop:
        token: Token = stop.value
        return token


class TokenManager:
    """One login's tokens: when to refresh, the locks around it, and the refresh itself (sans-IO).

    Shared by every adapter made from it, so an app's httpx2, httpx and requests clients refresh together.
    """

    def __init__(self, token_endpoint: str, client: ClientConfig | str, *, store: TokenStore | None = None,
                 grant: Grant = "refresh_token", scope: str | None = None, resource: str | None = None,
                 leeway: float = 60.0, leeway_fraction: float = 0.25, clock: Callable[[], float] = time.time,
                 on_refresh: OnRefresh | None = None, lock_timeout: float = 30.0,
                 oidc: ServerMetadata | None = None) -> None:
        if not 0 <= leeway_fraction < 1 or leeway < 0:
            raise ValueError("leeway must be >= 0 and leeway_fraction in [0, 1)")
        self.token_endpoint = token_endpoint
        self.client = ClientConfig(client) if isinstance(client, str) else client
        self.store: TokenStore = store if store is not None else MemoryTokenStore()
        self.grant = grant
        self.scope = scope
        self.resource = resource
        self.leeway = leeway
        self.leeway_fraction = leeway_fraction
        self.clock = clock
        self.on_refresh = on_refresh
        self.lock_timeout = lock_timeout
        self.oidc = oidc  # the provider's metadata: refreshed ID tokens are validated against its JWKS
        self._token: Token | None = None
        self._loaded = False
        self._thread_lock = threading.Lock()
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary())

    def __repr__(self) -> str:
        return f"TokenManager(client_id={self.client.client_id!r}, grant={self.grant!r}, store={self.store!r})"

    # -- decisions
    def current(self) -> Token | None:
        """The token in hand (read from the store once; later changes arrive through a refresh)."""
        if not self._loaded:
            self._token = self.store.load()
            self._loaded = True
        return self._token

    def is_fresh(self, token: Token | None) -> bool:
        if token is None:
            return False
        due = token.refresh_due_at(self.leeway, self.leeway_fraction)
        return due is None or self.clock() < due

    def usable(self) -> Token | None:
        """The current token if it needs no refresh, else None (then take the locks and refresh)."""
        token = self.current()
        return token if self.is_fresh(token) else None

    # -- locks
    @contextmanager
    def locked(self) -> Iterator[None]:
        """This process's threads, then other processes (through the store's file lock)."""
        if not self._thread_lock.acquire(timeout=self.lock_timeout):
            raise ClientError("timed out waiting for another thread's token refresh")
        try:
            lock = self.store.lock()
            if not lock.acquire(self.lock_timeout):
                raise ClientError("timed out waiting for another process's token refresh")
            try:
                yield
            finally:
                lock.release()
        finally:
            self._thread_lock.release()

    @asynccontextmanager
    async def locked_async(self) -> AsyncIterator[None]:
        """This loop's tasks (asyncio.Lock), then threads and processes, polled so the loop never blocks."""
        loop = asyncio.get_running_loop()
        task_lock = self._async_locks.get(loop)
        if task_lock is None:
            task_lock = self._async_locks.setdefault(loop, asyncio.Lock())
        async with task_lock:
            deadline = time.monotonic() + self.lock_timeout
            await _poll(lambda: self._thread_lock.acquire(blocking=False), deadline, "another thread's")
            try:
                lock = self.store.lock()
                await _poll(lambda: lock.acquire(0), deadline, "another process's")
                try:
                    yield
                finally:
                    lock.release()
            finally:
                self._thread_lock.release()

    # -- the refresh, sans-IO; the caller holds ``locked()`` or ``locked_async()``
    def refresh_steps(self, rejected: str | None = None) -> RefreshSteps:
        """Re-check, then refresh only if still needed; yields at most one token request.

        ``rejected`` is the access token an API just refused: a token equal to it is stale however far
        its expiry is.
        """
        mine = self._token
        if self._loaded and mine is not None and mine.access_token != rejected and self.is_fresh(mine):
            return mine  # another thread or task refreshed while we waited
        stored = self.store.load()  # another process may have refreshed (and rotated) meanwhile
        self._loaded = True
        if stored is not None and stored.access_token != rejected and self.is_fresh(stored):
            self._token = stored
            return stored
        request = self._token_request(stored)
        reason = "rejected by the API" if rejected else ("missing" if stored is None else "expiring")
        logger.debug("requesting a new access token (%s)", reason)
        response = yield request
        try:
            token = parse_token_response(response, now=self.clock(), requested_scope=self.scope,
                                         previous=stored if self.grant == "refresh_token" else None)
        except LoginRequiredError:
            self.store.clear()
            self._token = None
            logger.warning("the refresh token was refused (invalid_grant): stored tokens cleared, login required")
            raise
        except TokenEndpointError as exc:
            if exc.transient and rejected is None and stored is not None and not stored.expired(self.clock()):
                logger.warning("token refresh failed (HTTP %s); using the current access token until it expires",
                               exc.status)
                self._token = stored
                return stored
            raise
        if token.id_token and token.id_claims is None:
            token = yield from self._refreshed_id_token(token, stored)
        try:
            self.store.save(token)  # the rotated refresh token is durable before the new access token is used
        except StoreError:
            self._token = token  # keep it in memory: the old refresh token is already spent
            raise
        self._token = token
        rotated = stored is not None and token.refresh_token != stored.refresh_token
        logger.info("access token renewed (%s); expires in %s s%s", reason,
                    "?" if token.lifetime is None else f"{token.lifetime:.0f}",
                    "; refresh token rotated and saved" if rotated else "")
        if self.on_refresh is not None:
            self.on_refresh(token, stored)
        return token

    def _refreshed_id_token(self, token: Token, stored: Token | None) -> Generator[HttpRequest, HttpResponse, Token]:
        """OIDC Core §12.2: a refresh answer's ID token is validated like the login's and must keep its
        ``iss``, ``sub`` and ``aud``. Without the provider's metadata, or for a login without verified claims,
        the login's ID token and claims are kept and the new one is dropped (never stored unverified)."""
        previous = stored.id_claims if stored is not None else None
        if self.oidc is None or previous is None or token.id_token is None:
            return replace(token, id_token=stored.id_token if stored else None, id_claims=previous)
        try:
            keys = parse_jwks((yield jwks_request(self.oidc)))
            claims = validate_id_token(token.id_token, keys, issuer=self.oidc.issuer,
                                       client_id=self.client.client_id, algorithms=id_token_algorithms(self.oidc),
                                       now=self.clock(), access_token=token.access_token)
            check_refreshed(claims, previous)
        except IdTokenError as exc:
            self.store.clear()  # the old refresh token may be spent; nothing of this answer is kept
            self._token = None
            logger.warning("the refreshed ID token was refused (%s): stored tokens cleared, login required",
                           exc.reason)
            raise
        return replace(token, id_claims=claims)

    def _token_request(self, stored: Token | None) -> HttpRequest:
        if self.grant == "client_credentials":
            return client_credentials_request(self.token_endpoint, self.client, self.scope, self.resource)
        if stored is None:
            raise LoginRequiredError("no tokens are stored for this login: sign in first (tokenward login)")
        if not stored.refresh_token:
            raise LoginRequiredError("the access token expired and there is no refresh token: sign in again")
        return refresh_token_request(self.token_endpoint, self.client, stored.refresh_token)

    # -- direct use (scripts, the CLI)
    def token(self, http: httpx2.Client | None = None) -> Token:
        """A valid token, refreshed if needed, sent with ``http`` (or a short-lived client)."""
        token = self.usable()
        if token is not None:
            return token
        own = http is None
        client = http or httpx2.Client(timeout=30)
        try:
            with self.locked():
                # auth=None: ``http`` may carry this very auth, whose lock we hold
                return drive(self.refresh_steps(),
                             lambda r: _from_httpx(client.send(_to_httpx(httpx2.Request, r), auth=None)))
        finally:
            if own:
                client.close()

    async def token_async(self, http: httpx2.AsyncClient | None = None) -> Token:
        token = self.usable()
        if token is not None:
            return token
        own = http is None
        client = http or httpx2.AsyncClient(timeout=30)

        async def send(request: HttpRequest) -> HttpResponse:
            return _from_httpx(await client.send(_to_httpx(httpx2.Request, request), auth=None))

        try:
            async with self.locked_async():
                return await drive_async(self.refresh_steps(), send)
        finally:
            if own:
                await client.aclose()

    def forget(self) -> None:
        """Drop the tokens here and in the store (logout)."""
        self.store.clear()
        self._token = None
        self._loaded = True


async def _poll(try_acquire: Callable[[], bool], deadline: float, whose: str) -> None:
    while not try_acquire():
        if time.monotonic() > deadline:
            raise ClientError(f"timed out waiting for {whose} token refresh")
        await asyncio.sleep(0.01)


def _to_httpx(request_class: Any, request: HttpRequest) -> Any:
    """The sans-IO request as a request of the same library as the one being sent (httpx2 or httpx)."""
    return request_class(request.method, request.url, headers=dict(request.headers), content=request.body)


def _from_httpx(response: Any) -> HttpResponse:
    headers: Mapping[str, str] = {k.lower(): v for k, v in response.headers.items()}
    return HttpResponse(int(response.status_code), headers, bytes(response.content))


def _replayable(request: httpx2.Request) -> bool:
    try:
        request.content  # noqa: B018 - raises when the body was a stream that is already consumed
    except _NOT_READ:
        return False
    return True


class BearerAuth(_HttpxAuth):
    """``auth=`` for ``httpx2.Client``/``AsyncClient`` and ``httpx.Client``/``AsyncClient`` alike.

    Construct it around a token endpoint and a client, or with ``from_login`` (the tokens ``tokenward login``
    stored) or ``for_client_credentials``. ``requests_auth()`` gives a requests adapter sharing its tokens and
    locks.
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(self, token_endpoint: str | TokenManager, client: ClientConfig | str | None = None,
                 **options: Any) -> None:
        if isinstance(token_endpoint, TokenManager):
            self.manager = token_endpoint
        else:
            if client is None:
                raise TypeError("BearerAuth needs a client (a client_id or a ClientConfig)")
            self.manager = TokenManager(token_endpoint, client, **options)

    @classmethod
    def from_login(cls, issuer: str, client_id: str, *, store: TokenStore | None = None,
                   metadata: ServerMetadata | None = None, **options: Any) -> BearerAuth:
        """Tokens from ``tokenward login --issuer ISSUER --client-id CLIENT_ID`` (same file, same chain)."""
        metadata = metadata or discover(issuer)
        options.setdefault("oidc", metadata)
        return cls(metadata.token_endpoint, client_id, store=store or default_store(issuer, client_id),
                   **options)

    @classmethod
    def for_client_credentials(cls, issuer: str, client_id: str, client_secret: str, *, scope: str | None = None,
                               metadata: ServerMetadata | None = None, **options: Any) -> BearerAuth:
        """A confidential client acting for itself (RFC 6749 §4.4): fetches a new token when needed."""
        metadata = metadata or discover(issuer)
        return cls(metadata.token_endpoint, ClientConfig(client_id, client_secret), grant="client_credentials",
                   scope=scope, **options)

    def __repr__(self) -> str:
        return f"BearerAuth({self.manager!r})"

    def token(self, http: httpx2.Client | None = None) -> Token:
        return self.manager.token(http)

    def requests_auth(self, session: requests.Session | None = None) -> RequestsAuth:
        return RequestsAuth(self.manager, session=session)

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        manager = self.manager
        rejected: str | None = None
        for attempt in range(2):
            token = None if attempt else manager.usable()
            if token is None:
                with manager.locked():
                    steps = manager.refresh_steps(rejected)
                    try:
                        outgoing = next(steps)
                        while True:
                            reply = yield _to_httpx(type(request), outgoing)
                            reply.read()
                            outgoing = steps.send(_from_httpx(reply))
                    except StopIteration as stop:
                        token = stop.value
            assert token is not None
            request.headers["Authorization"] = f"Bearer {token.access_token}"
            response = yield request
            if attempt or not self._retry(request, response):
                return
            rejected = token.access_token

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        manager = self.manager
        rejected: str | None = None
        for attempt in range(2):
            token = None if attempt else manager.usable()
            if token is None:
                async with manager.locked_async():
                    steps = manager.refresh_steps(rejected)
                    try:
                        outgoing = next(steps)
                        while True:
                            reply = yield _to_httpx(type(request), outgoing)
                            await reply.aread()
                            outgoing = steps.send(_from_httpx(reply))
                    except StopIteration as stop:
                        token = stop.value
            assert token is not None
            request.headers["Authorization"] = f"Bearer {token.access_token}"
            response = yield request
            if attempt or not self._retry(request, response):
                return
            rejected = token.access_token

    @staticmethod
    def _retry(request: httpx2.Request, response: httpx2.Response) -> bool:
        if not is_invalid_token(response.status_code, response.headers.get_list("www-authenticate")):
            return False
        if origin_of(str(response.request.url)) != origin_of(str(request.url)):
            # The client followed a redirect to another origin (which got no token: httpx drops Authorization
            # there); its 401 says nothing about our token, and a retry would only repeat the redirect.
            logger.warning("a 401 came from another origin than the token's (%s, after a redirect); "
                           "not refreshing", response.request.url.host)
            return False
        if not _replayable(request):
            logger.info("the API refused the access token; not retrying: the request body cannot be re-sent")
            return False
        logger.info("the API refused the access token (invalid_token); refreshing and retrying once")
        return True


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


class RequestsAuth(_RequestsAuthBase):
    """``auth=`` for requests: attaches the token, and a response hook refreshes once on a 401
    ``invalid_token`` and re-sends once through the same connection adapter.

    Token requests go through ``session`` (a private ``requests.Session`` by default).
    """

    def __init__(self, manager: TokenManager, session: requests.Session | None = None) -> None:
        self.manager = manager
        self._session = session
        self.timeout = 30.0

    def __repr__(self) -> str:
        return f"RequestsAuth({self.manager!r})"

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.manager.usable() or self._refresh(None)
        r.headers["Authorization"] = f"Bearer {token.access_token}"
        origin = origin_of(r.url or "")
        # requests copies the hooks onto every redirected request: the hook must know the token's origin.
        r.hooks["response"].append(lambda response, **kwargs: self._on_response(response, origin, **kwargs))
        return r

    def _send(self, request: HttpRequest) -> HttpResponse:
        if self._session is None:
            import requests

            self._session = requests.Session()
        # A no-op auth: the session may carry this very adapter (requests treats auth=None as "use the session's").
        response = self._session.request(request.method, request.url, headers=dict(request.headers),
                                         data=request.body, timeout=self.timeout, allow_redirects=False,
                                         auth=_no_auth)
        return HttpResponse(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                            response.content)

    def _refresh(self, rejected: str | None) -> Token:
        with self.manager.locked():
            return drive(self.manager.refresh_steps(rejected), self._send)

    def _on_response(self, r: requests.Response, origin: tuple[str, str, int | None], **kwargs: Any
                     ) -> requests.Response:
        if not is_invalid_token(r.status_code, [r.headers.get("www-authenticate", "")]):
            return r
        sent = r.request
        if origin_of(sent.url or "") != origin:
            # The end of a redirect to another origin: requests stripped the token there; never re-attach it
            # (the leak of issue #12 §2.3), and its 401 says nothing about our token.
            logger.warning("a 401 came from another origin than the token's (after a redirect); not refreshing")
            return r
        if sent.body is not None and not isinstance(sent.body, bytes | str):
            logger.info("the API refused the access token; not retrying: the request body cannot be re-sent")
            return r
        logger.info("the API refused the access token (invalid_token); refreshing and retrying once")
        rejected = (sent.headers.get("Authorization") or "").removeprefix("Bearer ")
        token = self._refresh(rejected)
        _ = r.content  # read and release the connection for the retry
        r.close()
        retry = sent.copy()
        retry.headers["Authorization"] = f"Bearer {token.access_token}"
        # The adapter sends without dispatching hooks, so the retry's own 401 comes back as is: no loop.
        new: requests.Response = r.connection.send(retry, **kwargs)
        new.history.append(r)
        new.request = retry
        return new
