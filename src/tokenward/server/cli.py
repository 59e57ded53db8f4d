"""Server and admin commands: serve, db, clients, users, keys.

Every admin command takes ``--db URL`` (env ``TOKENWARD_DB``) and ``--json``, and migrates the schema first
so a fresh database file just works. The store and admin modules are imported inside the commands: loading
SQLAlchemy costs ~0.8 s that ``tokenward --help`` and the client commands should not pay.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from tokenward.protocol.types import GrantType, SigningAlg
from tokenward.server.audit import audit
from tokenward.server.model import Client
from tokenward.server.settings import DEFAULT_DB_URL, Settings
from tokenward.server.store.protocols import Store, StoreUnavailableError

T = TypeVar("T")

db_option = click.option("--db", "db_url", envvar="TOKENWARD_DB", default=DEFAULT_DB_URL, show_default=True,
                         help="Database URL (sqlite:///path or postgresql://…); env TOKENWARD_DB.")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")


def run_with_store(db_url: str, action: Callable[[Store], Awaitable[T]]) -> T:
    """Migrate, open the store, run ``action``, close; admin and database errors become one line."""
    from tokenward.server import admin
    from tokenward.server.logs import configure_audit_for_cli
    from tokenward.server.store.sql.migrate import upgrade
    from tokenward.server.store.sql.store import SqlStore

    configure_audit_for_cli()

    async def go() -> T:
        store = SqlStore.from_url(db_url)
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        upgrade(db_url)
        return asyncio.run(go())
    except admin.AdminError as exc:
        raise click.ClickException(str(exc)) from None
    except StoreUnavailableError as exc:
        raise click.ClickException(f"the database is unavailable ({exc})") from None
    except Exception as exc:
        if type(exc).__module__.startswith("sqlalchemy"):
            raise click.ClickException(f"database error: {type(exc).__name__}") from None
        raise


def emit(as_json: bool, data: Any, text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


def client_to_dict(client: Client) -> dict[str, Any]:
    return {
        "client_id": client.client_id, "name": client.name, "public": client.public,
        "redirect_uris": list(client.redirect_uris), "grant_types": [g.value for g in client.grant_types],
        "scope": str(client.scope), "audiences": list(client.audiences),
        "access_token_ttl": client.access_token_ttl, "signing_alg": client.signing_alg,
        "token_endpoint_auth_method": "none" if client.public else "client_secret_basic",
        "created_at": client.created_at, "id_token_signing_alg": client.id_token_signing_alg,
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris), "pkce_optional": client.pkce_optional,
    }


def _iso(ts: int | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# ---------------------------------------------------------------- serve and db

@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--issuer", help="Issuer URL, compared exactly (default http://HOST:PORT).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@db_option
@click.option("--access-token-ttl", type=click.IntRange(1, 86400), help="Access-token lifetime in seconds.")
@click.option("--signing-alg", type=click.Choice([a.value for a in SigningAlg]), help="Default signing algorithm.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--loop", "loop", default="asyncio", show_default=True, type=click.Choice(["asyncio", "uvloop"]),
              help="Event loop. uvloop answers ~1.6x more trivial requests a second but serves connections "
                   "unfairly under overload (p99 in seconds at 128 connections on 2 cores); asyncio keeps p99 "
                   "close to p50.")
@click.option("--metrics", is_flag=True, help="Serve Prometheus metrics at /metrics (needs tokenward[metrics]).")
@click.option("--trusted-proxy", "trusted_proxies", multiple=True,
              help="Believe X-Forwarded-For/-Proto from this proxy address or CIDR (repeatable; env "
                   "TOKENWARD_TRUSTED_PROXIES, comma-separated).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False),
              help="Serve HTTPS (TLS 1.2 or later) with this PEM certificate chain; needs --tls-key. The issuer "
                   "then defaults to https://HOST:PORT.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False),
              help="The PEM private key of --tls-cert.")
def serve(host: str, port: int, issuer: str | None, workers: int, db_url: str, access_token_ttl: int | None,
          signing_alg: str | None, log_level: str, loop: str, metrics: bool, trusted_proxies: tuple[str, ...],
          tls_cert: str | None, tls_key: str | None) -> None:
    """Run the authorization server (migrates the schema and creates signing keys first)."""
    from tokenward.server.logs import configure_logging
    from tokenward.server.store.sql.migrate import upgrade
    from tokenward.server.web import serving

    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together: give both to serve HTTPS, or neither.")
    scheme = "https" if tls_cert else "http"
    settings = Settings.from_env()
    changes: dict[str, Any] = {"db_url": db_url, "issuer": issuer or f"{scheme}://{host}:{port}"}
    if access_token_ttl is not None:
        changes["access_token_ttl"] = access_token_ttl
    if signing_alg is not None:
        changes["signing_alg"] = SigningAlg(signing_alg)
    if metrics:
        changes["metrics"] = True
        _prepare_multiprocess_metrics()
    if trusted_proxies:
        changes["trusted_proxies"] = ",".join(trusted_proxies)
    from dataclasses import replace

    settings = replace(settings, **changes)
    configure_logging(log_level.upper())
    upgrade(settings.db_url)
    asyncio.run(_prepare_keys(settings))
    os.environ.update(settings.to_env())
    os.environ["TOKENWARD_LOG_LEVEL"] = log_level.upper()
    url = f"{scheme}://{host}:{port}"
    served = url if settings.issuer == url else f"issuer {settings.issuer} at {url}"
    click.echo(f"Tokenward serving {served} "
               f"({workers} worker{'s' if workers > 1 else ''}, db {_safe_db(settings.db_url)})", err=True)
    serving.run("tokenward.server.web.app:create_app_from_env", host=host, port=port,
                workers=workers, loop=loop, log_config=None, access_log=False,
                proxy_headers=bool(settings.trusted_proxies), forwarded_allow_ips=settings.trusted_proxies or None,
                server_header=False, timeout_graceful_shutdown=5,
                http=serving.limited_protocol(settings.http_parser),
                timeout_keep_alive=settings.keep_alive_seconds, ws="none",
                # The head cap is enforced by http_limits before h11 sees the bytes; h11's own buffer bound
                # must not answer 400 first.
                h11_max_incomplete_event_size=2 * settings.max_header_bytes, limit_concurrency=1000,
                ssl_certfile=tls_cert, ssl_keyfile=tls_key)


def _prepare_multiprocess_metrics() -> None:
    """Every worker writes its counters to one fresh directory that /metrics aggregates."""
    import tempfile

    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise click.ClickException("--metrics needs the metrics extra: pip install 'tokenward[metrics]'") from None
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tokenward-metrics-")


def _safe_db(db_url: str) -> str:
    from tokenward.server.store.sql.engine import describe_url

    return describe_url(db_url)


async def _prepare_keys(settings: Settings) -> None:
    from tokenward.server.authorization_server import secret_box
    from tokenward.server.keys import ensure_signing_keys
    from tokenward.server.store.sql.store import SqlStore

    store = SqlStore.from_url(settings.db_url)
    try:
        async with store.transaction(write=True) as tx:
            await ensure_signing_keys(tx, secret_box(settings), settings.signing_algs, int(time.time()))
    finally:
        await store.close()


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@db_option
def db_upgrade(db_url: str) -> None:
    """Apply all migrations (run this as its own step before rolling out new workers)."""
    from tokenward.server.store.sql.migrate import upgrade

    upgrade(db_url)
    click.echo("schema is up to date", err=True)


# ---------------------------------------------------------------- clients

@click.group()
def clients() -> None:
    """Register and manage OAuth clients."""


@clients.command("add")
@click.argument("name")
@click.option("--public", is_flag=True, help="A public client (no secret; PKCE only), e.g. a CLI or SPA.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Registered redirect URI (repeatable).")
@click.option("--grant-type", "grant_types", multiple=True, type=click.Choice([g.value for g in GrantType]),
              help="Allowed grant type (repeatable).")
@click.option("--scope", default="", help='Allowed scopes, space-separated, e.g. "profile:read".')
@click.option("--audience", "audiences", multiple=True, help="Allowed token audience (repeatable).")
@click.option("--access-token-ttl", type=int, help="Access-token lifetime for this client, seconds.")
@click.option("--signing-alg", type=click.Choice([a.value for a in SigningAlg]))
@click.option("--id-token-signing-alg", type=click.Choice([a.value for a in SigningAlg]),
              help="ID-token algorithm for this relying party (default RS256, OIDC Core §15.1).")
@click.option("--post-logout-redirect-uri", "post_logout_redirect_uris", multiple=True,
              help="Where RP-initiated logout may send the browser back (exact match; repeatable).")
@click.option("--pkce-optional", is_flag=True,
              help="Confidential clients only: accept code requests without code_challenge (many OIDC "
                   "relying parties send none; the nonce then binds the code). PKCE stays recommended.")
@db_option
@json_option
def clients_add(name: str, public: bool, redirect_uris: tuple[str, ...], grant_types: tuple[str, ...],
                scope: str, audiences: tuple[str, ...], access_token_ttl: int | None, signing_alg: str | None,
                id_token_signing_alg: str | None, post_logout_redirect_uris: tuple[str, ...], pkce_optional: bool,
                db_url: str, as_json: bool) -> None:
    """Register a client; prints its client_id and (once) its client_secret."""
    from tokenward.server import admin
    created = run_with_store(db_url, lambda store: admin.add_client(
        store, name, public=public, redirect_uris=list(redirect_uris), grant_types=list(grant_types),
        scope=scope, audiences=list(audiences), access_token_ttl=access_token_ttl, signing_alg=signing_alg,
        id_token_signing_alg=id_token_signing_alg, post_logout_redirect_uris=list(post_logout_redirect_uris),
        pkce_optional=pkce_optional))
    data = client_to_dict(created.client)
    text = f"client_id: {created.client.client_id}"
    if created.client_secret is not None:
        data["client_secret"] = created.client_secret
        text += f"\nclient_secret: {created.client_secret}\n(the secret is shown only now; store it safely)"
    emit(as_json, data, text)


@clients.command("list")
@db_option
@json_option
def clients_list(db_url: str, as_json: bool) -> None:
    """List registered clients."""
    async def go(store: Store) -> list[Client]:
        async with store.transaction() as tx:
            return list(await tx.list_clients())
    found = run_with_store(db_url, go)
    lines = [f"{c.client_id}  {c.name}  {'public' if c.public else 'confidential'}  "
             f"{','.join(g.value for g in c.grant_types)}  scope={c.scope}" for c in found]
    emit(as_json, [client_to_dict(c) for c in found], "\n".join(lines) or "no clients")


@clients.command("show")
@click.argument("client_id")
@db_option
@json_option
def clients_show(client_id: str, db_url: str, as_json: bool) -> None:
    """Show one client."""
    from tokenward.server import admin
    async def go(store: Store) -> Client:
        async with store.transaction() as tx:
            client = await tx.get_client(client_id)
        if client is None:
            raise admin.AdminError(f"no client with id {client_id}")
        return client
    data = client_to_dict(run_with_store(db_url, go))
    emit(as_json, data, "\n".join(f"{k}: {v}" for k, v in data.items()))


@clients.command("remove")
@click.argument("client_id")
@db_option
@json_option
def clients_remove(client_id: str, db_url: str, as_json: bool) -> None:
    """Remove a client and everything issued to it."""
    from tokenward.server import admin
    async def go(store: Store) -> None:
        async with store.transaction(write=True) as tx:
            if not await tx.delete_client(client_id):
                raise admin.AdminError(f"no client with id {client_id}")
    run_with_store(db_url, go)
    audit("client.removed", client_id=client_id)
    emit(as_json, {"removed": client_id}, f"removed client {client_id}")


@clients.command("rotate-secret")
@click.argument("client_id")
@db_option
@json_option
def clients_rotate_secret(client_id: str, db_url: str, as_json: bool) -> None:
    """Issue a new client secret; the old one stops working at once."""
    from tokenward.server import admin
    secret = run_with_store(db_url, lambda store: admin.rotate_client_secret(store, client_id))
    emit(as_json, {"client_id": client_id, "client_secret": secret},
         f"client_id: {client_id}\nclient_secret: {secret}\n(the secret is shown only now; store it safely)")


# ---------------------------------------------------------------- users

@click.group()
def users() -> None:
    """Manage the users who sign in at the authorization server."""


def claim_options(f: Callable[..., None]) -> Callable[..., None]:
    """The OIDC Core §5.1 claims a user carries; the named flags are shorthands for ``--claim``."""
    for option in reversed((
        click.option("--email", help="The email claim."),
        click.option("--email-verified", is_flag=True, default=None, help="email_verified: true."),
        click.option("--name", help="The name claim (full name)."),
        click.option("--given-name", help="The given_name claim."),
        click.option("--family-name", help="The family_name claim."),
        click.option("--claim", "claim_args", multiple=True, metavar="KEY=VALUE",
                     help="Any claim; VALUE as JSON when it parses (true, 42, an address object), else text; "
                          "an empty VALUE removes the claim (repeatable)."),
    )):
        f = option(f)
    return f


def collect_claims(email: str | None, email_verified: bool | None, name: str | None, given_name: str | None,
                   family_name: str | None, claim_args: tuple[str, ...]) -> dict[str, Any]:
    from tokenward.protocol.oidc import parse_claim_assignment
    claims: dict[str, Any] = {}
    for text in claim_args:
        try:
            key, value = parse_claim_assignment(text)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--claim") from None
        claims[key] = value
    named = {"email": email, "email_verified": email_verified, "name": name, "given_name": given_name,
             "family_name": family_name}
    claims.update({k: v for k, v in named.items() if v is not None})
    return claims


def user_to_dict(user: Any) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "created_at": user.created_at,
            "claims": dict(user.claims), "updated_at": user.updated_at}


def _user_text(user: Any) -> str:
    lines = [f"{user.username}  (sub {user.id})", f"created     {_iso(user.created_at)}",
             f"updated     {_iso(user.updated_at)}"]
    lines += [f"{k:<11} {json.dumps(v)}" for k, v in sorted(user.claims.items())] or ["no claims"]
    return "\n".join(lines)


@users.command("add")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@claim_options
@db_option
@json_option
def users_add(username: str, password_stdin: bool, email: str | None, email_verified: bool | None,
              name: str | None, given_name: str | None, family_name: str | None, claim_args: tuple[str, ...],
              db_url: str, as_json: bool) -> None:
    """Add a user (password hashed with argon2id), optionally with OpenID Connect claims."""
    from tokenward.server import admin
    claims = collect_claims(email, email_verified, name, given_name, family_name, claim_args)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    user = run_with_store(db_url, lambda store: admin.add_user(store, username, password, claims))
    emit(as_json, {"id": user.id, "username": user.username, "claims": user.claims},
         f"added user {user.username} (sub {user.id})")


@users.command("update")
@click.argument("username")
@claim_options
@db_option
@json_option
def users_update(username: str, email: str | None, email_verified: bool | None, name: str | None,
                 given_name: str | None, family_name: str | None, claim_args: tuple[str, ...], db_url: str,
                 as_json: bool) -> None:
    """Change a user's OpenID Connect claims (the others stay); updated_at becomes now."""
    from tokenward.server import admin
    claims = collect_claims(email, email_verified, name, given_name, family_name, claim_args)
    if not claims:
        raise click.UsageError("nothing to change: give --email, --name, --claim KEY=VALUE, ...")
    user = run_with_store(db_url, lambda store: admin.update_user_claims(store, username, claims))
    emit(as_json, user_to_dict(user), _user_text(user))


