"""RFC 6750 §2.1/§3 at the edge of the guard: reading ``Authorization`` and answering with a challenge
(security.md §2.3)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenward.protocol.bearer import (
    BearerError,
    InsufficientScopeError,
    InvalidBearerRequestError,
    InvalidTokenError,
    MissingTokenError,
    bearer_token_from_headers,
)

JWT_LIKE = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
TOKEN68_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"
# RFC 7235 §2.1 challenge with quoted-string auth-params (qdtext without backslash escapes)
CHALLENGE = re.compile(r'Bearer [a-z_]+="[\x20\x21\x23-\x5B\x5D-\x7E]*"(, [a-z_]+="[\x20\x21\x23-\x5B\x5D-\x7E]*")*')


def error_of(values: list[str], query_has_token: bool = False) -> BearerError:
    with pytest.raises(BearerError) as info:
        bearer_token_from_headers(values, query_has_token)
    return info.value


def test_missing_header_is_a_bare_challenge_without_error() -> None:
    error = error_of([])
    assert type(error) is MissingTokenError
    assert error.status == 401
    challenge = error.challenge("api")
    assert challenge == 'Bearer realm="api"'
    assert "error" not in challenge


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_accepts_scheme_case_insensitively_when_scheme_is(scheme: str) -> None:
    assert bearer_token_from_headers([f"{scheme} {JWT_LIKE}"]) == JWT_LIKE


@pytest.mark.parametrize("token", ["a", "abc==", "a-._~+/b", "A" * 4096, JWT_LIKE, "x="])
def test_accepts_every_token68_form(token: str) -> None:
    assert bearer_token_from_headers([f"Bearer {token}"]) == token


@pytest.mark.parametrize("value", ["Bearer", "Bearer ", "Bearer    ", "bearer  ", "Bearer a b", "Bearer a b c",
                                   "Bearer a,b", 'Bearer "abc"', "Bearer a=b", "Bearer =abc", "Bearer a\tb",
                                   "Bearer é", "Bearer a;b", "Bearer a:b", "Bearer a%20b", "Bearer abc, x=y",
                                   "Bearer a\x00b", "Bearer token=abc"])
def test_malformed_bearer_header_is_invalid_request_400(value: str) -> None:
    error = error_of([value])
    assert type(error) is InvalidBearerRequestError
    assert error.status == 400 and error.error == "invalid_request"
    assert 'error="invalid_request"' in error.challenge("api")


@pytest.mark.parametrize("values", [[f"Bearer {JWT_LIKE}", f"Bearer {JWT_LIKE}"], [f"Bearer {JWT_LIKE}", "Bearer x"],
                                    [f"Bearer {JWT_LIKE}", "Basic dXNlcjpwYXNz"], ["", ""]])
def test_two_authorization_headers_are_invalid_request_400(values: list[str]) -> None:
    error = error_of(values)
    assert type(error) is InvalidBearerRequestError and error.status == 400


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Digest username=x", "DPoP abc", "Bearerabc", "", "   ",
                                   "Token abc", "Bearer-abc"])
def test_other_schemes_count_as_no_bearer_credentials(value: str) -> None:
    error = error_of([value])
    assert type(error) is MissingTokenError and error.status == 401
    assert "error=" not in error.challenge("api")


def test_token_in_header_and_query_is_invalid_request_400() -> None:
    error = error_of([f"Bearer {JWT_LIKE}"], query_has_token=True)
    assert type(error) is InvalidBearerRequestError and error.status == 400


def test_token_in_query_alone_is_ignored_as_no_credentials() -> None:
    assert type(error_of([], query_has_token=True)) is MissingTokenError
    assert type(error_of(["Basic dXNlcjpwYXNz"], query_has_token=True)) is MissingTokenError


def test_error_descriptions_never_contain_the_token() -> None:
    secret = "c2VjcmV0LXRva2Vu"
    cases: list[tuple[list[str], bool]] = [([f"Bearer {secret} x"], False), ([f"Bearer {secret}"] * 2, False),
                                           ([f"Bearer {secret}"], True), ([f"Bearer {secret}!"], False)]
    for values, query in cases:
        error = error_of(values, query)
        assert secret not in error.description and secret not in error.challenge("api")
        assert secret not in str(error.to_wire())


@pytest.mark.parametrize("realm", ['a"b', "a\\b", "a\r\nSet-Cookie: x=1", "api\n", "api\r", "\x00api", "é-api",
                                   'x", error="forged'])
def test_challenge_quotes_an_unsafe_realm_safely(realm: str) -> None:
    for error in (MissingTokenError(), InvalidTokenError("The access token has expired."),
                  InsufficientScopeError("The access token lacks a required scope.", scope="a b")):
        challenge = error.challenge(realm)
        assert CHALLENGE.fullmatch(challenge), challenge
        assert "\r" not in challenge and "\n" not in challenge
        assert challenge.count('error="') <= 1


def test_insufficient_scope_challenge_has_error_and_scope() -> None:
    challenge = InsufficientScopeError("The access token lacks a required scope.", scope="profile:read").challenge(
        "api")
    assert challenge == ('Bearer realm="api", error="insufficient_scope", '
                         'error_description="The access token lacks a required scope.", scope="profile:read"')


def test_scope_with_quotes_or_newlines_is_quoted_safely() -> None:
    challenge = InsufficientScopeError("d", scope='a"b\nc\\d').challenge("api")
    assert CHALLENGE.fullmatch(challenge), challenge


def test_wire_bodies_carry_the_rfc_6750_codes() -> None:
    assert InvalidTokenError("The access token has expired.").to_wire() == {
        "error": "invalid_token", "error_description": "The access token has expired."}
    assert InvalidBearerRequestError("x").to_wire()["error"] == "invalid_request"
    assert "error" in MissingTokenError().to_wire()


@given(st.text(alphabet=TOKEN68_CHARS, min_size=1, max_size=200).filter(lambda t: "=" not in t),
       st.integers(min_value=0, max_value=3), st.sampled_from(["Bearer", "bearer", "BEARER", "BeArEr"]))
def test_any_token68_round_trips(body: str, padding: int, scheme: str) -> None:
    token = body + "=" * padding
    assert bearer_token_from_headers([f"{scheme} {token}"]) == token


@given(st.lists(st.text(max_size=60), max_size=3), st.booleans())
def test_any_header_values_give_a_token68_or_a_bearer_error(values: list[str], query: bool) -> None:
    try:
        token = bearer_token_from_headers(values, query)
    except BearerError as error:
        assert error.status in (400, 401)
        assert CHALLENGE.fullmatch(error.challenge("api"))
    else:
        assert len(values) == 1 and not query
        assert re.fullmatch(r"[A-Za-z0-9\-._~+/]+=*", token)
        assert token in values[0]


@given(st.text(max_size=40), st.text(max_size=40))
def test_any_realm_and_scope_give_a_well_formed_challenge(realm: str, scope: str) -> None:
    for error in (MissingTokenError(), InvalidBearerRequestError("The Authorization header is malformed."),
                  InsufficientScopeError("The access token lacks a required scope.", scope=scope)):
        assert CHALLENGE.fullmatch(error.challenge(realm)), error.challenge(realm)
