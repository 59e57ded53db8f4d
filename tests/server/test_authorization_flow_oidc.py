"""The authorization flow's OpenID Connect branches in-process (issue #13 Part 1/2): prompt, max_age,
id_token_hint, login_hint, the claims parameter, request objects, response_mode=form_post and the PKCE opt-out,
on a real database with a frozen clock."""

from __future__ import annotations

import json

import pytest

from tests.server.test_authorization_flow import (
    ISSUER,
    LOOPBACK,
    T0,
    WEB,
    World,
    _count,
    client,
    consent_page,
    query,
    redirect_params,
    run,
    signed_in,
)
from tokenward.protocol.types import GrantType
from tokenward.server.crypto import token_hash
from tokenward.server.endpoints.authorization_flow import (
    ErrorPage,
    FormPost,
    GoTo,
    RedirectWithCode,
    RedirectWithError,
    ShowConsent,
    ShowLogin,
)
from tokenward.server.id_token import mint_id_token
from tokenward.server.model import AuthorizationCode

OIDC = "openid profile"


def oidc(**extra: str) -> str:
    return query(scope=extra.pop("scope", OIDC), **extra)


async def code_of(w: World, location: str) -> AuthorizationCode:
    async with w.store.transaction() as tx:
        code = await tx.get_code(token_hash(redirect_params(location)["code"]))
    assert code is not None
    return code


async def allow(w: World, session: bytes, request_id: str) -> RedirectWithCode:
    shown = await consent_page(w, session, request_id)
    allowed = await w.flow.decide(request_id, session, shown.pending.csrf_token, "allow")
    assert isinstance(allowed, RedirectWithCode), allowed
    return allowed


async def hint_for(w: World, username: str, *, tamper: bool = False, issuer: str = ISSUER) -> str:
    async with w.store.transaction() as tx:
        user = await tx.get_user_by_username(username)
    assert user is not None
    token = await mint_id_token(w.keys, alg="RS256", issuer=issuer, subject=user.id, client_id="app", now=T0 - 7200,
                                ttl=60, auth_time=T0 - 7200, nonce=None, sid=None, access_token=None)
    if tamper:
        head, body, sig = token.split(".")
        token = f"{head}.{body[:-2]}AA.{sig}"
    return token


# ---- prompt=none ------------------------------------------------------------------------------------------------

def test_prompt_none_without_a_session_is_login_required_with_a_long_state_and_writes_nothing(db_url: str) -> None:
    long_state = "s" * 200

    async def body(w: World) -> None:
        outcome = await w.flow.start(oidc(prompt="none", state=long_state), None, "192.0.2.1")
        assert isinstance(outcome, RedirectWithError) and outcome.location.startswith(WEB)
        params = redirect_params(outcome.location)
        assert (params["error"], params["state"], params["iss"]) == ("login_required", long_state, ISSUER)
        assert await _count(w, "sessions") == 0 and await _count(w, "authorization_requests") == 0

    run(db_url, body)


def test_prompt_none_signed_in_without_consent_is_consent_required_then_a_code_once_consented(db_url: str) -> None:
    async def body(w: World) -> None:
        session, request_id = await signed_in(w, oidc())
        refused = await w.flow.start(oidc(prompt="none"), session, None)
        assert isinstance(refused, RedirectWithError)
        assert redirect_params(refused.location)["error"] == "consent_required"
        await allow(w, session, request_id)
        silent = await w.flow.start(oidc(prompt="none", nonce="n-1"), session, None)
        assert isinstance(silent, RedirectWithCode)
        code = await code_of(w, silent.location)
        assert code.oidc is not None and code.oidc.nonce == "n-1" and code.oidc.sid
        assert await _count(w, "authorization_requests") == 0  # stored and consumed in one transaction

    run(db_url, body)


def test_prompt_none_never_applies_remembered_consent_to_a_native_redirect(db_url: str) -> None:
    async def body(w: World) -> None:
        q = oidc(client_id="native", redirect=LOOPBACK)
        session, request_id = await signed_in(w, q)
        await allow(w, session, request_id)
        refused = await w.flow.start(oidc(client_id="native", redirect=LOOPBACK, prompt="none"), session, None)
        assert isinstance(refused, RedirectWithError)
        assert redirect_params(refused.location)["error"] == "consent_required"

    run(db_url, body)


