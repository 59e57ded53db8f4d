"""The device verification page (RFC 8628 §3.3) as named steps, without HTTP: ``show`` (GET /device) →
``enter_code`` → ``sign_in`` (skipped for a signed-in browser) → ``decide``. Each step returns one
:data:`Outcome`; the web adapter (web/device_pages.py) only renders it.

Against guessing (§5.1: a user code is only ~34.6 bits), a wrong or malformed code counts against the address
group and the browser session in the database-backed rate limiter; from a few failures on, every entry — a
correct one included — is answered 429 with a lock that grows, on every worker. A correct code never clears
the count. Against phishing (§5.4) consent is asked every time, never remembered, and the page shows the
client, the scopes, and when and from where (IP address, user agent) the device asked.

A code, once entered, is bound to the browser session that entered it (and re-bound to the new session at
sign-in), and the later forms carry it with a CSRF token derived from that session, so the sign-in and
decision steps accept no other code and no other browser.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tokenward.protocol.device import display_user_code, normalize_user_code
from tokenward.protocol.types import GrantType
from tokenward.server.audit import audit
from tokenward.server.crypto import token_hash
from tokenward.server.endpoints.sign_in import SignIn, SignInRefused, new_session_secret
from tokenward.server.model import Client, DeviceAuthorization, DeviceStatus, Session
from tokenward.server.rate_limit import RateLimiter
from tokenward.server.settings import Settings
from tokenward.server.store.protocols import Store, Transaction

MALFORMED = "A code has 8 letters, like BCDF-GHJK. Check the code on your device and try again."
UNKNOWN = "This code is not valid. Check the code on your device and try again."
EXPIRED = "This code has expired. Start again on your device."
USED = "This code has already been used. Start again on your device if you still want to sign it in."
FORM_EXPIRED = "The form has expired. Enter the code from your device again."
CHOOSE = "Choose Allow or Deny."
NOT_LISTED = frozenset({"offline_access"})


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceErrorPage:
    message: str
    status: int = 400
    retry_after: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ShowCodeForm:
    """The form asking for the user code (``user_code`` pre-filled from ``verification_uri_complete``)."""

    csrf_token: str = field(repr=False)
    user_code: str = ""
    error: str | None = None
    status: int = 200
    retry_after: int | None = None
    session_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShowDeviceSignIn:
    """The sign-in form (the login page's field names), carrying the entered code."""

    client: Client | None
    user_code: str
    csrf_token: str = field(repr=False)
    error: str | None = None
    status: int = 200
    retry_after: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ShowDeviceConsent:
    """Allow or deny, with what the device asked for and when and from where it asked."""

    device: DeviceAuthorization
    client: Client | None
    scopes: tuple[str, ...]
    lasting: bool  # a refresh token will follow
    user_code: str
    csrf_token: str = field(repr=False)
    session_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceDecided:
    approved: bool
    client: Client | None


Outcome = DeviceErrorPage | ShowCodeForm | ShowDeviceSignIn | ShowDeviceConsent | DeviceDecided


def csrf_token_for(session_hash: bytes) -> str:
    """The device forms' CSRF token: derived from the session id (the cookie's secret's hash), which another
    site cannot learn, so no extra row is needed."""
    return hashlib.sha256(b"tokenward device csrf\x00" + session_hash).hexdigest()


def _csrf_ok(session_hash: bytes, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_token_for(session_hash).encode(), presented.encode())


class DeviceVerification:
    """Used by: the web adapter's /device page (web/device_pages.py)."""

    def __init__(self, settings: Settings, store: Store, limiter: RateLimiter,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.limiter = limiter
        self.clock = clock
        self.sign_in_step = SignIn(limiter, settings.session_ttl)

    def _now(self) -> int:
        return int(self.clock())

    async def show(self, user_code: str | None, session_hash: bytes | None, ip: str | None) -> Outcome:
        """GET /device: the code form for this browser's session (started here when it has none; creating
        sessions is limited per address like pending authorization requests)."""
        now = self._now()
        prefill = (user_code or "")[:64]
        async with self.store.transaction() as tx:
            session = await tx.get_session(session_hash, now) if session_hash else None
        if session is not None:
            return ShowCodeForm(csrf_token=csrf_token_for(session.id_hash), user_code=prefill)
        limited = self.limiter.authorize_keys(ip)
        wait = await self.limiter.retry_after(limited)
        if wait:
            return DeviceErrorPage(message=f"Too many sign-in requests from your network. Try again in {wait} "
                                           "seconds.", status=429, retry_after=wait)
        secret = new_session_secret()
        async with self.store.transaction(write=True) as tx:
            await tx.save_session(Session(id_hash=token_hash(secret), user_id=None, created_at=now,
                                          expires_at=now + self.settings.session_ttl))
        await self.limiter.record(limited)
        return ShowCodeForm(csrf_token=csrf_token_for(token_hash(secret)), user_code=prefill, session_secret=secret)

    async def enter_code(self, session_hash: bytes | None, csrf_token: str | None, user_code: str,
                         ip: str | None) -> Outcome:
        """POST /device with ``user_code``: check the lock first, then the code; a wrong one is counted."""
        now = self._now()
        async with self.store.transaction() as tx:
            session = await tx.get_session(session_hash, now) if session_hash else None
        if session is None or not _csrf_ok(session.id_hash, csrf_token):
            return DeviceErrorPage(message=FORM_EXPIRED, status=403)
        csrf = csrf_token_for(session.id_hash)
        keys = self.limiter.device_keys(ip, session.id_hash)
        wait = await self.limiter.retry_after(keys)
        if wait:  # even a correct code: otherwise guessing would simply continue
            return self._locked(csrf, user_code, wait)
        code = normalize_user_code(user_code)
        client: Client | None = None
        async with self.store.transaction(write=True) as tx:
            device = await tx.get_device_authorization_by_user_code(token_hash(code)) if code else None
            if device is not None and device.expires_at > now and device.status is DeviceStatus.PENDING:
                await tx.bind_device_session(device.device_code_hash, session.id_hash)
                client = await tx.get_client(device.client_id)
        if device is None:
            already = await self.limiter.record(keys)
            wait = await self.limiter.retry_after(keys)
            if wait:
                if not already:  # this failure set the lock
                    audit("device.code_guessing_locked", reason=f"locked for {wait} s")
                return self._locked(csrf, user_code, wait)
            audit("device.code_rejected", reason="malformed" if code is None else "unknown")
            return ShowCodeForm(csrf_token=csrf, user_code=user_code[:64], status=400,
                                error=MALFORMED if code is None else UNKNOWN)
        if device.expires_at <= now:
            return ShowCodeForm(csrf_token=csrf, status=400, error=EXPIRED)
        if device.status is not DeviceStatus.PENDING:
            return ShowCodeForm(csrf_token=csrf, status=400, error=USED)
        assert code is not None
        if session.user_id is None:
            return ShowDeviceSignIn(client=client, user_code=display_user_code(code), csrf_token=csrf)
        return self._consent(device, client, code, session.id_hash)

    def _locked(self, csrf: str, user_code: str, wait: int) -> ShowCodeForm:
        return ShowCodeForm(csrf_token=csrf, user_code=user_code[:64], status=429, retry_after=wait,
                            error=f"Too many wrong codes. Try again in {wait} seconds.")

    def _consent(self, device: DeviceAuthorization, client: Client | None, code: str, session_hash: bytes,
                 secret: str | None = None) -> ShowDeviceConsent:
        lasting = client is not None and GrantType.REFRESH_TOKEN in client.grant_types
        return ShowDeviceConsent(device=device, client=client, lasting=lasting, user_code=display_user_code(code),
                                 scopes=tuple(s for s in sorted(device.scope) if s not in NOT_LISTED),
                                 csrf_token=csrf_token_for(session_hash), session_secret=secret)

    async def _bound(self, tx: Transaction, session_hash: bytes | None, csrf_token: str | None,
                     user_code: str | None, now: int) -> tuple[Session, DeviceAuthorization, str] | DeviceErrorPage:
        """The session and the code it entered: pending, live, bound to this very session."""
        session = await tx.get_session(session_hash, now) if session_hash else None
        if session is None or not _csrf_ok(session.id_hash, csrf_token):
            return DeviceErrorPage(message=FORM_EXPIRED, status=403)
        code = normalize_user_code(user_code or "")
        device = await tx.get_device_authorization_by_user_code(token_hash(code)) if code else None
        if (code is None or device is None or device.session_hash is None
                or not hmac.compare_digest(device.session_hash, session.id_hash)):
            return DeviceErrorPage(message=FORM_EXPIRED, status=403)
        if device.expires_at <= now:
            return DeviceErrorPage(message=EXPIRED)
        if device.status is not DeviceStatus.PENDING:
            return DeviceErrorPage(message=USED)
        return session, device, code

    async def sign_in(self, session_hash: bytes | None, csrf_token: str | None, user_code: str | None,
                      username: str, password: str, ip: str | None) -> Outcome:
        """POST /device with credentials: the shared sign-in step, then the consent page on a new session."""
        now = self._now()
        async with self.store.transaction(write=True) as tx:
            found = await self._bound(tx, session_hash, csrf_token, user_code, now)
            if isinstance(found, DeviceErrorPage):
                return found
            session, device, code = found
            attempt = await self.sign_in_step.reserve(tx, username, ip)
            client = await tx.get_client(device.client_id)
        result = attempt if isinstance(attempt, SignInRefused) else await self.sign_in_step.verify(attempt, password)
        if isinstance(result, SignInRefused):
            audit("login.failed", client_id=device.client_id, sub=result.user_id,
                  **({"reason": "locked"} if result.locked else {}))
            return ShowDeviceSignIn(client=client, user_code=display_user_code(code),
                                    csrf_token=csrf_token_for(session.id_hash), error=result.message,
                                    status=result.status, retry_after=result.retry_after)
        secret = new_session_secret()
        async with self.store.transaction(write=True) as tx:
            new_session = await self.sign_in_step.open_session(tx, result, session.id_hash, now, secret)
            await tx.bind_device_session(device.device_code_hash, new_session.id_hash)
        audit("login.succeeded", client_id=device.client_id, sub=result.user.id)
        return self._consent(device, client, code, new_session.id_hash, secret)

    async def decide(self, session_hash: bytes | None, csrf_token: str | None, user_code: str | None,
                     decision: str | None) -> Outcome:
        """POST /device with ``decision``: approve or deny the request (once; consent is never remembered)."""
        now = self._now()
        async with self.store.transaction(write=True) as tx:
            found = await self._bound(tx, session_hash, csrf_token, user_code, now)
            if isinstance(found, DeviceErrorPage):
                return found
            session, device, _ = found
            if session.user_id is None:
                return DeviceErrorPage(message=FORM_EXPIRED, status=403)
            if decision not in ("allow", "deny"):
                return DeviceErrorPage(message=CHOOSE)
            approved = decision == "allow"
            if not await tx.decide_device_authorization(device.device_code_hash, approved=approved,
                                                        user_id=session.user_id, now=now):
                return DeviceErrorPage(message=USED)
            client = await tx.get_client(device.client_id)
        audit("device.approved" if approved else "device.denied", client_id=device.client_id, sub=session.user_id,
              grant_type=GrantType.DEVICE_CODE.value)
        return DeviceDecided(approved=approved, client=client)
