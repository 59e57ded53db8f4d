"""Token stores: encrypted file (modes, tamper and mix-up detection, key sources), memory, OS keyring — the
last one against a real Secret Service (gnome-keyring under dbus-run-session) when the machine has one."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.client.kit import ROOT
from tokenward.client import (
    EncryptedFileTokenStore,
    KeyFileKey,
    KeyringTokenStore,
    MemoryTokenStore,
    PassphraseKey,
    StoreError,
    Token,
    default_store,
)
from tokenward.client.store import FileStoreLock, default_key_source

TOKEN = Token("the-access-token-value", refresh_token="the-refresh-token-value", expires_at=time.time() + 600,
              scope="profile:read", obtained_at=time.time())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_encrypted_file_is_private_and_holds_no_plaintext_when_saved(tmp_path: Path) -> None:
    store = EncryptedFileTokenStore(tmp_path / "dir" / "tokens.json", key=KeyFileKey(tmp_path / "keys" / "k"))
    store.save(TOKEN)
    raw = store.path.read_bytes()
    assert b"the-access-token-value" not in raw and b"the-refresh-token-value" not in raw
    assert json.loads(raw)["key"] == "file"
    assert mode(store.path) == 0o600 and mode(store.path.parent) == 0o700
    assert mode(tmp_path / "keys" / "k") == 0o600
    assert EncryptedFileTokenStore(store.path, key=KeyFileKey(tmp_path / "keys" / "k")).load() == TOKEN
    assert "the-access-token-value" not in repr(store)
    store.clear()
    assert store.load() is None and not store.path.exists()


def test_encrypted_file_refuses_to_open_when_tampered_moved_or_keyed_differently(tmp_path: Path) -> None:
    key = KeyFileKey(tmp_path / "k")
    store = EncryptedFileTokenStore(tmp_path / "a.json", key=key, context="https://as.example cli-a")
    store.save(TOKEN)
    other_login = EncryptedFileTokenStore(store.path, key=key, context="https://as.example cli-b")
    with pytest.raises(StoreError, match="cannot be decrypted"):
        other_login.load()
    with pytest.raises(StoreError, match="cannot be decrypted"):
        EncryptedFileTokenStore(store.path, key=KeyFileKey(tmp_path / "other-key"),
                                context="https://as.example cli-a").load()
    envelope = json.loads(store.path.read_bytes())
    envelope["ciphertext"] = envelope["ciphertext"][:-4] + ("AAAA" if envelope["ciphertext"][-4:] != "AAAA" else "BBBB")
    store.path.write_text(json.dumps(envelope))
    with pytest.raises(StoreError):
        store.load()
    store.path.write_text("plaintext? never")
    with pytest.raises(StoreError, match="not a Tokenward token file"):
        store.load()


def test_passphrase_key_is_derived_with_scrypt_and_required_when_file_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENWARD_TOKEN_PASSPHRASE", "correct horse")
    store = EncryptedFileTokenStore(tmp_path / "t.json")  # default key source: the passphrase wins
    store.save(TOKEN)
    envelope = json.loads(store.path.read_bytes())
    assert envelope["key"] == "passphrase" and envelope["salt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json"]  # no key on disk
    assert EncryptedFileTokenStore(store.path).load() == TOKEN
    monkeypatch.setenv("TOKENWARD_TOKEN_PASSPHRASE", "wrong horse")
    with pytest.raises(StoreError, match="cannot be decrypted"):
        EncryptedFileTokenStore(store.path).load()
    monkeypatch.delenv("TOKENWARD_TOKEN_PASSPHRASE")
    with pytest.raises(StoreError, match="TOKENWARD_TOKEN_PASSPHRASE"):
        EncryptedFileTokenStore(store.path).load()
    assert "correct horse" not in repr(PassphraseKey("correct horse"))


def test_key_file_is_refused_when_others_can_read_it(tmp_path: Path) -> None:
    key_path = tmp_path / "k"
    EncryptedFileTokenStore(tmp_path / "t.json", key=KeyFileKey(key_path)).save(TOKEN)
    key_path.chmod(0o644)
    with pytest.raises(StoreError, match="chmod 600"):
        EncryptedFileTokenStore(tmp_path / "t.json", key=KeyFileKey(key_path)).load()


def test_default_key_source_is_a_key_file_when_no_keyring_and_no_passphrase(tmp_path: Path) -> None:
    source = default_key_source(tmp_path)
    assert source.kind == "file"
    store = EncryptedFileTokenStore(tmp_path / "tokens" / "t.json", key_dir=tmp_path)
    store.save(TOKEN)
    assert mode(tmp_path / "token-store.key") == 0o600
    assert EncryptedFileTokenStore(store.path, key_dir=tmp_path).load() == TOKEN


def test_keyring_store_refuses_to_start_when_no_os_keyring_exists() -> None:
    with pytest.raises(StoreError, match="no OS keyring"):
        KeyringTokenStore("https://as.example cli")


def test_default_store_lives_in_xdg_config_home_per_issuer_and_client(config_home: Path) -> None:
    a = default_store("https://as.example", "cli")
    b = default_store("https://as.example", "other")
    assert a.path.parent == config_home / "tokenward" / "tokens" and a.path != b.path
    a.save(TOKEN)
    assert b.load() is None and default_store("https://as.example", "cli").load() == TOKEN


def test_file_lock_excludes_a_second_holder_when_taken_in_the_same_process(tmp_path: Path) -> None:
    first, second = FileStoreLock(tmp_path / "x.lock"), FileStoreLock(tmp_path / "x.lock")
    assert first.acquire(0)
    try:
        assert not second.acquire(0.05)
    finally:
        first.release()
    assert second.acquire(0)
    second.release()
    assert mode(tmp_path / "x.lock") == 0o600


def test_memory_store_keeps_one_token_when_saved_and_cleared() -> None:
    store = MemoryTokenStore()
    assert store.load() is None
    store.save(TOKEN)
    assert store.load() == TOKEN and "the-access" not in repr(store)
    store.clear()
    assert store.load() is None


SECRET_SERVICE_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from tokenward.client import EncryptedFileTokenStore, KeyringTokenStore, Token
    from tokenward.client.store import keyring_backend_name

    out = {"backend": keyring_backend_name()}
    token = Token("kr-access", refresh_token="kr-refresh", expires_at=time.time() + 60, obtained_at=time.time())
    store = KeyringTokenStore("https://as.example cli")
    store.save(token)
    out["keyring_roundtrip"] = KeyringTokenStore("https://as.example cli").load() == token
    store.clear()
    out["keyring_cleared"] = store.load() is None

    base = Path(sys.argv[1])
    files = EncryptedFileTokenStore(base / "tokens" / "t.json", key_dir=base)
    files.save(token)
    out["file_key_kind"] = json.loads(files.path.read_text())["key"]
    out["key_file_written"] = (base / "token-store.key").exists()
    out["file_roundtrip"] = EncryptedFileTokenStore(files.path, key_dir=base).load() == token
    print(json.dumps(out))
""")


