"""Where tokens live between calls: memory, an AES-GCM encrypted file, or the OS keyring.

Refresh tokens rotate, so a lost write means a lost login: files are written crash-safe (temp file, fsync,
``os.replace``, directory fsync) and every store offers a cross-process ``lock()`` so two processes sharing
it refresh once. Nothing is ever written in plaintext; when no key source works the store raises
``StoreError`` instead of falling back.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import sys
import threading
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from tokenward.client.errors import StoreError
from tokenward.client.flow import Token

PASSPHRASE_ENV = "TOKENWARD_TOKEN_PASSPHRASE"
KEYRING_SERVICE = "tokenward"
KEYRING_KEY_NAME = "token-store-key"
KEY_FILE_NAME = "token-store.key"
_FORMAT = "tokenward-token-store"


def config_dir() -> Path:
    """Tokenward's directory in the user's configuration (``$XDG_CONFIG_HOME/tokenward``, else ~/.config)."""
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "tokenward"
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "tokenward"


# ------------------------------------------------------------------ locks

class StoreLock(Protocol):
    """A cross-process lock: ``acquire`` returns False when ``timeout`` passed (0 means try once)."""

    def acquire(self, timeout: float) -> bool: ...

    def release(self) -> None: ...


class NullLock:
    """For stores no other process can see; threads and tasks are serialised by the auth's own locks."""

    def acquire(self, timeout: float) -> bool:
        return True

    def release(self) -> None:
        return None


class FileStoreLock:
    """An OS file lock (``filelock``). One object per acquisition, so two holders in one process exclude each
    other too (the lock belongs to the open file description)."""

    def __init__(self, path: Path) -> None:
        from filelock import FileLock

        _make_private_dir(path.parent)
        self._lock = FileLock(str(path), mode=0o600, thread_local=False)

    def acquire(self, timeout: float) -> bool:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=timeout, poll_interval=0.01)
        except Timeout:
            return False
        return True

    def release(self) -> None:
        self._lock.release()


# ------------------------------------------------------------------ the protocol and the memory store

class TokenStore(Protocol):
    """What the auth adapters need of a store. ``save`` must be durable when it returns."""

    def load(self) -> Token | None: ...

    def save(self, token: Token) -> None: ...

    def clear(self) -> None: ...

    def lock(self) -> StoreLock: ...


class MemoryTokenStore:
    """Tokens for this process only (client credentials, tests, short scripts)."""

    def __init__(self, token: Token | None = None) -> None:
        self._token = token
        self._guard = threading.Lock()

    def load(self) -> Token | None:
        with self._guard:
            return self._token

    def save(self, token: Token) -> None:
        with self._guard:
            self._token = token

    def clear(self) -> None:
        with self._guard:
            self._token = None

    def lock(self) -> StoreLock:
        return NullLock()

    def __repr__(self) -> str:
        return f"MemoryTokenStore(has_token={self._token is not None})"


# ------------------------------------------------------------------ file helpers

def _make_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _fsync_dir(path: Path) -> None:
    if sys.platform == "win32":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_private_temp(path: Path, data: bytes) -> Path:
    """``data`` in a new 0600 file next to ``path``, flushed to disk."""
    _make_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a crash leaves either the old or the new content, never a mix."""
    tmp = _write_private_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _check_private(path: Path) -> None:
    """Refuse a key file others can read, as ssh does: its key would protect nothing."""
    if sys.platform == "win32":
        return
    st = path.stat()
    if st.st_mode & 0o077 or st.st_uid != os.getuid():
        raise StoreError(f"{path} must be owned by you and not readable by others (chmod 600 {path})")


# ------------------------------------------------------------------ key sources for the encrypted file

class KeySource(Protocol):
    """Where an encrypted file's 256-bit key comes from. ``kind`` is recorded in the file so a reader uses
    the same source; ``needs_salt`` sources derive the key from the file's salt."""

    kind: str
    needs_salt: bool

    def key(self, salt: bytes | None) -> bytes: ...


