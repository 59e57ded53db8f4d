"""The scheduled key lifecycle on both backends, with the clock passed in (the purge CLI: test_purge.py)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from tokenward.protocol.types import SigningAlg
from tokenward.server.crypto import SecretBox
from tokenward.server.keys import JWKS_CACHE_MARGIN, ensure_signing_keys
from tokenward.server.maintenance import purge, rotate_due_keys
from tokenward.server.settings import Settings
from tokenward.server.store.sql.store import SqlStore

DAY = 86400
BOX = SecretBox(b"k" * 32)


def test_scheduled_rotation_prepublishes_then_switches_and_drops_old_key(db_url: str) -> None:
    async def go() -> None:
        store = SqlStore.from_url(db_url)
        settings = replace(Settings(), db_url=db_url, signing_algs=(SigningAlg.ES256,))
        t0 = 1_800_000_000
        async with store.transaction(write=True) as tx:
            await ensure_signing_keys(tx, BOX, settings.signing_algs, t0)
            first = (await tx.list_signing_keys())[0]
            assert await rotate_due_keys(tx, BOX, settings, t0 + 28 * DAY) == []  # not due yet
            due_at = t0 + settings.key_rotation_seconds - settings.key_prepublish_seconds
            (second,) = await rotate_due_keys(tx, BOX, settings, due_at)
            assert await rotate_due_keys(tx, BOX, settings, due_at + 60) == []  # once only
            keys = {k.kid: k for k in await tx.list_signing_keys()}
        old, new = keys[first.kid], keys[second.kid]
        assert new.state(due_at) == "next" and new.published(due_at)  # published a day before it signs
        assert old.state(due_at) == "active"
        switch = due_at + settings.key_prepublish_seconds
        assert new.state(switch) == "active" and old.state(switch) == "retired"
        assert old.published(switch + settings.access_token_ttl + JWKS_CACHE_MARGIN - 1)
        assert not old.published(switch + settings.access_token_ttl + JWKS_CACHE_MARGIN)
        async with store.transaction(write=True) as tx:
            await purge(tx, settings, switch + settings.access_token_ttl + JWKS_CACHE_MARGIN + 1)
            assert [k.kid for k in await tx.list_signing_keys()] == [new.kid]
        await store.close()

    asyncio.run(go())

