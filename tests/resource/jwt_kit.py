"""Test kit for the resource-server guard: keys, a hand-rolled compact-JWS signer (so tests can craft any
header, payload or signature bytes), a real JWKS server on 127.0.0.1 and fake clocks.

Nothing here uses the code under test to build tokens: signatures come straight from ``cryptography``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ISSUER = "https://issuer.example/tenant"
AUDIENCE = "urn:tokenward:api"
NOW = 1_700_000_000
LEEWAY = 60

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def jwk_int(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def public_jwk(key: PrivateKey, kid: str, **members: Any) -> dict[str, Any]:
    """The public JWK of ``key`` with ``kid`` and any extra members (``alg``, ``use``, …)."""
    jwk: dict[str, Any]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        numbers = key.public_key().public_numbers()
        size = (key.curve.key_size + 7) // 8
        crv = {"secp256r1": "P-256", "secp384r1": "P-384"}[key.curve.name]
        jwk = {"kty": "EC", "crv": crv, "x": b64url(numbers.x.to_bytes(size, "big")),
               "y": b64url(numbers.y.to_bytes(size, "big"))}
    elif isinstance(key, rsa.RSAPrivateKey):
        rsa_numbers = key.public_key().public_numbers()
        jwk = {"kty": "RSA", "n": jwk_int(rsa_numbers.n), "e": jwk_int(rsa_numbers.e)}
    else:
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    return {**jwk, "kid": kid, **members}


def raw_sign(alg: str, key: PrivateKey | bytes, data: bytes) -> bytes:
    """The JWS signature (RFC 7518 §3) of ``data``; ``key`` bytes means an HMAC secret."""
    digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}
    if alg.startswith("HS"):
        assert isinstance(key, bytes)
        return hmac.new(key, data, {"256": hashlib.sha256, "384": hashlib.sha384}[alg[2:]]).digest()
    if alg.startswith("ES"):
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest[alg[2:]])))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg.startswith("RS"):
        assert isinstance(key, rsa.RSAPrivateKey)
        return key.sign(data, padding.PKCS1v15(), digest[alg[2:]])
    if alg.startswith("PS"):
        assert isinstance(key, rsa.RSAPrivateKey)
        pss = padding.PSS(mgf=padding.MGF1(digest[alg[2:]]), salt_length=padding.PSS.DIGEST_LENGTH)
        return key.sign(data, pss, digest[alg[2:]])
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key.sign(data)


def encode_segment(part: dict[str, Any] | list[Any] | bytes | str) -> str:
    """A JSON value, or raw bytes/str taken verbatim (for duplicate keys, non-UTF-8, …), base64url-encoded."""
    if isinstance(part, bytes):
        return b64url(part)
    if isinstance(part, str):
        return b64url(part.encode("utf-8"))
    return b64url(json.dumps(part, separators=(",", ":")).encode())


def sign(header: dict[str, Any] | list[Any] | bytes | str, claims: dict[str, Any] | bytes | str,
         key: PrivateKey | bytes | None, alg: str | None = None) -> str:
    """A compact JWS; ``alg`` defaults to the header's. ``key=None`` gives an empty signature."""
    signing_input = f"{encode_segment(header)}.{encode_segment(claims)}"
    if key is None:
        return signing_input + "."
    if alg is None:
        assert isinstance(header, dict)
        alg = str(header["alg"])
    return f"{signing_input}.{b64url(raw_sign(alg, key, signing_input.encode('ascii')))}"


def claims_for(now: float = NOW, /, **overrides: Any) -> dict[str, Any]:
    """A complete RFC 9068 claim set; an override of ``...`` removes the claim."""
    claims: dict[str, Any] = {
        "iss": ISSUER, "sub": "user-42", "aud": AUDIENCE, "client_id": "client-7", "scope": "profile:read email",
        "iat": int(now), "exp": int(now) + 600, "jti": "jti-0001",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not ...}


@dataclass
class Signer:
    """One private key as published in the JWKS."""

    alg: str
    kid: str
    key: PrivateKey
    jwk: dict[str, Any]

    def header(self, **overrides: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"alg": self.alg, "typ": "at+jwt", "kid": self.kid}
        header.update(overrides)
        return {k: v for k, v in header.items() if v is not ...}

    def token(self, claims: dict[str, Any] | None = None, **header: Any) -> str:
        return sign(self.header(**header), claims if claims is not None else claims_for(), self.key,
                    alg=self.alg)


@functools.cache
def _rsa(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@dataclass
class KeyRing:
    """The issuer's keys (one per algorithm plus deliberately unusable ones) and an attacker's keys."""

    es256: Signer
    rs256: Signer
    eddsa: Signer
    ec_enc: Signer  # published with use: enc
    rsa_ps256: Signer  # RSA key whose JWK says alg PS256
    rsa_weak: Signer  # 1024-bit RSA key
    ec_rotated: Signer  # not published until a test rotates it in
    attacker_ec: ec.EllipticCurvePrivateKey
    attacker_rsa: rsa.RSAPrivateKey

    @property
    def valid(self) -> list[Signer]:
        return [self.es256, self.rs256, self.eddsa]

    def jwks(self, *, rotated: bool = False) -> dict[str, Any]:
        signers = [self.es256, self.rs256, self.eddsa, self.ec_enc, self.rsa_ps256, self.rsa_weak]
        if rotated:
            signers.append(self.ec_rotated)
        return {"keys": [s.jwk for s in signers]}

    def valid_jwks(self) -> dict[str, Any]:
        return {"keys": [s.jwk for s in self.valid]}


def _signer(alg: str, kid: str, key: PrivateKey, /, **members: Any) -> Signer:
    return Signer(alg, kid, key, public_jwk(key, kid, **members))


@functools.cache
def keyring() -> KeyRing:
    rs = _rsa(2048)
    ps = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return KeyRing(
        es256=_signer("ES256", "ec-1", ec.generate_private_key(ec.SECP256R1()), alg="ES256", use="sig"),
        rs256=_signer("RS256", "rsa-1", rs, alg="RS256", use="sig"),
        eddsa=_signer("EdDSA", "ed-1", ed25519.Ed25519PrivateKey.generate(), alg="EdDSA"),
        ec_enc=_signer("ES256", "ec-enc", ec.generate_private_key(ec.SECP256R1()), use="enc"),
        rsa_ps256=_signer("RS256", "rsa-ps", ps, alg="PS256"),
        rsa_weak=_signer("RS256", "rsa-weak", _rsa(1024), alg="RS256"),
        ec_rotated=_signer("ES256", "ec-2", ec.generate_private_key(ec.SECP256R1()), alg="ES256"),
        attacker_ec=ec.generate_private_key(ec.SECP256R1()),
        attacker_rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


# -- a real HTTP server on 127.0.0.1


@dataclass
class HttpServer:
    """Serves ``document`` as JSON on every GET and records each request path; ``delay`` slows answers."""

    document: Any = None
    delay: float = 0.0
    requests: list[str] = field(default_factory=list)
    url: str = ""
    _server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                if owner.delay:
                    time.sleep(owner.delay)
                body = json.dumps(owner.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def reset(self, document: Any) -> None:
        self.document = document
        self.delay = 0.0
        self.requests.clear()


@contextmanager
def http_server(document: Any = None) -> Iterator[HttpServer]:
    server = HttpServer(document)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class FakeClock:
    """A settable clock: ``clock()`` for the verifier's ``clock=``, ``monotonic()`` for the JWKS cache."""

    def __init__(self, now: float = NOW) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
