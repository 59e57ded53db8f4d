"""JwtVerifier against crafted tokens: RFC 8725 / RFC 9068 §4 attacks (security.md §3, J1-J24).

Every token here is signed by hand with ``cryptography`` (tests/resource/jwt_kit.py); the issuer's JWKS is served
by a real HTTP server on 127.0.0.1. Every rejection must be ``invalid_token`` (401) whose description and challenge
never echo the token.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

import tokenward.resource.verifier as verifier_module
from tests.resource.conftest import VerifierFactory
from tests.resource.jwt_kit import (
    AUDIENCE,
    ISSUER,
    LEEWAY,
    NOW,
    FakeClock,
    HttpServer,
    KeyRing,
    b64url,
    b64url_decode,
    claims_for,
    http_server,
    public_jwk,
    sign,
)
from tokenward.protocol.bearer import BearerError, InsufficientScopeError, InvalidTokenError
from tokenward.resource import JwtVerifier, Principal
from tokenward.resource.keys import VerificationKey, parse_jwks

# the JWKS deliberately publishes a 1024-bit RSA key; joserfc warns when the verifier parses it
pytestmark = pytest.mark.filterwarnings("ignore:Key size should be:joserfc.errors.SecurityWarning")


def assert_clean(error: BearerError, token: str) -> None:
    """No part of the token in anything sent back to the client."""
    texts = [error.description, str(error), error.challenge("api"), json.dumps(error.to_wire())]
    fragments = [*([token] if token else []), *(segment for segment in token.split(".") if len(segment) >= 8)]
    for text in texts:
        for fragment in fragments:
            assert fragment not in text, (fragment[:40], text)


def reject(verifier: JwtVerifier, token: str, match: str | None = None) -> InvalidTokenError:
    with pytest.raises(InvalidTokenError) as info:
        verifier.verify_sync(token)
    error = info.value
    assert type(error) is InvalidTokenError
    assert error.status == 401 and error.error == "invalid_token"
    assert 'error="invalid_token"' in error.challenge("api")
    if match is not None:
        assert match in error.description, error.description
    assert_clean(error, token)
    return error


def warm(verifier: JwtVerifier, keys: KeyRing, mono: FakeClock) -> None:
    """First fetch of the JWKS done, and past the one-attempt-per-second guard of the cache."""
    verifier.verify_sync(keys.es256.token())
    assert verifier.jwks.fetch_count == 1
    mono.advance(2)


def with_segment(token: str, index: int, segment: str) -> str:
    parts = token.split(".")
    parts[index] = segment
    return ".".join(parts)


# -- the baseline: valid tokens


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_principal_carries_the_claims_when_token_is_valid_for(verifier: JwtVerifier, keys: KeyRing,
                                                              alg: str) -> None:
    signer = {s.alg: s for s in keys.valid}[alg]
    claims = claims_for(aud=["urn:other", AUDIENCE], extra={"a": 1})
    principal = verifier.verify_sync(signer.token(claims), ["profile:read"])
    assert isinstance(principal, Principal)
    assert principal.subject == "user-42" and principal.client_id == "client-7"
    assert principal.scopes == {"profile:read", "email"}
    assert principal.audience == ("urn:other", AUDIENCE)
    assert principal.expires_at == NOW + 600 and principal.issuer == ISSUER and principal.token_id == "jti-0001"
    assert principal.claims == claims


def test_async_verify_accepts_the_same_token_as_verify_sync(verifier: JwtVerifier, keys: KeyRing) -> None:
    principal = asyncio.run(verifier.verify(keys.rs256.token(), ["email"]))
    assert principal.subject == "user-42"


@pytest.mark.parametrize("algorithms", [["none"], ["HS256"], ["ES256", "HS512"], ["RS256", "None"]])
def test_verifier_refuses_to_be_configured_when_algorithms_include(algorithms: list[str]) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        JwtVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri="http://127.0.0.1:9/jwks", algorithms=algorithms)


# -- J1/J2: alg none and friends


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "", " ES256", "es256", "ES256\x00", "HS256"])
def test_rejects_token_when_alg_is_not_allowed_and_signature_empty(verifier: JwtVerifier, keys: KeyRing,
                                                                   alg: str) -> None:
    token = sign(keys.es256.header(alg=alg), claims_for(), None)
    reject(verifier, token, "algorithm")
    assert verifier.jwks.fetch_count == 0  # refused on the header alone


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_rejects_alg_none_when_a_real_signature_is_appended(verifier: JwtVerifier, keys: KeyRing,
                                                            alg: str) -> None:
    valid = keys.es256.token()
    token = with_segment(valid, 0, b64url(json.dumps(keys.es256.header(alg=alg)).encode()))
    reject(verifier, token)


@pytest.mark.parametrize("alg", [..., None, 256, ["ES256"], {"ES256": True}])
def test_rejects_token_when_alg_is_missing_or_not_a_string(verifier: JwtVerifier, keys: KeyRing,
                                                           alg: Any) -> None:
    reject(verifier, sign(keys.es256.header(alg=alg), claims_for(), keys.es256.key, alg="ES256"), "algorithm")


def test_rejects_allowed_algorithm_when_verifier_allow_list_excludes_it(make_verifier: VerifierFactory,
                                                                       keys: KeyRing) -> None:
    verifier = make_verifier(algorithms=["ES256"])
    reject(verifier, keys.rs256.token(), "algorithm")
    reject(verifier, keys.eddsa.token(), "algorithm")
    assert verifier.verify_sync(keys.es256.token()).subject == "user-42"


# -- J3: HMAC with the public key as secret


def hmac_secrets(keys: KeyRing) -> dict[str, bytes]:
    public = keys.rs256.key.public_key()
    return {
        "spki-pem": public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "pkcs1-pem": public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        "spki-der": public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        "openssh": public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
        "jwk-json": json.dumps(keys.rs256.jwk).encode(),
        "jwk-json-compact": json.dumps(keys.rs256.jwk, separators=(",", ":")).encode(),
        "jwks-json": json.dumps(keys.jwks()).encode(),
        "modulus": b64url_decode(keys.rs256.jwk["n"]),
    }


@pytest.mark.parametrize("form", ["spki-pem", "pkcs1-pem", "spki-der", "openssh", "jwk-json", "jwk-json-compact",
                                  "jwks-json", "modulus"])
@pytest.mark.parametrize("alg", ["HS256", "HS384"])
def test_rejects_hmac_token_when_signed_with_rsa_public_key_as_secret(verifier: JwtVerifier, keys: KeyRing,
                                                                      form: str, alg: str) -> None:
    secret = hmac_secrets(keys)[form]
    token = sign(keys.rs256.header(alg=alg), claims_for(), secret)
    reject(verifier, token, "algorithm")


def test_rejects_hmac_token_when_signed_with_ec_public_key_as_secret(verifier: JwtVerifier,
                                                                    keys: KeyRing) -> None:
    pem = keys.es256.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    reject(verifier, sign(keys.es256.header(alg="HS256"), claims_for(), pem))


# -- J4/J22: the key must fit the algorithm; use: enc, JWK alg, weak RSA


@pytest.mark.parametrize(("alg", "signer_name", "kid"), [
    ("RS256", "rs256", "ec-1"),  # RS256 header, kid of the EC key
    ("ES256", "es256", "rsa-1"),
    ("EdDSA", "eddsa", "ec-1"),
    ("ES256", "es256", "ed-1"),
    ("RS256", "rs256", "ed-1"),
])
def test_rejects_token_when_header_alg_does_not_match_the_key_kid_points_at(
        verifier: JwtVerifier, keys: KeyRing, alg: str, signer_name: str, kid: str) -> None:
    signer = getattr(keys, signer_name)
    reject(verifier, sign(keys.es256.header(alg=alg, kid=kid), claims_for(), signer.key, alg=alg),
           "does not match")


def test_rejects_es384_header_when_kid_is_a_p256_key(make_verifier: VerifierFactory, keys: KeyRing) -> None:
    verifier = make_verifier(algorithms=["ES256", "ES384"])
    p384 = ec.generate_private_key(ec.SECP384R1())
    reject(verifier, sign(keys.es256.header(alg="ES384"), claims_for(), p384, alg="ES384"), "does not match")


def test_rejects_token_when_its_key_is_published_with_use_enc(verifier: JwtVerifier, keys: KeyRing) -> None:
    reject(verifier, keys.ec_enc.token(), "unknown key")
    assert "ec-enc" not in parse_jwks(keys.jwks())


def test_rejects_token_when_the_jwk_alg_differs_from_the_token_alg(make_verifier: VerifierFactory,
                                                                  keys: KeyRing) -> None:
    verifier = make_verifier(algorithms=["RS256", "PS256"])
    reject(verifier, keys.rsa_ps256.token(), "does not match")  # RS256 token, JWK says PS256
    ps = sign(keys.rsa_ps256.header(alg="PS256"), claims_for(), keys.rsa_ps256.key)
    assert verifier.verify_sync(ps).subject == "user-42"  # the key itself is fine for its own alg


def test_ignores_rsa_keys_shorter_than_2048_bits_in_the_jwks(verifier: JwtVerifier, keys: KeyRing) -> None:
    weak = keys.rsa_weak.key
    assert isinstance(weak, rsa.RSAPrivateKey) and weak.key_size == 1024
    assert "rsa-weak" not in parse_jwks(keys.jwks())
    assert {"ec-1", "rsa-1", "ed-1", "rsa-ps"} <= parse_jwks(keys.jwks()).keys()
    reject(verifier, keys.rsa_weak.token(), "unknown key")


def test_parse_jwks_drops_private_members_and_symmetric_keys(keys: KeyRing) -> None:
    key = keys.es256.key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    private_numbers = key.private_numbers()
    doc = {"keys": [{**keys.es256.jwk, "d": b64url(private_numbers.private_value.to_bytes(32, "big"))},
                    {"kty": "oct", "kid": "hmac", "k": b64url(b"secret")},
                    {"kty": "EC", "kid": "broken", "crv": "P-256", "x": "AA", "y": "AA"},
                    {"kid": 5, **{k: v for k, v in keys.rs256.jwk.items() if k != "kid"}}]}
    parsed = parse_jwks(doc)
    assert list(parsed) == ["ec-1"]
    assert isinstance(parsed["ec-1"].key, ec.EllipticCurvePublicKey)


# -- J5/J6: unknown kid and kid injection


INJECTED_KIDS = ["../../etc/passwd", "../../../../dev/null", "' OR 1=1", "' OR '1'='1' --", "x" * 10_240,
                 "ec-1\x00", "ec-1 ", "EC-1", "__class__", "keys", "http://127.0.0.1:1/key"]


@pytest.mark.parametrize("kid", INJECTED_KIDS, ids=lambda kid: repr(kid[:20]))
def test_rejects_injected_kid_with_at_most_one_refetch(make_verifier: VerifierFactory, keys: KeyRing,
                                                       mono: FakeClock, jwks_server: HttpServer, kid: str) -> None:
    verifier = make_verifier(max_token_bytes=65_536)
    warm(verifier, keys, mono)
    token = sign(keys.es256.header(kid=kid), claims_for(), keys.es256.key)
    reject(verifier, token)
    reject(verifier, token)
    assert verifier.jwks.fetch_count <= 2
    assert set(jwks_server.requests) == {"/jwks.json"}  # the kid never reaches a URL


def test_rejects_many_injected_kids_in_a_row_with_one_refetch(make_verifier: VerifierFactory, keys: KeyRing,
                                                             mono: FakeClock, jwks_server: HttpServer) -> None:
    verifier = make_verifier(max_token_bytes=65_536)
    warm(verifier, keys, mono)
    for kid in INJECTED_KIDS:
        reject(verifier, sign(keys.es256.header(kid=kid), claims_for(), keys.es256.key))
        mono.advance(2)
    assert verifier.jwks.fetch_count == 2
    assert len(jwks_server.requests) == 2


def test_rejects_10kb_kid_as_too_large_without_any_fetch_when_limit_is_default(verifier: JwtVerifier,
                                                                              keys: KeyRing) -> None:
    reject(verifier, sign(keys.es256.header(kid="k" * 10_240), claims_for(), keys.es256.key), "too large")
    assert verifier.jwks.fetch_count == 0


@pytest.mark.parametrize("kid", [..., None, 1, 0, True, ["ec-1"], {"kid": "ec-1"}, ""])
def test_rejects_missing_or_non_string_kid_without_any_fetch(verifier: JwtVerifier, keys: KeyRing,
                                                             kid: Any) -> None:
    reject(verifier, sign(keys.es256.header(kid=kid), claims_for(), keys.es256.key), "key id")
    assert verifier.jwks.fetch_count == 0


def test_refetches_once_on_unknown_kid_then_not_again_within_the_interval(
        make_verifier: VerifierFactory, keys: KeyRing, mono: FakeClock) -> None:
    verifier = make_verifier(min_refetch_interval=30)
    warm(verifier, keys, mono)
    reject(verifier, sign(keys.es256.header(kid="unknown-1"), claims_for(), keys.es256.key), "unknown key")
    assert verifier.jwks.fetch_count == 2
    mono.advance(5)
    reject(verifier, sign(keys.es256.header(kid="unknown-2"), claims_for(), keys.es256.key), "unknown key")
    assert verifier.jwks.fetch_count == 2
    mono.advance(26)  # the interval has passed
    reject(verifier, sign(keys.es256.header(kid="unknown-3"), claims_for(), keys.es256.key), "unknown key")
    assert verifier.jwks.fetch_count == 3


def test_accepts_a_rotated_in_key_after_one_refetch(verifier: JwtVerifier, keys: KeyRing, mono: FakeClock,
                                                    jwks_server: HttpServer) -> None:
    warm(verifier, keys, mono)
    jwks_server.document = keys.jwks(rotated=True)
    assert verifier.verify_sync(keys.ec_rotated.token()).subject == "user-42"
    assert verifier.verify_sync(keys.ec_rotated.token(claims_for(jti="other"))).token_id == "other"
    assert verifier.jwks.fetch_count == 2


def test_stops_trusting_a_retired_key_once_the_jwks_is_older_than_max_age(
        verifier: JwtVerifier, keys: KeyRing, mono: FakeClock, jwks_server: HttpServer) -> None:
    """J22: the issuer retires ec-1; a long-running guard must notice within ``max_age`` (one hour)."""
    warm(verifier, keys, mono)
    jwks_server.document = {"keys": [keys.rs256.jwk]}
    mono.advance(60)
    assert verifier.verify_sync(keys.es256.token(claims_for(jti="a"))).token_id == "a"  # still within max_age
    assert verifier.jwks.fetch_count == 1
    mono.advance(verifier.jwks.max_age)
    reject(verifier, keys.es256.token(claims_for(jti="b")), "unknown key")
    assert verifier.jwks.fetch_count == 2
    assert verifier.verify_sync(keys.rs256.token(claims_for(jti="c"))).token_id == "c"
    assert asyncio.run(verifier.verify(keys.rs256.token(claims_for(jti="d")))).token_id == "d"
    assert verifier.jwks.fetch_count == 2


def run_threads(count: int, target: Callable[[], object]) -> tuple[list[object], list[BaseException]]:
    barrier = threading.Barrier(count)
    results: list[object] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            outcome = target()
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(t.is_alive() for t in threads)
    return results, errors


def test_single_refetch_when_50_threads_present_the_same_unknown_kid(
        verifier: JwtVerifier, keys: KeyRing, mono: FakeClock, jwks_server: HttpServer) -> None:
    warm(verifier, keys, mono)
    jwks_server.document = keys.jwks(rotated=True)
    jwks_server.delay = 0.2  # every thread arrives while the fetch is in flight
    token = keys.ec_rotated.token()
    results, errors = run_threads(50, lambda: verifier.verify_sync(token))
    assert errors == []
    assert len(results) == 50
    assert verifier.jwks.fetch_count == 2
    assert len(jwks_server.requests) == 2


def test_single_refetch_when_50_threads_present_a_kid_that_stays_unknown(
        verifier: JwtVerifier, keys: KeyRing, mono: FakeClock, jwks_server: HttpServer) -> None:
    warm(verifier, keys, mono)
    jwks_server.delay = 0.2
    token = sign(keys.es256.header(kid="nobody"), claims_for(), keys.es256.key)
    results, errors = run_threads(50, lambda: verifier.verify_sync(token))
    assert results == []
    assert len(errors) == 50 and all(type(e) is InvalidTokenError for e in errors)
    assert verifier.jwks.fetch_count == 2
    assert len(jwks_server.requests) == 2


def test_single_refetch_when_50_tasks_present_the_same_unknown_kid(
        verifier: JwtVerifier, keys: KeyRing, mono: FakeClock, jwks_server: HttpServer) -> None:
    warm(verifier, keys, mono)
    jwks_server.document = keys.jwks(rotated=True)
    jwks_server.delay = 0.2
    token = keys.ec_rotated.token()

    async def main() -> list[Principal]:
        return await asyncio.gather(*(verifier.verify(token) for _ in range(50)))

    assert len(asyncio.run(main())) == 50
    assert verifier.jwks.fetch_count == 2


# -- J7/J8: jku, x5u, jwk, x5c are never used


@pytest.fixture
def listener(keys: KeyRing) -> Iterator[HttpServer]:
    """An attacker's server on 127.0.0.1 offering the attacker's key; it must never be asked anything."""
    with http_server({"keys": [public_jwk(keys.attacker_ec, "attacker", alg="ES256")]}) as server:
        yield server


@pytest.mark.parametrize("member", ["jku", "x5u"])
@pytest.mark.parametrize("kid", ["attacker", "ec-1"])
def test_never_fetches_jku_or_x5u_and_rejects_the_attacker_token(
        verifier: JwtVerifier, keys: KeyRing, listener: HttpServer, jwks_server: HttpServer, member: str,
        kid: str) -> None:
    header = keys.es256.header(kid=kid, **{member: listener.url + "/keys"})
    token = sign(header, claims_for(), keys.attacker_ec)
    reject(verifier, token)
    reject(verifier, token)
    assert listener.requests == []
    assert set(jwks_server.requests) <= {"/jwks.json"}


def self_signed_x5c(key: ec.EllipticCurvePrivateKey) -> list[str]:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer.example")])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(start).not_valid_after(start + datetime.timedelta(days=36500))
            .sign(key, hashes.SHA256()))
    return [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]


@pytest.mark.parametrize("member", ["jwk", "x5c"])
@pytest.mark.parametrize("kid", ["ec-1", "attacker", ...])
def test_rejects_token_whose_embedded_key_is_the_attackers(verifier: JwtVerifier, keys: KeyRing, member: str,
                                                           kid: Any) -> None:
    embedded: Any = (public_jwk(keys.attacker_ec, "attacker") if member == "jwk"
                     else self_signed_x5c(keys.attacker_ec))
    header = keys.es256.header(kid=kid, **{member: embedded})
    reject(verifier, sign(header, claims_for(), keys.attacker_ec))


def test_rejects_embedded_jwk_signature_with_the_real_keys_even_for_real_kid(verifier: JwtVerifier,
                                                                           keys: KeyRing) -> None:
    header = keys.es256.header(jwk=public_jwk(keys.attacker_ec, "ec-1"))
    reject(verifier, sign(header, claims_for(), keys.attacker_ec), "signature")


# -- J14: crit


@pytest.mark.parametrize("extra", [
    {"crit": ["urn:example:x"], "urn:example:x": 1},
    {"crit": []},
    {"crit": ["alg"]},
    {"crit": ["exp"], "exp": NOW + 600},
    {"crit": ["b64"], "b64": False},
    {"crit": "b64"},
    {"crit": None},
], ids=["unknown", "empty", "alg", "exp", "b64", "string", "null"])
def test_rejects_token_with_crit_header(verifier: JwtVerifier, keys: KeyRing, extra: dict[str, Any]) -> None:
    reject(verifier, sign(keys.es256.header(**extra), claims_for(), keys.es256.key), "critical")


# -- J13: typ


@pytest.mark.parametrize("typ", ["at+jwt", "at+JWT", "AT+JWT", "At+Jwt", "application/at+jwt",
                                 "Application/AT+JWT", "APPLICATION/at+jwt"])
def test_accepts_typ_compared_case_insensitively_when(verifier: JwtVerifier, keys: KeyRing, typ: str) -> None:
    assert verifier.verify_sync(keys.es256.token(typ=typ)).subject == "user-42"


@pytest.mark.parametrize("typ", [..., "JWT", "jwt", "", "application/jwt", "id_token+jwt", "at+jwt ", " at+jwt",
                                 "at+jwt;charset=utf-8", "application/application/at+jwt", "x/at+jwt", "at+jws",
                                 "secevent+jwt", None, 1, ["at+jwt"]])
def test_rejects_token_when_typ_is(verifier: JwtVerifier, keys: KeyRing, typ: Any) -> None:
    reject(verifier, keys.es256.token(typ=typ), "typ")


# -- J11/J12: iss and aud


@pytest.mark.parametrize("iss", [ISSUER + "/", ISSUER[:-1], ISSUER + "x", "x" + ISSUER, ISSUER.upper(),
                                 ISSUER.replace("https", "http"), "https://issuer.example", "https://evil.example",
                                 "", None, [ISSUER], 1])
def test_rejects_token_when_iss_differs(verifier: JwtVerifier, keys: KeyRing, iss: Any) -> None:
    reject(verifier, keys.es256.token(claims_for(iss=iss)), "issuer")


@pytest.mark.parametrize("aud", ["urn:other", AUDIENCE + "/", AUDIENCE[:-1], AUDIENCE.upper(), ["urn:other"],
                                 [], [AUDIENCE + "x", "urn:other"], "", None, 5, {"aud": AUDIENCE},
                                 [AUDIENCE, 5], [[AUDIENCE]]])
def test_rejects_token_when_aud_does_not_contain_ours(verifier: JwtVerifier, keys: KeyRing, aud: Any) -> None:
    reject(verifier, keys.es256.token(claims_for(aud=aud)), "audience")


@pytest.mark.parametrize("aud", [AUDIENCE, [AUDIENCE], ["urn:other", AUDIENCE], [AUDIENCE, AUDIENCE]])
def test_accepts_token_when_aud_contains_ours(verifier: JwtVerifier, keys: KeyRing, aud: Any) -> None:
    assert AUDIENCE in verifier.verify_sync(keys.es256.token(claims_for(aud=aud))).audience


# -- J9/J10: time claims with a leeway


@pytest.mark.parametrize(("claim", "offset", "accepted"), [
    ("exp", -(LEEWAY - 1), True),
    ("exp", -LEEWAY, True),
    ("exp", -(LEEWAY + 1), False),
    ("exp", -86_400, False),
    ("nbf", LEEWAY - 1, True),
    ("nbf", LEEWAY + 1, False),
    ("nbf", -600, True),
    ("iat", LEEWAY - 1, True),
    ("iat", LEEWAY + 1, False),
    ("iat", 86_400, False),
])
def test_time_claims_checked_with_the_leeway(verifier: JwtVerifier, keys: KeyRing, claim: str, offset: int,
                                             accepted: bool) -> None:
    token = keys.es256.token(claims_for(**{claim: NOW + offset}))
    if accepted:
        assert verifier.verify_sync(token).subject == "user-42"
    else:
        reject(verifier, token)


def test_leeway_zero_rejects_a_token_one_second_past_exp(make_verifier: VerifierFactory, keys: KeyRing) -> None:
    verifier = make_verifier(leeway=0)
    reject(verifier, keys.es256.token(claims_for(exp=NOW - 1)), "expired")
    assert verifier.verify_sync(keys.es256.token(claims_for(exp=NOW))).subject == "user-42"


@pytest.mark.parametrize("claim", ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"])
def test_rejects_token_when_required_claim_is_missing(verifier: JwtVerifier, keys: KeyRing, claim: str) -> None:
    reject(verifier, keys.es256.token(claims_for(**{claim: ...})), "required claims")


@pytest.mark.parametrize(("claim", "value"), [
    ("exp", str(NOW + 600)), ("exp", True), ("exp", False), ("exp", None), ("exp", [NOW + 600]), ("exp", {}),
    ("exp", float("nan")), ("exp", float("inf")), ("exp", float("-inf")),
    ("iat", "now"), ("iat", True), ("iat", None), ("iat", float("nan")),
    ("nbf", "0"), ("nbf", True), ("nbf", float("nan")),
])
def test_rejects_token_when_time_claim_is_not_a_number(verifier: JwtVerifier, keys: KeyRing, claim: str,
                                                       value: Any) -> None:
    reject(verifier, keys.es256.token(claims_for(**{claim: value})))


@pytest.mark.parametrize(("claim", "value"), [
    ("sub", 42), ("sub", None), ("client_id", ["c"]), ("client_id", None), ("jti", 7), ("scope", ["profile:read"]),
    ("scope", None),
])
def test_rejects_token_when_identity_claim_is_not_a_string(verifier: JwtVerifier, keys: KeyRing, claim: str,
                                                           value: Any) -> None:
    reject(verifier, keys.es256.token(claims_for(**{claim: value})), "malformed")


# -- J15/J16/J20: shape and size before any decoding


def jwe_compact() -> str:
    header = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "typ": "at+jwt", "kid": "rsa-1"}
    return ".".join([b64url(json.dumps(header).encode()), b64url(b"k" * 256), b64url(b"i" * 12),
                     b64url(b"ciphertext"), b64url(b"t" * 16)])


@pytest.mark.parametrize("shape", ["two", "four", "jwe", "one", "empty", "dots", "json"])
def test_rejects_token_when_it_is_not_a_three_segment_jws(verifier: JwtVerifier, keys: KeyRing,
                                                          shape: str) -> None:
    valid = keys.es256.token()
    header, payload, signature = valid.split(".")
    token = {
        "two": f"{header}.{payload}",
        "four": f"{valid}.{signature}",
        "jwe": jwe_compact(),
        "one": header,
        "empty": "",
        "dots": "....",
        "json": json.dumps({"protected": header, "payload": payload, "signature": signature}),
    }[shape]
    reject(verifier, token)
    assert verifier.jwks.fetch_count == 0


def test_rejects_jwe_compact_as_not_a_signed_jwt(verifier: JwtVerifier) -> None:
    reject(verifier, jwe_compact(), "not a signed JWT")


@pytest.fixture
def decode_spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every base64url or JSON decoding the verifier does."""
    calls: list[str] = []
    b64decode, json_object = verifier_module._b64decode, verifier_module._json_object

    def spy_b64(segment: str) -> bytes:
        calls.append("b64")
        return b64decode(segment)

    def spy_json(raw: bytes) -> dict[str, Any]:
        calls.append("json")
        return json_object(raw)

    monkeypatch.setattr(verifier_module, "_b64decode", spy_b64)
    monkeypatch.setattr(verifier_module, "_json_object", spy_json)

    def spy_base64(*args: object) -> bytes:
        calls.append("base64")
        return b""

    monkeypatch.setattr(base64, "urlsafe_b64decode", spy_base64)
    return calls


