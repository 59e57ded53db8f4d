"""``tokenward demo-api``: the seed's protected profile API, trusting any RFC 9068 issuer."""

from __future__ import annotations

import click

DEFAULT_AUDIENCE = "urn:tokenward:api"  # the server's default audience; FastAPI is imported only to serve


@click.command("demo-api")
@click.option("--issuer", required=True, help="The issuer whose access tokens to trust (exact string).")
@click.option("--audience", default=DEFAULT_AUDIENCE, show_default=True,
              help="The audience this API expects; its own URL (e.g. http://127.0.0.1:8001) makes it serve "
                   "RFC 9728 metadata with that resource.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535))
def demo_api(issuer: str, audience: str, host: str, port: int) -> None:
    """Serve GET /user/profile (needs scope profile:read) protected by the Tokenward guard."""
    import uvicorn

    from tokenward.resource.demo import create_demo_app
    from tokenward.resource.discovery import InsecureUrlError

    try:
        app = create_demo_app(issuer, audience)
    except InsecureUrlError as error:  # an http issuer that is not loopback (issue #12 §2.13)
        raise click.BadParameter(str(error), param_hint="--issuer") from None
    except ValueError as error:  # an audience URL that cannot be a resource identifier (RFC 9728 §1.2)
        raise click.BadParameter(str(error), param_hint="--audience") from None
    click.echo(f"demo API on http://{host}:{port}/user/profile trusting {issuer} (aud {audience})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning",
                server_header=False)


def register(cli: click.Group) -> None:
    cli.add_command(demo_api)
