"""A small relying party that performs what the OpenID Foundation's conformance suite checks in every Basic OP
module (its AbstractOIDCCServerTest and PerformStandardIdTokenChecks, summarised in
shared/research/oidc-device-dpop-par.md §1.1), against a real ``tokenward serve``.

The suite itself (Java, MongoDB, a browser robot) cannot run here; each test in test_oidcc_basic.py is named after
the module it ports and asserts what the module fails on (and, where it only warns, what a reviewer would check).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import httpx2
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support import PASSWORD, ClientInfo, ServerProcess, hidden_fields, query_of
from tokenward.protocol.pkce import new_verifier, s256

REDIRECT = "https://rp.example/cb"
ALL_SCOPES = "openid profile email address phone offline_access"
Method = Literal["client_secret_basic", "client_secret_post"]
ERROR_DESCRIPTION = re.compile(r"[\x09\x0a\x0d\x20-\x21\x23-\x5b\x5d-\x7e]*")
ERROR_MEMBERS = {"error", "error_description", "error_uri", "state", "session_state", "iss"}
PROFILE_CLAIMS = ("name", "given_name", "family_name", "middle_name", "nickname", "profile", "picture", "website",
                  "gender", "birthdate", "zoneinfo", "locale", "updated_at", "preferred_username")
USER_CLAIMS: dict[str, Any] = {
    "name": "Buffy Summers", "given_name": "Buffy", "family_name": "Summers", "middle_name": "Anne",
    "nickname": "Buff", "profile": "https://profiles.example/buffy", "picture": "https://profiles.example/b.png",
    "website": "https://buffy.example", "gender": "female", "birthdate": "1981-01-19",
    "zoneinfo": "America/Los_Angeles",
    "locale": "en-US", "email": "buffy@example.com", "email_verified": True, "phone_number": "+1 555 0100",
    "phone_number_verified": False,
    "address": {"street_address": "1630 Revello Drive", "locality": "Sunnydale", "region": "CA", "country": "US"},
}


@dataclass
class Authorization:
    """One authorization response at the callback, and what was sent for it."""

    params: dict[str, str]
    verifier: str
    nonce: str | None
    state: str
    login_shown: bool

    @property
    def code(self) -> str:
        return self.params["code"]


@dataclass
class Rp:
    """A statically registered confidential client using ``method`` at the token endpoint, with a browser (a
    cookie-keeping HTTP client) for the user's side."""

    server: ServerProcess
    client: ClientInfo
    method: Method
    username: str
    browser: httpx2.Client = field(init=False)

    def __post_init__(self) -> None:
        self.browser = httpx2.Client(base_url=self.server.base_url, follow_redirects=False, timeout=30)

    def close(self) -> None:
        self.browser.close()

    # -- configuration (checked at the start of every module)
    def discovery(self) -> dict[str, Any]:
        r = httpx2.get(self.server.base_url + "/.well-known/openid-configuration")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        doc: dict[str, Any] = r.json()
        for member in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
            assert doc[member].startswith(self.server.base_url), member
        assert self.method in doc["token_endpoint_auth_methods_supported"]
        return doc

    def jwks(self) -> dict[str, Any]:
        keys: dict[str, Any] = httpx2.get(self.discovery()["jwks_uri"]).json()
        kids = [k.get("kid") for k in keys["keys"]]
        assert all(kids) and len(set(kids)) == len(kids), "every key has a distinct, non-empty kid (OIDC Core §10.1)"
        for key in keys["keys"]:
            assert "d" not in key and key["kty"] != "oct", "no private or symmetric key is published"
        return keys

    # -- the user's side
    def authorize(self, *, scope: str = "openid", nonce: str | None = "nonce-default", state: str | None = None,
                  login: bool = True, post: bool = False, extra: dict[str, str] | None = None,
                  redirect_uri: str = REDIRECT) -> Authorization:
        verifier = new_verifier()
        state = state or f"state-{time.monotonic_ns()}"
        params = {"response_type": "code", "client_id": self.client.client_id, "redirect_uri": redirect_uri,
                  "scope": scope, "state": state, "code_challenge": s256(verifier), "code_challenge_method": "S256"}
        if nonce is not None:
            params["nonce"] = nonce
        params.update(extra or {})
        r = (self.browser.post("/authorize", content=urlencode(params),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
             if post else self.browser.get("/authorize", params=params))
        login_shown = False
        for _ in range(4):
            assert r.status_code == 303, (r.status_code, r.text[:300])
            location = r.headers["location"]
            if location.startswith(redirect_uri):
                return Authorization(query_of(location), verifier, nonce, state, login_shown)
            page = self.browser.get(location)
            if page.status_code == 303:
                r = page
                continue
            assert page.status_code == 200, page.text[:300]
            if location.startswith("/login"):
                login_shown = True
                assert login, "a login page was shown where none was expected"
                r = self.browser.post("/login", data={**hidden_fields(page.text), "username": self.username,
                                                      "password": PASSWORD})
            else:
                r = self.browser.post("/consent", data={**hidden_fields(page.text), "decision": "allow"})
        raise AssertionError("the flow did not come back to the client")

    # -- the client's side
    def token(self, data: dict[str, str], client: ClientInfo | None = None) -> httpx2.Response:
        client = client or self.client
        assert client.client_secret is not None
        if self.method == "client_secret_basic":
            return httpx2.post(self.server.base_url + "/token", data=data,
                               auth=httpx2.BasicAuth(client.client_id, client.client_secret))
        return httpx2.post(self.server.base_url + "/token",
                           data={**data, "client_id": client.client_id, "client_secret": client.client_secret})

    def exchange(self, auth: Authorization) -> dict[str, Any]:
        """The code exchange with every token-response check of the suite; returns the response body."""
        r = self.token({"grant_type": "authorization_code", "code": auth.code, "redirect_uri": REDIRECT,
                        "code_verifier": auth.verifier})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/json") and r.headers["cache-control"] == "no-store"
        body: dict[str, Any] = r.json()
        assert body["token_type"].lower() == "bearer" and body["access_token"]
        assert 0 < body["expires_in"] <= 31_536_000
        return body

    def id_token(self, body: dict[str, Any], nonce: str | None) -> dict[str, Any]:
        """PerformStandardIdTokenChecks: signature by kid, iss, aud, exp, iat, auth_time, nonce, sub, at_hash."""
        token = body["id_token"]
        keys = KeySet.import_key_set(self.jwks())
        decoded = jwt.decode(token, keys, algorithms=["RS256", "ES256", "EdDSA"])
        header, claims = dict(decoded.header), dict(decoded.claims)
        assert header["kid"] in {k.kid for k in keys.keys}
        now = time.time()
        assert claims["iss"] == self.server.base_url
        aud = claims["aud"]
        assert aud == self.client.client_id or (isinstance(aud, list) and self.client.client_id in aud)
        assert now - 300 < claims["exp"] < now + 50 * 365 * 86400
        assert now - 300 <= claims["iat"] <= now + 300
        if "auth_time" in claims:
            assert now - 365 * 86400 < claims["auth_time"] <= now + 300
        if nonce is None:
            assert "nonce" not in claims
        else:
            assert claims["nonce"] == nonce
        sub = claims["sub"]
        assert isinstance(sub, str) and 0 < len(sub) <= 255 and re.fullmatch(r"[\x20-\x7e]+", sub)
        if "acr" in claims:
            assert isinstance(claims["acr"], str) and claims["acr"]
        if "at_hash" in claims:
            digest = hashlib.sha512 if header["alg"] == "EdDSA" else hashlib.sha256
            value = digest(body["access_token"].encode()).digest()
            assert claims["at_hash"] == base64.urlsafe_b64encode(value[: len(value) // 2]).rstrip(b"=").decode()
        return claims

    def userinfo(self, access_token: str, how: Literal["get", "post-header", "post-body"] = "get"
                 ) -> httpx2.Response:
        url = self.discovery()["userinfo_endpoint"]
        if how == "get":
            return httpx2.get(url, headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"})
        if how == "post-header":
            return httpx2.post(url, content=b"", headers={"Authorization": f"Bearer {access_token}",
                                                          "Content-Type": "application/x-www-form-urlencoded"})
        return httpx2.post(url, data={"access_token": access_token})

    def userinfo_claims(self, access_token: str, sub: str, how: Literal["get", "post-header", "post-body"] = "get"
                        ) -> dict[str, Any]:
        r = self.userinfo(access_token, how)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/json")
        claims: dict[str, Any] = r.json()
        assert claims["sub"] == sub
        if "updated_at" in claims:
            assert 631_152_000 < claims["updated_at"] <= time.time() + 300
        return claims

    def happy_path(self, **kwargs: Any) -> tuple[Authorization, dict[str, Any], dict[str, Any]]:
        """authorize → exchange → ID token checks; what most modules start with."""
        auth = self.authorize(**kwargs)
        assert auth.params["iss"] == self.server.base_url and auth.params["state"] == auth.state
        assert "error" not in auth.params
        body = self.exchange(auth)
        return auth, body, self.id_token(body, auth.nonce)


def check_error_response(auth: Authorization, errors: set[str]) -> None:
    """performGenericAuthorizationEndpointErrorResponseValidation."""
    params = auth.params
    assert params.get("error") in errors, params
    assert "code" not in params
    assert params["state"] == auth.state
    assert set(params) <= ERROR_MEMBERS
    assert ERROR_DESCRIPTION.fullmatch(params.get("error_description", ""))
