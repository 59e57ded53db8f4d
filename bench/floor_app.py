"""The framework floor for ``bench/token_bench.py``: the least a Python token endpoint on Tokenward's server
stack can do for a client-credentials request, so Tokenward's figures can be read against it (issue #17).

One Starlette route, POST /token: parse the form (``urllib.parse`` on the body, as Tokenward does:
Starlette's ``request.form()`` needs python-multipart, which is not installed), check HTTP Basic client credentials (RFC 6749 §2.3.1:
form-urlencoded id and secret, compared in constant time), sign one RFC 9068 access token (ES256, the same
claims as Tokenward's) with ``cryptography`` directly, answer the RFC 6749 §5.1 JSON with no-store. No
storage, no middleware, no logging.

Served the way ``tokenward serve`` serves (``tokenward.server.web.serving.run``): uvicorn, asyncio loop,
httptools, the same worker count with one ``SO_REUSEPORT`` listener per worker, no access log, keep-alive 5 s.
The one difference is uvicorn's stock httptools protocol instead of Tokenward's ``http_limits`` subclass
(head size and deadline, connections per IP): that is Tokenward's own work, so it counts against Tokenward.

    FLOOR_CLIENT_ID=... FLOOR_CLIENT_SECRET=... python -m bench.floor_app PORT WORKERS
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import sys
import time
import uuid
from urllib.parse import parse_qsl, unquote_plus

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SCOPE = "profile:read"
TTL = 600
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def error(code: str, status: int = 400) -> JSONResponse:
    headers = dict(NO_STORE)
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="token"'
    return JSONResponse({"error": code}, status_code=status, headers=headers)


def create_app() -> Starlette:
    client_id = os.environ.get("FLOOR_CLIENT_ID", "floor").encode()
    secret = os.environ.get("FLOOR_CLIENT_SECRET", "floor secret").encode()
    issuer = os.environ.get("FLOOR_ISSUER", "http://127.0.0.1")
    key = ec.generate_private_key(ec.SECP256R1())
    header = b64url(json.dumps({"alg": "ES256", "typ": "at+jwt", "kid": "floor"}, separators=(",", ":")).encode())

    def sign(claims: dict[str, object]) -> str:
        signing_input = f"{header}.{b64url(json.dumps(claims, separators=(',', ':')).encode())}"
        r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    async def token(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            return error("invalid_client", 401)
        # Both compared in full whatever the first gives, so the time says nothing about either.
        ok = hmac.compare_digest(unquote_plus(user).encode(), client_id)
        ok &= hmac.compare_digest(unquote_plus(password).encode(), secret)
        if scheme.lower() != "basic" or not ok:
            return error("invalid_client", 401)
        if form.get("grant_type") != "client_credentials":
            return error("unsupported_grant_type")
        if form.get("scope", SCOPE) != SCOPE:
            return error("invalid_scope")
        now = int(time.time())
        cid = client_id.decode()
        claims: dict[str, object] = {"iss": issuer, "sub": cid, "aud": issuer, "exp": now + TTL, "iat": now,
                                     "jti": str(uuid.uuid4()), "client_id": cid, "scope": SCOPE}
        return JSONResponse({"access_token": sign(claims), "token_type": "Bearer", "expires_in": TTL,
                             "scope": SCOPE}, headers=NO_STORE)

    async def health(_request: Request) -> Response:
        return Response(status_code=200)

    return Starlette(routes=[Route("/token", token, methods=["POST"]), Route("/health", health)])


def main() -> None:
    from tokenward.server.web import serving

    port, workers = int(sys.argv[1]), int(sys.argv[2])
    serving.run("bench.floor_app:create_app", host="127.0.0.1", port=port, workers=workers, loop="asyncio",
                http="httptools", log_config=None, access_log=False, server_header=False, timeout_keep_alive=5,
                timeout_graceful_shutdown=5, ws="none", limit_concurrency=1000, log_level="warning")


if __name__ == "__main__":
    main()
