"""Differential tests: JwtVerifier's fast path against joserfc and PyJWT on the same tokens (design decision:
"a minimal verification fast path … passes … differential tests against joserfc and PyJWT").

The libraries get the same configuration as the verifier: the issuer's JWKS, the algorithm allow-list, issuer,
audience, a 60 s leeway, the RFC 9068 required claims and the ``typ`` rule (neither library checks ``typ`` itself,
so a one-line check is added around each). All three use the real clock.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import KeySet, RSAKey

from tests.resource.jwt_kit import (
    AUDIENCE,
    ISSUER,
    LEEWAY,
    KeyRing,
    Signer,
    b64url,
    b64url_decode,
    claims_for,
    http_server,
    keyring,
    sign,
)
from tokenward.protocol.bearer import InvalidTokenError
from tokenward.resource import JwtVerifier

ALGORITHMS = ["ES256", "RS256", "EdDSA"]
REQUIRED = ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"]
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class Rejected(Exception):
    """Any verifier said no."""


def check_typ(token: str) -> None:
    typ = pyjwt.get_unverified_header(token).get("typ")
    if not isinstance(typ, str) or typ.lower() not in ("at+jwt", "application/at+jwt"):
        raise Rejected("typ")


@pytest.fixture(scope="module")
def keys() -> KeyRing:
    return keyring()


@pytest.fixture(scope="module")
def jwks_url(keys: KeyRing) -> Iterator[str]:
    with http_server(keys.valid_jwks()) as server:
        yield server.url + "/jwks.json"


@pytest.fixture(scope="module")
def tokenward(jwks_url: str) -> Callable[[str], dict[str, Any]]:
    verifier = JwtVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=jwks_url, algorithms=ALGORITHMS,
                           leeway=LEEWAY, cache_size=0)

    def verify(token: str) -> dict[str, Any]:
        try:
            return verifier.verify_sync(token).claims
        except InvalidTokenError as error:
            raise Rejected(error.description) from error

    return verify


@pytest.fixture(scope="module")
def joserfc(keys: KeyRing) -> Callable[[str], dict[str, Any]]:
    key_set = KeySet.import_key_set(keys.valid_jwks())  # type: ignore[arg-type]
    registry = jose_jwt.JWTClaimsRegistry(
        leeway=LEEWAY, iss={"essential": True, "value": ISSUER}, aud={"essential": True, "value": AUDIENCE},
        exp={"essential": True}, sub={"essential": True}, client_id={"essential": True}, iat={"essential": True},
        jti={"essential": True})

    def verify(token: str) -> dict[str, Any]:
        try:
            check_typ(token)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SecurityWarning)  # "EdDSA is deprecated" (RFC 9864)
                decoded = jose_jwt.decode(token, key_set, algorithms=ALGORITHMS)
            registry.validate(decoded.claims)
        except (JoseError, ValueError, pyjwt.PyJWTError) as error:
            raise Rejected(type(error).__name__) from error
        return decoded.claims

    return verify


@pytest.fixture(scope="module")
def pyjwt_verify(keys: KeyRing) -> Callable[[str], dict[str, Any]]:
    key_set = pyjwt.PyJWKSet.from_dict(keys.valid_jwks())

    def verify(token: str) -> dict[str, Any]:
        try:
            check_typ(token)
            key = key_set[pyjwt.get_unverified_header(token)["kid"]]
            claims: dict[str, Any] = pyjwt.decode(token, key, algorithms=ALGORITHMS, audience=AUDIENCE,
                                                  issuer=ISSUER, leeway=LEEWAY, options={"require": REQUIRED})
        except (pyjwt.PyJWTError, KeyError) as error:
            raise Rejected(type(error).__name__) from error
        return claims

    return verify


@pytest.fixture(scope="module")
def all_three(tokenward: Callable[[str], dict[str, Any]], joserfc: Callable[[str], dict[str, Any]],
              pyjwt_verify: Callable[[str], dict[str, Any]]) -> dict[str, Callable[[str], dict[str, Any]]]:
    return {"tokenward": tokenward, "joserfc": joserfc, "pyjwt": pyjwt_verify}


def outcome(verify: Callable[[str], dict[str, Any]], token: str) -> dict[str, Any] | None:
    try:
        return verify(token)
    except Rejected:
        return None


def signer_for(keys: KeyRing, alg: str) -> Signer:
    return {s.alg: s for s in keys.valid}[alg]


# -- the same valid tokens, the same claims


@pytest.mark.parametrize("alg", ALGORITHMS)
@pytest.mark.parametrize(("typ", "aud"), [("at+jwt", AUDIENCE), ("application/at+jwt", [AUDIENCE, "urn:other"]),
                                          ("at+JWT", [AUDIENCE])])
def test_all_three_accept_a_valid_token_with_identical_claims(
        keys: KeyRing, all_three: dict[str, Callable[[str], dict[str, Any]]], alg: str, typ: str, aud: Any) -> None:
    claims = claims_for(time.time(), aud=aud, nbf=int(time.time()) - 5, extra={"nested": [1, "two"]}, n=-3)
    token = signer_for(keys, alg).token(claims, typ=typ)
    results = {name: verify(token) for name, verify in all_three.items()}
    assert results["tokenward"] == results["joserfc"] == results["pyjwt"] == claims


# -- the same invalid tokens, rejected by all three


def invalid_tokens(keys: KeyRing, alg: str) -> dict[str, str]:
    signer = signer_for(keys, alg)
    now = time.time()
    valid = signer.token(claims_for(now))
    header, payload, signature = valid.split(".")
    raw = bytearray(b64url_decode(signature))
    raw[len(raw) // 2] ^= 0x80
    pem = keys.rs256.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "bad-signature": f"{header}.{payload}.{b64url(bytes(raw))}",
        "other-payload": f"{header}.{b64url(json.dumps(claims_for(now, scope='admin')).encode())}.{signature}",
        "wrong-aud": signer.token(claims_for(now, aud="urn:other")),
        "aud-list-without-us": signer.token(claims_for(now, aud=["urn:a", "urn:b"])),
        "wrong-iss": signer.token(claims_for(now, iss=ISSUER + "/")),
        "expired": signer.token(claims_for(now, exp=int(now) - LEEWAY - 30)),
        "nbf-future": signer.token(claims_for(now, nbf=int(now) + LEEWAY + 30)),
        "missing-exp": signer.token(claims_for(now, exp=...)),
        "alg-none": sign(signer.header(alg="none"), claims_for(now), None),
        "alg-None": sign(signer.header(alg="None"), claims_for(now), None),
        "hs256-with-rsa-pem": sign(keys.rs256.header(alg="HS256"), claims_for(now), pem),
        "hs256-with-rsa-jwk": sign(keys.rs256.header(alg="HS256"), claims_for(now),
                                   json.dumps(keys.rs256.jwk).encode()),
        "typ-jwt": signer.token(claims_for(now), typ="JWT"),
        "unknown-kid": sign(signer.header(kid="nobody"), claims_for(now), signer.key),
        "attacker-key": sign(signer.header(), claims_for(now), keys.attacker_ec, alg="ES256")
        if alg == "ES256" else sign(signer.header(), claims_for(now), keys.attacker_rsa, alg="RS256")
        if alg == "RS256" else f"{header}.{payload}.{b64url(bytes(64))}",
    }


INVALID_KINDS = ["bad-signature", "other-payload", "wrong-aud", "aud-list-without-us", "wrong-iss", "expired",
                 "nbf-future", "missing-exp", "alg-none", "alg-None", "hs256-with-rsa-pem", "hs256-with-rsa-jwk",
                 "typ-jwt", "unknown-kid", "attacker-key"]


@pytest.mark.parametrize("alg", ALGORITHMS)
@pytest.mark.parametrize("kind", INVALID_KINDS)
def test_all_three_reject_the_same_invalid_token(
        keys: KeyRing, all_three: dict[str, Callable[[str], dict[str, Any]]], alg: str, kind: str) -> None:
    token = invalid_tokens(keys, alg)[kind]
    for name, verify in all_three.items():
        with pytest.raises(Rejected):
            verify(token)
            pytest.fail(f"{name} accepted {kind}")


def test_libraries_refuse_hmac_with_the_rsa_public_key_even_when_hs256_is_allowed(keys: KeyRing) -> None:
    """The classic confusion needs a library that lets the public key be the HMAC secret; none of ours does."""
    pem = keys.rs256.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    token = sign(keys.rs256.header(alg="HS256"), claims_for(time.time()), pem)
    with pytest.raises(pyjwt.PyJWTError):
        pyjwt.decode(token, pem, algorithms=["HS256", "RS256"], audience=AUDIENCE)
    with pytest.raises(JoseError):
        jose_jwt.decode(token, RSAKey.import_key(keys.rs256.jwk), algorithms=["HS256", "RS256"])
    with pytest.raises(ValueError, match="unsupported"):
        JwtVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri="http://127.0.0.1:9/", algorithms=["HS256"])


# -- generated claim sets: JwtVerifier and PyJWT agree

REGISTERED = {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope"}
scope_tokens = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='"\\'),
                       min_size=1, max_size=12)
extra_claims = st.dictionaries(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10).filter(lambda k: k not in REGISTERED),
    st.one_of(st.text(max_size=20), st.integers(min_value=-(2**53), max_value=2**53)), max_size=5)
# away from the leeway boundaries (both sides use the real clock, which moves while the test runs)
past_or_recent = st.one_of(st.integers(-100_000, -LEEWAY - 10), st.integers(-LEEWAY + 10, 100_000))
not_future = st.one_of(st.integers(-100_000, LEEWAY - 10), st.integers(LEEWAY + 10, 100_000))


@st.composite
def claim_sets(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    now = int(time.time())
    claims: dict[str, Any] = dict(draw(extra_claims))
    claims.update({
        "iss": draw(st.sampled_from([ISSUER, ISSUER, ISSUER + "/"])),
        "sub": draw(st.text(min_size=1, max_size=20)),
        "aud": draw(st.sampled_from([AUDIENCE, [AUDIENCE], ["urn:other", AUDIENCE], "urn:other", ["urn:other"]])),
        "client_id": draw(st.text(min_size=1, max_size=20)),
        "scope": " ".join(draw(st.lists(scope_tokens, max_size=5))),
        "iat": now + draw(not_future),
        "exp": now + draw(past_or_recent),
        "jti": draw(st.text(min_size=1, max_size=20)),
    })
    if draw(st.booleans()):
        claims["nbf"] = now + draw(not_future)
    return draw(st.sampled_from(ALGORITHMS)), claims


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(claim_sets())
def test_tokenward_and_pyjwt_agree_on_generated_claim_sets(
        keys: KeyRing, tokenward: Callable[[str], dict[str, Any]], pyjwt_verify: Callable[[str], dict[str, Any]],
        case: tuple[str, dict[str, Any]]) -> None:
    alg, claims = case
    token = signer_for(keys, alg).token(claims)
    ours, theirs = outcome(tokenward, token), outcome(pyjwt_verify, token)
    assert (ours is None) == (theirs is None), (ours, theirs, claims)
    assert ours == theirs
    if ours is not None:
        assert ours == claims


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(ALGORITHMS), extra_claims, st.data())
def test_all_three_reject_after_flipping_a_signature_character(
        keys: KeyRing, tokenward: Callable[[str], dict[str, Any]], pyjwt_verify: Callable[[str], dict[str, Any]],
        joserfc: Callable[[str], dict[str, Any]], alg: str, extra: dict[str, Any], data: st.DataObject) -> None:
    token = signer_for(keys, alg).token({**extra, **claims_for(time.time())})
    assert outcome(tokenward, token) is not None and outcome(pyjwt_verify, token) is not None
    header, payload, signature = token.split(".")
    index = data.draw(st.integers(0, len(signature) - 1))
    char = data.draw(st.sampled_from(B64URL).filter(lambda c: c != signature[index]))
    flipped = signature[:index] + char + signature[index + 1:]
    forged = f"{header}.{payload}.{flipped}"
    # a changed signature, or the same bytes spelt non-canonically (unused low bits of the last character)
    assert outcome(tokenward, forged) is None
    assert outcome(pyjwt_verify, forged) is None
    assert outcome(joserfc, forged) is None


def test_all_three_reject_a_non_canonical_signature_spelling(
        keys: KeyRing, all_three: dict[str, Callable[[str], dict[str, Any]]]) -> None:
    """Base64url malleability: the same signature bytes spelt with non-zero unused bits; all three refuse it."""
    token = keys.es256.token(claims_for(time.time()))
    header, payload, signature = token.split(".")
    last = B64URL.index(signature[-1])
    twin = signature[:-1] + B64URL[last ^ 0b0001]  # 64 bytes → 86 chars: the last 4 bits are padding
    assert b64url_decode(twin) == b64url_decode(signature)
    forged = f"{header}.{payload}.{twin}"
    results = {name: outcome(verify, forged) is not None for name, verify in all_three.items()}
    assert results == {"tokenward": False, "joserfc": False, "pyjwt": False}

