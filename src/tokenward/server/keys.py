"""Signing keys: generation, encryption at rest, rotation and the published JWKS.

A key's state follows from its timestamps (next → active → retired → dropped), so every worker that reads
the table agrees on it without a coordinator. Rotation publishes the new key first, switches signing at
``activates_at``, and keeps the old key published until every token it signed has expired.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import warnings
from dataclasses import dataclass, replace
from typing import Any

from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, KeyParameters, KeySet, OKPKey, RSAKey

from tokenward.protocol.types import SigningAlg
from tokenward.server.crypto import SecretBox
from tokenward.server.model import SigningKey
from tokenward.server.store.protocols import KeyStore, Store

JoseKey = ECKey | RSAKey | OKPKey
log = logging.getLogger("tokenward.server")

# A resource server may cache a JWKS; a retired key stays published this much longer than its tokens.
JWKS_CACHE_MARGIN = 3600

# RFC 9864 deprecates "EdDSA" in favour of "Ed25519", but PyJWT-based resource servers only know "EdDSA".
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)


def generate_jose_key(alg: SigningAlg, kid: str) -> JoseKey:
    params: KeyParameters = {"kid": kid, "alg": alg.value, "use": "sig"}
    if alg is SigningAlg.ES256:
        return ECKey.generate_key("P-256", parameters=params, private=True)
    if alg is SigningAlg.RS256:
        return RSAKey.generate_key(2048, parameters=params, private=True)
    return OKPKey.generate_key("Ed25519", parameters=params, private=True)


def import_jose_key(jwk: dict[str, Any]) -> JoseKey:
    kty = jwk.get("kty")
    if kty == "EC":
        return ECKey.import_key(jwk)
    if kty == "RSA":
        return RSAKey.import_key(jwk)
    return OKPKey.import_key(jwk)


def new_signing_key(alg: SigningAlg, box: SecretBox, now: int, activates_at: int | None = None) -> SigningKey:
    """Create a key record whose private part is sealed with the key-encryption key (AAD = kid)."""
    kid = f"{alg.value.lower()}-{time.strftime('%Y%m%d', time.gmtime(now))}-{secrets.token_hex(4)}"
    key = generate_jose_key(alg, kid)
    public = key.as_dict(private=False)
    public.update(kid=kid, alg=alg.value, use="sig")
    sealed = box.seal(json.dumps(key.as_dict(private=True)).encode(), kid.encode())
    return SigningKey(kid=kid, alg=alg.value, public_jwk=json.dumps(public, sort_keys=True),
                      private_jwk_sealed=sealed, created_at=now,
                      activates_at=now if activates_at is None else activates_at)


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    """What one worker knows about the keys: the table as last read, and the published set."""

    keys: tuple[SigningKey, ...]
    jwks: dict[str, list[dict[str, Any]]]
    published: KeySet  # the same keys, for verifying our own tokens (revocation, introspection)


class KeyRing:
    """The keys one worker signs with and publishes.

    The table is re-read by a background task every ``cache_seconds`` (``run``), never inside a request: a
    request that already holds a database connection must not wait for a second one (16 concurrent requests
    would exhaust the pool). Which key signs is decided from the timestamps at each call, so a pre-published
    key starts signing at its activation second on every worker.

    Used by: the token grants (``signing_key``), the JWKS endpoint (``jwks``), revocation and introspection.
    """

    def __init__(self, store: Store, box: SecretBox, *, cache_seconds: float) -> None:
        self._store = store
        self._box = box
        self._cache_seconds = cache_seconds
        self._snapshot: KeySnapshot | None = None
        self._decrypted: dict[str, JoseKey] = {}

    async def refresh(self) -> None:
        async with self._store.transaction() as tx:
            keys = tuple(await tx.list_signing_keys())
        now = int(time.time())
        published = [json.loads(k.public_jwk) for k in keys if k.published(now)]
        for key in keys:
            if key.published(now):
                self._private(key)  # decrypt once, here, not on the signing path
        self._snapshot = KeySnapshot(keys=keys, jwks={"keys": published},
                                     published=KeySet.import_key_set({"keys": published}))

    async def run(self) -> None:
        """Re-read the key table forever (a task of each ``serve`` process)."""
        while True:
            await asyncio.sleep(self._cache_seconds)
            try:
                await self.refresh()
            except Exception:
                log.exception("reading the signing keys failed; keeping the previous set")

    def _current(self) -> KeySnapshot:
        if self._snapshot is None:
            raise RuntimeError("KeyRing.refresh() has not run yet")
        return self._snapshot

    def _private(self, key: SigningKey) -> JoseKey:
        cached = self._decrypted.get(key.kid)
        if cached is None:
            jwk = json.loads(self._box.open(key.private_jwk_sealed, key.kid.encode()))
            cached = self._decrypted[key.kid] = import_jose_key(jwk)
        return cached

    async def signing_key(self, alg: str) -> tuple[str, JoseKey]:
        now = int(time.time())
        chosen: SigningKey | None = None
        for key in self._current().keys:  # ordered by creation: a later active key of the same alg wins
            if key.alg == alg and key.state(now) == "active" and key.published(now):
                chosen = key
        if chosen is None:
            raise LookupError(f"no active signing key for {alg}")
        return chosen.kid, self._private(chosen)

    async def jwks(self) -> dict[str, list[dict[str, Any]]]:
        return self._current().jwks

    async def published_keys(self) -> KeySet:
        return self._current().published


async def ensure_signing_keys(tx: KeyStore, box: SecretBox, algs: tuple[SigningAlg, ...], now: int) -> list[str]:
    """Create an active key for each algorithm that has none; returns the new kids (used at start-up)."""
    keys = await tx.list_signing_keys()
    created = []
    for alg in algs:
        if not any(k.alg == alg.value and k.state(now) in ("active", "next") and k.published(now) for k in keys):
            key = new_signing_key(alg, box, now)
            await tx.save_signing_key(key)
            created.append(key.kid)
    return created


async def rotate_signing_keys(
    tx: KeyStore, box: SecretBox, algs: tuple[SigningAlg, ...], now: int, *,
    prepublish_seconds: int, max_token_ttl: int,
) -> list[SigningKey]:
    """Publish a new key per algorithm, activating at ``now + prepublish_seconds``; the keys it replaces
    retire at that moment and stay published for ``max_token_ttl`` plus a cache margin."""
    activates_at = now + prepublish_seconds
    existing = await tx.list_signing_keys()
    new_keys = []
    for alg in algs:
        for old in existing:
            if old.alg == alg.value and old.retires_at is None:
                await tx.schedule_key_retirement(
                    old.kid, activates_at, activates_at + max_token_ttl + JWKS_CACHE_MARGIN)
        key = new_signing_key(alg, box, now, activates_at)
        await tx.save_signing_key(key)
        new_keys.append(key)
    return new_keys


class UnknownKeyError(LookupError):
    """No signing key has this kid."""


async def revoke_signing_key(tx: KeyStore, box: SecretBox, kid: str, now: int
                             ) -> tuple[SigningKey, SigningKey | None] | None:
    """Withdraw a (compromised) key at once: unpublished now, so every worker drops it from the JWKS and from
    the keys its own tokens are checked with (introspection then answers ``active: false``) at its next key
    read, and guards stop trusting it at their next JWKS refresh.

    A key that signs now, or was going to sign later, gets a replacement for the same window (it activates
    when the withdrawn key did or now, and retires when it would have), so the server never lacks a signing
    key and a pending pre-published rotation still happens on time. Returns (the withdrawn key, its
    replacement or None), or None when the key was already unpublished.
    """
    found = next((k for k in await tx.list_signing_keys() if k.kid == kid), None)
    if found is None:
        raise UnknownKeyError(kid)
    if not found.published(now):
        return None
    await tx.schedule_key_retirement(kid, min(found.retires_at or now, now), now)
    replacement = None
    if found.retires_at is None or found.retires_at > now:
        fresh = new_signing_key(SigningAlg(found.alg), box, now, max(now, found.activates_at))
        replacement = replace(fresh, retires_at=found.retires_at, expires_at=found.expires_at)
        await tx.save_signing_key(replacement)
    return found, replacement
