"""The records the server keeps. Times are integer Unix seconds; secrets appear only as hashes.

Every token row carries its ``grant_id`` so that revoking a grant family is one statement per table.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from tokenward.protocol.scope import Scope
from tokenward.protocol.types import GrantType


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    name: str
    public: bool
    redirect_uris: tuple[str, ...]
    grant_types: tuple[GrantType, ...]
    scope: Scope
    audiences: tuple[str, ...]
    created_at: int
    secret_hash: bytes | None = field(default=None, repr=False)
    access_token_ttl: int | None = None
    signing_alg: str | None = None
    # OpenID Connect relying-party settings (issue #13): None/empty/False mean the server's defaults.
    id_token_signing_alg: str | None = None
    post_logout_redirect_uris: tuple[str, ...] = ()
    pkce_optional: bool = False  # confidential clients only: code requests without code_challenge accepted


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    created_at: int
    password_hash: str = field(repr=False)
    claims: dict[str, Any] = field(default_factory=dict, compare=False)  # OIDC Core §5.1 claims, by name
    updated_at: int | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """One authorization (a user's consent to a client, or a code exchange): the refresh-token family."""

    id: str
    client_id: str
    user_id: str | None
    scope: Scope
    audience: str
    created_at: int
    expires_at: int
    revoked_at: int | None = None
    oidc: OidcContext | None = None


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    code_hash: bytes = field(repr=False)
    client_id: str
    user_id: str
    redirect_uri: str
    redirect_uri_explicit: bool
    code_challenge: str
    scope: Scope
    audience: str
    created_at: int
    expires_at: int
    consumed_at: int | None = None
    grant_id: str | None = None
    oidc: OidcContext | None = None


@dataclass(frozen=True, slots=True)
class RefreshToken:
    token_hash: bytes = field(repr=False)
    grant_id: str
    client_id: str
    scope: Scope
    created_at: int
    expires_at: int
    consumed_at: int | None = None
    revoked_at: int | None = None
    successor_hash: bytes | None = field(default=None, repr=False)
    successor_sealed: bytes | None = field(default=None, repr=False)
    grace_used_at: int | None = None


@dataclass(frozen=True, slots=True)
class AccessTokenRecord:
    """An issued JWT access token under a grant, kept so revoking the grant can mark it inactive."""

    jti: str
    grant_id: str | None
    client_id: str
    expires_at: int
    revoked_at: int | None = None


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A signing key; its state follows from the times: next (before activates_at), active, retired.

    A retired key stays in the JWKS until ``expires_at`` so tokens it signed keep validating.
    """

    kid: str
    alg: str
    public_jwk: str
    private_jwk_sealed: bytes = field(repr=False)
    created_at: int
    activates_at: int
    retires_at: int | None = None
    expires_at: int | None = None

    def state(self, now: int) -> str:
        if now < self.activates_at:
            return "next"
        if self.retires_at is not None and now >= self.retires_at:
            return "retired"
        return "active"

    def published(self, now: int) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True, slots=True)
class Session:
    """A browser's session at the authorization server; the cookie carries the secret, we keep its hash."""

    id_hash: bytes = field(repr=False)
    user_id: str | None
    created_at: int  # for a signed-in session: when the user authenticated (OIDC auth_time)
    expires_at: int
    sid: str | None = None  # the session's public id (OIDC ``sid``), never derived from the cookie


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A validated /authorize request waiting for login and consent, bound to one browser session."""

    id: str
    client_id: str
    redirect_uri: str
    redirect_uri_explicit: bool
    scope: Scope
    state: str | None
    code_challenge: str
    audience: str
    csrf_token: str = field(repr=False)
    session_hash: bytes = field(repr=False)
    created_at: int
    expires_at: int
    oidc: OidcContext | None = None


@dataclass(frozen=True, slots=True)
class OidcContext:
    """What makes a request, code or grant an OpenID Connect one (``scope`` contained ``openid``), carried
    request → code → grant so the ID token and userinfo can be built at each step (OIDC Core §3.1.2.1).

    ``claims`` is the validated ``claims`` request parameter (§5.5) as JSON text; ``auth_time`` and ``sid``
    are set when the user has authenticated; the request-only fields steer the login and consent steps.
    """

    nonce: str | None = None
    claims: str | None = None
    auth_time: int | None = None
    sid: str | None = None
    prompt: tuple[str, ...] = ()
    max_age: int | None = None
    login_hint: str | None = None
    response_mode: str | None = None
    hint_subject: str | None = None  # the ``sub`` of a valid id_token_hint

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v not in (None, ())}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> OidcContext | None:
        if text is None:
            return None
        data = json.loads(text)
        if "prompt" in data:
            data["prompt"] = tuple(data["prompt"])
        return cls(**data)

    def claims_request(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.claims) if self.claims else {}
        return parsed


class DeviceStatus(StrEnum):
    """Where a device authorization stands (RFC 8628 §3.5): pending → approved | denied; approved → redeemed."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    REDEEMED = "redeemed"


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """A device authorization request (RFC 8628 §3.1-§3.2): both codes kept only as hashes.

    ``interval`` is the poll interval of this device code: it grows by 5 s with every ``slow_down`` (§3.5).
    ``last_poll_ms`` is the last *accepted* poll, in milliseconds (the interval check needs sub-second
    precision). ``ip`` and ``user_agent`` are those of the device's request, shown on the consent page.
    """

    device_code_hash: bytes = field(repr=False)
    user_code_hash: bytes = field(repr=False)
    client_id: str
    scope: Scope
    audience: str
    created_at: int
    expires_at: int
    interval: int
    status: DeviceStatus = DeviceStatus.PENDING
    last_poll_ms: int | None = None
    user_id: str | None = None
    decided_at: int | None = None
    grant_id: str | None = None
    session_hash: bytes | None = field(default=None, repr=False)  # the browser that entered the user code
    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectedApp:
    """A client the user has granted access to, as the account page lists it (issue #13 part 3): its live
    grants and remembered consent together."""

    client_id: str
    client_name: str
    scope: Scope  # every scope granted or consented to
    first_granted: int
    last_used: int  # the latest grant or refresh-token rotation (each token request creates one of them)