@users.command("show")
@click.argument("username")
@db_option
@json_option
def users_show(username: str, db_url: str, as_json: bool) -> None:
    """Show a user and their claims."""
    from tokenward.server import admin
    user = run_with_store(db_url, lambda store: admin.get_user(store, username))
    emit(as_json, user_to_dict(user), _user_text(user))


@users.command("list")
@db_option
@json_option
def users_list(db_url: str, as_json: bool) -> None:
    """List users."""
    async def go(store: Store) -> list[dict[str, Any]]:
        async with store.transaction() as tx:
            return [{"id": u.id, "username": u.username, "created_at": u.created_at}
                    for u in await tx.list_users()]
    found = run_with_store(db_url, go)
    emit(as_json, found, "\n".join(f"{u['username']}  {u['id']}" for u in found) or "no users")


@users.command("remove")
@click.argument("username")
@db_option
@json_option
def users_remove(username: str, db_url: str, as_json: bool) -> None:
    """Remove a user; their grants are revoked and their sessions and consents go with them."""
    from tokenward.server import admin
    revoked = run_with_store(db_url, lambda store: admin.remove_user(store, username))
    emit(as_json, {"removed": username, "grants_revoked": revoked},
         f"removed user {username} ({revoked} grant{'s' if revoked != 1 else ''} revoked)")


