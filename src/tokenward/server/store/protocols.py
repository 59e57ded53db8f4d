"""What the server needs from storage, one protocol per aggregate.

Every call happens inside a caller-owned transaction (``Store.transaction``), so a grant that consumes a code
and issues tokens either does all of it or none of it. ``consume_*`` calls are single-use primitives: exactly
one concurrent caller gets True.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from tokenward.protocol.scope import Scope
from tokenward.server.model import (
    AccessTokenRecord,
    AuthorizationCode,
    AuthorizationRequest,
    Client,
    ConnectedApp,
    DeviceAuthorization,
    Grant,
    OidcContext,
    RefreshToken,
    Session,
    SigningKey,
    User,
)


class StoreUnavailableError(Exception):
    """The database could not be reached or timed out; the transaction did not happen."""


class ClientStore(Protocol):
    async def get_client(self, client_id: str) -> Client | None: ...
    async def save_client(self, client: Client) -> None: ...
    async def set_client_secret_hash(self, client_id: str, secret_hash: bytes) -> bool: ...
    async def delete_client(self, client_id: str) -> bool: ...
    async def list_clients(self) -> Sequence[Client]: ...


class UserStore(Protocol):
    async def get_user(self, user_id: str) -> User | None: ...
    async def get_user_by_username(self, username: str) -> User | None: ...
    async def save_user(self, user: User) -> bool: ...
    async def delete_user(self, user_id: str) -> bool: ...
    async def list_users(self) -> Sequence[User]: ...
    async def set_password_hash(self, user_id: str, password_hash: str) -> None: ...
    async def set_claims(self, user_id: str, claims: dict[str, Any], now: int) -> None: ...


class SessionStore(Protocol):
    async def save_session(self, session: Session) -> None: ...
    async def get_session(self, id_hash: bytes, now: int) -> Session | None: ...
    async def delete_session(self, id_hash: bytes) -> None: ...


class AuthorizationRequestStore(Protocol):
    async def save_authorization_request(self, request: AuthorizationRequest) -> None: ...
    async def get_authorization_request(self, request_id: str, now: int) -> AuthorizationRequest | None: ...
    async def rebind_authorization_request(self, request_id: str, session_hash: bytes,
                                           oidc: OidcContext | None = None) -> None: ...
    async def delete_authorization_request(self, request_id: str) -> bool:
        """Remove a pending request; True only for the one caller that removed it (it is answered once)."""
        ...


class ConsentStore(Protocol):
    async def has_consent(self, user_id: str, client_id: str, scope: Scope) -> bool: ...
    async def save_consent(self, user_id: str, client_id: str, scope: Scope, now: int) -> None: ...
    async def forget_consent(self, user_id: str, client_id: str) -> int:
        """Delete the user's remembered consent for the client (the next authorization asks again)."""
        ...


class CodeStore(Protocol):
    async def save_code(self, code: AuthorizationCode) -> None: ...
    async def get_code(self, code_hash: bytes) -> AuthorizationCode | None: ...
    async def consume_code(self, code_hash: bytes, grant_id: str, now: int) -> bool: ...


class DeviceAuthorizationStore(Protocol):
    """Device authorization requests (RFC 8628); every transition is single-winner like ``consume_code``."""

    async def save_device_authorization(self, device: DeviceAuthorization, now: int) -> bool:
        """Store a new request; False (nothing stored) when a live request already holds its user code, so
        the caller draws another one. An expired request with the same user code is removed first."""
        ...

    async def get_device_authorization(self, device_code_hash: bytes) -> DeviceAuthorization | None: ...
    async def get_device_authorization_by_user_code(self, user_code_hash: bytes) -> DeviceAuthorization | None: ...

    async def accept_device_poll(self, device_code_hash: bytes, now_ms: int, slack_ms: int) -> bool:
        """Record a poll of a pending request if its interval has passed since the last accepted poll (less
        ``slack_ms``); False when it came too early or the request is not pending (RFC 8628 §3.5)."""
        ...

    async def slow_down_device(self, device_code_hash: bytes, step: int) -> int | None:
        """Grow a pending request's interval by ``step`` seconds; returns the new interval."""
        ...

    async def bind_device_session(self, device_code_hash: bytes, session_hash: bytes) -> None:
        """Remember the browser session that entered the user code (the next steps must come from it)."""
        ...

    async def decide_device_authorization(self, device_code_hash: bytes, *, approved: bool, user_id: str,
                                          now: int) -> bool:
        """Approve or deny a pending, unexpired request; True only for the one caller that decided it."""
        ...

    async def redeem_device_authorization(self, device_code_hash: bytes, grant_id: str, now: int) -> bool:
        """Mark an approved, unexpired request redeemed; True for exactly one concurrent caller."""
        ...


