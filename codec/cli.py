"""The `featcodec` command line: a thin click group over library functions.

Each layer of the pipeline owns a `commands` module exporting `COMMANDS`
(a list of click commands); this file only assembles them, so a command's
code lives beside the library it drives.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

# Exit codes: 0 ok, 2 usage error (click's own), 3 bad input, 4 internal error.
EXIT_BAD_INPUT = 3
EXIT_INTERNAL = 4

_COMMAND_MODULES = (
    "probes.encoders.commands",  # encoders, extract
    "probes.pretrain.commands",  # pretrain-mini
    "codec.commands",  # train-codec, encode, decode, info
    "probes.commands",  # train-neck, eval
    "bench.commands",  # sweep, report, demo
)


class InputError(click.ClickException):
    """Bad user input (a file, a field, a value): exit code 3, message names it."""

    exit_code = EXIT_BAD_INPUT


class FeatcodecGroup(click.Group):
    """Loads the layers' commands on first use; turns unexpected exceptions into exit code 4.

    Loading lazily lets a command module import `codec.cli` (for `InputError`) in any import order.
    """

    _loaded = False

    def _load_commands(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module_name in _COMMAND_MODULES:
            for command in importlib.import_module(module_name).COMMANDS:
                self.add_command(command)

    def list_commands(self, ctx):
        self._load_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx, cmd_name):
        self._load_commands()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001 - top-level guard of the CLI
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            click.echo(f"featcodec: internal error: {type(e).__name__}: {e}", err=True)
            click.echo("(run with --debug for the traceback)", err=True)
            sys.exit(EXIT_INTERNAL)


@click.group(cls=FeatcodecGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="featcodec")
def main(debug: bool) -> None:
    """featcodec: code the features of frozen vision encoders, and measure what the bits buy."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