def _new_key() -> str:
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii")


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise StoreError(f"the token-store key in {where} is malformed")
    return key


class KeyFileKey:
    """A random key in a 0600 file, created once (atomically, so two processes agree on it)."""

    kind = "file"
    needs_salt = False

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._cached: bytes | None = None

    def key(self, salt: bytes | None = None) -> bytes:
        if self._cached is None:
            if not self.path.exists():
                tmp = _write_private_temp(self.path, _new_key().encode())
                try:
                    os.link(tmp, self.path)  # fails if another process created it first: then use theirs
                    _fsync_dir(self.path.parent)
                except FileExistsError:
                    pass
                finally:
                    os.unlink(tmp)
            _check_private(self.path)
            self._cached = _decode_key(self.path.read_text(encoding="ascii"), str(self.path))
        return self._cached

    def __repr__(self) -> str:
        return f"KeyFileKey({str(self.path)!r})"


class PassphraseKey:
    """A key derived with scrypt (n=2**15, r=8, p=1) from a passphrase and the file's random salt."""

    kind = "passphrase"
    needs_salt = True

    def __init__(self, passphrase: str) -> None:
        if not passphrase:
            raise StoreError(f"the passphrase is empty (set {PASSPHRASE_ENV})")
        self._passphrase = passphrase.encode("utf-8")
        self._cache: dict[bytes, bytes] = {}

    @classmethod
    def from_env(cls) -> PassphraseKey:
        value = os.environ.get(PASSPHRASE_ENV)
        if not value:
            raise StoreError(f"these tokens are protected by a passphrase: set {PASSPHRASE_ENV}")
        return cls(value)

    def key(self, salt: bytes | None) -> bytes:
        if not salt:
            raise StoreError("a passphrase-protected token file has no salt")
        if salt not in self._cache:
            self._cache[salt] = Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(self._passphrase)
        return self._cache[salt]

    def __repr__(self) -> str:
        return "PassphraseKey([redacted])"


class KeyringKey:
    """A random key kept in the OS keyring (Secret Service, macOS Keychain, Windows Credential Locker)."""

    kind = "keyring"
    needs_salt = False

    def __init__(self, lock_path: Path, service: str = KEYRING_SERVICE, name: str = KEYRING_KEY_NAME) -> None:
        self.service = service
        self.name = name
        self.lock_path = lock_path
        self._cached: bytes | None = None

    def key(self, salt: bytes | None = None) -> bytes:
        if self._cached is None:
            import keyring
            from keyring.errors import KeyringError

            require_keyring()
            try:
                text = keyring.get_password(self.service, self.name)
                if text is None:  # create it once: the file lock stops two processes making two keys
                    lock = FileStoreLock(self.lock_path)
                    if not lock.acquire(30):
                        raise StoreError("timed out creating the token-store key")
                    try:
                        text = keyring.get_password(self.service, self.name)
                        if text is None:
                            text = _new_key()
                            keyring.set_password(self.service, self.name, text)
                    finally:
                        lock.release()
            except KeyringError as exc:
                raise StoreError(f"the OS keyring failed ({type(exc).__name__}); set {PASSPHRASE_ENV} or use a "
                                 "key file") from None
            self._cached = _decode_key(text, "the OS keyring")
        return self._cached

    def __repr__(self) -> str:
        return f"KeyringKey(service={self.service!r}, name={self.name!r})"


def keyring_backend_name() -> str | None:
    """The usable OS keyring backend's name, or None. Plaintext or "null" backends do not count."""
    try:
        import keyring
        from keyring.backends import chainer, fail
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:
        return None
    module = type(backend).__module__
    if isinstance(backend, fail.Keyring) or module.startswith("keyrings.alt") or module.endswith(".null"):
        return None
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return None
    return f"{module}.{type(backend).__name__}"