class GrantStore(Protocol):
    async def save_grant(self, grant: Grant) -> None: ...
    async def get_grant(self, grant_id: str, *, lock: bool = False) -> Grant | None:
        """``lock=True`` holds the grant's row until commit: every rotation and revocation of one family
        takes it first, so they queue in one order and never deadlock (PostgreSQL; SQLite writers are
        serialised anyway)."""
        ...
    async def lock_refresh_family(self, token_hash: bytes) -> Grant | None:
        """The grant of a refresh token, locked like ``get_grant(lock=True)``; None if either is unknown."""
        ...

    async def revoke_grant(self, grant_id: str, now: int) -> None:
        """Revoke the grant, its refresh tokens and the access tokens issued under it."""
        ...

    async def list_grants(self, *, user_id: str | None = None, client_id: str | None = None,
                          active_at: int | None = None) -> Sequence[Grant]: ...

    async def revoke_user(self, user_id: str, now: int) -> int:
        """Revoke every grant of a user, their unredeemed codes and pending requests, and end their sessions
        ("log out everywhere"); returns the number of grants revoked."""
        ...

    async def revoke_user_client(self, user_id: str, client_id: str, now: int) -> int:
        """Revoke every live grant of the user for one client (with their tokens) and the client's unredeemed
        codes for the user (the account page's revoke); returns the number of grants revoked."""
        ...

    async def list_connected_apps(self, user_id: str, now: int) -> Sequence[ConnectedApp]:
        """The clients with a live grant or remembered consent of the user, by client name."""
        ...


class RefreshTokenStore(Protocol):
    async def save_refresh_token(self, token: RefreshToken) -> None: ...
    async def get_refresh_token(self, token_hash: bytes) -> RefreshToken | None: ...
    async def consume_refresh_token(self, token_hash: bytes, now: int) -> RefreshToken | None:
        """Mark an unconsumed, unrevoked token consumed; returns it as consumed, or None (not usable)."""
        ...
    async def keep_successor(self, token_hash: bytes, successor_hash: bytes, sealed: bytes) -> None: ...
    async def claim_grace_retry(self, token_hash: bytes, now: int) -> bool: ...


class AccessTokenStore(Protocol):
    async def save_access_token(self, record: AccessTokenRecord) -> None: ...
    async def get_access_token(self, jti: str) -> AccessTokenRecord | None: ...
    async def revoke_access_token(self, jti: str, client_id: str, expires_at: int, now: int) -> None: ...


class KeyStore(Protocol):
    async def list_signing_keys(self) -> Sequence[SigningKey]: ...
    async def save_signing_key(self, key: SigningKey) -> None: ...
    async def schedule_key_retirement(self, kid: str, retires_at: int, expires_at: int) -> None: ...


class RateLimitStore(Protocol):
    async def lockout_seconds(self, keys: Sequence[str], now: int) -> int:
        """How long the longest lock among ``keys`` still lasts (0: none is locked)."""
        ...

    async def locked_keys(self, now: int) -> Mapping[str, int]:
        """Every key still locked at ``now``, with the time its lock ends."""
        ...

    async def count_attempt(self, key: str, now: int, *, limit: int, window: int, lock: int, max_lock: int,
                            refuse_when_locked: bool) -> tuple[bool, int]:
        """Count an attempt atomically; from the ``limit``-th in ``window`` on, lock for ``lock`` seconds,
        doubling with every further one up to ``max_lock``. Returns (whether the key was unlocked, the key's
        ``locked_until``); with ``refuse_when_locked`` an attempt on a locked key is not counted."""
        ...

    async def release_attempt(self, key: str, locked_until: int) -> None:
        """Un-count one attempt, lifting the lock if it still ends at ``locked_until`` (the one it set)."""
        ...

    async def clear_failures(self, key: str) -> None: ...


class MaintenanceStore(Protocol):
    async def lock_maintenance(self) -> None:
        """Serialise maintenance across processes for the rest of this transaction."""
        ...

    async def purge(self, now: int, *, keep_revoked_until: int, successor_until: int) -> dict[str, int]:
        """Delete rows nobody can use any more; returns the count per table."""
        ...


class Transaction(
    ClientStore, UserStore, SessionStore, AuthorizationRequestStore, ConsentStore, CodeStore,
    DeviceAuthorizationStore, GrantStore, RefreshTokenStore, AccessTokenStore, KeyStore, RateLimitStore,
    MaintenanceStore, Protocol,
):
    """All aggregates, seen through one database transaction."""

    def keep_on_error(self) -> None:
        """Commit what this transaction did even though it ends with an exception: reuse detection's
        revocation must stay although the request fails (RFC 9700 §4.14.2). Without it, an error rolls back."""
        ...


class Store(Protocol):
    def transaction(self, *, write: bool = False) -> AbstractAsyncContextManager[Transaction]:
        """A transaction that commits on success and rolls back on error.

        ``write=True`` takes the write lock up front (SQLite ``BEGIN IMMEDIATE``), so read-then-write
        sequences never fail with a lock upgrade. ``write=False`` is for reads only (on PostgreSQL each
        statement then commits by itself: one round trip instead of three). An exception rolls back, unless
        the transaction was told ``keep_on_error()`` first.
        """
        ...

    async def close(self) -> None: ...
