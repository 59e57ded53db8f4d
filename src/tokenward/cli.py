"""The ``tokenward`` command. Errors are one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import sys

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="tokenward")
def cli() -> None:
    """Tokenward: an OAuth 2.1 authorization server, resource-server guard and client."""


def _register_commands() -> None:
    try:
        from tokenward.server.cli import register
    except ImportError as exc:  # the server extra is not installed
        missing = exc.name or "a server dependency"

        @cli.command(name="serve", context_settings={"ignore_unknown_options": True})
        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        def serve(args: tuple[str, ...]) -> None:
            """Run the authorization server (needs ``pip install 'tokenward[server]'``)."""
            raise click.ClickException(f"the server is not installed ({missing} is missing): "
                                       "pip install 'tokenward[server]'")
        return
    register(cli)


_register_commands()


def main() -> None:
    try:
        rv = cli.main(prog_name="tokenward", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # one clear line, no traceback; messages never carry secrets
        click.echo(f"Error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
