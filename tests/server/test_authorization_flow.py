"""The browser flow's steps in-process (issue #13 Part 1): every branch of start → show_login / sign_in →
show_consent / decide, on a real database file (and PostgreSQL), with a frozen clock moved by hand."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import text

from tokenward.protocol.scope import Scope
from tokenward.protocol.types import GrantType
from tokenward.server.admin import add_user
from tokenward.server.crypto import SecretBox, token_hash
from tokenward.server.endpoints.authorization_flow import (
    ALREADY_ANSWERED,
    CHOOSE,
    EXPIRED,
    FORM_EXPIRED,
    AuthorizationFlow,
    ErrorPage,
    GoTo,
    Outcome,
    RedirectWithCode,
    RedirectWithError,
    ShowConsent,
    ShowLogin,
)
from tokenward.server.endpoints.sign_in import WRONG_CREDENTIALS
from tokenward.server.keys import KeyRing, ensure_signing_keys
from tokenward.server.model import Client
from tokenward.server.rate_limit import RateLimiter, RateLimitPolicies, RateLimitPolicy
from tokenward.server.settings import Settings
from tokenward.server.store.sql.engine import create_sync_engine
from tokenward.server.store.sql.store import SqlStore

ISSUER = "https://as.example"
WEB = "https://app.example/cb"
LOOPBACK = "http://127.0.0.1/cb"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
PASSWORD = "correct horse battery"
T0 = 1_900_000_000


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    flow: AuthorizationFlow
    store: SqlStore
    clock: Clock
    settings: Settings
    keys: KeyRing


async def _count(w: World, table: str) -> int:
    """Rows in ``table``, read on a connection of its own (what another worker would see)."""
    engine = create_sync_engine(w.settings.db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


ALL_SCOPES = "openid profile email profile:read offline_access"


def client(client_id: str, redirect: str = WEB, grants: tuple[GrantType, ...] = (
        GrantType.AUTHORIZATION_CODE, GrantType.REFRESH_TOKEN), scope: str = ALL_SCOPES,
           public: bool = True, pkce_optional: bool = False) -> Client:
    return Client(client_id=client_id, name=client_id.title(), public=public, redirect_uris=(redirect,),
                  grant_types=grants, scope=Scope.parse(scope), audiences=(), created_at=0,
                  secret_hash=None if public else token_hash("secret"), pkce_optional=pkce_optional)


def query(client_id: str = "app", redirect: str | None = WEB, **extra: str) -> str:
    params = {"response_type": "code", "client_id": client_id, "state": "st-1", "code_challenge": CHALLENGE,
              "code_challenge_method": "S256", **extra}
    if redirect is not None:
        params["redirect_uri"] = redirect
    return urlencode(params)


def run(db_url: str, body: Callable[[World], Awaitable[None]],
        policies: RateLimitPolicies | None = None) -> None:
    async def go() -> None:
        clock = Clock()
        settings = Settings(issuer=ISSUER, db_url=db_url, rate_limit_sync_seconds=0)
        store = SqlStore.from_url(db_url)
        limiter = RateLimiter(store, policies or RateLimitPolicies(), sync_seconds=0)
        box = SecretBox(os.urandom(32))
        async with store.transaction(write=True) as tx:
            await ensure_signing_keys(tx, box, settings.signing_algs, int(time.time()))
            await tx.save_client(client("app"))
            await tx.save_client(client("rp", public=False, pkce_optional=True))
            await tx.save_client(client("spa", pkce_optional=True))
            await tx.save_client(client("native", redirect=LOOPBACK))
            await tx.save_client(client("coder", grants=(GrantType.AUTHORIZATION_CODE,)))
        await add_user(store, "alice", PASSWORD)
        await add_user(store, "bob", PASSWORD)
        keys = KeyRing(store, box, cache_seconds=60)
        await keys.refresh()
        try:
            await body(World(AuthorizationFlow(settings, store, limiter, keys, clock=clock), store, clock, settings,
                             keys))
        finally:
            await store.close()

    asyncio.run(go())


async def signed_in(w: World, q: str | None = None, username: str = "alice") -> tuple[bytes, str]:
    """A browser that started a request and signed in: its session hash and the request id."""
    started = await w.flow.start(q or query(), None, "192.0.2.1")
    assert isinstance(started, GoTo) and started.step == "login" and started.session_secret
    login = await w.flow.show_login(started.request_id, token_hash(started.session_secret))
    assert isinstance(login, ShowLogin)
    done = await w.flow.sign_in(started.request_id, token_hash(started.session_secret), login.pending.csrf_token,
                                username, PASSWORD, "192.0.2.1")
    assert isinstance(done, GoTo) and done.step == "consent" and done.session_secret
    return token_hash(done.session_secret), done.request_id


async def consent_page(w: World, session: bytes, request_id: str) -> ShowConsent:
    shown = await w.flow.show_consent(request_id, session)
    assert isinstance(shown, ShowConsent), shown
    return shown


def redirect_params(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


# ---- start ----------------------------------------------------------------------------------------------------

PAGE_ERRORS = [
    ("malformed query", "client_id=%zz&x", "The authorization request is malformed."),
    ("no client_id", urlencode({"response_type": "code"}), "The request has no client_id."),
    ("unknown client", query(client_id="nobody"), "The client is not registered here."),
    ("unregistered redirect", query(redirect="https://evil.example/cb"),
     "The redirect_uri is not registered for this client."),
    ("duplicated client_id", query() + "&client_id=app",
     "The client_id or redirect_uri parameter was sent more than once."),
]


@pytest.mark.parametrize(("case", "q", "message"), PAGE_ERRORS, ids=[c[0] for c in PAGE_ERRORS])
def test_start_shows_an_error_page_and_writes_nothing_when_the_client_or_redirect_is_untrusted(
        db_url: str, case: str, q: str, message: str) -> None:
    async def body(w: World) -> None:
        outcome = await w.flow.start(q, None, "192.0.2.1")
        assert outcome == ErrorPage(message=message)
        assert await _count(w, "sessions") == 0
        assert await _count(w, "authorization_requests") == 0

    run(db_url, body)


REDIRECT_ERRORS = [
    ("no response_type", query().replace("response_type=code&", ""), "invalid_request"),
    ("token response_type", query().replace("response_type=code", "response_type=token"),
     "unsupported_response_type"),
    ("no PKCE", query().replace(f"&code_challenge={CHALLENGE}", ""), "invalid_request"),
    ("plain PKCE", query(code_challenge_method="plain"), "invalid_request"),
    ("scope beyond the client's", query(scope="admin"), "invalid_scope"),
    ("unknown resource", query(resource="https://other.example"), "invalid_target"),
    ("duplicated scope", query(scope="profile:read") + "&scope=x", "invalid_request"),
]


@pytest.mark.parametrize(("case", "q", "error"), REDIRECT_ERRORS, ids=[c[0] for c in REDIRECT_ERRORS])
def test_start_redirects_an_error_with_state_and_iss_once_the_redirect_is_trusted(
        db_url: str, case: str, q: str, error: str) -> None:
    async def body(w: World) -> None:
        outcome = await w.flow.start(q, None, "192.0.2.1")
        assert isinstance(outcome, RedirectWithError)
        assert outcome.location.startswith(WEB + "?")
        params = redirect_params(outcome.location)
        assert params["error"] == error and params["state"] == "st-1" and params["iss"] == ISSUER
        assert await _count(w, "authorization_requests") == 0

    run(db_url, body)


def test_start_without_a_session_creates_one_and_goes_to_login(db_url: str) -> None:
    async def body(w: World) -> None:
        outcome = await w.flow.start(query(), None, "192.0.2.1")
        assert isinstance(outcome, GoTo) and outcome.step == "login" and outcome.session_secret
        assert await _count(w, "sessions") == 1
        login = await w.flow.show_login(outcome.request_id, token_hash(outcome.session_secret))
        assert isinstance(login, ShowLogin) and login.pending.state == "st-1" and login.client is not None
        assert login.pending.expires_at == T0 + w.settings.authorization_request_ttl

    run(db_url, body)


def test_start_with_a_signed_in_session_goes_to_consent_without_a_new_cookie(db_url: str) -> None:
    async def body(w: World) -> None:
        session, _ = await signed_in(w)
        outcome = await w.flow.start(query(), session, "192.0.2.1")
        assert isinstance(outcome, GoTo) and outcome.step == "consent" and outcome.session_secret is None

    run(db_url, body)


def test_start_with_an_expired_session_starts_a_new_anonymous_one(db_url: str) -> None:
    async def body(w: World) -> None:
        session, _ = await signed_in(w)
        w.clock.now += w.settings.session_ttl + 1
        outcome = await w.flow.start(query(), session, "192.0.2.1")
        assert isinstance(outcome, GoTo) and outcome.step == "login" and outcome.session_secret

    run(db_url, body)


def test_start_is_limited_per_address_with_a_retry_after(db_url: str) -> None:
    policies = RateLimitPolicies(authorize_ip=RateLimitPolicy(2, 60, 60, 600))

    async def body(w: World) -> None:
        for _ in range(2):
            assert isinstance(await w.flow.start(query(), None, "192.0.2.9"), GoTo)
        refused = await w.flow.start(query(), None, "192.0.2.9")
        assert isinstance(refused, ErrorPage) and refused.status == 429
        assert refused.retry_after is not None and 1 <= refused.retry_after <= 60
        assert isinstance(await w.flow.start(query(), None, "198.51.100.1"), GoTo)  # another network is not
        assert await _count(w, "authorization_requests") == 3

    run(db_url, body, policies)


# ---- the pending request belongs to one browser ---------------------------------------------------------------

def test_a_pending_request_is_refused_to_another_session_when_unknown_and_after_it_expires(db_url: str) -> None:
    async def body(w: World) -> None:
        started = await w.flow.start(query(), None, "192.0.2.1")
        assert isinstance(started, GoTo) and started.session_secret
        mine = token_hash(started.session_secret)
        other = await w.flow.start(query(), None, "192.0.2.1")
        assert isinstance(other, GoTo) and other.session_secret
        theirs = token_hash(other.session_secret)
        for step in (w.flow.show_login, w.flow.show_consent):
            assert await step(started.request_id, theirs) == ErrorPage(message=EXPIRED)
            assert await step("no-such-request", mine) == ErrorPage(message=EXPIRED)
            assert await step(None, mine) == ErrorPage(message=EXPIRED)
            assert await step(started.request_id, None) == ErrorPage(message=EXPIRED)
        assert await w.flow.sign_in(started.request_id, theirs, "x", "alice", PASSWORD, None) == ErrorPage(
            message=EXPIRED)
        w.clock.now += w.settings.authorization_request_ttl + 1
        assert await w.flow.show_login(started.request_id, mine) == ErrorPage(message=EXPIRED)

    run(db_url, body)


# ---- sign_in ----------------------------------------------------------------------------------------------------

def test_sign_in_checks_csrf_then_the_password_and_says_the_same_for_an_unknown_user(db_url: str) -> None:
    async def body(w: World) -> None:
        started = await w.flow.start(query(), None, "192.0.2.1")
        assert isinstance(started, GoTo) and started.session_secret
        session = token_hash(started.session_secret)
        login = await w.flow.show_login(started.request_id, session)
        assert isinstance(login, ShowLogin)
        csrf = login.pending.csrf_token
        assert await w.flow.sign_in(started.request_id, session, "forged", "alice", PASSWORD, None) == ErrorPage(
            message=FORM_EXPIRED, status=403)
        assert await w.flow.sign_in(started.request_id, session, None, "alice", PASSWORD, None) == ErrorPage(
            message=FORM_EXPIRED, status=403)
        for username, password in (("alice", "wrong password"), ("mallory", PASSWORD)):
            refused = await w.flow.sign_in(started.request_id, session, csrf, username, password, "192.0.2.1")
            assert isinstance(refused, ShowLogin)
            assert (refused.status, refused.error, refused.retry_after) == (401, WRONG_CREDENTIALS, None)
        assert isinstance(await w.flow.show_consent(started.request_id, session), GoTo)  # still not signed in

    run(db_url, body)


def test_sign_in_locks_after_the_limit_even_for_the_right_password(db_url: str) -> None:
    policies = RateLimitPolicies(login_user=RateLimitPolicy(2, 300, 30, 900))

    async def body(w: World) -> None:
        started = await w.flow.start(query(), None, "192.0.2.1")
        assert isinstance(started, GoTo) and started.session_secret
        session = token_hash(started.session_secret)
        login = await w.flow.show_login(started.request_id, session)
        assert isinstance(login, ShowLogin)
        for _ in range(2):
            wrong = await w.flow.sign_in(started.request_id, session, login.pending.csrf_token, "alice", "nope",
                                         "192.0.2.1")
            assert isinstance(wrong, ShowLogin) and wrong.status == 401
        locked = await w.flow.sign_in(started.request_id, session, login.pending.csrf_token, "alice", PASSWORD,
                                      "192.0.2.1")
        assert isinstance(locked, ShowLogin) and locked.status == 429
        assert locked.retry_after is not None and 1 <= locked.retry_after <= 30

    run(db_url, body, policies)


def test_sign_in_replaces_the_session_and_moves_the_request_to_it(db_url: str) -> None:
    async def body(w: World) -> None:
        started = await w.flow.start(query(), None, "192.0.2.1")
        assert isinstance(started, GoTo) and started.session_secret
        old = token_hash(started.session_secret)
        login = await w.flow.show_login(started.request_id, old)
        assert isinstance(login, ShowLogin)
        done = await w.flow.sign_in(started.request_id, old, login.pending.csrf_token, "alice", PASSWORD, None)
        assert isinstance(done, GoTo) and done.session_secret and done.session_secret != started.session_secret
        new = token_hash(done.session_secret)
        assert await w.flow.show_consent(started.request_id, old) == ErrorPage(message=EXPIRED)  # old id is gone
        assert isinstance(await w.flow.show_consent(started.request_id, new), ShowConsent)
        assert await w.flow.show_login(started.request_id, new) == GoTo(step="consent", request_id=started.request_id)
        assert await _count(w, "sessions") == 1

    run(db_url, body)


# ---- show_consent ---------------------------------------------------------------------------------------------

def test_consent_page_lists_scopes_without_offline_access_and_says_when_access_lasts(db_url: str) -> None:
    async def body(w: World) -> None:
        session, request_id = await signed_in(w, query(scope="profile:read offline_access"))
        shown = await consent_page(w, session, request_id)
        assert shown.scopes == ("profile:read",) and shown.lasting
        started = await w.flow.start(query(client_id="coder"), session, None)
        assert isinstance(started, GoTo)
        shown = await consent_page(w, session, started.request_id)
        assert not shown.lasting  # a code-only client gets no refresh token, so the page does not promise one

    run(db_url, body)


@pytest.mark.parametrize(("client_id", "redirect", "silent"), [("app", WEB, True), ("native", LOOPBACK, False)])
def test_remembered_consent_answers_at_once_except_for_native_redirects(
        db_url: str, client_id: str, redirect: str, silent: bool) -> None:
    async def body(w: World) -> None:
        q = query(client_id=client_id, redirect=redirect, scope="profile:read")
        session, request_id = await signed_in(w, q)
        shown = await consent_page(w, session, request_id)
        allowed = await w.flow.decide(request_id, session, shown.pending.csrf_token, "allow")
        assert isinstance(allowed, RedirectWithCode)
        again = await w.flow.start(q, session, None)
        assert isinstance(again, GoTo) and again.step == "consent"
        second = await w.flow.show_consent(again.request_id, session)
        if silent:
            assert isinstance(second, RedirectWithCode) and "code" in redirect_params(second.location)
        else:
            assert isinstance(second, ShowConsent)  # RFC 8252 §8.6: any app can claim a loopback redirect
        wider = await w.flow.start(query(client_id=client_id, redirect=redirect,
                                         scope="profile:read offline_access"), session, None)
        assert isinstance(wider, GoTo)
        assert isinstance(await w.flow.show_consent(wider.request_id, session), ShowConsent)  # more scope: ask

    run(db_url, body)


# ---- decide -----------------------------------------------------------------------------------------------------

def test_allow_issues_one_code_with_state_and_iss_and_the_request_is_answered_once(db_url: str) -> None:
    async def body(w: World) -> None:
        session, request_id = await signed_in(w)
        csrf = (await consent_page(w, session, request_id)).pending.csrf_token
        assert await w.flow.decide(request_id, session, "forged", "allow") == ErrorPage(
            message=FORM_EXPIRED, status=403)
        assert await w.flow.decide(request_id, session, csrf, "maybe") == ErrorPage(message=CHOOSE)
        assert await w.flow.decide(request_id, session, csrf, None) == ErrorPage(message=CHOOSE)
        allowed = await w.flow.decide(request_id, session, csrf, "allow")
        assert isinstance(allowed, RedirectWithCode) and allowed.location.startswith(WEB + "?")
        params = redirect_params(allowed.location)
        assert params["code"].startswith("tw_ac_") and params["state"] == "st-1" and params["iss"] == ISSUER
        assert await _count(w, "authorization_codes") == 1
        assert await w.flow.decide(request_id, session, csrf, "allow") == ErrorPage(message=EXPIRED)
        assert await _count(w, "authorization_codes") == 1

    run(db_url, body)


def test_concurrent_allows_get_one_code_and_the_rest_a_page(db_url: str) -> None:
    async def body(w: World) -> None:
        session, request_id = await signed_in(w)
        csrf = (await consent_page(w, session, request_id)).pending.csrf_token
        outcomes = await asyncio.gather(*(w.flow.decide(request_id, session, csrf, "allow") for _ in range(5)))
        assert sum(isinstance(o, RedirectWithCode) for o in outcomes) == 1
        assert all(o in (ErrorPage(message=ALREADY_ANSWERED), ErrorPage(message=EXPIRED))
                   for o in outcomes if not isinstance(o, RedirectWithCode))
        assert await _count(w, "authorization_codes") == 1

    run(db_url, body)


def test_deny_redirects_access_denied_and_remembers_nothing(db_url: str) -> None:
    async def body(w: World) -> None:
        session, request_id = await signed_in(w)
        csrf = (await consent_page(w, session, request_id)).pending.csrf_token
        denied = await w.flow.decide(request_id, session, csrf, "deny")
        assert isinstance(denied, RedirectWithError)
        params = redirect_params(denied.location)
        assert (params["error"], params["state"], params["iss"]) == ("access_denied", "st-1", ISSUER)
        assert "code" not in params
        assert await _count(w, "consents") == 0
        assert await w.flow.decide(request_id, session, csrf, "deny") == ErrorPage(message=EXPIRED)

    run(db_url, body)


def test_consent_steps_send_an_anonymous_session_to_login(db_url: str) -> None:
    async def body(w: World) -> None:
        started = await w.flow.start(query(), None, None)
        assert isinstance(started, GoTo) and started.session_secret
        session = token_hash(started.session_secret)
        expected = GoTo(step="login", request_id=started.request_id)
        assert await w.flow.show_consent(started.request_id, session) == expected
        assert await w.flow.decide(started.request_id, session, "x", "allow") == expected
        assert await _count(w, "authorization_codes") == 0

    run(db_url, body)


def test_outcomes_never_show_secrets_in_their_repr(db_url: str) -> None:
    async def body(w: World) -> None:
        started = await w.flow.start(query(), None, None)
        assert isinstance(started, GoTo) and started.session_secret
        assert started.session_secret not in repr(started)
        session, request_id = await signed_in(w)
        shown = await consent_page(w, session, request_id)
        allowed: Outcome = await w.flow.decide(request_id, session, shown.pending.csrf_token, "allow")
        assert isinstance(allowed, RedirectWithCode)
        assert redirect_params(allowed.location)["code"] not in repr(allowed)
        assert shown.pending.csrf_token not in repr(shown)

    run(db_url, body)