def test_rejects_64kib_token_as_too_large_before_any_decoding(verifier: JwtVerifier, keys: KeyRing,
                                                              decode_spy: list[str]) -> None:
    header = b64url(json.dumps(keys.es256.header()).encode())
    filler = b64url(json.dumps({"pad": "x" * 32_000}).encode())
    token = f"{header}.{filler}.{'A' * (65_536 - len(header) - len(filler) - 2)}"
    assert len(token) == 65_536
    reject(verifier, token, "too large")
    with pytest.raises(InvalidTokenError, match="too large"):
        asyncio.run(verifier.verify(token))
    assert decode_spy == []
    assert verifier.jwks.fetch_count == 0


def test_size_limit_is_exact(make_verifier: VerifierFactory, keys: KeyRing) -> None:
    token = keys.es256.token()
    assert make_verifier(max_token_bytes=len(token)).verify_sync(token).subject == "user-42"
    reject(make_verifier(max_token_bytes=len(token) - 1), token, "too large")


@pytest.mark.parametrize("segment", [0, 1, 2])
@pytest.mark.parametrize("char", ["+", "/", "=", " ", "!", "%", "\n", "é", "\x00", "."])
def test_rejects_token_when_a_segment_has_non_base64url_characters(verifier: JwtVerifier, keys: KeyRing,
                                                                   segment: int, char: str) -> None:
    parts = keys.es256.token().split(".")
    parts[segment] = parts[segment][:6] + char + parts[segment][6:]
    reject(verifier, ".".join(parts))