def test_a_confidential_client_on_a_loopback_redirect_keeps_remembered_consent(db_url: str) -> None:
    async def body(w: World) -> None:
        async with w.store.transaction(write=True) as tx:
            await tx.save_client(client("local-rp", redirect=LOOPBACK, public=False))
        q = oidc(client_id="local-rp", redirect=LOOPBACK)
        session, request_id = await signed_in(w, q)
        await allow(w, session, request_id)
        silent = await w.flow.start(oidc(client_id="local-rp", redirect=LOOPBACK, prompt="none"), session, None)
        assert isinstance(silent, RedirectWithCode)  # its secret proves the app at the token endpoint

    run(db_url, body)


def test_prompt_none_for_a_plain_oauth_request_changes_nothing(db_url: str) -> None:
    async def body(w: World) -> None:
        outcome = await w.flow.start(query(scope="profile:read", prompt="none"), None, None)
        assert isinstance(outcome, GoTo) and outcome.step == "login"

    run(db_url, body)


# ---- re-authentication ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prompt", ["login", "select_account", "login consent"])
def test_prompt_login_asks_a_signed_in_user_again_and_then_moves_on(db_url: str, prompt: str) -> None:
    async def body(w: World) -> None:
        session, request_id = await signed_in(w, oidc())
        first = await code_of(w, (await allow(w, session, request_id)).location)
        w.clock.now += 5
        started = await w.flow.start(oidc(prompt=prompt), session, None)
        assert isinstance(started, GoTo) and started.step == "login"
        assert isinstance(await w.flow.show_login(started.request_id, session), ShowLogin)  # not skipped
        assert await w.flow.show_consent(started.request_id, session) == GoTo(step="login",
                                                                             request_id=started.request_id)
        login = await w.flow.show_login(started.request_id, session)
        assert isinstance(login, ShowLogin)
        done = await w.flow.sign_in(started.request_id, session, login.pending.csrf_token, "alice",
                                    "correct horse battery", None)
        assert isinstance(done, GoTo) and done.step == "consent" and done.session_secret
        new = token_hash(done.session_secret)
        assert isinstance(await w.flow.show_login(started.request_id, new), GoTo)  # no loop back to login
        after = await w.flow.show_consent(started.request_id, new)
        if "consent" in prompt:
            assert isinstance(after, ShowConsent)
            after = await w.flow.decide(started.request_id, new, after.pending.csrf_token, "allow")
        assert isinstance(after, RedirectWithCode)  # consent was remembered otherwise
        second = await code_of(w, after.location)
        assert first.oidc and second.oidc and second.oidc.auth_time == T0 + 5 > first.oidc.auth_time  # type: ignore[operator]

    run(db_url, body)


def test_max_age_reauthenticates_only_a_session_older_than_it(db_url: str) -> None:
    async def body(w: World) -> None:
        session, request_id = await signed_in(w, oidc())
        await allow(w, session, request_id)
        w.clock.now += 30
        fresh = await w.flow.start(oidc(max_age="60"), session, None)
        assert isinstance(fresh, GoTo) and fresh.step == "consent"
        stale = await w.flow.start(oidc(max_age="29"), session, None)
        assert isinstance(stale, GoTo) and stale.step == "login"
        silent = await w.flow.start(oidc(max_age="29", prompt="none"), session, None)
        assert isinstance(silent, RedirectWithError)
        assert redirect_params(silent.location)["error"] == "login_required"
        zero = await w.flow.start(oidc(max_age="0"), session, None)
        assert isinstance(zero, GoTo) and zero.step == "login"

    run(db_url, body)


def test_id_token_hint_for_another_user_is_login_required_silently_and_a_login_otherwise(db_url: str) -> None:
    async def body(w: World) -> None:
        session, request_id = await signed_in(w, oidc())
        await allow(w, session, request_id)
        mine, bobs = await hint_for(w, "alice"), await hint_for(w, "bob")  # both long expired: still hints
        silent = await w.flow.start(oidc(prompt="none", id_token_hint=mine), session, None)
        assert isinstance(silent, RedirectWithCode)
        other = await w.flow.start(oidc(prompt="none", id_token_hint=bobs), session, None)
        assert isinstance(other, RedirectWithError)
        assert redirect_params(other.location)["error"] == "login_required"
        loud = await w.flow.start(oidc(id_token_hint=bobs), session, None)
        assert isinstance(loud, GoTo) and loud.step == "login"

    run(db_url, body)


