"""The `featcodec` command line: the root group, mounting every layer's commands lazily.

Each layer keeps its click commands beside its library (`codec.commands`, `probes.commands.*`,
`bench.commands`, `bench.rd.commands`); this root knows them only by name, module and one line of help,
so `featcodec --help` imports no command module, and `featcodec CMD` (or `CMD --help`) imports just
that command's module. Command modules import their heavy libraries (torch, timm, …) inside the
command body, so help and argument errors answer without them.

Exit codes: 0 ok, 2 usage error (click's own), 3 bad input (any `codec.errors.InputError`, whose message
names the file or field), 4 internal error.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from codec.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, InputError

# name → (module, attribute, one-line help shown by `featcodec --help`), in data-flow order
COMMANDS: dict[str, tuple[str, str, str]] = {
    "encoders": (
        "probes.commands.encoders",
        "encoders_command",
        "List the registered frozen encoders and their feature levels.",
    ),
    "extract": (
        "probes.commands.encoders",
        "extract_command",
        "Run a frozen encoder over images and cache its features (resumable).",
    ),
    "train-codec": (
        "probes.commands.coding",
        "train_codec_command",
        "Train a feature codec on a feature cache (resumable).",
    ),
    "encode": (
        "probes.commands.coding",
        "encode_command",
        "Encode images or a features file into .fcb streams.",
    ),
    "decode": (
        "codec.commands",
        "decode_command",
        "Decode a .fcb stream into a safetensors file of features.",
    ),
    "info": (
        "codec.commands",
        "info_command",
        "Print a .fcb stream's header, sizes, bits per element and bpp.",
    ),
    "train-neck": (
        "probes.commands.necks",
        "train_neck_command",
        "Train a neck onto a frozen task head (task + KD loss).",
    ),
    "eval": (
        "probes.commands.necks",
        "eval_command",
        "Score a neck + frozen head, clean or through a codec's bitstream.",
    ),
    "zero-rate": (
        "probes.commands.necks",
        "zero_rate_command",
        "Score the best feature-free prediction (a curve's 0-bit point).",
    ),
    "pretrain-mini": (
        "probes.commands.pretrain",
        "pretrain_mini",
        "Pretrain mini-hiera (MAE) and mini-sam2 (SAM) on the synthetic world.",
    ),
    "pretrain-heads": (
        "probes.commands.heads",
        "pretrain_heads_command",
        "Pretrain the built-in heads with their teachers (the shipped weights).",
    ),
    "eval-head": (
        "probes.commands.heads",
        "eval_head_command",
        "Score a head fed by its own teacher, next to a trivial predictor.",
    ),
    "report": (
        "bench.rd.commands",
        "report_command",
        "Rate–accuracy report: curves, BD-rate, task-sufficient rate.",
    ),
    "sweep": (
        "bench.commands",
        "sweep_command",
        "Run a study file: a resumable, cached graph of steps (local or Ray).",
    ),
    "calibrate": (
        "bench.commands",
        "calibrate_command",
        "Measure per-operation costs for `sweep --plan --estimate`.",
    ),
    "demo": ("bench.commands", "demo_command", "The embedded demo study (offline, CPU, minutes)."),
}


class BadInput(click.ClickException):
    """A library's InputError as click shows it: 'Error: <message naming the file or field>', exit code 3."""

    exit_code = EXIT_BAD_INPUT


class FeatcodecGroup(click.Group):
    """Loads a command's module on first use; maps InputError to exit 3 and anything unexpected to exit 4."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, cmd_name):
        if cmd_name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[cmd_name]
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx, formatter):
        """The command list from the table above, without importing any command module."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, _, short) in COMMANDS.items()])

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except InputError as e:
            raise BadInput(str(e).strip('"')) from e
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
