"""Secrets at rest on the local disk: the SQLite database (and its WAL files) and the KEK file are private to
their owner, and ``Settings`` never prints a credential (issue #12 §2.13)."""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from tests.support import TOKENWARD, ServerProcess, free_port
from tokenward.server.crypto import load_or_create_kek_file
from tokenward.server.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_settings_repr_and_str_hide_the_database_password_and_the_kek() -> None:
    s = replace(Settings(), db_url="postgresql://tw:s3cr3t-pw@db.example:5432/tw?sslmode=require",
                kek=b"K" * 32)
    for text in (repr(s), str(s)):
        assert "s3cr3t-pw" not in text
        assert "KKKK" not in text and repr(b"K" * 32) not in text
        assert "db.example" in text and "tw:***@" in text  # the rest stays readable for debugging
        assert "kek=<redacted>" in text
    q = replace(Settings(), db_url="postgresql://tw@db/tw?password=qu3ry-pw&sslmode=require")
    assert "qu3ry-pw" not in repr(q) and "sslmode=require" in repr(q)
    assert "db_url='sqlite:///./tokenward.db'" in repr(Settings())  # nothing to hide: shown as given


def test_migrate_creates_the_sqlite_database_and_its_wal_files_0600(tmp_path: Path) -> None:
    db = tmp_path / "tokenward.db"
    os.umask(0o022)
    run = subprocess.run([TOKENWARD, "db", "upgrade", "--db", f"sqlite:///{db}"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert mode(db) == 0o600


def test_serve_creates_the_database_wal_shm_and_kek_0600(tmp_path: Path) -> None:
    os.umask(0o022)  # the usual umask, under which files are created 0644 unless asked otherwise
    proc = ServerProcess(base_url=f"http://127.0.0.1:{free_port()}", db_url=f"sqlite:///{tmp_path / 'tw.db'}",
                         log_path=tmp_path / "server.log", workdir=tmp_path)
    proc.start()
    try:
        proc.add_client()  # a write, so the WAL and shared-memory files exist
        files = [tmp_path / "tw.db", tmp_path / "tw.db-wal", tmp_path / "tw.db-shm", tmp_path / "tokenward.kek"]
        assert {f.name: mode(f) for f in files if f.exists()} == {f.name: 0o600 for f in files}
    finally:
        proc.stop()


def test_a_kek_file_readable_by_group_or_others_is_refused(tmp_path: Path) -> None:
    kek = tmp_path / "tokenward.kek"
    key = load_or_create_kek_file(str(kek))
    assert mode(kek) == 0o600 and load_or_create_kek_file(str(kek)) == key
    for loose in (0o640, 0o604, 0o644, 0o660):
        kek.chmod(loose)
        with pytest.raises(PermissionError, match=rf"{oct(loose)[2:]}.*chmod 600"):
            load_or_create_kek_file(str(kek))
    kek.chmod(0o400)  # read-only for its owner is fine
    assert load_or_create_kek_file(str(kek)) == key


def test_serve_refuses_to_start_with_a_world_readable_kek_file(tmp_path: Path) -> None:
    kek = tmp_path / "tokenward.kek"
    load_or_create_kek_file(str(kek))
    kek.chmod(0o644)
    run = subprocess.run([TOKENWARD, "serve", "--port", str(free_port()), "--db", f"sqlite:///{tmp_path / 'x.db'}"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path,
                         env={**os.environ, "TOKENWARD_KEK_FILE": str(kek)})
    assert run.returncode != 0
    assert "chmod 600" in run.stderr + run.stdout and "Traceback" not in run.stderr