B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def non_canonical(segment: str) -> str:
    """The same bytes spelt with a non-zero unused bit in the last character (RFC 4648 §3.5)."""
    assert len(segment) % 4 in (2, 3)
    twin = segment[:-1] + B64URL[B64URL.index(segment[-1]) ^ 1]
    assert b64url_decode(twin) == b64url_decode(segment)
    return twin


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
@pytest.mark.parametrize("segment", [0, 1, 2])
def test_rejects_non_canonical_base64url_spelling_of_a_segment(verifier: JwtVerifier, keys: KeyRing, alg: str,
                                                              segment: int) -> None:
    signer = {s.alg: s for s in keys.valid}[alg]
    claims = claims_for()
    for pad in range(4):  # a payload whose segment length leaves unused bits
        claims["x"] = "p" * pad
        token = signer.token(claims)
        if len(token.split(".")[segment]) % 4 in (2, 3):
            break
    header = signer.header()
    for pad in range(4):
        header["x"] = "p" * pad
        token = sign(header, claims, signer.key, alg=alg)
        if len(token.split(".")[segment]) % 4 in (2, 3):
            break
    assert verifier.verify_sync(token).subject == "user-42"
    parts = token.split(".")
    # a respelt payload also changes the signing input, so there the signature check refuses it first
    reject(verifier, with_segment(token, segment, non_canonical(parts[segment])), None if segment == 1 else "malformed")


