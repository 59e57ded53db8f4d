"""Maintenance (``MaintenanceStore``): the cross-process lock and the purge of dead rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, text, update

from tokenward.server.store.sql import tables as t
from tokenward.server.store.sql.base import SqlAggregate


class SqlMaintenance(SqlAggregate):
    """Purge deletes what nobody can use any more; ``lock_maintenance`` keeps it one at a time."""

    async def lock_maintenance(self) -> None:
        if self._conn.dialect.name == "postgresql":  # SQLite's BEGIN IMMEDIATE already excludes other writers
            await self._conn.execute(text("SELECT pg_advisory_xact_lock(7414726)"))

    async def purge(self, now: int, *, keep_revoked_until: int, successor_until: int) -> dict[str, int]:
        counts: dict[str, int] = {}

        async def run(name: str, statement: Any) -> None:
            counts[name] = counts.get(name, 0) + (await self._conn.execute(statement)).rowcount

        await run("authorization_codes", delete(t.authorization_codes).where(t.authorization_codes.c.expires_at < now))
        await run("authorization_requests",
                  delete(t.authorization_requests).where(t.authorization_requests.c.expires_at < now))
        # A device request nobody can use any more: past its lifetime, whatever its state (a redeemed one's
        # tokens live in their grant).
        await run("device_authorizations", delete(t.device_authorizations).where(
            t.device_authorizations.c.expires_at < now))
        await run("sessions", delete(t.sessions).where(t.sessions.c.expires_at < now))
        await run("access_tokens", delete(t.access_tokens).where(t.access_tokens.c.expires_at < now))
        await run("refresh_tokens", delete(t.refresh_tokens).where(t.refresh_tokens.c.expires_at < now))
        g = t.grants.c
        await run("grants", delete(t.grants).where(
            (g.expires_at < now) | (g.revoked_at.is_not(None) & (g.revoked_at < keep_revoked_until))))
        await self._conn.execute(update(t.refresh_tokens).where(
            t.refresh_tokens.c.successor_sealed.is_not(None), t.refresh_tokens.c.consumed_at < successor_until
        ).values(successor_sealed=None))
        await run("rate_limits", delete(t.rate_limits).where(
            t.rate_limits.c.locked_until < now, t.rate_limits.c.window_start < now - 86400))
        await run("signing_keys", delete(t.signing_keys).where(
            t.signing_keys.c.expires_at.is_not(None), t.signing_keys.c.expires_at < now))
        return counts