@users.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@db_option
@json_option
def users_set_password(username: str, password_stdin: bool, db_url: str, as_json: bool) -> None:
    """Change a password; the user's grants and sessions are revoked (signed out everywhere)."""
    from tokenward.server import admin
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    revoked = run_with_store(db_url, lambda store: admin.set_password(store, username, password))
    emit(as_json, {"username": username, "grants_revoked": revoked},
         f"password changed for {username}; {revoked} grant{'s' if revoked != 1 else ''} revoked")


# ---------------------------------------------------------------- grants

@click.group()
def grants() -> None:
    """Authorizations users gave to clients (each is one refresh-token family)."""


@grants.command("list")
@click.option("--user", "username", help="Only this user's grants.")
@click.option("--client", "client_id", help="Only this client's grants.")
@click.option("--all", "include_inactive", is_flag=True, help="Include revoked and expired grants.")
@db_option
@json_option
def grants_list(username: str | None, client_id: str | None, include_inactive: bool, db_url: str,
                as_json: bool) -> None:
    """List grants."""
    from tokenward.server import admin
    async def go(store: Store) -> list[dict[str, Any]]:
        now = int(time.time())
        async with store.transaction() as tx:
            user_id = None
            if username is not None:
                user = await tx.get_user_by_username(username)
                if user is None:
                    raise admin.AdminError(f"no user named {username}")
                user_id = user.id
            found = await tx.list_grants(user_id=user_id, client_id=client_id,
                                         active_at=None if include_inactive else now)
            names = {u.id: u.username for u in await tx.list_users()}
        return [{"id": g.id, "client_id": g.client_id, "user": names.get(g.user_id or "", g.user_id),
                 "scope": str(g.scope), "created_at": g.created_at, "expires_at": g.expires_at,
                 "revoked_at": g.revoked_at} for g in found]
    found = run_with_store(db_url, go)
    lines = [f"{g['id']}  client={g['client_id']}  user={g['user']}  scope={g['scope']}  "
             f"created {_iso(g['created_at'])}  {'revoked ' + _iso(g['revoked_at']) if g['revoked_at'] else ''}"
             for g in found]
    emit(as_json, found, "\n".join(lines) or "no grants")


