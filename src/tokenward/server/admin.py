"""Administrative operations behind ``tokenward clients|users|keys``: validation and persistence."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tokenward.protocol import redirect_uri as redirect_rules
from tokenward.protocol.oidc import check_user_claims
from tokenward.protocol.scope import Scope
from tokenward.protocol.types import GrantType, SigningAlg
from tokenward.server.audit import audit
from tokenward.server.authorization_server import secret_box
from tokenward.server.crypto import random_token, token_hash
from tokenward.server.grants.base import CLIENT_SECRET_PREFIX
from tokenward.server.keys import rotate_signing_keys
from tokenward.server.model import Client, SigningKey, User
from tokenward.server.passwords import hash_password_async
from tokenward.server.settings import Settings
from tokenward.server.store.protocols import Store
from tokenward.server.usernames import UsernameError, check_new_username

MIN_PASSWORD_LENGTH = 8


class AdminError(Exception):
    """A refused administrative request; the message is shown to the operator as is."""


@dataclass(frozen=True, slots=True)
class NewClient:
    client: Client
    client_secret: str | None = field(repr=False)


async def add_client(
    store: Store, name: str, *, public: bool, redirect_uris: list[str], grant_types: list[str], scope: str,
    audiences: list[str], access_token_ttl: int | None, signing_alg: str | None,
    id_token_signing_alg: str | None = None, post_logout_redirect_uris: list[str] | None = None,
    pkce_optional: bool = False,
) -> NewClient:
    if not name.strip():
        raise AdminError("the client name must not be empty")
    for uri in redirect_uris:
        try:
            redirect_rules.validate_registration(uri)
        except redirect_rules.RedirectUriError as exc:
            raise AdminError(f"{exc}: {uri}") from None
    try:
        types = tuple(GrantType(g) for g in grant_types)
    except ValueError:
        raise AdminError(f"grant types must be among: {', '.join(g.value for g in GrantType)}") from None
    if not types:
        types = (GrantType.AUTHORIZATION_CODE, GrantType.REFRESH_TOKEN) if redirect_uris or public else (
            GrantType.CLIENT_CREDENTIALS,)
    if public and GrantType.CLIENT_CREDENTIALS in types:
        raise AdminError("a public client cannot use client_credentials (it has no secret)")
    if GrantType.AUTHORIZATION_CODE in types and not redirect_uris:
        raise AdminError("the authorization_code grant needs at least one --redirect-uri")
    if access_token_ttl is not None and not 1 <= access_token_ttl <= 86400:
        raise AdminError("--access-token-ttl must be between 1 and 86400 seconds")
    for option, alg in (("--signing-alg", signing_alg), ("--id-token-signing-alg", id_token_signing_alg)):
        if alg is not None and alg not in {a.value for a in SigningAlg}:
            raise AdminError(f"{option} must be one of {', '.join(a.value for a in SigningAlg)}")
    if pkce_optional and public:  # RFC 9700 §2.1.1: PKCE is required for public clients
        raise AdminError("--pkce-optional is for confidential clients only: a public client must use PKCE")
    for uri in post_logout_redirect_uris or ():
        try:
            redirect_rules.validate_registration(uri)
        except redirect_rules.RedirectUriError as exc:
            raise AdminError(f"{exc}: {uri}") from None
    try:
        parsed_scope = Scope.parse(scope)
    except Exception:
        raise AdminError("the scope contains characters RFC 6749 §3.3 does not allow") from None
    secret = None if public else random_token(CLIENT_SECRET_PREFIX)
    client = Client(
        client_id=new_client_id(), name=name.strip(), public=public, redirect_uris=tuple(redirect_uris),
        grant_types=types, scope=parsed_scope, audiences=tuple(audiences), created_at=int(time.time()),
        secret_hash=token_hash(secret) if secret else None, access_token_ttl=access_token_ttl,
        signing_alg=signing_alg, id_token_signing_alg=id_token_signing_alg,
        post_logout_redirect_uris=tuple(post_logout_redirect_uris or ()), pkce_optional=pkce_optional)
    async with store.transaction(write=True) as tx:
        await tx.save_client(client)
    audit("client.created", client_id=client.client_id, reason="public" if public else "confidential")
    return NewClient(client=client, client_secret=secret)


async def rotate_client_secret(store: Store, client_id: str) -> str:
    async with store.transaction(write=True) as tx:
        client = await tx.get_client(client_id)
        if client is None:
            raise AdminError(f"no client with id {client_id}")
        if client.public:
            raise AdminError("a public client has no secret to rotate")
        secret = random_token(CLIENT_SECRET_PREFIX)
        await tx.set_client_secret_hash(client_id, token_hash(secret))
    audit("client.secret_rotated", client_id=client_id)
    return secret


def new_client_id() -> str:
    """128 random bits, URL-safe, never starting with ``-``: a client id is typed as a CLI argument
    (``clients rotate-secret ID``), where a leading dash reads as an option (1 in 64 ids did)."""
    while True:
        client_id = secrets.token_urlsafe(16)
        if not client_id.startswith("-"):
            return client_id


def merge_claims(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` applied to ``current``: an empty string removes a claim (OIDC Core §5.3.2: a claim
    without a value is omitted, so storing ``""`` would mean nothing); the result is validated."""
    merged = dict(current)
    for name, value in changes.items():
        if value == "":
            merged.pop(name, None)
        else:
            merged[name] = value
    try:
        check_user_claims(merged)
    except ValueError as e:
        raise AdminError(str(e)) from None
    return merged


