"""CLI: `featcodec report` (rate–accuracy curves, BD-rate, task-sufficient rate)."""

from __future__ import annotations

from pathlib import Path

import click

from codec.errors import InputError
from probes.names import RATE_FIELDS

from .results import ResultsError


def _directions(items: tuple[str, ...]) -> dict[str, bool]:
    out = {}
    for item in items:
        name, sep, way = item.partition("=")
        if not sep or way not in ("higher", "lower") or not name:
            raise click.BadParameter(
                f"{item!r}: expected METRIC=higher or METRIC=lower", param_hint="--direction"
            )
        out[name] = way == "higher"
    return out


@click.command("report")
@click.argument(
    "results", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="Metric(s) to report (repeatable); default per task: depth abs_rel, pose AP, caption CIDEr-D.",
)
@click.option(
    "--anchor", help="Encoder the BD-rates are relative to (default: the first one in the results)."
)
@click.option(
    "--fraction",
    default=0.95,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True),
    help="Task-sufficient rate: the fraction of the clean accuracy to reach.",
)
@click.option(
    "--rate",
    default="bpp",
    show_default=True,
    type=click.Choice(RATE_FIELDS),
    help="Rate axis: whole streams (bpp) or the entropy-coded payload only.",
)
@click.option(
    "--direction",
    "directions",
    multiple=True,
    metavar="METRIC=higher|lower",
    help="Which way a metric unknown to featcodec improves (repeatable).",
)
@click.option(
    "--bootstrap",
    default=1000,
    show_default=True,
    type=click.IntRange(0),
    help="Resamples of the test images for every interval (0: none, and no verdicts).",
)
@click.option(
    "--confidence",
    default=0.95,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Level of every interval.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the bootstrap resamples.")
@click.option("--force", is_flag=True, help="Replace an existing report in REPORT_DIR.")
@click.option(
    "-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path), help="REPORT_DIR"
)
def report_command(
    results, metrics, anchor, fraction, rate, directions, bootstrap, confidence, seed, force, output
):
    """Rate–accuracy report of `featcodec eval` results: per-seed curves, across-seed BD-rates with intervals
    over seeds and test images, task-sufficient rates, verdicts, zero-rate point, stream bytes, KD and
    cross-neck
    tables, CompressAI-style curve JSON."""
    from .report import format_markdown, report_from_files

    try:
        report = report_from_files(
            list(results),
            output,
            force=force,
            metrics=list(metrics) or None,
            anchor=anchor,
            fraction=fraction,
            rate=rate,
            directions=_directions(directions),
            bootstrap=bootstrap,
            confidence=confidence,
            seed=seed,
        )
    except (ResultsError, FileExistsError) as e:
        raise InputError(str(e)) from e
    click.echo(format_markdown(report))
    plots = ", ".join(s.plot for s in report.sections)
    click.echo(f"wrote {output / 'report.md'}, {output / 'report.json'}, plots: {plots}")