@grants.command("revoke")
@click.argument("grant_id", required=False)
@click.option("--user", "username", help="Revoke every grant of this user and end their sessions.")
@db_option
@json_option
def grants_revoke(grant_id: str | None, username: str | None, db_url: str, as_json: bool) -> None:
    """Revoke one grant (its refresh tokens and access tokens), or all of a user's (log out everywhere)."""
    from tokenward.server import admin
    if (grant_id is None) == (username is None):
        raise click.UsageError("give a GRANT_ID or --user USERNAME")
    if grant_id is not None:
        run_with_store(db_url, lambda store: admin.revoke_grant(store, grant_id))
        emit(as_json, {"revoked": [grant_id]}, f"revoked grant {grant_id}")
        return
    assert username is not None

    async def go(store: Store) -> int:
        async with store.transaction(write=True) as tx:
            user = await tx.get_user_by_username(username)
            if user is None:
                raise admin.AdminError(f"no user named {username}")
            audit_sub.append(user.id)
            return await tx.revoke_user(user.id, int(time.time()))
    audit_sub: list[str] = []
    count = run_with_store(db_url, go)
    audit("grant.revoked", sub=audit_sub[0], reason=f"all {count} grants of the user")
    emit(as_json, {"user": username, "grants_revoked": count},
         f"revoked {count} grant{'s' if count != 1 else ''} of {username} and ended their sessions")