def test_rejects_signature_with_padding(verifier: JwtVerifier, keys: KeyRing) -> None:
    token = keys.es256.token()
    header, payload, signature = token.split(".")
    padded = base64.urlsafe_b64encode(b64url_decode(signature)).decode()
    assert padded.endswith("=")
    reject(verifier, f"{header}.{payload}.{padded}")


# -- J18/J19: the JSON of the header and payload


@pytest.mark.parametrize("raw", [
    '{"alg":"none","typ":"at+jwt","kid":"ec-1","alg":"ES256"}',
    '{"alg":"ES256","typ":"JWT","kid":"ec-1","typ":"at+jwt"}',
    '{"alg":"ES256","typ":"at+jwt","kid":"ec-1","kid":"ec-1"}',
    '{"alg":"ES256","typ":"at+jwt","kid":"ec-1","crit":["x"],"crit":null}',
], ids=["alg", "typ", "kid", "crit"])
def test_rejects_header_with_duplicate_member_names(verifier: JwtVerifier, keys: KeyRing, raw: str) -> None:
    reject(verifier, sign(raw, claims_for(), keys.es256.key, alg="ES256"), "malformed")


@pytest.mark.parametrize("raw", [
    b'[{"alg":"ES256","typ":"at+jwt","kid":"ec-1"}]', b'"ES256"', b"1", b"null", b"true", b"",
    b'{"alg":"ES256","typ":"at+jwt","kid":"ec-1"', b"\xef\xbb\xbf" + b'{"alg":"ES256","typ":"at+jwt","kid":"ec-1"}',
    '{"alg":"ES256","typ":"at+jwt","kid":"ec-1"}'.encode("utf-16"), b'{"alg":"ES256","typ":"at+jwt","kid":"\xff"}',
    b"[" * 5000 + b"]" * 5000,
], ids=["array", "string", "number", "null", "true", "empty", "truncated", "bom", "utf16", "latin1", "deep"])
def test_rejects_header_that_is_not_a_json_object(make_verifier: VerifierFactory, keys: KeyRing,
                                                  raw: bytes) -> None:
    verifier = make_verifier(max_token_bytes=65_536)
    reject(verifier, sign(raw, claims_for(), keys.es256.key, alg="ES256"), "malformed")


