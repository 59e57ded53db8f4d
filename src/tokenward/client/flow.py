"""Sans-IO OAuth 2.1 client steps: build requests and parse responses, never send anything.

Keeping the protocol free of I/O lets one implementation serve httpx2, httpx, requests, sync and async alike
(the adapters in ``auth.py`` only carry bytes), and lets tests check every rule from a table.
Used by: ``auth.py`` (refresh, client credentials), ``loopback.py`` (code + PKCE), ``cli.py``.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote_plus, urlencode, urlsplit

from tokenward.client.errors import AuthorizationError, LoginRequiredError, TokenEndpointError, server_text
from tokenward.protocol import pkce

ClientAuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Who the client is at the token endpoint. A client without a secret is public (auth method ``none``)."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    auth_method: ClientAuthMethod | None = None

    @property
    def method(self) -> ClientAuthMethod:
        if self.auth_method is not None:
            return self.auth_method
        return "client_secret_basic" if self.client_secret else "none"


@dataclass(frozen=True, slots=True)
class Token:
    """A token response as the client keeps it (RFC 6749 §5.1), with absolute times.

    ``expires_at`` and ``obtained_at`` are wall-clock seconds so a token written by one process means the same
    in another. ``repr``/``str`` never show the token values.
    """

    access_token: str
    token_type: str = "Bearer"
    expires_at: float | None = None
    refresh_token: str | None = None
    scope: str | None = None
    obtained_at: float = 0.0
    id_token: str | None = None  # OpenID Connect: kept for id_token_hint at logout (RP-Initiated Logout §2)
    id_claims: Mapping[str, Any] | None = None  # its claims, set only once validated (client/oidc.py)

    @property
    def lifetime(self) -> float | None:
        """Seconds between issue and expiry, or None when the server sent no ``expires_in``."""
        return None if self.expires_at is None else max(0.0, self.expires_at - self.obtained_at)

    def refresh_due_at(self, leeway: float, leeway_fraction: float) -> float | None:
        """When to refresh: ``leeway`` seconds before expiry, but never more than ``leeway_fraction`` of the
        lifetime, so a 30-second token is used for 22.5 s rather than refreshed on every call."""
        if self.expires_at is None:
            return None
        margin = min(leeway, leeway_fraction * (self.lifetime or 0.0))
        return self.expires_at - margin

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def to_dict(self) -> dict[str, Any]:
        """The stored form; only ever written encrypted or into an OS keyring."""
        return {"access_token": self.access_token, "token_type": self.token_type, "expires_at": self.expires_at,
                "refresh_token": self.refresh_token, "scope": self.scope, "obtained_at": self.obtained_at,
                "id_token": self.id_token, "id_claims": dict(self.id_claims) if self.id_claims is not None else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Token:
        if not isinstance(data.get("access_token"), str):
            raise ValueError("stored token has no access_token")
        expires_at = data.get("expires_at")
        refresh = data.get("refresh_token")
        scope = data.get("scope")
        id_token, id_claims = data.get("id_token"), data.get("id_claims")
        return cls(access_token=data["access_token"], token_type=str(data.get("token_type") or "Bearer"),
                   expires_at=float(expires_at) if isinstance(expires_at, int | float) else None,
                   refresh_token=refresh if isinstance(refresh, str) else None,
                   scope=scope if isinstance(scope, str) else None,
                   obtained_at=float(data.get("obtained_at") or 0.0),
                   id_token=id_token if isinstance(id_token, str) else None,
                   id_claims=id_claims if isinstance(id_claims, dict) else None)

    def __repr__(self) -> str:
        return (f"Token(access_token=[redacted], token_type={self.token_type!r}, expires_at={self.expires_at!r}, "
                f"refresh_token={'[redacted]' if self.refresh_token else None}, scope={self.scope!r}, "
                f"id_token={'[redacted]' if self.id_token else None})")

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request to send; the body may hold secrets, so ``repr`` shows only method and URL."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""

    def __repr__(self) -> str:
        return f"HttpRequest({self.method} {self.url})"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """What a parser needs of a response. Header names are lower-case."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def __repr__(self) -> str:
        return f"HttpResponse({self.status})"


# ------------------------------------------------------------------ token requests (RFC 6749 §4.1.3, §4.4, §6)

def token_request(token_endpoint: str, client: ClientConfig, params: Mapping[str, str]) -> HttpRequest:
    """A POST to the token endpoint with the client authenticated as configured (RFC 6749 §2.3.1)."""
    form = dict(params)
    headers = {"Content-Type": FORM, "Accept": "application/json"}
    method = client.method
    if method == "client_secret_basic" and client.client_secret is not None:
        # §2.3.1: id and secret are form-urlencoded before Base64.
        raw = f"{quote_plus(client.client_id)}:{quote_plus(client.client_secret)}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
    elif method == "client_secret_post" and client.client_secret is not None:
        form["client_id"] = client.client_id
        form["client_secret"] = client.client_secret
    else:
        form["client_id"] = client.client_id
    return HttpRequest("POST", token_endpoint, headers, urlencode(form).encode("ascii"))


def code_token_request(token_endpoint: str, client: ClientConfig, code: str, redirect_uri: str,
                       code_verifier: str) -> HttpRequest:
    return token_request(token_endpoint, client, {
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "code_verifier": code_verifier})


def refresh_token_request(token_endpoint: str, client: ClientConfig, refresh_token: str,
                          scope: str | None = None) -> HttpRequest:
    params = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scope:
        params["scope"] = scope
    return token_request(token_endpoint, client, params)


