"""CLI: `featcodec pretrain-mini` reproduces the shipped mini-hiera / mini-sam2 weights from seeds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "encoders" / "weights"  # the bundled files' folder
SHIPPED = ("mini-hiera.safetensors", "mini-sam2.safetensors")


@click.command("pretrain-mini")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the corpus cache, checkpoints, weights and report.json.",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--resume", is_flag=True, help="Continue from the checkpoints in the output directory.")
@click.option(
    "--steps-scale",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Scale steps and corpus size (0.01: a smoke test; the shipped files use 1).",
)
@click.option(
    "--threads", default=2, show_default=True, type=click.IntRange(min=1), help="torch CPU threads."
)
@click.option(
    "--evaluate",
    "evaluate_only",
    is_flag=True,
    help="Only evaluate the weights already in the output directory (held-out test images).",
)
@click.option(
    "--install", is_flag=True, help="Copy the produced weights into the package (probes/encoders/weights/)."
)
def pretrain_mini(output, device, resume, steps_scale, threads, evaluate_only, install):
    """Pretrain mini-hiera (MAE) and mini-sam2 (SAM) on synthetic:mix, then evaluate on held-out images."""
    import torch

    from codec.files import atomic_write
    from probes.pretrain.recipe import Recipe, check_trunk_config, evaluate_outputs, run_recipe

    torch.set_num_threads(threads)
    check_trunk_config()
    recipe = Recipe().scaled(steps_scale) if steps_scale != 1.0 else Recipe()
    if evaluate_only:
        result = evaluate_outputs(output, per_task=recipe.eval_per_task, device=device)
    else:
        result = run_recipe(output, recipe=recipe, device=device, resume=resume)
    click.echo(json.dumps(result, indent=2))
    if install:
        for name in SHIPPED:
            atomic_write(WEIGHTS_DIR / name, lambda tmp, src=output / name: shutil.copyfile(src, tmp))
        click.echo(f"installed {', '.join(SHIPPED)} into {WEIGHTS_DIR}", err=True)
