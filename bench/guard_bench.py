"""µs per access-token validation: raw signature verify (the floor), PyJWT, joserfc, and Tokenward's guard
cold (first sight of each token) and hot (cached), for RS256, ES256 and EdDSA.

Each cell is the median of several rounds; overheads are against the raw verify of the same tokens,
measured in the same process, so they hold even on a noisy shared machine.
"""

from __future__ import annotations

import base64
import json
import statistics
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jwt as jose_jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey
from joserfc.jwt import JWTClaimsRegistry

from bench.machine import describe
from tokenward.resource.verifier import JwtVerifier

warnings.filterwarnings("ignore", category=SecurityWarning)
ISSUER = "https://issuer.example"
AUDIENCE = "urn:tokenward:api"
N = 1500
ROUNDS = 7


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_keys() -> dict[str, Any]:
    return {
        "ES256": ECKey.generate_key("P-256", parameters={"kid": "es", "alg": "ES256", "use": "sig"}, private=True),
        "RS256": RSAKey.generate_key(2048, parameters={"kid": "rs", "alg": "RS256", "use": "sig"}, private=True),
        "EdDSA": OKPKey.generate_key("Ed25519", parameters={"kid": "ed", "alg": "EdDSA", "use": "sig"}, private=True),
    }


def tokens_for(alg: str, key: Any, count: int) -> list[str]:
    now = int(time.time())
    out = []
    for i in range(count):
        claims = {"iss": ISSUER, "sub": f"user-{i}", "aud": AUDIENCE, "exp": now + 3600, "iat": now,
                  "jti": str(uuid.uuid4()), "client_id": "bench-client", "scope": "profile:read profile:write"}
        out.append(jose_jwt.encode({"alg": alg, "typ": "at+jwt", "kid": key.kid}, claims, key, algorithms=[alg]))
    return out


def serve_jwks(keys: dict[str, Any]) -> tuple[ThreadingHTTPServer, str]:
    body = json.dumps({"keys": [k.as_dict(private=False) for k in keys.values()]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json"


def raw_verifier(alg: str, key: Any) -> Callable[[str], None]:
    public = key.public_key
    prepared: dict[str, tuple[bytes, bytes]] = {}

    def prepare(token: str) -> tuple[bytes, bytes]:
        h, p, s = token.split(".")
        sig = base64.urlsafe_b64decode(s + "==")
        if alg == "ES256":
            sig = encode_dss_signature(int.from_bytes(sig[:32]), int.from_bytes(sig[32:]))
        return f"{h}.{p}".encode(), sig

    def verify(token: str) -> None:
        data, sig = prepared.get(token) or prepared.setdefault(token, prepare(token))
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public, rsa.RSAPublicKey):
            public.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            assert isinstance(public, ed25519.Ed25519PublicKey)
            public.verify(sig, data)

    return verify, prepare  # type: ignore[return-value]


def time_per_op(fn: Callable[[str], object], tokens: list[str], rounds: int = ROUNDS) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for t in tokens:
            fn(t)
        samples.append((time.perf_counter() - start) / len(tokens) * 1e6)
    return statistics.median(samples)


def main() -> None:
    print(f"# Guard validation benchmark — {describe()}")
    print(f"# {N} distinct tokens per algorithm, median of {ROUNDS} rounds, µs per token\n")
    keys = make_keys()
    httpd, jwks_uri = serve_jwks(keys)
    rows = []
    try:
        for alg, key in keys.items():
            tokens = tokens_for(alg, key, N)
            raw, prepare = raw_verifier(alg, key)  # type: ignore[misc]
            for t in tokens:
                prepare(t)

            pyjwt_key = pyjwt.PyJWK(key.as_dict(private=False))

            def with_pyjwt(t: str, k: Any = pyjwt_key, a: str = alg) -> object:
                header = pyjwt.get_unverified_header(t)
                assert header["typ"] == "at+jwt"
                return pyjwt.decode(t, k, algorithms=[a], audience=AUDIENCE, issuer=ISSUER,
                                    options={"require": ["iss", "exp", "aud", "sub", "iat", "jti"]})

            jose_keys = KeySet.import_key_set({"keys": [key.as_dict(private=False)]})
            registry = JWTClaimsRegistry(iss={"essential": True, "value": ISSUER},
                                         aud={"essential": True, "value": AUDIENCE},
                                         sub={"essential": True}, jti={"essential": True}, leeway=60)

            def with_joserfc(t: str, a: str = alg) -> object:
                decoded = jose_jwt.decode(t, jose_keys, algorithms=[a])
                assert decoded.header["typ"] == "at+jwt"
                registry.validate(decoded.claims)
                return decoded

            def cold_run(t: str) -> object:
                return cold.verify_sync(t)

            # Raw and cold are timed in alternation, round by round, so machine noise hits both alike;
            # the overhead is the median of the per-round differences.
            raw_samples, cold_samples = [], []
            for _ in range(ROUNDS):
                raw_samples.append(time_per_op(raw, tokens, rounds=1))
                cold = JwtVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=jwks_uri, algorithms=[alg],
                                   cache_size=N + 10)
                cold.ensure_ready_sync()
                cold.jwks.refresh_sync()  # key set fetched before timing: we measure validation, not HTTP
                start = time.perf_counter()
                for t in tokens:
                    cold.verify_sync(t)
                cold_samples.append((time.perf_counter() - start) / N * 1e6)
            raw_us = statistics.median(raw_samples)
            cold_us = statistics.median(cold_samples)
            cold_overhead = statistics.median(c - r for c, r in zip(cold_samples, raw_samples, strict=True))
            hot_us = time_per_op(cold_run, tokens)  # every token now cached
            pyjwt_us = time_per_op(with_pyjwt, tokens)
            joserfc_us = time_per_op(with_joserfc, tokens)
            rows.append((alg, raw_us, pyjwt_us, joserfc_us, cold_us, hot_us, cold_overhead))
    finally:
        httpd.shutdown()

    print("| alg | raw verify (floor) | PyJWT | joserfc | Tokenward cold | Tokenward hot | cold overhead | "
          "PyJWT overhead | joserfc overhead |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for alg, raw_us, pyjwt_us, joserfc_us, cold_us, hot_us, overhead in rows:
        print(f"| {alg} | {raw_us:.1f} | {pyjwt_us:.1f} | {joserfc_us:.1f} | {cold_us:.1f} | {hot_us:.2f} | "
              f"+{overhead:.1f} µs ({cold_us / raw_us:.2f}×) | +{pyjwt_us - raw_us:.1f} µs | "
              f"+{joserfc_us - raw_us:.1f} µs |")
    print("\nGoal (issue #3): cold ≤ raw + 10 µs for every algorithm, hot ≤ 3 µs.")
    for alg, _r, _p, _j, _c, hot_us, overhead in rows:
        print(f"  {alg}: cold overhead {overhead:+.1f} µs {'met' if overhead <= 10 else 'MISSED'}; "
              f"hot {hot_us:.2f} µs {'met' if hot_us <= 3 else 'MISSED'}")


if __name__ == "__main__":
    main()
