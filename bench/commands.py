"""CLI: `featcodec sweep` (a study file run as a graph of cached steps) and `featcodec demo` (the embedded study)."""

from __future__ import annotations

from pathlib import Path

import click

from codec.errors import InputError

EMBEDDED_STUDY = Path(__file__).parent / "studies" / "mini.toml"


@click.command("demo")
@click.option("--study", type=click.Path(dir_okay=False, path_type=Path),
              help="Study file to run (default: the embedded study, bench/studies/mini.toml).")
@click.option("--resume", is_flag=True, help="Continue an existing demo run directory.")
@click.option("--force", is_flag=True, help="Replace an existing output directory.")
@click.option("--jobs", default=2, show_default=True, type=click.IntRange(min=1),
              help="Steps run at a time (processes; the study sets one torch thread each).")
@click.option("-o", "--output", default="demo-out", show_default=True, type=click.Path(file_okay=False, path_type=Path))
def demo_command(study, resume, force, jobs, output):
    """The embedded study: mini-hiera vs mini-sam2 on depth, pose and captioning, clean and at 4 rates."""
    import shutil

    from .sweep.runner import run_sweep
    from .sweep.steps import REPORT_DIR, SUMMARY

    study = study or EMBEDDED_STUDY
    if output.exists() and any(output.iterdir()) and not resume:
        if not force:
            raise InputError(f"{output}: exists and is not empty; pass --force to replace it or --resume to continue")
        shutil.rmtree(output)
    outcome = run_sweep(study, output, resume=resume, jobs=jobs, echo=click.echo)
    click.echo(f"\n{outcome.study.description}\n")
    click.echo((output / REPORT_DIR / SUMMARY).read_text())
    click.echo(f"report: {output / 'report' / 'report.md'}; results: {outcome.results}")


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