async def add_user(store: Store, username: str, password: str, claims: dict[str, Any] | None = None) -> User:
    """A new user; a name that differs from an existing one only by case or Unicode width is the same name.
    ``claims`` are its OIDC Core §5.1 claims (released by scope or the claims request, oidc.release)."""
    try:
        check_new_username(username)
    except UsernameError as e:
        raise AdminError(str(e)) from None
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AdminError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    stored = merge_claims({}, claims or {})
    now = int(time.time())
    user = User(id=str(uuid.uuid4()), username=username, password_hash=await hash_password_async(password),
                created_at=now, claims=stored, updated_at=now if stored else None)
    async with store.transaction(write=True) as tx:
        existing = await tx.get_user_by_username(username)
        if existing is not None or not await tx.save_user(user):
            same = f" (as {existing.username})" if existing is not None and existing.username != username else ""
            raise AdminError(f"the user {username} already exists{same}")
    audit("user.created", sub=user.id)
    return user


async def update_user_claims(store: Store, username: str, changes: dict[str, Any]) -> User:
    """Change a user's claims (``users update``); ``updated_at`` (§5.1) becomes now. Tokens already issued
    keep what they carry; userinfo answers with the new values from the next call on."""
    async with store.transaction(write=True) as tx:
        user = await tx.get_user_by_username(username)
        if user is None:
            raise AdminError(f"no user named {username}")
        merged = merge_claims(user.claims, changes)
        now = int(time.time())
        await tx.set_claims(user.id, merged, now)
    audit("user.updated", sub=user.id, reason="claims: " + ",".join(sorted(changes)))
    return User(id=user.id, username=user.username, created_at=user.created_at, password_hash=user.password_hash,
                claims=merged, updated_at=now)


async def get_user(store: Store, username: str) -> User:
    async with store.transaction() as tx:
        user = await tx.get_user_by_username(username)
    if user is None:
        raise AdminError(f"no user named {username}")
    return user


async def remove_user(store: Store, username: str) -> int:
    """Delete a user after revoking every grant they gave; returns how many grants were revoked."""
    async with store.transaction(write=True) as tx:
        user = await tx.get_user_by_username(username)
        if user is None:
            raise AdminError(f"no user named {username}")
        revoked = await tx.revoke_user(user.id, int(time.time()))
        await tx.delete_user(user.id)
    audit("user.removed", sub=user.id, reason=f"{revoked} grants revoked")
    return revoked


async def set_password(store: Store, username: str, password: str) -> int:
    """Change a password; every grant and session of the user is revoked (RFC 9700 §4.14.2)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AdminError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    new_hash = await hash_password_async(password)
    async with store.transaction(write=True) as tx:
        user = await tx.get_user_by_username(username)
        if user is None:
            raise AdminError(f"no user named {username}")
        await tx.set_password_hash(user.id, new_hash)
        revoked = await tx.revoke_user(user.id, int(time.time()))
    audit("user.password_changed", sub=user.id, reason=f"{revoked} grants revoked")
    return revoked


async def revoke_grant(store: Store, grant_id: str) -> None:
    async with store.transaction(write=True) as tx:
        grant = await tx.get_grant(grant_id)
        if grant is None:
            raise AdminError(f"no grant with id {grant_id}")
        await tx.revoke_grant(grant_id, int(time.time()))
    audit("grant.revoked", client_id=grant.client_id, sub=grant.user_id, grant_id=grant_id)


async def rotate_keys(store: Store, settings: Settings, algs: list[str], prepublish_seconds: int
                      ) -> list[SigningKey]:
    chosen = tuple(SigningAlg(a) for a in algs) if algs else settings.signing_algs
    async with store.transaction(write=True) as tx:
        clients = await tx.list_clients()
        longest = max([settings.access_token_ttl, *(c.access_token_ttl or 0 for c in clients)])
        created = await rotate_signing_keys(tx, secret_box(settings), chosen, int(time.time()),
                                            prepublish_seconds=prepublish_seconds, max_token_ttl=longest)
    for key in created:
        audit("key.rotated", kid=key.kid, alg=key.alg, reason=f"signs from {key.activates_at}")
    return created
