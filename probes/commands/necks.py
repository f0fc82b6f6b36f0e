"""CLI: `featcodec train-neck` and `featcodec eval`, thin over probes.training and probes.evaluate."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from codec.errors import InputError
from probes.names import DATASET_USAGE, TASK_NAMES

from .encoders import _has_bundled

log = logging.getLogger(__name__)

# errors that mean "bad input" (exit 3); their messages name the file, field or value. The layers' own
# errors (HeadError, DatasetError, NeckDirError, CacheError, CheckpointError) are InputErrors already.
INPUT_ERRORS = (ValueError, KeyError, FileNotFoundError)
DATA_USAGE = ", ".join(DATASET_USAGE.values())


def _input_error(e: Exception) -> InputError:
    return InputError(str(e).strip('"'))


def _scored(output: Path | None, force: bool, score) -> dict:
    """The result of `score()` (an evaluation; bad input: exit 3), also written to `output` when given,
    never over an existing file without --force (checked before the evaluation runs)."""
    if output is not None and output.exists() and not force:
        raise InputError(f"{output}: exists; pass --force to overwrite")
    try:
        result = score()
    except INPUT_ERRORS as e:
        raise _input_error(e) from e
    if output is not None:
        from codec.files import atomic_write_json

        atomic_write_json(output, result)
    return result


def _device(device: str) -> str:
    from codec.devices import resolve_device

    try:
        return str(resolve_device(device))
    except ValueError as e:
        raise InputError(str(e)) from e


@click.command("train-neck")
@click.option(
    "--encoder", help="Encoder name (see `featcodec encoders`); taken from --after's neck if omitted."
)
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Local encoder checkpoint.")
@click.option("--pretrained", is_flag=True, help="Encoder weights through timm / the hub (network).")
@click.option("--random-init", is_flag=True, help="Random encoder weights (results are marked random-init).")
@click.option(
    "--features", type=click.Path(file_okay=False), help="A feature cache (`featcodec extract -o`)."
)
@click.option("--resolution", type=int, help="Encoder input size (default: the encoder's).")
@click.option("--task", required=True, type=click.Choice(TASK_NAMES))
@click.option(
    "--head",
    "head_spec",
    required=True,
    help="hf:LOCAL_DIR_OR_HUB_ID (Depth Anything / ViTPose / BLIP), builtin:TASK (pretrained, with a "
    "teacher), builtin-new:TASK (untrained: --train-head), or a head directory.",
)
@click.option("--data", required=True, help=f"Training data: {DATA_USAGE}.")
@click.option("--split", help="Dataset split (NYUv2: train/test; COCO captions: a Karpathy split).")
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N images.")
@click.option(
    "--neck-layers",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Transformer layers: 2, 4, 6 are neck-2L/4L/6L.",
)
@click.option("--neck-dim", default=256, show_default=True, type=click.IntRange(min=8))
@click.option("--neck-heads", default=8, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--level", "levels", multiple=True, help="Encoder level(s) to read (repeatable; default: all, fused)."
)
@click.option(
    "--kd",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Weight W of the distillation loss MSE(neck tokens, head's own encoder tokens).",
)
@click.option("--codec", type=click.Path(file_okay=False), help="Train on features decoded by this codec.")
@click.option(
    "--after",
    type=click.Path(file_okay=False),
    help="Cross-neck: freeze this neck (task A) and train a second one on its output.",
)
@click.option(
    "--init",
    "init_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Fine-tune: start from this trained neck (same task, encoder and shape), e.g. on decoded features.",
)
@click.option(
    "--train-head",
    is_flag=True,
    help="Train a builtin-new:TASK head jointly (or fine-tune builtin:TASK); saved frozen in -o/head.",
)
@click.option("--steps", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=1e-4, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--weight-decay", default=0.05, show_default=True, type=click.FloatRange(min=0))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--checkpoint-every", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option(
    "--workers", default=2, show_default=True, type=click.IntRange(min=0), help="Image-decoding processes."
)
@click.option(
    "--feature-memory",
    "feature_memory_mb",
    default=2048,
    show_default=True,
    type=click.IntRange(min=0),
    help="MiB for computing every training sample's features once before the first step (0: on the fly).",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted run in -o.")
@click.option("--force", is_flag=True, help="Start over, replacing what -o holds.")
@click.option("--json", "as_json", is_flag=True, help="Print the neck's config as JSON.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path))
def train_neck_command(
    encoder,
    checkpoint,
    pretrained,
    random_init,
    features,
    resolution,
    task,
    head_spec,
    data,
    split,
    limit,
    neck_layers,
    neck_dim,
    neck_heads,
    levels,
    kd,
    codec,
    after,
    init_dir,
    train_head,
    steps,
    batch_size,
    lr,
    weight_decay,
    seed,
    checkpoint_every,
    device,
    workers,
    feature_memory_mb,
    resume,
    force,
    as_json,
    output,
):
    """Train a neck mapping encoder features onto a frozen task head (loss = task + W·KD)."""
    from probes.training import TrainNeckOptions, train_neck

    if sum(map(bool, (checkpoint, pretrained, random_init, features))) > 1:
        raise click.UsageError("give one of --checkpoint, --pretrained, --random-init or --features")
    if (
        not after
        and not (checkpoint or pretrained or random_init or features)
        and not _has_bundled(encoder or "")
    ):
        raise click.UsageError(
            "give --checkpoint PATH, --pretrained, --random-init or --features CACHE "
            "(encoders with bundled weights, e.g. mini-hiera, need none)"
        )
    opts = TrainNeckOptions(
        task=task,
        head=head_spec,
        data=data,
        encoder=encoder,
        checkpoint=checkpoint,
        pretrained=pretrained,
        random_init=random_init,
        features=features,
        resolution=resolution,
        levels=list(levels),
        neck_layers=neck_layers,
        neck_dim=neck_dim,
        neck_heads=neck_heads,
        kd=kd,
        codec=codec,
        after=after,
        init=init_dir,
        train_head=train_head,
        split=split,
        limit=limit,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
        checkpoint_every=checkpoint_every,
        device=_device(device),
        workers=workers,
        feature_memory_mb=feature_memory_mb,
    )
    try:
        config = train_neck(opts, output, resume=resume, force=force)
    except INPUT_ERRORS as e:
        raise _input_error(e) from e
    except FloatingPointError as e:
        raise InputError(str(e)) from e
    if as_json:
        click.echo(
            json.dumps(
                {k: v for k, v in config.items() if k != "training"}
                | {"final_loss": config["training"]["final_loss"]},
                indent=2,
            )
        )
    else:
        t = config["training"]
        click.echo(
            f"trained {config['neck']['name']} ({task}, head {head_spec}) for {t['steps']} steps: "
            f"loss {t['first_loss']:.4g} → {t['final_loss']:.4g}; wrote {output}",
            err=True,
        )


@click.command("eval")
@click.option(
    "--neck", "neck_dir", required=True, type=click.Path(file_okay=False), help="A train-neck -o directory."
)
@click.option("--data", required=True, help=f"Evaluation data: {DATA_USAGE}.")
@click.option("--codec", type=click.Path(file_okay=False), help="Evaluate on features decoded by this codec.")
@click.option("--split", help="Dataset split (NYUv2: test; COCO captions: a Karpathy split).")
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate only the first N images.")
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    help="Encoder checkpoint (default: the one recorded in the neck; its hash must match).",
)
@click.option("--features", type=click.Path(file_okay=False), help="Read encoder features from this cache.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--max-new-tokens", default=20, show_default=True, type=click.IntRange(min=1), help="Captioning."
)
@click.option(
    "--num-beams", default=3, show_default=True, type=click.IntRange(min=1), help="Captioning (BLIP: 3)."
)
@click.option("--device", default="auto", show_default=True)
@click.option(
    "--workers", default=2, show_default=True, type=click.IntRange(min=0), help="Image-decoding processes."
)
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Also write the result here."
)
@click.option("--force", is_flag=True, help="Overwrite an existing -o file.")
def eval_command(
    neck_dir,
    data,
    codec,
    split,
    limit,
    checkpoint,
    features,
    batch_size,
    max_new_tokens,
    num_beams,
    device,
    workers,
    as_json,
    output,
    force,
):
    """Score a trained neck + frozen head on a dataset (clean, or through a codec's real bitstream)."""
    from probes.evaluate import evaluate_neck

    result = _scored(
        output,
        force,
        lambda: evaluate_neck(
            neck_dir,
            data,
            codec=codec,
            split=split,
            limit=limit,
            checkpoint=checkpoint,
            features=features,
            batch_size=batch_size,
            device=_device(device),
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            workers=workers,
        ),
    )
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    enc = result["encoder"]
    click.echo(
        f"{result['task']}: {enc['name']} ({enc['weights_id'][:16]}) → {result['neck']['name']} → "
        f"{result['head']['spec']} on {result['data']['spec']} ({result['data']['samples']} samples)"
    )
    if result["bpp"] is not None:
        click.echo(f"  codec {result['codec']['dir']}: {result['bpp']:.4f} bpp")
    for name, value in result["metrics"].items():
        click.echo(f"  {name:>10s}  {value:.4f}")


@click.command("zero-rate")
@click.option("--task", required=True, type=click.Choice(TASK_NAMES))
@click.option(
    "--train-data", required=True, help=f"Data the feature-free predictor is fitted on: {DATA_USAGE}."
)
@click.option("--train-split", help="Split of --train-data (NYUv2: train).")
@click.option("--train-limit", type=click.IntRange(min=1), help="Fit on the first N training images only.")
@click.option("--data", required=True, help="Evaluation data, as given to `featcodec eval --data`.")
@click.option("--split", help="Evaluation split, as given to `featcodec eval --split`.")
@click.option(
    "--limit", type=click.IntRange(min=1), help="Evaluate only the first N images (as `featcodec eval`)."
)
@click.option(
    "--depth-output",
    type=click.Choice(["relative-disparity", "metric-depth"]),
    default="relative-disparity",
    show_default=True,
    help="Depth: the protocol of the heads it is compared with (alignment).",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Also write the result here."
)
@click.option("--force", is_flag=True, help="Overwrite an existing -o file.")
def zero_rate_command(
    task, train_data, train_split, train_limit, data, split, limit, depth_output, output, force
):
    """The zero-rate point: the accuracy of the best prediction made without features (0 bits)."""
    from probes.evaluate import evaluate_zero_rate

    result = _scored(
        output,
        force,
        lambda: evaluate_zero_rate(
            task,
            train_data,
            data,
            train_split=train_split,
            split=split,
            train_limit=train_limit,
            limit=limit,
            task_options={"output_kind": depth_output} if task == "depth" else None,
        ),
    )
    click.echo(f"{task} at 0 bits on {data} ({result['data']['samples']} samples): {result['predictor']}")
    for name, value in result["metrics"].items():
        click.echo(f"  {name:>10s}  {value:.4f}")
