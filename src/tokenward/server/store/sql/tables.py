"""The schema (SQLAlchemy Core). Alembic migrations under ``migrations/`` must create exactly this."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

clients = Table(
    "clients", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("public", Boolean, nullable=False),
    Column("secret_hash", LargeBinary(32)),
    Column("redirect_uris", Text, nullable=False),  # JSON list
    Column("grant_types", Text, nullable=False),  # JSON list
    Column("scope", Text, nullable=False),
    Column("audiences", Text, nullable=False),  # JSON list
    Column("access_token_ttl", Integer),
    Column("signing_alg", String(16)),
    Column("created_at", BigInteger, nullable=False),
    Column("id_token_signing_alg", String(16)),
    Column("post_logout_redirect_uris", Text),  # JSON list; NULL: none
    Column("pkce_optional", Boolean),  # NULL: PKCE required
)

users = Table(
    "users", metadata,
    Column("id", String(36), primary_key=True),
    Column("username", String(150), nullable=False, unique=True),  # as typed at users add, for display
    Column("username_key", String(150), nullable=False, unique=True),  # what lookups compare: usernames.py
    Column("password_hash", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("claims", Text),  # JSON object of OIDC claims; NULL: none
    Column("updated_at", BigInteger),
)

grants = Table(
    "grants", metadata,
    Column("id", String(36), primary_key=True),
    Column("client_id", String(64), ForeignKey("clients.client_id", ondelete="CASCADE"), nullable=False),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE")),
    Column("scope", Text, nullable=False),
    Column("audience", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    Column("oidc", Text),  # OidcContext JSON; NULL: plain OAuth
    Index("ix_grants_user_id", "user_id"),
    Index("ix_grants_client_id", "client_id"),
)

authorization_codes = Table(
    "authorization_codes", metadata,
    Column("code_hash", LargeBinary(32), primary_key=True),
    Column("client_id", String(64), ForeignKey("clients.client_id", ondelete="CASCADE"), nullable=False),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("redirect_uri_explicit", Boolean, nullable=False),
    Column("code_challenge", String(128), nullable=False),
    Column("scope", Text, nullable=False),
    Column("audience", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("consumed_at", BigInteger),
    Column("grant_id", String(36)),  # the grant its redemption created; revoked on replay
    Column("oidc", Text),
)

refresh_tokens = Table(
    "refresh_tokens", metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("grant_id", String(36), ForeignKey("grants.id", ondelete="CASCADE"), nullable=False),
    Column("client_id", String(64), nullable=False),
    Column("scope", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("consumed_at", BigInteger),
    Column("revoked_at", BigInteger),
    # Grace window: the successor pair, sealed under the KEK with this row's hash as AAD, kept only while
    # a lost response may still be retried; one retry may claim it.
    Column("successor_hash", LargeBinary(32)),
    Column("successor_sealed", LargeBinary),
    Column("grace_used_at", BigInteger),
    Index("ix_refresh_tokens_grant_id", "grant_id"),
)

access_tokens = Table(
    "access_tokens", metadata,
    Column("jti", String(36), primary_key=True),
    # NULL for a revoked client-credentials token: those are recorded only when revoked.
    Column("grant_id", String(36), ForeignKey("grants.id", ondelete="CASCADE")),
    Column("client_id", String(64), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    Index("ix_access_tokens_grant_id", "grant_id"),
)

consents = Table(
    "consents", metadata,
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("client_id", String(64), ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True),
    Column("scope", Text, primary_key=True),
    Column("created_at", BigInteger, nullable=False),
)

sessions = Table(
    "sessions", metadata,
    Column("id_hash", LargeBinary(32), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE")),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("sid", String(36)),
)

authorization_requests = Table(
    "authorization_requests", metadata,
    Column("id", String(64), primary_key=True),
    Column("client_id", String(64), ForeignKey("clients.client_id", ondelete="CASCADE"), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("redirect_uri_explicit", Boolean, nullable=False),
    Column("scope", Text, nullable=False),
    Column("state", Text),
    Column("code_challenge", String(128), nullable=False),
    Column("audience", Text, nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("session_hash", LargeBinary(32), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("oidc", Text),
)

rate_limits = Table(
    "rate_limits", metadata,
    Column("key", String(200), primary_key=True),  # "client:<id>", "ip:<addr>", "user:<name>"
    Column("window_start", BigInteger, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("locked_until", BigInteger, nullable=False),
    Index("ix_rate_limits_locked_until", "locked_until"),
)

device_authorizations = Table(
    "device_authorizations", metadata,  # RFC 8628: one row per device authorization request
    Column("device_code_hash", LargeBinary(32), primary_key=True),
    Column("user_code_hash", LargeBinary(32), nullable=False, unique=True),  # unique while the row lives
    Column("client_id", String(64), ForeignKey("clients.client_id", ondelete="CASCADE"), nullable=False),
    Column("scope", Text, nullable=False),
    Column("audience", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("interval", Integer, nullable=False),  # grows by 5 s with every slow_down (RFC 8628 §3.5)
    Column("last_poll_ms", BigInteger),  # the last accepted poll, milliseconds
    Column("status", String(16), nullable=False),  # pending, approved, denied, redeemed
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE")),
    Column("decided_at", BigInteger),
    Column("grant_id", String(36)),  # the grant its redemption created
    Column("session_hash", LargeBinary(32)),  # the browser session that entered the user code
    Column("ip", String(64)),  # of the device's request, shown on the consent page
    Column("user_agent", String(512)),
    Index("ix_device_authorizations_expires_at", "expires_at"),
)

signing_keys = Table(
    "signing_keys", metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("public_jwk", Text, nullable=False),
    Column("private_jwk_sealed", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("activates_at", BigInteger, nullable=False),
    Column("retires_at", BigInteger),
    Column("expires_at", BigInteger),
)