def test_keyring_store_and_keyring_held_file_key_work_when_a_real_secret_service_runs(tmp_path: Path) -> None:
    if not (shutil.which("dbus-run-session") and shutil.which("gnome-keyring-daemon")):
        pytest.fail("no Secret Service here: `make test` installs gnome-keyring and dbus-daemon "
                    "(apt-get install --no-install-recommends gnome-keyring dbus-daemon)")
    script = tmp_path / "secret_service.py"
    script.write_text(SECRET_SERVICE_SCRIPT)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON_KEYRING_BACKEND", "DBUS_SESSION_BUS_ADDRESS")}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"),
               XDG_RUNTIME_DIR=str(home / "run"), PYTHONPATH=str(ROOT))
    (home / "run").mkdir(mode=0o700)
    inner = (f'eval "$(printf pw | gnome-keyring-daemon --unlock --components=secrets)" >/dev/null; '
             f'exec {sys.executable} {script} {tmp_path / "files"}')
    result = subprocess.run(["dbus-run-session", "--", "sh", "-c", inner], capture_output=True, text=True,
                            timeout=60, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"backend": "keyring.backends.SecretService.Keyring", "keyring_roundtrip": True,
                   "keyring_cleared": True, "file_key_kind": "keyring", "key_file_written": False,
                   "file_roundtrip": True}