@pytest.mark.parametrize("raw", [b"[]", b'"claims"', b"\xff", b"{", b"NaN", b'{"exp":NaN}'])
def test_rejects_payload_that_is_not_a_json_object(verifier: JwtVerifier, keys: KeyRing, raw: bytes) -> None:
    reject(verifier, sign(keys.es256.header(), raw, keys.es256.key))


# -- J21: signature bytes


def ecdsa_signature_variants(keys: KeyRing, signing_input: bytes) -> dict[str, bytes]:
    key = keys.es256.key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    der = key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    raw = b64url_decode(sign(keys.es256.header(), claims_for(), keys.es256.key).split(".")[2])
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    return {
        "empty": b"", "63": raw[:63], "65": raw + b"\x00", "128": raw + raw, "der": der, "zeros": b"\x00" * 64,
        "r-and-s-equal-order": order.to_bytes(32, "big") * 2, "ones": b"\xff" * 64,
        "der-of-zeros": encode_dss_signature(0, 0),
    }


@pytest.mark.parametrize("variant", ["empty", "63", "65", "128", "der", "zeros", "r-and-s-equal-order", "ones",
                                     "der-of-zeros"])
def test_rejects_es256_signature_of_wrong_length_or_encoding(verifier: JwtVerifier, keys: KeyRing,
                                                             variant: str) -> None:
    header, payload, _ = keys.es256.token().split(".")
    signature = ecdsa_signature_variants(keys, f"{header}.{payload}".encode())[variant]
    reject(verifier, f"{header}.{payload}.{b64url(signature)}", "signature")


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
@pytest.mark.parametrize("position", [0, 17, -1])
def test_rejects_token_when_one_signature_byte_is_flipped(verifier: JwtVerifier, keys: KeyRing, alg: str,
                                                          position: int) -> None:
    signer = {s.alg: s for s in keys.valid}[alg]
    header, payload, signature = signer.token().split(".")
    raw = bytearray(b64url_decode(signature))
    raw[position] ^= 0x01
    reject(verifier, f"{header}.{payload}.{b64url(bytes(raw))}", "signature")


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_rejects_token_when_payload_changes_after_signing(verifier: JwtVerifier, keys: KeyRing, alg: str) -> None:
    signer = {s.alg: s for s in keys.valid}[alg]
    header, _, signature = signer.token().split(".")
    forged = b64url(json.dumps(claims_for(scope="admin")).encode())
    reject(verifier, f"{header}.{forged}.{signature}", "signature")


