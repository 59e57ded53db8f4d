"""The device authorization grant at the token endpoint (RFC 8628 §3.4-§3.5).

A poll of a pending request is accepted only once its interval has passed since the last *accepted* poll; an
early one is ``slow_down`` and grows the interval by 5 s for the rest of that device code (§3.5). The interval
lives in the database row, so it holds whichever worker answers. An approved request is collected by one
conditional ``UPDATE`` (approved → redeemed): of concurrent polls exactly one gets tokens, the rest
``invalid_grant``. Collection is never throttled, and a denied or expired request answers at once.
"""

from __future__ import annotations

import time

from tokenward.protocol.errors import (
    AuthorizationPendingError,
    DeviceDeniedError,
    ExpiredTokenError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidTargetError,
    PollTooFastError,
)
from tokenward.protocol.oidc import OPENID
from tokenward.protocol.types import GrantType
from tokenward.server.crypto import token_hash
from tokenward.server.grants.base import GrantContext, TokenResponse, issue_for_grant, new_grant_id
from tokenward.server.model import Client, DeviceAuthorization, DeviceStatus, Grant, OidcContext
from tokenward.server.store.protocols import Transaction

grant_type = GrantType.DEVICE_CODE

SLOW_DOWN_STEP = 5  # seconds added to the interval by each slow_down (RFC 8628 §3.5)
# A poll that arrives this much before its interval is over still counts as on time: a client that sleeps
# exactly ``interval`` between polls sees its requests arrive with network jitter on top.
POLL_SLACK_MS = 250
_INVALID = "The device code is invalid."


async def exchange(ctx: GrantContext, client: Client, form: dict[str, str]) -> TokenResponse:
    device_code = form.get("device_code")
    if device_code is None:
        raise InvalidRequestError("device_code is required.")
    code_hash = token_hash(device_code)
    async with ctx.store.transaction(write=True) as tx:
        device = await tx.get_device_authorization(code_hash)
        if device is None or device.client_id != client.client_id:
            raise InvalidGrantError(_INVALID, debug="unknown device code or other client")
        if device.status is DeviceStatus.REDEEMED:
            raise InvalidGrantError("The device code has already been used.")
        if device.expires_at <= ctx.now:
            raise ExpiredTokenError("The device code has expired; start again on the device.")
        if device.status is DeviceStatus.DENIED:
            raise DeviceDeniedError("The user denied the request.")
        if device.status is DeviceStatus.PENDING:
            accepted = await tx.accept_device_poll(code_hash, int(time.time() * 1000), POLL_SLACK_MS)
            interval = None if accepted else await tx.slow_down_device(code_hash, SLOW_DOWN_STEP)
            if accepted or interval is not None:
                tx.keep_on_error()  # the accepted poll's time, or the grown interval, outlives the error
                if accepted:
                    raise AuthorizationPendingError("The user has not yet approved the request.")
                raise PollTooFastError("Polling too often; wait 5 seconds longer between polls.",
                                       debug=f"interval now {interval} s")
            device = await tx.get_device_authorization(code_hash)  # decided meanwhile (PostgreSQL): re-read
            if device is None:
                raise InvalidGrantError(_INVALID, debug="device request removed while polled")
            if device.status is DeviceStatus.DENIED:
                raise DeviceDeniedError("The user denied the request.")
            if device.status is not DeviceStatus.APPROVED:
                raise InvalidGrantError("The device code has already been used.")
        resource = form.get("resource")
        if resource is not None and resource != device.audience:  # RFC 8707 §2
            raise InvalidTargetError("The resource was not part of the device authorization request.")
        user = await tx.get_user(device.user_id) if device.user_id else None
        if user is None:  # account state is checked at issuance, not only at approval
            raise InvalidGrantError(_INVALID, debug="the approving user no longer exists")
        grant_id = new_grant_id()
        if not await tx.redeem_device_authorization(code_hash, grant_id, ctx.now):
            raise InvalidGrantError("The device code has already been used.", debug="lost the redemption race")
        grant = Grant(id=grant_id, client_id=client.client_id, user_id=user.id, scope=device.scope,
                      audience=device.audience, created_at=ctx.now, expires_at=ctx.now + ctx.settings.refresh_token_ttl,
                      oidc=await _oidc_context(tx, device, ctx.now))
        await tx.save_grant(grant)
        return await issue_for_grant(ctx, tx, client, grant, device.scope)


async def _oidc_context(tx: Transaction, device: DeviceAuthorization, now: int) -> OidcContext | None:
    """With ``openid`` in the scope the device gets an ID token as the code grant does (OIDC Core §3.1.3.6):
    ``auth_time`` and ``sid`` from the browser session that approved, or the decision time when that session
    has ended since."""
    if OPENID not in device.scope:
        return None
    session = await tx.get_session(device.session_hash, now) if device.session_hash else None
    if session is not None and session.user_id == device.user_id:
        return OidcContext(auth_time=session.created_at, sid=session.sid)
    return OidcContext(auth_time=device.decided_at)
