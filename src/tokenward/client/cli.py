"""Client commands: ``login``, ``token``, ``call``, ``whoami``, ``logout``.

Tokens live per issuer and client in the user's config directory (``$XDG_CONFIG_HOME/tokenward``), encrypted
(``store.default_store``); the last login is remembered so ``token``/``call``/``logout`` need no options.
Status lines go to stderr (rich); stdout carries only the result, so scripts can use it (``--json``).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx2
from rich.console import Console
from rich.markup import escape

from tokenward.client.auth import BearerAuth, TokenManager
from tokenward.client.device import DeviceAuthorization, Pending, poll_for_token, start_device_authorization
from tokenward.client.discovery import ServerMetadata, discover
from tokenward.client.errors import ClientError, DeviceFlowError, LoginRequiredError
from tokenward.client.flow import HttpResponse, Token, token_request
from tokenward.client.loopback import login
from tokenward.client.oidc import end_session_url, is_openid, parse_userinfo, userinfo_request, who
from tokenward.client.store import EncryptedFileTokenStore, atomic_write, config_dir, default_store

console = Console(stderr=True, highlight=False, soft_wrap=True)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
issuer_option = click.option("--issuer", help="Issuer URL (default: the last login's).")
client_option = click.option("--client-id", help="Client id (default: the last login's).")


@dataclass(frozen=True, slots=True)
class Profile:
    """One login, as remembered in ``client.json`` (never holds a token)."""

    issuer: str
    client_id: str
    scope: str | None = None

    @property
    def store(self) -> EncryptedFileTokenStore:
        return default_store(self.issuer, self.client_id)


def _profile_path() -> Path:
    return config_dir() / "client.json"


def _read_profiles() -> dict[str, Any]:
    try:
        data = json.loads(_profile_path().read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_profiles(data: dict[str, Any]) -> None:
    atomic_write(_profile_path(), json.dumps(data, indent=2).encode())


def _profile(issuer: str | None, client_id: str | None) -> Profile:
    """The login named by the options, completed from the last login."""
    current = _read_profiles().get("current") or {}
    if issuer and client_id:
        scope = current.get("scope") if current.get("issuer") == issuer and current.get("client_id") == client_id \
            else None
        return Profile(issuer, client_id, scope)
    if current.get("issuer") and current.get("client_id") and issuer in (None, current["issuer"]) and \
            client_id in (None, current["client_id"]):
        return Profile(current["issuer"], current["client_id"], current.get("scope"))
    raise click.ClickException("no login to use: run `tokenward login --issuer URL --client-id ID` first "
                               "(or pass both --issuer and --client-id)")


def _metadata(profile: Profile, *, openid: bool = False) -> ServerMetadata:
    with console.status(f"Reading {profile.issuer} metadata…"):
        return discover(profile.issuer, openid=openid)


def _on_refresh(new: Token, old: Token | None) -> None:
    rotated = old is not None and new.refresh_token != old.refresh_token
    life = "" if new.lifetime is None else f", valid {new.lifetime:.0f} s"
    console.print(f"[cyan]↻[/] access token renewed{life}" + ("; refresh token rotated and saved" if rotated else ""))


def _manager(profile: Profile, metadata: ServerMetadata) -> TokenManager:
    return TokenManager(metadata.token_endpoint, profile.client_id, store=profile.store, on_refresh=_on_refresh,
                        oidc=metadata)


def _expires(token: Token) -> str:
    if token.expires_at is None:
        return "has no expiry"
    return f"expires in {max(0.0, token.expires_at - time.time()):.0f} s"


def _fail(exc: ClientError, profile: Profile) -> click.ClickException:
    if isinstance(exc, LoginRequiredError):
        return click.ClickException(f"{exc}: run `tokenward login --issuer {profile.issuer} "
                                    f"--client-id {profile.client_id}`")
    return click.ClickException(str(exc))


@click.command("login")
@click.option("--issuer", required=True, help="The authorization server's issuer URL (exact string).")
@click.option("--client-id", required=True, help="A public client registered with redirect URI "
                                                 "http://127.0.0.1/callback (or for the device grant).")
@click.option("--scope", "scopes", multiple=True, help="Scope to request (repeatable or space-separated).")
@click.option("--device", is_flag=True, help="Device authorization grant (RFC 8628): show a code to approve in a "
                                             "browser on any other device, then wait.")
@click.option("--no-browser", is_flag=True, help="Print the authorization URL alone on one stdout line and wait.")
@click.option("--timeout", default=300, show_default=True, type=click.IntRange(1, 3600),
              help="Seconds to wait for the browser (with --device: the server's expires_in).")
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="Loopback port (default: a free one).")
@json_option
def login_command(issuer: str, client_id: str, scopes: tuple[str, ...], device: bool, no_browser: bool,
                  timeout: int, port: int, as_json: bool) -> None:
    """Sign in through the browser (authorization code + PKCE on a loopback redirect, or with --device a code
    approved on another device) and keep the tokens."""
    scope = " ".join(" ".join(scopes).split()) or None
    profile = Profile(issuer, client_id, scope)
    try:
        metadata = _metadata(profile, openid=is_openid(scope))
        if device:
            token = _device_login(profile, metadata, as_json)
        else:
            def show(url: str) -> None:
                if no_browser:
                    click.echo(url)  # alone on its line, flushed: scripts and tests read it
                    console.print("Open the URL above in a browser on this machine; waiting for the sign-in…")
                else:
                    console.print(f"Opening the browser; if it does not open, visit:\n{url}")

            token = login(metadata, client_id, store=profile.store, scope=scope, timeout=timeout, port=port,
                          on_url=show, open_browser=None if no_browser else _open_browser)
    except DeviceFlowError as exc:
        if as_json:
            click.echo(json.dumps({"outcome": exc.error, "error": exc.error, "error_description": exc.description}))
        raise click.ClickException(str(exc)) from None
    except ClientError as exc:
        if as_json and device:
            click.echo(json.dumps({"outcome": "error", "error": getattr(exc, "error", None) or "error",
                                   "error_description": str(exc)}))
        raise _fail(exc, profile) from None
    data = _read_profiles()
    data["current"] = {"issuer": issuer, "client_id": client_id, "scope": token.scope or scope}
    _write_profiles(data)
    store = profile.store
    if as_json:
        outcome = {"outcome": "signed_in"} if device else {}
        click.echo(json.dumps({**outcome, "issuer": issuer, "client_id": client_id, "scope": token.scope,
                               "expires_at": token.expires_at, "refresh_token": token.refresh_token is not None,
                               "store": str(store.path),
                               **({"id_token_claims": dict(token.id_claims)} if token.id_claims else {})}))
    console.print(f"[green]✓[/] Signed in to {issuer} as client {client_id}; access token {_expires(token)}; "
                  f"tokens saved to {store.path}")
    if token.id_claims:
        console.print(f"[green]✓[/] Signed in as {escape(who(token.id_claims))} (ID token verified)")


def _show_codes(device: DeviceAuthorization, as_json: bool) -> None:
    """The codes on stdout (one JSON line with --json; never the device code), a QR code when it is a TTY."""
    if as_json:
        click.echo(json.dumps(device.public()))
        return
    click.echo(f"Open {device.verification_uri} in a browser and enter the code {device.user_code}")
    if device.verification_uri_complete:
        click.echo(f"or open {device.verification_uri_complete}")
        if sys.stdout.isatty():
            import segno

            segno.make(device.verification_uri_complete, error="l").terminal(out=sys.stdout, compact=True)
    console.print("[yellow]![/] Only approve it if you started this sign-in yourself, on this device.")


def _device_login(profile: Profile, metadata: ServerMetadata, as_json: bool) -> Token:
    """RFC 8628 with a spinner and a countdown on stderr; Ctrl-C stops the polling."""
    device = start_device_authorization(metadata, profile.client_id, scope=profile.scope)
    _show_codes(device, as_json)
    with console.status("Waiting for the approval…") as status:
        def label(extra: str = "") -> str:
            left = max(0, int(device.expires_at - time.time()))
            return f"Waiting for the approval of {device.user_code}… code valid {left // 60}:{left % 60:02d}{extra}"

        def sleep(seconds: float) -> None:
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0:
                status.update(label())
                time.sleep(min(0.5, left))

        def polled(pending: Pending) -> None:
            if pending.slow_down:
                console.print(f"[yellow]![/] the server asked to slow down: polling every {pending.interval} s")

        try:
            return poll_for_token(metadata, profile.client_id, device, store=profile.store, scope=profile.scope,
                                  sleep=sleep, on_poll=polled)
        except KeyboardInterrupt:
            if as_json:
                click.echo(json.dumps({"outcome": "cancelled", "error": "cancelled"}))
            console.print("[yellow]![/] cancelled: nothing was saved")
            raise SystemExit(130) from None


def _open_browser(url: str) -> None:
    import webbrowser

    if not webbrowser.open(url):
        console.print("No browser could be opened: visit the URL above.")


@click.command("token")
@issuer_option
@client_option
@json_option
def token_command(issuer: str | None, client_id: str | None, as_json: bool) -> None:
    """Print a valid access token, renewing it first if it is about to expire."""
    profile = _profile(issuer, client_id)
    try:
        token = _manager(profile, _metadata(profile)).token()
    except ClientError as exc:
        raise _fail(exc, profile) from None
    if as_json:
        click.echo(json.dumps({"access_token": token.access_token, "token_type": token.token_type,
                               "expires_at": token.expires_at, "scope": token.scope}))
    else:
        click.echo(token.access_token)


@click.command("call")
@click.argument("url")
@issuer_option
@client_option
@json_option
def call_command(url: str, issuer: str | None, client_id: str | None, as_json: bool) -> None:
    """GET URL with the access token (renewed automatically) and print the JSON answer."""
    profile = _profile(issuer, client_id)
    try:
        auth = BearerAuth(_manager(profile, _metadata(profile)))
        with httpx2.Client(auth=auth, timeout=30) as http:
            response = http.get(url, headers={"Accept": "application/json"})
    except ClientError as exc:
        raise _fail(exc, profile) from None
    except httpx2.HTTPError as exc:
        raise click.ClickException(f"GET {url} failed: {type(exc).__name__}") from None
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    if as_json:
        click.echo(json.dumps({"status": response.status_code, "body": body}))
    else:
        click.echo(json.dumps(body, indent=2) if not isinstance(body, str) else body)
    if response.status_code >= 400:
        raise click.ClickException(f"GET {url} answered {response.status_code}")


@click.command("whoami")
@issuer_option
@client_option
@json_option
def whoami_command(issuer: str | None, client_id: str | None, as_json: bool) -> None:
    """Show who is signed in: the verified ID-token claims merged with the provider's userinfo answer (OpenID
    Connect Core §5.3), the access token renewed first if needed."""
    profile = _profile(issuer, client_id)
    try:
        metadata = _metadata(profile, openid=True)
        manager = _manager(profile, metadata)
        token = manager.token()
        claims: dict[str, Any] = dict(token.id_claims or {})
        userinfo: dict[str, Any] | None = None
        if metadata.userinfo_endpoint is not None and token.scope is not None and is_openid(token.scope):
            request = userinfo_request(metadata.userinfo_endpoint, token.access_token)
            reply = httpx2.get(request.url, headers=dict(request.headers), timeout=30)
            userinfo = parse_userinfo(HttpResponse(reply.status_code, {k.lower(): v for k, v in reply.headers.items()},
                                                   reply.content), claims.get("sub"))
    except ClientError as exc:
        raise _fail(exc, profile) from None
    except httpx2.HTTPError as exc:
        raise click.ClickException(f"the userinfo request failed: {type(exc).__name__}") from None
    if not claims and userinfo is None:
        raise click.ClickException("this login is not an OpenID Connect login (no openid scope): nothing to show")
    merged = {**claims, **(userinfo or {})}
    if as_json:
        click.echo(json.dumps({"issuer": profile.issuer, "client_id": profile.client_id, "id_token": claims,
                               "userinfo": userinfo, "claims": merged}))
        return
    for name, value in merged.items():
        click.echo(f"{name}: {value if isinstance(value, str) else json.dumps(value)}")
    if userinfo is None:
        console.print("[yellow]![/] the provider has no userinfo endpoint: only the ID token's claims are shown")


@click.command("logout")
@issuer_option
@client_option
@click.option("--post-logout-redirect-uri", help="Where the provider sends the browser after its logout (must be "
                                                 "registered for the client).")
@click.option("--no-browser", is_flag=True, help="Print the provider's logout URL instead of opening it.")
@json_option
def logout_command(issuer: str | None, client_id: str | None, post_logout_redirect_uri: str | None,
                   no_browser: bool, as_json: bool) -> None:
    """Revoke the refresh token (RFC 7009, when the server has a revocation endpoint) and forget the tokens;
    after an OpenID Connect login also end the provider's session through its end_session_endpoint
    (RP-Initiated Logout 1.0)."""
    profile = _profile(issuer, client_id)
    store = profile.store
    revoked = False
    end_session: str | None = None
    try:
        token = store.load()
    except ClientError as exc:
        console.print(f"[yellow]![/] the stored tokens cannot be read ({exc}); forgetting them")
        token = None
    if token is not None:
        try:
            metadata = _metadata(profile, openid=token.id_token is not None)
            revoked = _revoke(profile, metadata, token)
            if metadata.end_session_endpoint is not None and token.id_token is not None:
                end_session = end_session_url(metadata.end_session_endpoint, client_id=profile.client_id,
                                              id_token=token.id_token,
                                              post_logout_redirect_uri=post_logout_redirect_uri)
        except (ClientError, httpx2.HTTPError) as exc:
            console.print(f"[yellow]![/] revocation failed ({type(exc).__name__}); forgetting the tokens anyway")
    store.clear()
    data = _read_profiles()
    if data.get("current", {}).get("issuer") == profile.issuer and \
            data.get("current", {}).get("client_id") == profile.client_id:
        data.pop("current")
        _write_profiles(data)
    opened = False
    if end_session is not None and not no_browser:
        import webbrowser

        opened = bool(webbrowser.open(end_session))
    if as_json:
        click.echo(json.dumps({"issuer": profile.issuer, "client_id": profile.client_id, "revoked": revoked,
                               "forgotten": True,
                               **({"end_session_url": end_session, "browser_opened": opened} if end_session else {})}))
    elif end_session is not None and not opened:
        click.echo(end_session)  # alone on its line: open it to end the provider's session
    console.print(f"[green]✓[/] Signed out of {profile.issuer}" + (" (tokens revoked)" if revoked else ""))
    if end_session is not None:
        console.print("Opened the provider's logout page in the browser" if opened else
                      "To end the provider's session too, open the logout URL above in the browser")


def _revoke(profile: Profile, metadata: ServerMetadata, token: Token) -> bool:
    """Revoke the refresh token (which revokes its grant) or else the access token; False without an endpoint."""
    if metadata.revocation_endpoint is None:
        return False
    value, hint = (token.refresh_token, "refresh_token") if token.refresh_token else \
        (token.access_token, "access_token")
    request = token_request(metadata.revocation_endpoint, _manager(profile, metadata).client,
                            {"token": value, "token_type_hint": hint})
    response = httpx2.post(request.url, headers=dict(request.headers), content=request.body, timeout=30)
    if response.status_code != 200:
        console.print(f"[yellow]![/] the revocation endpoint answered {response.status_code}")
        return False
    return True


def register(cli: click.Group) -> None:
    for command in (login_command, token_command, call_command, whoami_command, logout_command):
        cli.add_command(command)
