"""Device authorization requests (``DeviceAuthorizationStore``, RFC 8628).

Every state change is one conditional ``UPDATE``: the poll check (§3.5 ``slow_down``), the user's decision
(only while pending) and the redemption (only once: exactly one concurrent poll turns approved into redeemed).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, insert, or_, select, update

from tokenward.protocol.scope import Scope
from tokenward.server.model import DeviceAuthorization, DeviceStatus
from tokenward.server.store.sql import tables as t
from tokenward.server.store.sql.base import SqlAggregate

_d = t.device_authorizations.c

INSERT_DEVICE = insert(t.device_authorizations)
DELETE_EXPIRED_USER_CODE = delete(t.device_authorizations).where(
    _d.user_code_hash == bindparam("p_user_code_hash"), _d.expires_at <= bindparam("p_now"))
LIVE_USER_CODE = select(_d.device_code_hash).where(_d.user_code_hash == bindparam("p_user_code_hash"))
GET_DEVICE = select(t.device_authorizations).where(_d.device_code_hash == bindparam("p_hash"))
GET_DEVICE_BY_USER_CODE = select(t.device_authorizations).where(_d.user_code_hash == bindparam("p_user_code_hash"))
ACCEPT_POLL = (update(t.device_authorizations)
               .where(_d.device_code_hash == bindparam("p_hash"), _d.status == DeviceStatus.PENDING.value,
                      or_(_d.last_poll_ms.is_(None),
                          _d.last_poll_ms + _d.interval * 1000 - bindparam("p_slack_ms") <= bindparam("p_now_ms")))
               .values(last_poll_ms=bindparam("p_now_ms"))
               .returning(_d.device_code_hash))
SLOW_DOWN = (update(t.device_authorizations)
             .where(_d.device_code_hash == bindparam("p_hash"), _d.status == DeviceStatus.PENDING.value)
             .values(interval=_d.interval + bindparam("p_step"))
             .returning(_d.interval))
BIND_SESSION = (update(t.device_authorizations)
                .where(_d.device_code_hash == bindparam("p_hash"), _d.status == DeviceStatus.PENDING.value)
                .values(session_hash=bindparam("p_session_hash")))
DECIDE = (update(t.device_authorizations)
          .where(_d.device_code_hash == bindparam("p_hash"), _d.status == DeviceStatus.PENDING.value,
                 _d.expires_at > bindparam("p_now"))
          .values(status=bindparam("p_status"), user_id=bindparam("p_user_id"), decided_at=bindparam("p_now"))
          .returning(_d.device_code_hash))
REDEEM = (update(t.device_authorizations)
          .where(_d.device_code_hash == bindparam("p_hash"), _d.status == DeviceStatus.APPROVED.value,
                 _d.expires_at > bindparam("p_now"))
          .values(status=DeviceStatus.REDEEMED.value, grant_id=bindparam("p_grant_id"))
          .returning(_d.user_id))


def _device(row: Any) -> DeviceAuthorization:
    return DeviceAuthorization(
        device_code_hash=row.device_code_hash, user_code_hash=row.user_code_hash, client_id=row.client_id,
        scope=Scope.parse(row.scope), audience=row.audience, created_at=row.created_at, expires_at=row.expires_at,
        interval=row.interval, status=DeviceStatus(row.status), last_poll_ms=row.last_poll_ms, user_id=row.user_id,
        decided_at=row.decided_at, grant_id=row.grant_id, session_hash=row.session_hash, ip=row.ip,
        user_agent=row.user_agent)


class SqlDeviceAuthorizations(SqlAggregate):
    """Device authorizations by the hash of either code; transitions by conditional UPDATE."""

    async def save_device_authorization(self, device: DeviceAuthorization, now: int) -> bool:
        await self._conn.execute(DELETE_EXPIRED_USER_CODE, {"p_user_code_hash": device.user_code_hash, "p_now": now})
        if await self._first(LIVE_USER_CODE, {"p_user_code_hash": device.user_code_hash}) is not None:
            return False
        await self._conn.execute(INSERT_DEVICE, {
            "device_code_hash": device.device_code_hash, "user_code_hash": device.user_code_hash,
            "client_id": device.client_id, "scope": str(device.scope), "audience": device.audience,
            "created_at": device.created_at, "expires_at": device.expires_at, "interval": device.interval,
            "last_poll_ms": device.last_poll_ms, "status": device.status.value, "user_id": device.user_id,
            "decided_at": device.decided_at, "grant_id": device.grant_id, "session_hash": device.session_hash,
            "ip": device.ip, "user_agent": device.user_agent})
        return True

    async def get_device_authorization(self, device_code_hash: bytes) -> DeviceAuthorization | None:
        row = await self._first(GET_DEVICE, {"p_hash": device_code_hash})
        return _device(row) if row else None

    async def get_device_authorization_by_user_code(self, user_code_hash: bytes) -> DeviceAuthorization | None:
        row = await self._first(GET_DEVICE_BY_USER_CODE, {"p_user_code_hash": user_code_hash})
        return _device(row) if row else None

    async def accept_device_poll(self, device_code_hash: bytes, now_ms: int, slack_ms: int) -> bool:
        row = await self._first(ACCEPT_POLL, {"p_hash": device_code_hash, "p_now_ms": now_ms, "p_slack_ms": slack_ms})
        return row is not None

    async def slow_down_device(self, device_code_hash: bytes, step: int) -> int | None:
        row = await self._first(SLOW_DOWN, {"p_hash": device_code_hash, "p_step": step})
        return int(row.interval) if row else None

    async def bind_device_session(self, device_code_hash: bytes, session_hash: bytes) -> None:
        await self._conn.execute(BIND_SESSION, {"p_hash": device_code_hash, "p_session_hash": session_hash})

    async def decide_device_authorization(self, device_code_hash: bytes, *, approved: bool, user_id: str,
                                          now: int) -> bool:
        status = DeviceStatus.APPROVED if approved else DeviceStatus.DENIED
        row = await self._first(DECIDE, {"p_hash": device_code_hash, "p_status": status.value, "p_user_id": user_id,
                                         "p_now": now})
        return row is not None

    async def redeem_device_authorization(self, device_code_hash: bytes, grant_id: str, now: int) -> bool:
        row = await self._first(REDEEM, {"p_hash": device_code_hash, "p_grant_id": grant_id, "p_now": now})
        return row is not None
