"""OpenID Connect request parameters and claims, as pure functions (OIDC Core 1.0 §3.1.2.1, §5.1, §5.4, §5.5).

Nothing here touches storage or HTTP: the authorization endpoint parses with these, the token endpoint and
userinfo release claims with them.
"""

from __future__ import annotations

import json
from typing import Any

from tokenward.protocol.errors import InvalidRequestError

OPENID = "openid"
OFFLINE_ACCESS = "offline_access"
PROMPT_VALUES = ("none", "login", "consent", "select_account")
RESPONSE_MODES = ("query", "form_post")
MAX_MAX_AGE = 10 * 365 * 86400  # anything above is treated as a mistake, not "forever"

# §5.4: which standard claims each scope releases (to userinfo when an access token is issued).
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": ("name", "family_name", "given_name", "middle_name", "nickname", "preferred_username",
                "profile", "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at"),
    "email": ("email", "email_verified"),
    "address": ("address",),
    "phone": ("phone_number", "phone_number_verified"),
}
STANDARD_CLAIMS = ("sub", *(c for claims in SCOPE_CLAIMS.values() for c in claims))
OIDC_SCOPES = (OPENID, *SCOPE_CLAIMS, OFFLINE_ACCESS)
# Claims the server itself puts in an ID token: a claims request cannot ask for them to be replaced.
ID_TOKEN_PROTOCOL_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp",
                                      "at_hash", "c_hash", "sid", "jti"})


def parse_prompt(value: str | None) -> tuple[str, ...]:
    """§3.1.2.1: space-delimited, from the four defined values; ``none`` stands alone."""
    if value is None:
        return ()
    values = tuple(dict.fromkeys(value.split(" ")))
    if any(v not in PROMPT_VALUES for v in values):
        raise InvalidRequestError("prompt has an unknown value.")
    if "none" in values and len(values) > 1:
        raise InvalidRequestError("prompt=none cannot be combined with other values.")
    return values


def parse_max_age(value: str | None) -> int | None:
    """§3.1.2.1: a non-negative number of seconds."""
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 10:
        raise InvalidRequestError("max_age must be a non-negative integer.")
    return min(int(value), MAX_MAX_AGE)


def parse_response_mode(value: str | None) -> str | None:
    """OAuth 2.0 Multiple Response Types §2.1, Form Post Response Mode §2; ``fragment`` has no place in the
    code flow (RFC 9700 §2.1.2)."""
    if value is not None and value not in RESPONSE_MODES:
        raise InvalidRequestError("response_mode must be query or form_post.")
    return value


def parse_claims_request(value: str | None) -> str | None:
    """§5.5: a JSON object with optional ``userinfo`` and ``id_token`` members, each mapping claim names to
    null or an object (``essential``, ``value``, ``values``). Returned as compact JSON text to store."""
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        raise InvalidRequestError("claims is not valid JSON.") from None
    if not isinstance(parsed, dict):
        raise InvalidRequestError("claims must be a JSON object.")
    kept: dict[str, dict[str, Any]] = {}
    for target in ("userinfo", "id_token"):
        member = parsed.get(target)
        if member is None:
            continue
        if not isinstance(member, dict) or any(
                not isinstance(k, str) or not (v is None or isinstance(v, dict)) for k, v in member.items()):
            raise InvalidRequestError("claims members must map claim names to null or an object.")
        kept[target] = member
    return json.dumps(kept, separators=(",", ":"))


def release(user_claims: dict[str, Any], scopes: frozenset[str] | set[str], requested: dict[str, Any] | None,
            *, username: str) -> dict[str, Any]:
    """The claims a client may see: the standard claims its scopes cover (§5.4) plus the ones named in its
    ``claims`` request member (§5.5; also non-standard ones). A claim without a value is left out, never sent
    as ``""`` or ``null``; ``email_verified`` / ``phone_number_verified`` only with their claim; the
    username is the default ``preferred_username``."""
    available = dict(user_claims)
    available.setdefault("preferred_username", username)
    names: list[str] = [c for scope in scopes for c in SCOPE_CLAIMS.get(scope, ())]
    names += [n for n in (requested or {}) if n not in ID_TOKEN_PROTOCOL_CLAIMS]
    out: dict[str, Any] = {}
    for name in names:
        value = available.get(name)
        if value is None or value == "" or value == {}:
            continue
        out[name] = value
    for verified, claim in (("email_verified", "email"), ("phone_number_verified", "phone_number")):
        if claim not in out:
            out.pop(verified, None)
    return out


# Claims a user record may not carry: ``sub`` is the stable opaque user id (§5.7), the rest are set by the
# server per token (RFC 7519 §4.1, OIDC Core §2); ``updated_at`` is kept by the store on every change.
RESERVED_USER_CLAIMS = ID_TOKEN_PROTOCOL_CLAIMS | {"nbf", "typ", "cnf", "client_id", "scope", "updated_at",
                                                   "_claim_names", "_claim_sources"}
MAX_USER_CLAIMS_BYTES = 4096
MAX_CLAIM_NAME = 64
_CLAIM_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:#")


def parse_claim_assignment(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from the command line: the value as JSON when it parses (``true``, ``42``, an
    ``address`` object), else the text itself, so ``--claim nickname=Al`` needs no quoting."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise ValueError(f"expected KEY=VALUE, got {text.split('=')[0]!r}")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return name, value


def check_user_claims(claims: dict[str, Any]) -> None:
    """Refuse what would let a stored claim impersonate a protocol claim or bloat every token and userinfo
    answer: reserved names, odd names, values that are not JSON, more than 4 KiB in all."""
    for name in claims:
        if name in RESERVED_USER_CLAIMS:
            raise ValueError(f"{name} is set by the server and cannot be stored as a user claim")
        if not 0 < len(name) <= MAX_CLAIM_NAME or not set(name) <= _CLAIM_NAME_CHARS:
            raise ValueError(f"claim names are 1-{MAX_CLAIM_NAME} characters of A-Z a-z 0-9 _ - . : #")
    try:
        size = len(json.dumps(claims, separators=(",", ":")).encode())
    except (TypeError, ValueError):
        raise ValueError("claim values must be JSON") from None
    if size > MAX_USER_CLAIMS_BYTES:
        raise ValueError(f"a user's claims may take at most {MAX_USER_CLAIMS_BYTES} bytes as JSON ({size})")
    for flag in ("email_verified", "phone_number_verified"):
        if flag in claims and not isinstance(claims[flag], bool):
            raise ValueError(f"{flag} must be true or false")
    if "address" in claims and not isinstance(claims["address"], dict):
        raise ValueError("address must be a JSON object (OIDC Core §5.1.1)")
