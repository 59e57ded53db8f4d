"""Hashing and encryption of secrets at rest.

Tokens and client secrets are 256-bit random values, so a fast hash is as strong as a slow one and costs
0.3 µs instead of 20 ms; only human passwords get argon2id (see passwords.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def random_token(prefix: str) -> str:
    """A new opaque credential: prefix + 256 random bits, base64url (secret scanners match the prefix)."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(value: str) -> bytes:
    """The lookup key stored instead of a token or client secret."""
    return hashlib.sha256(value.encode("utf-8")).digest()


def hash_matches(value: str, stored: bytes) -> bool:
    """Constant-time comparison of a presented secret against its stored hash."""
    return hmac.compare_digest(token_hash(value), stored)


def decode_kek(text: str) -> bytes:
    """A key-encryption key given as base64url text; it must be exactly 32 bytes (AES-256)."""
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except ValueError:
        raise ValueError("the key-encryption key is not valid base64url") from None
    if len(raw) != 32:
        raise ValueError("the key-encryption key must be 32 bytes (base64url of 32 random bytes)")
    return raw


def load_or_create_kek_file(path: str) -> bytes:
    """Read the key-encryption key file, creating it with mode 0600 when it does not exist yet.

    Like ssh with a private key, a file that its group or others may read, write or execute is refused
    (``PermissionError``): whoever can read the KEK and a database dump can sign tokens.
    """
    try:
        with open(path, encoding="ascii") as f:
            loose = stat.S_IMODE(os.fstat(f.fileno()).st_mode) & 0o077
            if loose:
                mode = oct(stat.S_IMODE(os.fstat(f.fileno()).st_mode))[2:]
                raise PermissionError(
                    f"the key-encryption key file {path} has mode {mode}: its group or others may access it; "
                    f"refusing to use it (run: chmod 600 {path})")
            return decode_kek(f.read())
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(base64.urlsafe_b64encode(key).decode("ascii").rstrip("=") + "\n")
    return key


class SecretBox:
    """AES-256-GCM with a random nonce; ``aad`` binds a ciphertext to the row it belongs to."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        return self._aead.decrypt(sealed[:12], sealed[12:], aad)

    def __repr__(self) -> str:
        return "SecretBox(<key redacted>)"
