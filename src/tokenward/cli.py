"""The ``tokenward`` command. Errors are one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import importlib
import sys

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="tokenward")
def cli() -> None:
    """Tokenward: an OAuth 2.1 authorization server, resource-server guard and client."""


# Each part of Tokenward adds its commands; a part whose extra is not installed says what to install.
COMMAND_MODULES = {
    "tokenward.server.cli": ("serve", "server"),
    "tokenward.resource.cli": ("demo-api", "fastapi"),
    "tokenward.client.cli": ("login", ""),
}


def _register_commands() -> None:
    for module_name, (command, extra) in COMMAND_MODULES.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if exc.name and module_name.startswith(exc.name):  # that part does not exist (yet)
                continue
            _add_missing_extra_command(command, extra, exc.name or "a dependency")
            continue
        module.register(cli)


def _add_missing_extra_command(name: str, extra: str, missing: str) -> None:
    @cli.command(name=name, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def placeholder(args: tuple[str, ...]) -> None:
        """Not installed: needs an optional extra."""
        raise click.ClickException(f"{name} is not installed ({missing} is missing): "
                                   f"pip install 'tokenward[{extra}]'")


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