# ---------------------------------------------------------------- keys

@click.group()
def keys() -> None:
    """Signing keys."""


@keys.command("list")
@db_option
@json_option
def keys_list(db_url: str, as_json: bool) -> None:
    """List signing keys with their state (next, active, retired)."""
    async def go(store: Store) -> list[dict[str, Any]]:
        now = int(time.time())
        async with store.transaction() as tx:
            return [{"kid": k.kid, "alg": k.alg, "state": k.state(now), "published": k.published(now),
                     "created_at": k.created_at, "activates_at": k.activates_at, "retires_at": k.retires_at,
                     "expires_at": k.expires_at} for k in await tx.list_signing_keys()]
    found = run_with_store(db_url, go)
    lines = [f"{k['kid']}  {k['alg']}  {k['state']}  active from {_iso(k['activates_at'])}  "
             f"retires {_iso(k['retires_at'])}  unpublished {_iso(k['expires_at'])}" for k in found]
    emit(as_json, found, "\n".join(lines) or "no keys (tokenward serve creates them)")


@keys.command("rotate")
@click.option("--alg", "algs", multiple=True, type=click.Choice([a.value for a in SigningAlg]),
              help="Rotate only this algorithm's key (repeatable; default all).")
@click.option("--prepublish", type=click.IntRange(0), default=None,
              help="Seconds the new key is published before it signs (default TOKENWARD_KEY_PREPUBLISH_SECONDS, "
                   "86400); 0 switches at once.")