def client_credentials_request(token_endpoint: str, client: ClientConfig, scope: str | None = None,
                               resource: str | None = None) -> HttpRequest:
    params = {"grant_type": "client_credentials"}
    if scope:
        params["scope"] = scope
    if resource:
        params["resource"] = resource
    return token_request(token_endpoint, client, params)


def parse_token_response(response: HttpResponse, *, now: float | None = None, previous: Token | None = None,
                         requested_scope: str | None = None) -> Token:
    """A token endpoint answer as a ``Token``, or the matching error.

    ``invalid_grant`` becomes ``LoginRequiredError`` (the grant is gone: only a new login helps). A refresh
    answer without ``refresh_token`` keeps the previous one (RFC 6749 §6), and without ``scope`` keeps the
    previous scope (§5.1). 5xx and unreadable bodies are transient ``TokenEndpointError``s.
    """
    now = time.time() if now is None else now
    try:
        body = json.loads(response.body.decode("utf-8")) if response.body else None
    except (UnicodeDecodeError, ValueError):
        body = None
    if response.status != 200:
        if isinstance(body, dict) and isinstance(body.get("error"), str) and response.status < 500 \
                and response.status != 429:
            error = body["error"]
            description = body.get("error_description") or ""
            if error == "invalid_grant":
                raise LoginRequiredError(f"the authorization server refused the grant ({server_text(description)})"
                                         if description else "the authorization server refused the grant",
                                         error=error)
            raise TokenEndpointError(error, str(description), status=response.status)
        raise TokenEndpointError("server_error", "unexpected answer from the token endpoint",
                                 status=response.status, transient=True)
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise TokenEndpointError("invalid_response", "the token response has no access_token", status=200,
                                 transient=True)
    token_type = body.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenEndpointError("unsupported_token_type", "only Bearer tokens are supported", status=200)
    expires_in = body.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isdigit():  # some servers send a string
        expires_in = int(expires_in)
    expires_at = now + float(expires_in) if isinstance(expires_in, int | float) and expires_in >= 0 else None
    refresh = body.get("refresh_token")
    scope = body.get("scope")
    id_token = body.get("id_token")
    return Token(
        access_token=body["access_token"], token_type="Bearer", expires_at=expires_at,
        refresh_token=refresh if isinstance(refresh, str) and refresh else (previous.refresh_token if previous
                                                                             else None),
        scope=scope if isinstance(scope, str) else (previous.scope if previous else requested_scope),
        obtained_at=now,
        # A new ID token is unverified here (id_claims None) until client/oidc.py validates it; without one a
        # refresh keeps the login's ID token and claims.
        id_token=id_token if isinstance(id_token, str) and id_token else (previous.id_token if previous else None),
        id_claims=None if isinstance(id_token, str) and id_token else (previous.id_claims if previous else None))


# ------------------------------------------------------------------ authorization code + PKCE (RFC 6749 §4.1)

@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """One pending authorization: what to open in the browser and what to check when the redirect comes back.

    Bound to one issuer (RFC 9700 §4.4.2): the ``iss`` in the response must be this one.
    """

    url: str = field(repr=False)  # carries the state
    state: str = field(repr=False)
    code_verifier: str = field(repr=False)
    redirect_uri: str
    issuer: str
    require_iss: bool = False
    scope: str | None = None
    nonce: str | None = field(default=None, repr=False)


def start_authorization(authorization_endpoint: str, client_id: str, redirect_uri: str, *, issuer: str,
                        scope: str | None = None, require_iss: bool = False,
                        extra: Mapping[str, str] | None = None) -> AuthorizationRequest:
    """A fresh authorization request with PKCE S256 (RFC 7636; the only method OAuth 2.1 allows) and a
    256-bit ``state``; with ``openid`` in the scope also a 256-bit ``nonce`` (OIDC Core §3.1.2.1), which
    binds the ID token to this very request."""
    verifier = pkce.new_verifier()
    state = secrets.token_urlsafe(32)
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "state": state,
              "code_challenge": pkce.s256(verifier), "code_challenge_method": "S256"}
    nonce: str | None = None
    if scope:
        params["scope"] = scope
        if "openid" in scope.split():
            nonce = secrets.token_urlsafe(32)
            params["nonce"] = nonce
    params.update(extra or {})
    separator = "&" if urlsplit(authorization_endpoint).query else "?"
    return AuthorizationRequest(url=f"{authorization_endpoint}{separator}{urlencode(params)}", state=state,
                                code_verifier=verifier, redirect_uri=redirect_uri, issuer=issuer,
                                require_iss=require_iss, scope=scope, nonce=nonce)


def state_matches(request: AuthorizationRequest, params: Mapping[str, str]) -> bool:
    """Whether a redirect belongs to this request (constant-time comparison of ``state``)."""
    got = params.get("state")
    return got is not None and hmac.compare_digest(got.encode(), request.state.encode())


def parse_authorization_response(request: AuthorizationRequest, params: Mapping[str, str]) -> str:
    """The authorization code from a redirect's query, after the ``state`` and ``iss`` checks.

    ``iss`` is checked before anything else is read (RFC 9207 §2.4): present, it must equal the issuer the
    request went to; absent, it is an error when the server advertised it.
    """
    if not state_matches(request, params):
        raise AuthorizationError("state_mismatch", "the response does not belong to this login")
    iss = params.get("iss")
    if iss is not None and iss != request.issuer:
        raise AuthorizationError("issuer_mismatch", "the response comes from another issuer (RFC 9207)")
    if iss is None and request.require_iss:
        raise AuthorizationError("issuer_missing", "the server advertises iss but the response has none")
    if "error" in params:
        raise AuthorizationError(params["error"], params.get("error_description", ""))
    code = params.get("code")
    if not code:
        raise AuthorizationError("invalid_response", "the response has no code")
    return code

