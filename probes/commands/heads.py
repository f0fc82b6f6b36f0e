"""CLI: `featcodec pretrain-heads` (reproduce the shipped frozen mini heads) and `featcodec eval-head`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from codec.errors import InputError
from probes.names import TASK_NAMES

SHIPPED_HEADS = (
    Path(__file__).resolve().parents[1] / "heads" / "weights"
)  # probes.heads.registry.SHIPPED_WEIGHTS


@click.command("pretrain-heads")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=SHIPPED_HEADS,
    show_default=True,
    help="Writes OUTPUT/TASK/{config.json,weights.safetensors}.",
)
@click.option(
    "--task", "tasks", multiple=True, type=click.Choice(TASK_NAMES), help="Repeatable; default: all three."
)
@click.option("--steps", type=click.IntRange(min=1), help="Override the recipe's steps (smoke runs).")
@click.option("--train-images", type=click.IntRange(min=1), help="Override the recipe's training images.")
@click.option("--eval-images", type=click.IntRange(min=1), help="Override the recipe's test images.")
@click.option(
    "--threads", default=1, show_default=True, type=click.IntRange(min=1), help="torch CPU threads."
)
@click.option("--resume", is_flag=True, help="Continue interrupted runs; skip finished tasks.")
@click.option("--force", is_flag=True, help="Start over, replacing what OUTPUT/TASK holds.")
def pretrain_heads_command(output, tasks, steps, train_images, eval_images, threads, resume, force):
    """Pretrain the built-in heads with their teacher encoders on the
    synthetic world (the shipped weights)."""
    from probes.heads.assess import headline
    from probes.heads.base import HeadError
    from probes.heads.pretrain import pretrain_heads

    overrides = {
        k: v
        for k, v in (("steps", steps), ("train_images", train_images), ("eval_images", eval_images))
        if v is not None
    }
    try:
        results = pretrain_heads(
            output, tasks or TASK_NAMES, resume=resume, force=force, threads=threads, overrides=overrides
        )
    except HeadError as e:
        raise InputError(str(e)) from e
    for task, config in results.items():
        p = config["pretraining"]
        click.echo(
            f"{task}: {headline(task, p['test']['metrics'])} on {p['test']['data']} (test); "
            f"{p['baseline']['name']}: {headline(task, p['baseline']['metrics'])}; "
            f"trained in {p['seconds']:.0f} s ({p['cpu_seconds']:.0f} s CPU) → {output / task}"
        )


@click.command("eval-head")
@click.option(
    "--head", "head_spec", required=True, help="builtin:TASK or a built-in head directory with a teacher."
)
@click.option("--data", help="Held-out data (default: synthetic:TASK:100).")
@click.option("--split", default="test", show_default=True)
@click.option("--baseline-data", help="Training data of the trivial baseline (default: the head's recipe's).")
@click.option(
    "--threads", default=1, show_default=True, type=click.IntRange(min=1), help="torch CPU threads."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def eval_head_command(head_spec, data, split, baseline_data, threads, as_json):
    """Score a head fed by its own teacher, next to its task's trivial predictor."""
    import torch

    from probes.heads.assess import evaluate_baseline, evaluate_with_teacher, headline, open_eval_data
    from probes.heads.base import HeadError
    from probes.heads.pretrain import RECIPES
    from probes.heads.registry import load_head

    torch.set_num_threads(threads)
    try:
        head = load_head(head_spec)
        if not head.has_teacher:
            raise HeadError(f"head {head_spec!r} has no teacher encoder to feed it")
        data = data or f"synthetic:{head.task}:100"
        dataset = open_eval_data(head, data, split, None)
        metrics = evaluate_with_teacher(head, dataset)
        recipe = RECIPES[head.task]
        baseline_data = baseline_data or f"synthetic:{head.task}:{recipe.train_images}"
        baseline = evaluate_baseline(head, dataset, baseline_data)
    except (HeadError, ValueError) as e:
        raise InputError(str(e)) from e
    result = {
        "head": head_spec,
        "task": head.task,
        "data": {"spec": data, "split": split, "samples": len(dataset)},
        "metrics": metrics,
        "baseline": baseline,
    }
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(
        f"{head_spec} with its teacher on {data} ({split}, {len(dataset)} samples): "
        f"{headline(head.task, metrics)}"
    )
    click.echo(f"{baseline['name']} ({baseline_data}): {headline(head.task, baseline['metrics'])}")
