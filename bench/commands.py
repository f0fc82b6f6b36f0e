"""CLI: `featcodec sweep` (a study file run as a graph of cached steps) and `featcodec demo` (the embedded study)."""

from __future__ import annotations

from pathlib import Path

import click

from codec.errors import InputError

DEFAULT_ENCODERS = ("hiera-tiny", "sam2.1-hiera-tiny")  # bench.demo's defaults, spelled out for a torch-free --help
DEFAULT_LAMBDAS = (0.25, 4.0)


@click.command("demo")
@click.option("--encoder", "encoders", multiple=True, default=DEFAULT_ENCODERS, show_default=True)
@click.option(
    "--checkpoint", "checkpoints", multiple=True, metavar="ENCODER=PATH",
    help="Use real weights for an encoder (repeatable); others run with random weights.",
)
@click.option("--images", multiple=True, type=click.Path(exists=True, path_type=Path))
@click.option("--resolution", default=128, show_default=True, type=int)
@click.option("--lambda", "lambdas", multiple=True, type=float, default=DEFAULT_LAMBDAS, show_default=True)
@click.option("--steps", default=60, show_default=True, type=click.IntRange(min=0), help="Codec training steps.")
@click.option(
    "--probe-steps", default=150, show_default=True, type=click.IntRange(min=0),
    help="Depth-probe training steps on synthetic:depth (0 skips the probe).",
)
@click.option("--force", is_flag=True, help="Replace an existing output directory.")
@click.option("-o", "--output", default="demo-out", show_default=True, type=click.Path(file_okay=False, path_type=Path))
def demo_command(encoders, checkpoints, images, resolution, lambdas, steps, probe_steps, force, output):
    """Extract → train codecs → encode → decode on the bundled images; prints a rate–distortion table."""
    from .demo import format_table, run_demo

    parsed = {}
    for item in checkpoints:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise click.BadParameter(f"{item!r}: expected ENCODER=PATH", param_hint="--checkpoint")
        parsed[name] = path
    try:
        points = run_demo(
            output, encoders=tuple(encoders), checkpoints=parsed, images=list(images) or None,
            resolution=resolution, lambdas=tuple(lambdas), steps=steps, probe_steps=probe_steps, force=force,
        )
    except FileExistsError as e:
        raise InputError(str(e)) from e
    click.echo(format_table(points))
    click.echo((output / "rate-accuracy" / "report.md").read_text())
    click.echo(
        f"reports: {output / 'report.md'}, {output / 'rate-accuracy'}/ (report.md, report.json, plots); "
        f"streams under {output}/*/codec-*/streams"
    )



@click.command("sweep")
@click.argument("study", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory: steps/, results.jsonl, report/.")
@click.option("--resume", is_flag=True, help="Continue a run directory; finished steps are never recomputed.")
@click.option("--plan", "plan_only", is_flag=True, help="Print the steps (done / to do) and exit.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Local executor: independent steps run in this many processes.")
@click.option("--address", help="Ray: 'auto' (a running cluster), HOST:PORT, or omit for a local ray.init().")
@click.option("--no-progress", is_flag=True, help="No progress display.")
def sweep_command(study, run_dir, resume, plan_only, executor, jobs, address, no_progress):
    """Run a study file: extract → train codecs → train necks → eval → report, resumable and cached."""
    from .sweep.runner import run_sweep

    if not study.is_file():
        raise InputError(f"{study}: no such study file")
    outcome = run_sweep(study, run_dir, resume=resume, plan_only=plan_only, executor=executor, jobs=jobs,
                        address=address, progress=not no_progress, echo=click.echo)  # fmt: skip
    if not plan_only:
        click.echo(f"{len(outcome.ran)} step(s) ran, {len(outcome.skipped)} reused; results {outcome.results}; "
                   f"report {run_dir / 'report' / 'report.md'}", err=True)  # fmt: skip