def test_rejects_signature_of_another_key_with_the_same_kid(verifier: JwtVerifier, keys: KeyRing) -> None:
    reject(verifier, sign(keys.rs256.header(), claims_for(), keys.attacker_rsa), "signature")


# -- the cache of verified tokens


@pytest.fixture
def verify_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    original = VerificationKey.verify

    def spy(self: VerificationKey, alg: str, signature: bytes, data: bytes) -> bool:
        calls.append(self.kid)
        return original(self, alg, signature, data)

    monkeypatch.setattr(VerificationKey, "verify", spy)
    return calls


def test_cached_token_is_accepted_without_a_second_signature_check(verifier: JwtVerifier, keys: KeyRing,
                                                                   verify_calls: list[str]) -> None:
    token = keys.es256.token()
    first = verifier.verify_sync(token)
    assert verify_calls == ["ec-1"]
    assert verifier.verify_sync(token) == first
    assert asyncio.run(verifier.verify(token)) == first
    assert verify_calls == ["ec-1"]


def test_cached_token_is_rejected_once_exp_plus_leeway_passes(verifier: JwtVerifier, keys: KeyRing,
                                                              clock: FakeClock, verify_calls: list[str]) -> None:
    token = keys.es256.token(claims_for(exp=NOW + 100))
    verifier.verify_sync(token)
    clock.advance(100 + LEEWAY)  # exactly exp + leeway: still valid
    verifier.verify_sync(token)
    assert verify_calls == ["ec-1"]
    clock.advance(1)
    reject(verifier, token, "expired")
    reject(verifier, token, "expired")  # evicted, and still refused after a full check
    assert verify_calls == ["ec-1", "ec-1"]