def require_keyring() -> str:
    name = keyring_backend_name()
    if name is None:
        raise StoreError("no OS keyring is available (no Secret Service, Keychain or Credential Locker); "
                         f"use an encrypted file with a key file or {PASSPHRASE_ENV}")
    return name


def key_source(kind: str, key_dir: Path) -> KeySource:
    """The source named ``kind`` (as recorded in a token file)."""
    if kind == "passphrase":
        return PassphraseKey.from_env()
    if kind == "keyring":
        return KeyringKey(key_dir / "key.lock")
    if kind == "file":
        return KeyFileKey(key_dir / KEY_FILE_NAME)
    raise StoreError(f"unknown token-store key kind {kind!r}")


def default_key_source(key_dir: Path) -> KeySource:
    """A passphrase from ``TOKENWARD_TOKEN_PASSPHRASE`` if set, else the OS keyring if there is one, else a
    0600 key file in ``key_dir``."""
    if os.environ.get(PASSPHRASE_ENV):
        return PassphraseKey.from_env()
    if keyring_backend_name() is not None:
        return KeyringKey(key_dir / "key.lock")
    return KeyFileKey(key_dir / KEY_FILE_NAME)


# ------------------------------------------------------------------ the encrypted file store

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("not base64 text")
    return base64.b64decode(value, validate=True)


