"""PKCE (RFC 7636), S256 only (RFC 9700 §2.1.1: "S256 is the only such method")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from .errors import InvalidGrantError, InvalidRequestError

# RFC 7636 §4.1 / §4.2: 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"
_PKCE_VALUE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def s256(verifier: str) -> str:
    """The S256 code challenge for ``verifier`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_verifier() -> str:
    """A fresh 256-bit verifier (43 characters); used by the client library and tests."""
    return secrets.token_urlsafe(32)


def validate_challenge(challenge: str | None, method: str | None) -> str:
    """Check an authorization request's challenge (RFC 7636 §4.4.1); used by /authorize."""
    if not challenge:
        raise InvalidRequestError("code_challenge is required (PKCE with S256).")
    if method != "S256":
        raise InvalidRequestError("code_challenge_method must be S256.")
    if not _PKCE_VALUE.fullmatch(challenge):
        raise InvalidRequestError("code_challenge is malformed.")
    return challenge


def verify(verifier: str | None, challenge: str) -> None:
    """Check a token request's verifier against the stored challenge (RFC 7636 §4.6).

    A missing or malformed verifier is ``invalid_request``; a wrong one is ``invalid_grant``.
    Used by: the authorization_code grant.
    """
    if not verifier:
        raise InvalidRequestError("code_verifier is required.")
    if not _PKCE_VALUE.fullmatch(verifier):
        raise InvalidRequestError("code_verifier is malformed.")
    if not hmac.compare_digest(s256(verifier), challenge):
        raise InvalidGrantError("The code_verifier does not match the code_challenge.")
