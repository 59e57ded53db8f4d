"""The server's own compact JWS signer produces tokens that independent verifiers accept, and refuses a key
that does not fit the algorithm."""

from __future__ import annotations

import base64
import json

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from tokenward.protocol.types import SigningAlg
from tokenward.server.jws import sign_compact
from tokenward.server.keys import generate_jose_key

CLAIMS = {"iss": "https://as.example", "sub": "cli", "aud": "urn:api", "exp": 4_000_000_000, "iat": 1_700_000_000,
          "jti": "0f8e2c1a-3d4b-4c5d-9e6f-7a8b9c0d1e2f", "client_id": "cli", "scope": "profile:read", "name": "Zoë"}


def segments(token: str) -> list[bytes]:
    return [base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in token.split(".")]


@pytest.mark.parametrize("alg", list(SigningAlg))
def test_joserfc_and_pyjwt_verify_what_it_signs(alg: SigningAlg) -> None:
    key = generate_jose_key(alg, "k1")
    header = {"alg": alg.value, "typ": "at+jwt", "kid": "k1"}
    token = sign_compact(header, CLAIMS, key.private_key)

    decoded = jwt.decode(token, key, algorithms=[alg.value])
    assert dict(decoded.header) == header and dict(decoded.claims) == CLAIMS
    public_pem = key.as_pem(private=False)
    assert pyjwt.decode(token, public_pem, algorithms=[alg.value], audience="urn:api") == CLAIMS
    assert json.loads(segments(token)[0]) == header
    if alg is SigningAlg.ES256:
        assert len(segments(token)[2]) == 64  # r‖s, not DER (RFC 7518 §3.4)


def test_a_tampered_token_fails_verification() -> None:
    key = generate_jose_key(SigningAlg.ES256, "k1")
    token = sign_compact({"alg": "ES256", "kid": "k1"}, CLAIMS, key.private_key)
    head, _claims, sig = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({**CLAIMS, "sub": "admin"}).encode()).rstrip(b"=").decode()
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(f"{head}.{forged}.{sig}", key.as_pem(private=False), algorithms=["ES256"], audience="urn:api")


@pytest.mark.parametrize(("alg", "private_key"), [
    ("ES256", rsa.generate_private_key(65537, 2048)),
    ("ES256", ec.generate_private_key(ec.SECP384R1())),
    ("RS256", rsa.generate_private_key(65537, 1024)),
    ("RS256", ec.generate_private_key(ec.SECP256R1())),
    ("EdDSA", ec.generate_private_key(ec.SECP256R1())),
    ("HS256", ed25519.Ed25519PrivateKey.generate()),
    ("none", ed25519.Ed25519PrivateKey.generate()),
    (None, ed25519.Ed25519PrivateKey.generate()),
])
def test_a_key_that_does_not_fit_the_algorithm_is_refused(alg: str | None, private_key: object) -> None:
    with pytest.raises(ValueError, match="cannot sign"):
        sign_compact({"alg": alg}, CLAIMS, private_key)


def test_the_key_types_the_ring_holds_are_what_it_expects() -> None:
    assert isinstance(ECKey.generate_key("P-256", private=True).private_key, ec.EllipticCurvePrivateKey)
    assert isinstance(RSAKey.generate_key(2048, private=True).private_key, rsa.RSAPrivateKey)
    assert isinstance(OKPKey.generate_key("Ed25519", private=True).private_key, ed25519.Ed25519PrivateKey)
