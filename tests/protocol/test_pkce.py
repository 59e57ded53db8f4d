"""PKCE, S256 only (RFC 7636; security.md §1.2 P1-P7)."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tokenward.protocol import pkce
from tokenward.protocol.errors import InvalidGrantError, InvalidRequestError

# RFC 7636 Appendix B
APPENDIX_B_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
APPENDIX_B_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
BASE64URL_43 = re.compile(r"[A-Za-z0-9_-]{43}")

pkce_values = st.text(alphabet=UNRESERVED, min_size=43, max_size=128)


def test_s256_gives_rfc_7636_appendix_b_challenge_when_verifier_is_the_appendix_b_one() -> None:
    assert pkce.s256(APPENDIX_B_VERIFIER) == APPENDIX_B_CHALLENGE


def test_verify_passes_when_verifier_is_the_appendix_b_one() -> None:
    pkce.verify(APPENDIX_B_VERIFIER, APPENDIX_B_CHALLENGE)  # raises on any mismatch


def test_validate_challenge_returns_challenge_when_it_is_the_appendix_b_one() -> None:
    assert pkce.validate_challenge(APPENDIX_B_CHALLENGE, "S256") == APPENDIX_B_CHALLENGE


@pytest.mark.parametrize("length", [43, 128])
def test_validate_challenge_accepts_when_length_is_at_a_bound(length: int) -> None:
    challenge = ("aZ0-._~" * 20)[:length]
    assert pkce.validate_challenge(challenge, "S256") == challenge


@pytest.mark.parametrize(("challenge", "method"), [
    (None, "S256"),
    ("", "S256"),
    (APPENDIX_B_CHALLENGE, None),
    (APPENDIX_B_CHALLENGE, ""),
    (APPENDIX_B_CHALLENGE, "plain"),
    (APPENDIX_B_CHALLENGE, "s256"),
    (APPENDIX_B_CHALLENGE, "S512"),
    ("a" * 42, "S256"),
    ("a" * 129, "S256"),
    ("a" * 42 + "+", "S256"),
    ("a" * 42 + "/", "S256"),
    ("a" * 42 + "=", "S256"),
    (APPENDIX_B_CHALLENGE + "=", "S256"),
    ("a" * 42 + "%", "S256"),
    ("a" * 42 + " ", "S256"),
    ("a" * 42 + "é", "S256"),
    ("a" * 43 + "\n", "S256"),
    ("a" * 128 + "\n", "S256"),
    ("\n" + "a" * 43, "S256"),
], ids=["missing", "empty", "method-missing", "method-empty", "plain", "lower-case-s256", "unknown-method",
        "42-chars", "129-chars", "plus", "slash", "equals", "padded", "percent", "space", "non-ascii",
        "trailing-newline", "129-with-newline", "leading-newline"])
def test_validate_challenge_is_invalid_request_when_challenge_or_method_is_bad(
        challenge: str | None, method: str | None) -> None:
    with pytest.raises(InvalidRequestError) as info:
        pkce.validate_challenge(challenge, method)
    assert info.value.error == "invalid_request"
    assert info.value.status == 400


@pytest.mark.parametrize("verifier", [
    None, "", "a" * 20, "a" * 42, "a" * 129, "a" * 42 + "%", "a" * 42 + "+", "a" * 42 + "/", "a" * 42 + "=",
    "a" * 42 + " ", "a" * 42 + "é", "a" * 43 + "\n", APPENDIX_B_VERIFIER + "\n",
], ids=["missing", "empty", "20-chars", "42-chars", "129-chars", "percent", "plus", "slash", "equals", "space",
        "non-ascii", "trailing-newline", "appendix-b-with-newline"])
def test_verify_is_invalid_request_when_verifier_is_missing_or_malformed(verifier: str | None) -> None:
    with pytest.raises(InvalidRequestError) as info:
        pkce.verify(verifier, APPENDIX_B_CHALLENGE)
    assert info.value.error == "invalid_request"


@pytest.mark.parametrize("verifier", [
    "a" * 43,
    APPENDIX_B_VERIFIER[:-1] + "l",
    APPENDIX_B_VERIFIER + "a",
    APPENDIX_B_CHALLENGE,
], ids=["other-verifier", "last-char-changed", "one-char-longer", "challenge-as-verifier"])
def test_verify_is_invalid_grant_when_verifier_is_well_formed_but_wrong(verifier: str) -> None:
    with pytest.raises(InvalidGrantError) as info:
        pkce.verify(verifier, APPENDIX_B_CHALLENGE)
    assert info.value.error == "invalid_grant"
    assert not isinstance(info.value, InvalidRequestError)


def test_new_verifier_is_43_unreserved_chars_when_generated() -> None:
    verifiers = {pkce.new_verifier() for _ in range(20)}
    assert len(verifiers) == 20
    for verifier in verifiers:
        assert len(verifier) == 43
        assert set(verifier) <= set(UNRESERVED)


@given(pkce_values)
def test_s256_is_always_43_base64url_chars_when_verifier_is_valid(verifier: str) -> None:
    challenge = pkce.s256(verifier)
    assert BASE64URL_43.fullmatch(challenge)
    assert base64.urlsafe_b64decode(challenge + "=") == hashlib.sha256(verifier.encode()).digest()


@given(pkce_values)
def test_verify_passes_and_challenge_validates_when_challenge_is_s256_of_verifier(verifier: str) -> None:
    challenge = pkce.validate_challenge(pkce.s256(verifier), "S256")
    pkce.verify(verifier, challenge)


@given(pkce_values, pkce_values)
def test_verify_is_invalid_grant_when_verifiers_differ(verifier: str, other: str) -> None:
    assume(verifier != other)
    with pytest.raises(InvalidGrantError):
        pkce.verify(other, pkce.s256(verifier))