class EncryptedFileTokenStore:
    """Tokens in one AES-256-GCM encrypted JSON file (mode 0600) with a sibling ``.lock`` file.

    The header (format, key kind, salt) and ``context`` (e.g. issuer and client_id) are authenticated as
    associated data, so a file moved to another login, or edited, fails to open. With ``key=None`` the reader
    uses whatever key kind the file records and a new file gets ``default_key_source``.
    """

    def __init__(self, path: str | os.PathLike[str], *, key: KeySource | None = None,
                 key_dir: str | os.PathLike[str] | None = None, context: str = "") -> None:
        self.path = Path(path)
        self.key_dir = Path(key_dir) if key_dir is not None else self.path.parent
        self.context = context
        self._fixed = key
        self._sources: dict[str, KeySource] = {}
        self._last: tuple[str, bytes | None] | None = None  # key kind and salt of the file last read or written

    def _source(self, kind: str | None) -> KeySource:
        if self._fixed is not None:
            if kind is not None and kind != self._fixed.kind:
                raise StoreError(f"{self.path} is protected by a {kind} key, not a {self._fixed.kind} key")
            return self._fixed
        if kind is None:
            source = default_key_source(self.key_dir)
            return self._sources.setdefault(source.kind, source)
        if kind not in self._sources:
            self._sources[kind] = key_source(kind, self.key_dir)
        return self._sources[kind]

    def _aad(self, kind: str, salt: bytes | None) -> bytes:
        return json.dumps([_FORMAT, 1, kind, _b64(salt) if salt else None, self.context]).encode()

    def load(self) -> Token | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            envelope = json.loads(raw)
            if envelope.get("format") != _FORMAT or envelope.get("v") != 1:
                raise ValueError("unknown format")
            kind = str(envelope["key"])
            salt = _unb64(envelope["salt"]) if envelope.get("salt") else None
            nonce, ciphertext = _unb64(envelope["nonce"]), _unb64(envelope["ciphertext"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise StoreError(f"{self.path} is not a Tokenward token file") from None
        key = self._source(kind).key(salt)
        try:
            plaintext = AESGCM(key).decrypt(nonce, ciphertext, self._aad(kind, salt))
            token = Token.from_dict(json.loads(plaintext))
        except InvalidTag:
            raise StoreError(f"{self.path} cannot be decrypted: wrong key, another login's file, or "
                             "tampered") from None
        except ValueError:
            raise StoreError(f"{self.path} holds no valid token") from None
        self._last = (kind, salt)
        return token

    def save(self, token: Token) -> None:
        last_kind = self._last[0] if self._last else None
        source = self._source(last_kind if self._fixed is None and last_kind else None)
        salt: bytes | None = None
        if source.needs_salt:  # keep the salt so the scrypt key is derived once per process
            salt = self._last[1] if self._last and self._last[0] == source.kind and self._last[1] else \
                secrets.token_bytes(16)
        nonce = secrets.token_bytes(12)
        plaintext = json.dumps(token.to_dict()).encode()
        ciphertext = AESGCM(source.key(salt)).encrypt(nonce, plaintext, self._aad(source.kind, salt))
        envelope = {"format": _FORMAT, "v": 1, "key": source.kind, "salt": _b64(salt) if salt else None,
                    "nonce": _b64(nonce), "ciphertext": _b64(ciphertext)}
        try:
            atomic_write(self.path, json.dumps(envelope).encode())
        except OSError as exc:
            raise StoreError(f"cannot write {self.path}: {exc.strerror}") from None
        self._last = (source.kind, salt)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._last = None

    def lock(self) -> StoreLock:
        return FileStoreLock(self.path.with_name(self.path.name + ".lock"))

    @property
    def key_kind(self) -> str | None:
        """The key kind of the file last read or written (for status lines)."""
        return self._last[0] if self._last else None

    def __repr__(self) -> str:
        return f"EncryptedFileTokenStore({str(self.path)!r})"


# ------------------------------------------------------------------ the OS keyring store

class KeyringTokenStore:
    """The whole token record in the OS keyring under ``service``/``name``.

    The keyring has no lock of its own, so a file lock in the config directory keeps the cross-process
    refresh single-flight. Refuses to start without a real keyring backend.
    """

    def __init__(self, name: str, *, service: str = KEYRING_SERVICE, lock_path: Path | None = None) -> None:
        self.backend = require_keyring()
        self.service = service
        self.name = name
        digest = hashlib.sha256(f"{service}\n{name}".encode()).hexdigest()[:32]
        self.lock_path = lock_path or config_dir() / "locks" / f"keyring-{digest}.lock"

    def load(self) -> Token | None:
        import keyring
        from keyring.errors import KeyringError

        try:
            text = keyring.get_password(self.service, self.name)
        except KeyringError as exc:
            raise StoreError(f"the OS keyring failed ({type(exc).__name__})") from None
        if text is None:
            return None
        try:
            return Token.from_dict(json.loads(text))
        except (ValueError, AttributeError):
            raise StoreError("the OS keyring holds no valid token for this login") from None

    def save(self, token: Token) -> None:
        import keyring
        from keyring.errors import KeyringError

        try:
            keyring.set_password(self.service, self.name, json.dumps(token.to_dict()))
        except KeyringError as exc:
            raise StoreError(f"the OS keyring failed ({type(exc).__name__})") from None

    def clear(self) -> None:
        import keyring
        from keyring.errors import KeyringError, PasswordDeleteError

        try:
            keyring.delete_password(self.service, self.name)
        except PasswordDeleteError:
            pass
        except KeyringError as exc:
            raise StoreError(f"the OS keyring failed ({type(exc).__name__})") from None

    def lock(self) -> StoreLock:
        return FileStoreLock(self.lock_path)

    def __repr__(self) -> str:
        return f"KeyringTokenStore(service={self.service!r}, name={self.name!r})"


def login_name(issuer: str, client_id: str) -> str:
    """The label of one login (issuer + client): names its file and its keyring entry."""
    return f"{issuer} {client_id}"


def default_store(issuer: str, client_id: str, *, base: Path | None = None) -> EncryptedFileTokenStore:
    """The store ``tokenward login`` writes for ``issuer`` and ``client_id``: one encrypted file per login in
    the user's config directory, so apps and the CLI share one refresh-token chain."""
    base = base or config_dir()
    digest = hashlib.sha256(login_name(issuer, client_id).encode()).hexdigest()[:32]
    return EncryptedFileTokenStore(base / "tokens" / f"{digest}.json", key_dir=base,
                                   context=login_name(issuer, client_id))