def test_cache_is_bounded(make_verifier: VerifierFactory, keys: KeyRing, verify_calls: list[str]) -> None:
    verifier = make_verifier(cache_size=3)
    tokens = [keys.es256.token(claims_for(jti=f"jti-{i}")) for i in range(5)]
    for token in tokens:
        verifier.verify_sync(token)
        assert len(verifier._cache) <= 3
    assert len(verify_calls) == 5
    verifier.verify_sync(tokens[-1])
    assert len(verify_calls) == 5  # the newest is cached
    verifier.verify_sync(tokens[0])
    assert len(verify_calls) == 6  # the oldest was evicted
    assert len(verifier._cache) <= 3


def test_cache_size_zero_checks_every_time(make_verifier: VerifierFactory, keys: KeyRing,
                                           verify_calls: list[str]) -> None:
    verifier = make_verifier(cache_size=0)
    token = keys.es256.token()
    for _ in range(3):
        verifier.verify_sync(token)
    assert len(verify_calls) == 3


def test_rejected_token_is_never_cached(verifier: JwtVerifier, keys: KeyRing, verify_calls: list[str]) -> None:
    token = keys.es256.token(claims_for(aud="urn:other"))
    reject(verifier, token, "audience")
    reject(verifier, token, "audience")
    assert len(verify_calls) == 2


