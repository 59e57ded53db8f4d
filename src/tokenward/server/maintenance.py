"""Periodic upkeep every ``serve`` process runs: automatic key rotation and purging expired rows.

Each run is one write transaction that first takes the maintenance lock, so when several workers or hosts
run it at once, one rotates and the others see the new keys and do nothing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

from tokenward.server.audit import audit
from tokenward.server.crypto import SecretBox
from tokenward.server.keys import JWKS_CACHE_MARGIN, rotate_signing_keys
from tokenward.server.model import SigningKey
from tokenward.server.settings import Settings
from tokenward.server.store.protocols import Store, Transaction

log = logging.getLogger("tokenward.server")


async def longest_access_token_ttl(tx: Transaction, settings: Settings) -> int:
    clients = await tx.list_clients()
    return max([settings.access_token_ttl, *(c.access_token_ttl or 0 for c in clients)])


async def rotate_due_keys(tx: Transaction, box: SecretBox, settings: Settings, now: int) -> list[SigningKey]:
    """Rotate each algorithm whose newest key is due: it has signed for ``key_rotation_seconds`` minus the
    pre-publication time, so its successor starts signing exactly at the rotation interval."""
    keys = await tx.list_signing_keys()
    due = []
    for alg in settings.signing_algs:
        current = [k for k in keys if k.alg == alg.value and k.retires_at is None and k.published(now)]
        newest = max(current, key=lambda k: k.activates_at, default=None)
        if newest is not None and now >= newest.activates_at + settings.key_rotation_seconds \
                - settings.key_prepublish_seconds:
            due.append(alg)
    if not due:
        return []
    created = await rotate_signing_keys(tx, box, tuple(due), now, prepublish_seconds=settings.key_prepublish_seconds,
                                        max_token_ttl=await longest_access_token_ttl(tx, settings))
    for key in created:
        audit("key.rotated", kid=key.kid, alg=key.alg, reason="scheduled")
    return created


async def purge(tx: Transaction, settings: Settings, now: int) -> dict[str, int]:
    """Delete what can no longer be used; revoked grants stay until their last access token expired (so
    introspection keeps answering inactive for those tokens)."""
    longest = await longest_access_token_ttl(tx, settings)
    grace = max(settings.refresh_grace_public, settings.refresh_grace_confidential)
    return await tx.purge(now, keep_revoked_until=now - longest - JWKS_CACHE_MARGIN, successor_until=now - grace)


async def run_maintenance(store: Store, box: SecretBox, settings: Settings) -> dict[str, Any]:
    now = int(time.time())
    async with store.transaction(write=True) as tx:
        await tx.lock_maintenance()
        rotated = await rotate_due_keys(tx, box, settings, now)
        purged = await purge(tx, settings, now)
    return {"rotated": [k.kid for k in rotated], "purged": purged}


async def maintenance_loop(store: Store, box: SecretBox, settings: Settings) -> None:
    """Run maintenance forever, every ``maintenance_seconds`` with jitter so workers do not align."""
    await asyncio.sleep(random.uniform(1, 5))
    while True:
        try:
            result = await run_maintenance(store, box, settings)
            if result["rotated"] or any(result["purged"].values()):
                log.info("maintenance", extra={"debug": str(result)})
        except Exception:
            log.exception("maintenance failed")
        await asyncio.sleep(settings.maintenance_seconds * random.uniform(0.9, 1.1))
