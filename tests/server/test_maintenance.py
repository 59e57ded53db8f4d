"""Key lifecycle and purge on a real SQLite file, with the clock passed in."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from tokenward.protocol.scope import Scope
from tokenward.protocol.types import GrantType, SigningAlg
from tokenward.server.crypto import SecretBox, token_hash
from tokenward.server.keys import JWKS_CACHE_MARGIN, ensure_signing_keys
from tokenward.server.maintenance import purge, rotate_due_keys
from tokenward.server.model import AuthorizationCode, Client, Grant, RefreshToken, User
from tokenward.server.settings import Settings
from tokenward.server.store.sql.migrate import upgrade
from tokenward.server.store.sql.store import SqlStore

DAY = 86400
BOX = SecretBox(b"k" * 32)


def make_store(tmp_path: Path) -> tuple[SqlStore, Settings]:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    return SqlStore.from_url(url), replace(Settings(), db_url=url, signing_algs=(SigningAlg.ES256,))


def test_scheduled_rotation_prepublishes_then_switches_and_drops_old_key(tmp_path: Path) -> None:
    async def go() -> None:
        store, settings = make_store(tmp_path)
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


def test_purge_deletes_expired_rows_and_keeps_live_ones(tmp_path: Path) -> None:
    async def go() -> None:
        store, settings = make_store(tmp_path)
        now = 1_800_000_000
        async with store.transaction(write=True) as tx:
            await tx.save_client(Client(client_id="c", name="c", public=True, redirect_uris=("http://127.0.0.1/",),
                                        grant_types=(GrantType.AUTHORIZATION_CODE,), scope=Scope(), audiences=(),
                                        created_at=now))
            await tx.save_user(User(id="u", username="u", created_at=now, password_hash="x"))
            for gid, expires, revoked in (("live", now + DAY, None), ("expired", now - 1, None),
                                          ("revoked-long-ago", now + DAY, now - 2 * DAY)):
                await tx.save_grant(Grant(id=gid, client_id="c", user_id="u", scope=Scope(), audience="a",
                                          created_at=now - 3 * DAY, expires_at=expires, revoked_at=revoked))
                await tx.save_refresh_token(RefreshToken(token_hash=token_hash(gid), grant_id=gid, client_id="c",
                                                         scope=Scope(), created_at=now, expires_at=expires))
            await tx.save_code(AuthorizationCode(code_hash=token_hash("code"), client_id="c", user_id="u",
                                                 redirect_uri="http://127.0.0.1/", redirect_uri_explicit=True,
                                                 code_challenge="x" * 43, scope=Scope(), audience="a",
                                                 created_at=now - 120, expires_at=now - 60))
            counts = await purge(tx, settings, now)
            assert counts["grants"] == 2 and counts["authorization_codes"] == 1
            assert await tx.get_grant("live") is not None
            assert await tx.get_refresh_token(token_hash("live")) is not None
            assert await tx.get_refresh_token(token_hash("expired")) is None
        await store.close()

    asyncio.run(go())