def test_cache_survives_concurrent_expiry_and_eviction(make_verifier: VerifierFactory, keys: KeyRing,
                                                       clock: FakeClock) -> None:
    """Flask serves from threads: concurrent evictions, and concurrent hits on one expired cached token, must
    only ever raise InvalidTokenError."""
    verifier = make_verifier(cache_size=2)
    tokens = [keys.es256.token(claims_for(jti=f"t{i}", exp=NOW + 100)) for i in range(40)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(5):
            _, errors = run_threads(8, lambda: [verifier.verify_sync(t) for t in tokens])
            assert errors == []
        for token in tokens:
            clock.now = NOW
            verifier.verify_sync(token)
            clock.advance(1000)
            _, errors = run_threads(8, lambda token=token: verifier.verify_sync(token))  # type: ignore[misc]
            assert len(errors) == 8 and all(type(e) is InvalidTokenError for e in errors), errors
    finally:
        sys.setswitchinterval(interval)


def test_cached_token_is_rejected_once_its_key_left_the_jwks_at_the_next_refresh(
        verifier: JwtVerifier, keys: KeyRing, mono: FakeClock, jwks_server: HttpServer,
        verify_calls: list[str]) -> None:
    """Issue #12 §2.12: the issuer withdraws ec-1 (``tokenward keys revoke``) and publishes ec-2; the refetch
    that ec-2's unknown kid causes must also end the cached acceptance of ec-1's tokens."""
    token = keys.es256.token(claims_for(jti="cached"))
    assert verifier.verify_sync(token).token_id == "cached"
    mono.advance(2)
    jwks_server.document = {"keys": [keys.rs256.jwk, keys.ec_rotated.jwk]}
    assert verifier.verify_sync(keys.ec_rotated.token()).subject == "user-42"  # the next JWKS refresh
    assert verifier.jwks.fetch_count == 2
    reject(verifier, token, "unknown key")
    with pytest.raises(InvalidTokenError):
        asyncio.run(verifier.verify(token))
    assert verifier.verify_sync(keys.rs256.token(claims_for(jti="still"))).token_id == "still"
    assert verify_calls.count("ec-1") == 1  # refused without a signature check: the key is gone


def test_cached_token_triggers_the_max_age_refetch_and_is_dropped_when_its_key_is_gone(
        make_verifier: VerifierFactory, keys: KeyRing, mono: FakeClock, jwks_server: HttpServer) -> None:
    """A guard that only ever sees cached tokens still refetches when its JWKS is older than ``max_age``."""
    verifier = make_verifier(jwks_max_age=600)
    kept, dropped = keys.rs256.token(claims_for(jti="kept")), keys.es256.token(claims_for(jti="dropped"))
    verifier.verify_sync(kept)
    verifier.verify_sync(dropped)
    jwks_server.document = {"keys": [keys.rs256.jwk]}
    mono.advance(300)
    assert verifier.verify_sync(dropped).token_id == "dropped"  # within max_age: the cache answers
    assert verifier.jwks.fetch_count == 1
    mono.advance(301)
    assert verifier.verify_sync(kept).token_id == "kept"  # stale: refetched once, the key is still published
    assert verifier.jwks.fetch_count == 2
    reject(verifier, dropped, "unknown key")
    assert verifier.jwks.fetch_count == 2


# -- insufficient scope


def test_insufficient_scope_names_the_missing_scope(verifier: JwtVerifier, keys: KeyRing) -> None:
    token = keys.es256.token()
    with pytest.raises(InsufficientScopeError) as info:
        verifier.verify_sync(token, ["admin"])
    error = info.value
    assert error.status == 403 and error.error == "insufficient_scope"
    challenge = error.challenge("api")
    assert 'error="insufficient_scope"' in challenge and 'scope="admin"' in challenge
    assert error.to_wire()["error"] == "insufficient_scope"
    assert_clean(error, token)
    with pytest.raises(InsufficientScopeError):  # also on a cache hit
        verifier.verify_sync(token, ["admin"])
    assert verifier.verify_sync(token, ["profile:read", "email"]).scopes == {"profile:read", "email"}


def test_insufficient_scope_when_token_has_no_scope_claim(verifier: JwtVerifier, keys: KeyRing) -> None:
    token = keys.es256.token(claims_for(scope=...))
    assert verifier.verify_sync(token).scopes == frozenset()
    with pytest.raises(InsufficientScopeError) as info:
        verifier.verify_sync(token, ["profile:read", "admin"])
    assert 'scope="admin profile:read"' in info.value.challenge("api")


def test_scope_match_is_exact_per_scope_token(verifier: JwtVerifier, keys: KeyRing) -> None:
    token = keys.es256.token(claims_for(scope="profile:readwrite admin:x"))
    for required in (["profile:read"], ["admin"], ["profile"]):
        with pytest.raises(InsufficientScopeError):
            verifier.verify_sync(token, required)



def test_concurrent_first_requests_discover_the_jwks_once() -> None:
    """50 threads hitting a fresh verifier share one discovery and one JWKS fetch (no cache is replaced)."""
    import time as real_time

    from tests.resource.jwt_kit import http_server
    from tests.resource.jwt_kit import keyring as make_keyring

    keys = make_keyring()
    with http_server() as http:
        # one document serves as both the metadata and the JWK Set
        http.reset({"issuer": http.url, "jwks_uri": http.url + "/jwks", "keys": [keys.es256.jwk]})
        http.delay = 0.2
        verifier = JwtVerifier(issuer=http.url, audience=AUDIENCE)
        token = keys.es256.token(claims_for(real_time.time(), iss=http.url))
        results, errors = run_threads(50, lambda: verifier.verify_sync(token))
        assert not errors and len(results) == 50
        assert verifier.jwks.fetch_count == 1
        assert len(http.requests) == 2  # one metadata request, one JWKS request