@db_option
@json_option
def keys_rotate(algs: tuple[str, ...], prepublish: int | None, db_url: str, as_json: bool) -> None:
    """Create new signing keys; old keys stay published until their tokens have expired."""
    from tokenward.server import admin
    settings = Settings.from_env()
    from dataclasses import replace

    settings = replace(settings, db_url=db_url)
    delay = settings.key_prepublish_seconds if prepublish is None else prepublish
    created = run_with_store(db_url, lambda store: admin.rotate_keys(store, settings, list(algs), delay))
    data = [{"kid": k.kid, "alg": k.alg, "activates_at": k.activates_at} for k in created]
    emit(as_json, data, "\n".join(f"new key {k.kid} ({k.alg}) signs from {_iso(k.activates_at)}" for k in created))


@keys.command("revoke")
@click.argument("kid")
@db_option
@json_option
def keys_revoke(kid: str, db_url: str, as_json: bool) -> None:
    """Withdraw a compromised key at once: unpublished, its tokens fail (a replacement takes over its signing).

    Every worker drops it within TOKENWARD_KEY_CACHE_SECONDS; guards at their next JWKS refresh.
    """
    from dataclasses import replace

    from tokenward.server import admin
    from tokenward.server.audit import audit
    from tokenward.server.authorization_server import secret_box
    from tokenward.server.keys import UnknownKeyError, revoke_signing_key

    settings = replace(Settings.from_env(), db_url=db_url)

    async def go(store: Store) -> dict[str, Any]:
        async with store.transaction(write=True) as tx:
            try:
                done = await revoke_signing_key(tx, secret_box(settings), kid, int(time.time()))
            except UnknownKeyError:
                raise admin.AdminError(f"no signing key with kid {kid}") from None
        if done is None:
            return {"kid": kid, "revoked": False, "replacement": None}
        revoked, replacement = done
        audit("key.revoked", kid=kid, alg=revoked.alg,
              reason=f"replaced by {replacement.kid}" if replacement is not None else "was retired")
        return {"kid": kid, "revoked": True, "alg": revoked.alg,
                "replacement": replacement.kid if replacement is not None else None,
                "replacement_activates_at": replacement.activates_at if replacement is not None else None}
    result = run_with_store(db_url, go)
    if not result["revoked"]:
        text = f"key {kid} was not published any more; nothing to do"
    else:
        text = f"revoked key {kid}: removed from the JWKS; tokens it signed no longer validate"
        if result["replacement"]:
            text += f"\nnew key {result['replacement']} ({result['alg']}) signs from " \
                    f"{_iso(result['replacement_activates_at'])}"
    emit(as_json, result, text)


@click.command()
@db_option
@json_option
def purge(db_url: str, as_json: bool) -> None:
    """Delete expired codes, sessions, tokens and grants, and keys no longer published."""
    from tokenward.server.maintenance import purge as purge_rows

    settings = Settings.from_env()

    async def go(store: Store) -> dict[str, int]:
        async with store.transaction(write=True) as tx:
            await tx.lock_maintenance()
            return await purge_rows(tx, settings, int(time.time()))
    counts = run_with_store(db_url, go)
    emit(as_json, counts, ", ".join(f"{n} {table}" for table, n in counts.items()) + " deleted")


def register(cli: click.Group) -> None:
    for command in (serve, db, clients, users, grants, keys, purge):
        cli.add_command(command)