@pytest.mark.parametrize("kind", ["tampered", "foreign issuer", "garbage", "access token"])
def test_an_id_token_hint_that_is_not_ours_is_refused(db_url: str, kind: str) -> None:
    async def body(w: World) -> None:
        if kind == "tampered":
            hint = await hint_for(w, "alice", tamper=True)
        elif kind == "foreign issuer":
            hint = await hint_for(w, "alice", issuer="https://evil.example")
        elif kind == "garbage":
            hint = "not.a.jwt"
        else:
            from tokenward.protocol.scope import Scope
            from tokenward.server.jwt_access_token import mint_access_token

            hint = (await mint_access_token(w.keys, alg="ES256", issuer=ISSUER, subject="x", audience="a",
                                            client_id="app", scope=Scope.parse("openid"), now=T0, ttl=60)).token
        outcome = await w.flow.start(oidc(id_token_hint=hint), None, None)
        assert isinstance(outcome, RedirectWithError)
        assert redirect_params(outcome.location)["error"] == "invalid_request"

    run(db_url, body)


def test_login_hint_prefills_the_login_page(db_url: str) -> None:
    async def body(w: World) -> None:
        started = await w.flow.start(oidc(login_hint="alice@example"), None, None)
        assert isinstance(started, GoTo) and started.session_secret
        login = await w.flow.show_login(started.request_id, token_hash(started.session_secret))
        assert isinstance(login, ShowLogin) and login.login_hint == "alice@example"

    run(db_url, body)


# ---- consent ----------------------------------------------------------------------------------------------------

def test_prompt_consent_asks_although_consent_is_remembered(db_url: str) -> None:
    async def body(w: World) -> None:
        session, request_id = await signed_in(w, oidc())
        await allow(w, session, request_id)
        again = await w.flow.start(oidc(prompt="consent"), session, None)
        assert isinstance(again, GoTo) and again.step == "consent"
        assert isinstance(await w.flow.show_consent(again.request_id, session), ShowConsent)

    run(db_url, body)


def test_the_consent_page_promises_lasting_access_for_openid_only_with_offline_access(db_url: str) -> None:
    async def body(w: World) -> None:
        session, request_id = await signed_in(w, oidc())
        assert not (await consent_page(w, session, request_id)).lasting
        started = await w.flow.start(oidc(scope="openid offline_access"), session, None)
        assert isinstance(started, GoTo)
        assert (await consent_page(w, session, started.request_id)).lasting

    run(db_url, body)


# ---- bad input --------------------------------------------------------------------------------------------------

