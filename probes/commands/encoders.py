"""CLI: `featcodec encoders` (the registry as a table) and `featcodec extract` (probes.encoders)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from codec.errors import InputError
from probes.names import FEATURE_DTYPES

log = logging.getLogger(__name__)


def weights_options(func):
    """--checkpoint / --pretrained / --random-init: exactly one weights source."""
    func = click.option(
        "--random-init", is_flag=True, help="Random weights (outputs are marked random-init)."
    )(func)
    func = click.option(
        "--pretrained", is_flag=True, help="Download weights through timm / the hub (network)."
    )(func)
    func = click.option(
        "--checkpoint",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Local checkpoint: official SAM2 / Hiera-MAE / timm (.pt, .pth, .safetensors). "
        "Encoders with bundled weights (mini-hiera, mini-sam2) use those when no weights option is given.",
    )(func)
    return func


def build_encoder_or_fail(name, checkpoint, pretrained, random_init, resolution, device):
    """create_encoder with CLI-shaped errors (exit code 3 names the file or field)."""
    from probes.encoders import create_encoder

    given = sum([checkpoint is not None, pretrained, random_init])
    if given > 1 or (given == 0 and not _has_bundled(name)):
        raise click.UsageError("give exactly one of --checkpoint PATH, --pretrained or --random-init")
    try:
        return create_encoder(
            name,
            checkpoint=checkpoint,
            pretrained=pretrained,
            random_init=random_init,
            resolution=resolution,
            device=device,
        )
    except (KeyError, ValueError, RuntimeError) as e:  # CheckpointError is a ValueError (InputError)
        raise InputError(str(e).strip('"')) from e


def _has_bundled(name: str) -> bool:
    """Whether NAME runs without a weights option (its weights ship with featcodec)."""
    from probes.encoders import bundled_weights

    try:
        return bundled_weights(name) is not None
    except InputError:
        return False  # unknown names are reported by create_encoder


def _weights_column(name: str) -> str:
    """What `featcodec extract --encoder NAME` uses without a weights option: bundled file's sha256."""
    from codec.files import sha256_file
    from probes.encoders import bundled_weights

    path = bundled_weights(name)
    if path is None:
        return "-"
    if not path.is_file():
        return "bundled (missing)"
    return f"bundled:{sha256_file(path)[:12]}"


@click.command("encoders")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def encoders_command(as_json: bool) -> None:
    """List the registered frozen encoders and their feature levels."""
    from probes.encoders import ENCODERS, get_spec

    specs = [get_spec(name) for name in ENCODERS.names()]
    if as_json:
        click.echo(json.dumps([{**s.to_dict(), "weights": _weights_column(s.name)} for s in specs], indent=2))
        return
    rows = [("name", "source", "family", "levels (channels/stride)", "default res", "weights")]
    for s in specs:
        levels = " ".join(f"{lv.name}:{lv.channels}/{lv.stride}" for lv in s.levels)
        rows.append((s.name, s.source, s.family, levels, str(s.default_resolution), _weights_column(s.name)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@click.command("extract")
@click.option("--encoder", "encoder_name", required=True, help="Encoder name (see `featcodec encoders`).")
@weights_options
@click.option(
    "--images",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Image files or directories (repeatable). Default: the bundled sample images.",
)
@click.option("--resolution", type=int, help="Square input size (default: the encoder's).")
@click.option("--batch-size", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--shard-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--dtype", type=click.Choice(FEATURE_DTYPES), default="float32", show_default=True)
@click.option("--strict", is_flag=True, help="Abort on an unreadable image instead of skipping it.")
@click.option("--force", is_flag=True, help="Discard an existing cache in the output directory.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path))
def extract_command(
    encoder_name,
    checkpoint,
    pretrained,
    random_init,
    images,
    resolution,
    batch_size,
    shard_size,
    device,
    dtype,
    strict,
    force,
    output,
):
    """Run a frozen encoder over images and cache its features (resumable)."""
    from probes.encoders import collect_images, extract_features, sample_images_dir

    paths = collect_images(images or [sample_images_dir()])  # a missing input: InputError, exit 3
    if not paths:
        raise InputError(f"no images found in {', '.join(map(str, images))}")
    encoder = build_encoder_or_fail(encoder_name, checkpoint, pretrained, random_init, resolution, device)
    cache = extract_features(  # CacheError / ImageReadError are InputErrors: exit code 3
        encoder,
        paths,
        output,
        batch_size=batch_size,
        shard_size=shard_size,
        dtype=dtype,
        strict=strict,
        force=force,
    )
    skipped = cache.manifest.get("skipped", [])
    click.echo(
        f"wrote {len(cache)} feature sets ({encoder_name}, {encoder.resolution}px, {dtype}) to {output}"
        + (f"; skipped {len(skipped)} unreadable input(s)" if skipped else ""),
        err=True,
    )
