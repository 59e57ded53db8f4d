"""The maintenance task inside a running ``tokenward serve``: it purges expired rows and rotates due signing
keys without any CLI, and when several workers run it at the same moment exactly one of them rotates
(PostgreSQL: ``pg_advisory_xact_lock`` in ``lock_maintenance``)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import create_engine, insert, select, text, update

from tests.conftest import dispose, new_server
from tests.support import ServerProcess
from tokenward.server.crypto import token_hash
from tokenward.server.store.sql import tables as t

DAY = 86400
ALGS = {"ES256", "RS256", "EdDSA"}  # the default signing_algs: a key each


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Poll an observable condition (a log line, a database state) until it holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def engine_for(server: ServerProcess) -> Any:
    return create_engine(server.db_url.replace("postgresql://", "postgresql+psycopg://", 1))


def make_keys_due(server: ServerProcess) -> set[str]:
    """Backdate every key by 31 days: past ``key_rotation_seconds`` minus pre-publication (29 days)."""
    engine = engine_for(server)
    try:
        with engine.begin() as conn:
            conn.execute(update(t.signing_keys).values(activates_at=t.signing_keys.c.activates_at - 31 * DAY,
                                                       created_at=t.signing_keys.c.created_at - 31 * DAY))
            return set(conn.execute(select(t.signing_keys.c.kid)).scalars())
    finally:
        engine.dispose()


def maintenance_lines(server: ServerProcess) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == "maintenance"]


def test_running_server_purges_and_rotates_by_itself(fresh_server: ServerProcess) -> None:
    server = fresh_server
    server.start()  # creates the schema, the KEK and one key per algorithm
    client = server.add_client()
    server.stop()
    old_kids = make_keys_due(server)
    assert len(old_kids) == len(ALGS)
    now = int(time.time())
    engine = engine_for(server)
    try:
        with engine.begin() as conn:
            conn.execute(insert(t.users).values(id="u", username="maint-user", username_key="maint-user",
                                              password_hash="x", created_at=now))
            for name, expires in (("live", now + DAY), ("expired", now - 1)):
                conn.execute(insert(t.grants).values(
                    id=name, client_id=client.client_id, user_id="u", scope="profile:read", audience="a",
                    created_at=now - DAY, expires_at=expires))
                conn.execute(insert(t.refresh_tokens).values(
                    token_hash=token_hash(name), grant_id="live", client_id=client.client_id, scope="profile:read",
                    created_at=now - DAY, expires_at=expires))
                conn.execute(insert(t.sessions).values(id_hash=token_hash(name), user_id="u", created_at=now - DAY,
                                                       expires_at=expires))
                conn.execute(insert(t.access_tokens).values(jti=name, grant_id="live", client_id=client.client_id,
                                                            expires_at=expires))

        server.start(env={"TOKENWARD_MAINTENANCE_SECONDS": "1", "TOKENWARD_KEY_CACHE_SECONDS": "1"})
        (line,) = wait_for(lambda: maintenance_lines(server), "the server's maintenance log line")
        with engine.connect() as conn:
            keys = conn.execute(select(t.signing_keys)).all()
            survivors = {
                "grants": set(conn.execute(select(t.grants.c.id)).scalars()),
                "refresh_tokens": set(conn.execute(select(t.refresh_tokens.c.token_hash)).scalars()),
                "sessions": set(conn.execute(select(t.sessions.c.id_hash)).scalars()),
                "access_tokens": set(conn.execute(select(t.access_tokens.c.jti)).scalars()),
            }
    finally:
        engine.dispose()

    assert survivors == {"grants": {"live"}, "refresh_tokens": {token_hash("live")},
                         "sessions": {token_hash("live")}, "access_tokens": {"live"}}
    new = [k for k in keys if k.kid not in old_kids]
    assert sorted(k.alg for k in new) == sorted(ALGS)  # one successor per algorithm
    for key in new:
        assert key.activates_at > time.time()  # pre-published: it signs only after key_prepublish_seconds
        (old,) = [k for k in keys if k.kid in old_kids and k.alg == key.alg]
        assert old.retires_at == key.activates_at and old.expires_at is not None
        assert key.kid in line["debug"]
    # resource servers see the successors before they sign
    published = wait_for(lambda: {k["kid"] for k in httpx2.get(server.base_url + "/jwks.json").json()["keys"]}
                         >= {k.kid for k in new} and httpx2.get(server.base_url + "/jwks.json"),
                         "the new keys in the JWKS")
    assert {k["kid"] for k in published.json()["keys"]} == old_kids | {k.kid for k in new}


@pytest.fixture
def pg_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = new_server(tmp_path / "server", "postgresql")
    yield proc
    dispose(proc)


def test_one_worker_rotates_when_three_run_maintenance_at_once(pg_server: ServerProcess) -> None:
    """Three workers, a due key per algorithm, and each worker's maintenance held at the same point (the
    test locks the old key rows, which rotation updates): released together, exactly one worker rotates."""
    server = pg_server
    server.start()
    server.stop()
    old_kids = make_keys_due(server)
    engine = engine_for(server)
    try:
        with engine.connect() as holder:
            holder.execute(select(t.signing_keys).with_for_update())  # held until the rollback below

            server.start(workers=3, env={"TOKENWARD_MAINTENANCE_SECONDS": "1"})

            def waiting() -> int:
                with engine.connect() as conn:
                    return int(conn.execute(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock'")).scalar_one())

            # each worker's maintenance is in its transaction, blocked on a lock: one on the key rows, and
            # the two others on the advisory lock (without it, all three would pass it and block on the rows)
            wait_for(lambda: waiting() == 3, "three workers blocked inside maintenance")
            holder.rollback()

        def settled() -> bool:
            with engine.connect() as conn:
                busy = conn.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND state <> 'idle'")).scalar_one()
            return int(busy) == 0

        wait_for(settled, "every worker's maintenance transaction to end")
        with engine.connect() as conn:
            keys = conn.execute(select(t.signing_keys.c.kid, t.signing_keys.c.alg)).all()
    finally:
        engine.dispose()
    new = Counter(alg for kid, alg in keys if kid not in old_kids)
    assert new == Counter(dict.fromkeys(ALGS, 1)), f"new keys per algorithm: {dict(new)}"
    rotating = [line for line in maintenance_lines(server) if "'rotated': []" not in line["debug"]]
    assert len(rotating) == 1, rotating