BAD = [
    ("negative max_age", {"max_age": "-1"}, "invalid_request"),
    ("word max_age", {"max_age": "soon"}, "invalid_request"),
    ("unknown prompt", {"prompt": "maybe"}, "invalid_request"),
    ("prompt none with login", {"prompt": "none login"}, "invalid_request"),
    ("claims not JSON", {"claims": "{nope"}, "invalid_request"),
    ("claims not an object", {"claims": "[1]"}, "invalid_request"),
    ("claims member not an object", {"claims": '{"userinfo": 3}'}, "invalid_request"),
    ("fragment response_mode", {"response_mode": "fragment"}, "invalid_request"),
    ("request object", {"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ("request_uri", {"request_uri": "urn:ietf:params:oauth:request_uri:x"}, "request_uri_not_supported"),
]


@pytest.mark.parametrize(("case", "extra", "error"), BAD, ids=[c[0] for c in BAD])
def test_malformed_oidc_parameters_get_their_error_redirected(db_url: str, case: str, extra: dict[str, str],
                                                              error: str) -> None:
    async def body(w: World) -> None:
        outcome = await w.flow.start(oidc(**extra), None, None)
        assert isinstance(outcome, RedirectWithError)
        params = redirect_params(outcome.location)
        assert params["error"] == error and params["state"] == "st-1"
        assert await _count(w, "authorization_requests") == 0

    run(db_url, body)


def test_request_objects_are_refused_after_the_redirect_check_and_before_pkce_and_scope(db_url: str) -> None:
    async def body(w: World) -> None:
        bad_redirect = await w.flow.start(oidc(request="x", redirect="https://evil.example/cb"), None, None)
        assert isinstance(bad_redirect, ErrorPage)  # never redirected to an unregistered URI
        no_pkce = "response_type=code&client_id=app&scope=nonsense&request=x&redirect_uri=" + WEB
        outcome = await w.flow.start(no_pkce, None, None)
        assert isinstance(outcome, RedirectWithError)
        assert redirect_params(outcome.location)["error"] == "request_not_supported"

    run(db_url, body)


# ---- response_mode=form_post ------------------------------------------------------------------------------------

def test_form_post_answers_codes_and_errors_as_a_form_to_the_redirect_uri(db_url: str) -> None:
    async def body(w: World) -> None:
        session, request_id = await signed_in(w, oidc(response_mode="form_post"))
        shown = await consent_page(w, session, request_id)
        posted = await w.flow.decide(request_id, session, shown.pending.csrf_token, "allow")
        assert isinstance(posted, FormPost) and posted.action == WEB
        assert set(posted.fields) == {"code", "state", "iss"} and posted.fields["state"] == "st-1"
        assert posted.fields["code"] not in repr(posted)
        error = await w.flow.start(oidc(response_mode="form_post", prompt="bogus"), None, None)
        assert isinstance(error, FormPost) and error.fields["error"] == "invalid_request"
        silent = await w.flow.start(oidc(response_mode="form_post", prompt="none"), None, None)
        assert isinstance(silent, FormPost) and silent.fields["error"] == "login_required"

    run(db_url, body)


# ---- PKCE opt-out -----------------------------------------------------------------------------------------------

def test_only_a_confidential_client_with_the_opt_out_may_leave_pkce_out(db_url: str) -> None:
    without = "response_type=code&scope=openid&state=s&redirect_uri=" + WEB + "&client_id="

    async def body(w: World) -> None:
        accepted = await w.flow.start(without + "rp", None, None)
        assert isinstance(accepted, GoTo)
        for client_id in ("spa", "app"):  # a public client with the flag set, and one without it
            refused = await w.flow.start(without + client_id, None, None)
            assert isinstance(refused, RedirectWithError)
            assert redirect_params(refused.location)["error"] == "invalid_request"
        half = await w.flow.start(without + "rp&code_challenge_method=S256", None, None)
        assert isinstance(half, RedirectWithError)  # a challenge, once sent, is checked

    run(db_url, body)


def test_claims_request_is_stored_compact_and_travels_to_the_code(db_url: str) -> None:
    claims = {"userinfo": {"email": {"essential": True}}, "id_token": {"name": None}, "other": 1}

    async def body(w: World) -> None:
        session, request_id = await signed_in(w, oidc(claims=json.dumps(claims)))
        code = await code_of(w, (await allow(w, session, request_id)).location)
        assert code.oidc is not None
        assert json.loads(code.oidc.claims or "") == {"userinfo": {"email": {"essential": True}},
                                                      "id_token": {"name": None}}

    run(db_url, body)




def test_offline_access_is_allowed_to_every_client_with_the_refresh_grant(db_url: str) -> None:
    async def body(w: World) -> None:
        async with w.store.transaction(write=True) as tx:
            await tx.save_client(client("plain", scope="profile:read"))
            await tx.save_client(client("coder-only", scope="profile:read",
                                        grants=(GrantType.AUTHORIZATION_CODE,)))
        asked = await w.flow.start(query(client_id="plain", scope="profile:read offline_access"), None, None)
        assert isinstance(asked, GoTo)  # what the MCP SDK sends when the metadata lists offline_access
        refused = await w.flow.start(query(client_id="coder-only", scope="profile:read offline_access"), None, None)
        assert isinstance(refused, RedirectWithError)
        assert redirect_params(refused.location)["error"] == "invalid_scope"

    run(db_url, body)
