"""CLI: `featcodec sweep` (a study file run as a graph of cached steps) and
`featcodec demo` (the embedded study)."""

from __future__ import annotations

from pathlib import Path

import click

from codec.errors import InputError

from .sweep.runner import EXECUTORS  # torch-free

EMBEDDED_STUDY = Path(__file__).parent / "studies" / "mini.toml"


@click.command("demo")
@click.option(
    "--study",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Study file to run (default: the embedded study, bench/studies/mini.toml).",
)
@click.option("--resume", is_flag=True, help="Continue an existing demo run directory.")
@click.option("--force", is_flag=True, help="Replace an existing output directory.")
@click.option(
    "--jobs",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Steps run at a time (processes; the study sets one torch thread each).",
)
@click.option(
    "-o", "--output", default="demo-out", show_default=True, type=click.Path(file_okay=False, path_type=Path)
)
def demo_command(study, resume, force, jobs, output):
    """The embedded study: mini-hiera vs mini-sam2 on depth, pose and captioning, clean and at 4 rates."""
    import shutil

    from .sweep.runner import run_sweep
    from .sweep.steps import REPORT_DIR, SUMMARY

    study = study or EMBEDDED_STUDY
    if output.exists() and any(output.iterdir()) and not resume:
        if not force:
            raise InputError(
                f"{output}: exists and is not empty; pass --force to replace it or --resume to continue"
            )
        shutil.rmtree(output)
    outcome = run_sweep(study, output, resume=resume, jobs=jobs, echo=click.echo)
    click.echo(f"\n{outcome.study.description}\n")
    click.echo((output / REPORT_DIR / SUMMARY).read_text())
    click.echo(f"report: {output / 'report' / 'report.md'}; results: {outcome.results}")


@click.command("sweep")
@click.argument("study", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory: steps/, results.jsonl, report/ (required unless --estimate).",
)
@click.option("--resume", is_flag=True, help="Continue a run directory; finished steps are never recomputed.")
@click.option("--plan", "plan_only", is_flag=True, help="Print the steps (done / to do) and exit.")
@click.option(
    "--estimate",
    is_flag=True,
    help="With --plan: price the plan (device-hours, bytes, peak memory per step kind; the critical "
    "path); needs no data, only the sizes the study declares or knows.",
)
@click.option(
    "--calibration",
    type=click.Path(dir_okay=False, path_type=Path),
    help="--estimate's per-operation costs (featcodec calibrate; default: the shipped file for the "
    "study's device).",
)
@click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True)
@click.option(
    "--jobs",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Local executor: independent steps run in this many processes.",
)
@click.option("--address", help="Ray: 'auto' (a running cluster), HOST:PORT, or omit for a local ray.init().")
@click.option("--no-progress", is_flag=True, help="No progress display.")
def sweep_command(
    study, run_dir, resume, plan_only, estimate, calibration, executor, jobs, address, no_progress
):
    """Run a study file: extract → train codecs → train necks → eval → report, resumable and cached."""
    from .sweep.runner import run_sweep

    if not study.is_file():
        raise InputError(f"{study}: no such study file")
    if estimate:
        from .sweep.estimate import Calibration, estimate_plan

        if not plan_only:
            raise click.UsageError("--estimate goes with --plan")
        click.echo(estimate_plan(study, Calibration.load(calibration) if calibration else None, jobs).table())
        return
    if run_dir is None:
        raise click.UsageError("give the run directory: -o RUN_DIR")
    outcome = run_sweep(
        study,
        run_dir,
        resume=resume,
        plan_only=plan_only,
        executor=executor,
        jobs=jobs,
        address=address,
        progress=not no_progress,
        echo=click.echo,
    )
    if not plan_only:
        click.echo(
            f"{len(outcome.ran)} step(s) ran, {len(outcome.skipped)} reused; results {outcome.results}; "
            f"report {run_dir / 'report' / 'report.md'}",
            err=True,
        )


@click.command("calibrate")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option(
    "--study",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The study whose operations to measure (default: the embedded study).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Calibration file to write (default: calibration-DEVICE.json).",
)
@click.option(
    "--jobs",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="CPU: also measure how much slower steps run when up to this many run at once.",
)
@click.option("--force", is_flag=True, help="Replace an existing calibration file.")
def calibrate_command(device, study, output, jobs, force):
    """Measure per-operation costs on this machine for `featcodec sweep --plan --estimate --calibration`."""
    from .sweep.calibrate import calibrate
    from .sweep.study import load_study

    output = output or Path(f"calibration-{device}.json")
    if output.exists() and not force:
        raise InputError(f"{output}: exists; pass --force to replace it")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device here")
    calibration = calibrate(load_study(study or EMBEDDED_STUDY), device, output, jobs=jobs, echo=click.echo)
    click.echo(f"{len(calibration.ops)} operation costs in {output}")
