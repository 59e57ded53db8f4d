"""Signing a user in with a username and password: one step every browser flow shares (the authorization
flow's login page, the device verification page, the account page).

The attempt is *reserved* on the rate-limit keys before argon2 runs (issue #12 §2.4), argon2 runs outside any
transaction and off the event loop (§2.7), and a success starts a *new* session id (no session fixation,
RFC 9700 §4.x / OWASP). HTTP-free: callers pass what the form said and get a typed result back.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field

from tokenward.server.crypto import token_hash
from tokenward.server.model import Session, User
from tokenward.server.passwords import verify_password_async
from tokenward.server.rate_limit import Keys, RateLimiter, Reservation
from tokenward.server.store.protocols import Transaction

WRONG_CREDENTIALS = "The username or password is incorrect."


def new_session_secret() -> str:
    """A session cookie's value: 256 random bits; the database keeps only its hash."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Attempt:
    """A reserved sign-in attempt: counted on its keys, its password not yet checked."""

    keys: Keys
    reservation: Reservation
    user: User | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class SignInRefused:
    """Why a sign-in failed, in words safe to show: the same whether or not the user exists."""

    message: str
    status: int  # 401 wrong credentials, 429 locked
    retry_after: int | None = None
    user_id: str | None = None  # for the audit event only
    locked: bool = False


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A checked user, ready for a new session."""

    attempt: Attempt
    user: User


class SignIn:
    """Used by: the authorization flow and the device verification flow."""

    def __init__(self, limiter: RateLimiter, session_ttl: int) -> None:
        self.limiter = limiter
        self.session_ttl = session_ttl

    async def reserve(self, tx: Transaction, username: str, ip: str | None) -> Attempt | SignInRefused:
        """Count the attempt and read the user, inside the caller's write transaction."""
        keys = self.limiter.login_keys(username, ip)
        reserved = await self.limiter.reserve(tx, keys)
        if isinstance(reserved, int):  # same answer whether or not the user exists
            return SignInRefused(f"Too many failed sign-in attempts. Try again in {reserved} seconds.", 429,
                                 retry_after=reserved, locked=True)
        return Attempt(keys=keys, reservation=reserved, user=await tx.get_user_by_username(username))

    async def verify(self, attempt: Attempt, password: str) -> SignedIn | SignInRefused:
        """Check the password outside any transaction (a slow hash never holds the database lock); the
        failure was already counted by the reservation."""
        user = attempt.user
        ok = await verify_password_async(user.password_hash if user else None, password)
        if not ok or user is None:
            return SignInRefused(WRONG_CREDENTIALS, 401, user_id=user.id if user else None)
        return SignedIn(attempt=attempt, user=user)

    async def open_session(self, tx: Transaction, signed_in: SignedIn, old_session: bytes | None, now: int,
                           secret: str) -> Session:
        """Un-count the attempt and replace the browser's session by a new one for the user (its id is the
        hash of ``secret``, which the caller sets as the cookie)."""
        attempt = signed_in.attempt
        await self.limiter.succeeded(tx, attempt.reservation, clear=attempt.keys[0][0])
        if old_session is not None:
            await tx.delete_session(old_session)
        session = Session(id_hash=token_hash(secret), user_id=signed_in.user.id, created_at=now,
                          expires_at=now + self.session_ttl, sid=str(uuid.uuid4()))
        await tx.save_session(session)
        return session
