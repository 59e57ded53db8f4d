"""Private signing keys are stored only sealed under the KEK (docs/security.md): a database dump — every
column of every table, the SQLite file and its WAL, or ``pg_dump`` — holds no private key material in any
encoding, while the KEK does open each sealed key, bound to its own kid (AES-GCM AAD)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import create_engine, inspect, text

from tests.support import TOKENWARD, ServerProcess
from tokenward.server.crypto import SecretBox, load_or_create_kek_file
from tokenward.server.keys import import_jose_key

PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")  # RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2


def b64u(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def encodings(raw: bytes) -> list[bytes]:
    """``raw`` as it could sit in a column or a dump: bytes, base64url, base64, hex (both cases)."""
    return [raw, b64u(raw), base64.b64encode(raw).rstrip(b"="), raw.hex().encode(), raw.hex().upper().encode()]


def needles(private_jwk: dict[str, Any]) -> list[bytes]:
    """Every private member's bytes in every encoding, plus the key's PKCS#8 DER and PEM."""
    found = []
    for member in PRIVATE_MEMBERS:
        if member in private_jwk:
            raw = base64.urlsafe_b64decode(private_jwk[member] + "==")
            assert len(raw) >= 32  # long enough that a chance match is impossible
            found += encodings(raw)
    key = import_jose_key(private_jwk)
    der = key.as_der(private=True)
    pem = key.as_pem(private=True)
    body = b"".join(pem.splitlines()[1:-1])
    return [*found, *encodings(der), pem, body, json.dumps(private_jwk).encode()]


def every_value(db_url: str) -> list[bytes]:
    """Every column of every row of every table, as bytes."""
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    values: list[bytes] = []
    try:
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    for v in row:
                        values.append(bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode())
    finally:
        engine.dispose()
    return values


def raw_dump(server: ServerProcess) -> bytes:
    if server.db_url.startswith("sqlite"):
        db = Path(server.db_url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())
    run = subprocess.run(["pg_dump", "--data-only", server.db_url], capture_output=True, timeout=60, check=True)
    return run.stdout


def test_no_private_key_bytes_in_the_database_only_kek_sealed_ones(fresh_server: ServerProcess) -> None:
    server = fresh_server
    server.start()
    env = {**os.environ, "TOKENWARD_KEK_FILE": str(server.workdir / "tokenward.kek")}
    rotated = subprocess.run([TOKENWARD, "keys", "rotate", "--db", server.db_url], capture_output=True, text=True,
                             timeout=60, env=env)  # pre-published successors too
    assert rotated.returncode == 0, rotated.stderr
    box = SecretBox(load_or_create_kek_file(str(server.workdir / "tokenward.kek")))
    rows = server.query("SELECT kid, alg, public_jwk, private_jwk_sealed FROM signing_keys")
    assert {alg for _, alg, _, _ in rows} == {"ES256", "RS256", "EdDSA"} and len(rows) == 6

    secrets: list[bytes] = []
    for kid, _alg, public_jwk, sealed in rows:
        private = json.loads(box.open(bytes(sealed), kid.encode()))  # the KEK opens it …
        assert {k: v for k, v in private.items() if k not in PRIVATE_MEMBERS}.items() >= {
            k: v for k, v in json.loads(public_jwk).items() if k not in ("kid", "alg", "use")}.items()
        assert "d" in private  # … and it really is the private key of the published public one
        assert not any(m in json.loads(public_jwk) for m in PRIVATE_MEMBERS)
        with pytest.raises(InvalidTag):  # bound to its own kid: moving it to another row breaks it
            box.open(bytes(sealed), b"another-kid")
        with pytest.raises(InvalidTag):  # and useless without the KEK
            SecretBox(os.urandom(32)).open(bytes(sealed), kid.encode())
        secrets += needles(private)

    deadline = time.monotonic() + 15  # workers re-read the keys every TOKENWARD_KEY_CACHE_SECONDS (5 s)
    while len(published := httpx2.get(server.base_url + "/jwks.json").json()["keys"]) < 6 \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(published) == 6 and not any(m in k for k in published for m in PRIVATE_MEMBERS)
    values = every_value(server.db_url)
    dump = raw_dump(server)
    assert len(values) > 6 * 8 and len(dump) > 1000
    for needle in secrets:
        assert not any(needle in v for v in values), "private key material in a database column"
        assert needle not in dump, "private key material in the database dump"
