"""CLI: `featcodec train-codec` (a feature cache → a codec directory) and `featcodec encode`
(images or a features file → .fcb streams), thin over codec.train, codec.pipeline and probes.coding.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from codec.commands import (
    CODER_HELP,
    output_options,
    resume_inputs,
    stream_of,
    stream_summary,
    write_output,
)
from codec.errors import InputError
from codec.names import CODEC_KINDS, CODER_NAMES, HYPER_PATHS, PACKED_KINDS, TRANSFORM_KINDS


@click.command("train-codec")
@click.option(
    "--features",
    "features",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Feature cache directory (featcodec extract -o).",
)
@click.option(
    "--lambda",
    "lmbda",
    type=click.FloatRange(min=0, min_open=True),
    help="Rate–distortion trade-off: loss = bits/element + λ·MSE(normalised features). Required for "
    "learned codecs and uniform.",
)
@click.option(
    "--model",
    "kind",
    type=click.Choice(CODEC_KINDS),
    default="hyperprior",
    show_default=True,
    help="vvc, hevc, av1: the standard anchors (features packed into frames; nothing is trained).",
)
@click.option(
    "--qp",
    type=click.IntRange(min=0, max=63),
    help="Packed anchors: the standard encoder's QP (vvc 0–63, hevc 0–51, av1 1–63).",
)
@click.option("--preset", help="Packed anchors: the encoder preset (default: vvc faster, hevc fast, av1 8).")
@click.option("--levels", help="Comma-separated feature levels to code jointly (default: all).")
@click.option("--steps", default=2000, show_default=True, type=click.IntRange(min=0))
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=1e-4, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--channels", "N", type=click.IntRange(min=1), help="Hidden / hyper channels N (default 128).")
@click.option("--latent-channels", "M", type=click.IntRange(min=1), help="Latent channels M (default 192).")
@click.option("--grid-stride", type=click.IntRange(min=1), help="Stride of the common grid (default 16).")
@click.option(
    "--adapter-rank",
    type=click.IntRange(min=1),
    help="A cheaper encoder side: levels finer than the grid are first projected to this many channels "
    "(default: the full adapters). The decoder is unchanged; a rank below the features' per-pixel "
    "dimension costs rate (bench/RESULTS.md).",
)
@click.option(
    "--hyper-path",
    type=click.Choice(HYPER_PATHS),
    default="integer",
    show_default=True,
    help="hyperprior h_s: an integer network, exact in float32 on any device (Ballé et al. 2019), or "
    "the float64 CPU path of earlier codecs.",
)
@click.option(
    "--hyper-distill-steps",
    type=click.IntRange(min=0),
    help="Integer hyper path: steps distilling the integer h_s from the float h_s the codec is first "
    "trained with (default: --steps; 0: train the integer h_s jointly instead).",
)
@click.option("--checkpoint-every", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in the output directory.")
@click.option("--force", is_flag=True, help="Overwrite a codec already in the output directory.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path))
def train_codec_command(
    features,
    lmbda,
    kind,
    qp,
    preset,
    levels,
    steps,
    batch_size,
    lr,
    N,
    M,
    grid_stride,
    adapter_rank,
    hyper_path,
    hyper_distill_steps,
    checkpoint_every,
    seed,
    device,
    resume,
    force,
    output,
):
    """Train a feature codec on a feature cache (resumable) and save it as a codec directory."""
    from codec.train import train_codec
    from probes.encoders import FeatureCache

    hparams = {
        k: v
        for k, v in {"N": N, "M": M, "grid_stride": grid_stride, "adapter_rank": adapter_rank}.items()
        if v is not None
    }
    if adapter_rank is not None and kind not in TRANSFORM_KINDS:
        raise click.UsageError(f"--adapter-rank is for the learned transform codecs, not {kind}")
    if kind in PACKED_KINDS:
        if qp is None or lmbda is not None:
            raise click.UsageError(f"a {kind} anchor takes --qp (and no --lambda)")
        hparams = {
            **{k: v for k, v in hparams.items() if k == "grid_stride"},
            "qp": qp,
            **({"preset": preset} if preset else {}),
        }
    elif lmbda is None or qp is not None:
        raise click.UsageError(f"a {kind} codec takes --lambda (--qp is for {', '.join(PACKED_KINDS)})")
    if kind == "uniform":
        hparams.pop("N", None)
        hparams.pop("M", None)
    if kind == "hyperprior":
        hparams["hyper_path"] = hyper_path
    try:
        codec = train_codec(
            FeatureCache(features),
            output,
            lmbda=lmbda,
            kind=kind,
            levels=levels.split(",") if levels else None,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            device=device,
            resume=resume,
            force=force,
            checkpoint_every=checkpoint_every,
            seed=seed,
            hparams=hparams,
            hyper_distill_steps=hyper_distill_steps,
        )
    except (KeyError, ValueError, FileExistsError) as e:  # CacheError, TrainingError: ValueErrors too
        raise InputError(str(e).strip('"')) from e
    point = f"qp={qp}" if kind in PACKED_KINDS else f"λ={lmbda:g}"
    click.echo(
        f"wrote {kind} codec {codec.codec_id} ({point}, levels {','.join(codec.model.level_names)}) "
        f"to {output}",
        err=True,
    )


@click.command("encode")
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--features",
    "features_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Encode features from a safetensors file ({level: C×H×W}) instead of images.",
)
@click.option("--codec", "codec_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Encoder checkpoint (default for mini-hiera / mini-sam2: their bundled weights).",
)
@click.option(
    "--random-init", is_flag=True, help="Random encoder weights (for codecs trained on such features)."
)
@click.option(
    "--ignore-weights-mismatch",
    is_flag=True,
    help="Encode although the encoder weights differ from those the codec was trained for.",
)
@click.option("--coder", type=click.Choice(CODER_NAMES), help=CODER_HELP)
@click.option(
    "--groups",
    type=click.IntRange(min=1),
    help="Independent channel-group substreams, coded in parallel (default: one per 2^18 latent "
    "symbols, at most 16; the same on every machine).",
)
@click.option("--threads", type=click.IntRange(min=1), help="Threads for substreams (default: the CPUs).")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="Images per encoder forward (default: 4 on a GPU; on a CPU 4 for inputs up to 256 px, else 1).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    help="Threads that read and entropy-code images beside the forward (default: the CPUs on a GPU; 0 on "
    "a CPU, whose forward already uses every core: reading and coding then run between forwards).",
)
@click.option("--device", default="cpu", show_default=True)
@output_options(
    "A .fcb file (--features, or one IMAGE), or a directory for IMAGE inputs (one STEM.fcb each, a "
    "directory input's tree mirrored)."
)
def encode_command(
    images,
    features_file,
    codec_dir,
    checkpoint,
    random_init,
    ignore_weights_mismatch,
    coder,
    groups,
    threads,
    batch_size,
    workers,
    device,
    force,
    resume,
    as_json,
    output,
):
    """Encode images (frozen encoder, then codec) or a features file into .fcb streams.

    IMAGE may be a file, a directory (searched recursively) or a quoted glob ('photos/*.jpg'). With one
    IMAGE and an -o ending in .fcb, that file is written; otherwise -o is a directory that receives one
    STEM.fcb per image (a directory's tree is mirrored; hidden names are skipped). A file that fails is
    named and the others are still encoded; the exit status is then 3.
    """
    import time

    from codec.codec_dir import load_codec
    from codec.entropy import DEFAULT_CODER
    from codec.pipeline import encode_features, read_features_file
    from probes.coding import image_targets

    if bool(images) == bool(features_file):
        raise click.UsageError("give IMAGE paths or --features FILE (not both)")
    if resume and features_file:
        raise click.UsageError("--resume continues a run over many images; --features writes one stream")
    coder = coder or DEFAULT_CODER
    codec = load_codec(codec_dir, device=device)
    summaries, failures = [], []
    if features_file:
        if output.exists() and not force:
            raise InputError(f"{output}: exists; pass --force to overwrite")
        start = time.perf_counter()
        features = read_features_file(features_file, codec.model.level_names)
        timings: dict = {"read_s": time.perf_counter() - start}
        try:
            (data,) = encode_features(
                codec, features, coder=coder, groups=groups, threads=threads, timings=timings
            )
        except ValueError as e:
            raise InputError(f"{features_file}: {e}") from e
        start = time.perf_counter()
        write_output(output, data, force)
        timings["write_s"] = time.perf_counter() - start
        summaries.append(stream_summary(output, data, timings, codec))
    else:
        from .encoders import _has_bundled

        # as `extract`: an encoder with bundled weights (mini-hiera, mini-sam2) uses them when none is given
        if (checkpoint is not None and random_init) or (
            checkpoint is None and not random_init and not _has_bundled(codec.encoder)
        ):
            raise click.UsageError(
                "give exactly one of --checkpoint PATH or --random-init for the frozen encoder"
            )
        paths, targets = image_targets(images, output, force=force or resume)
        if resume:
            paths, targets = resume_inputs(paths, targets, force, stream_of(codec))
        if paths:  # (--resume may leave none: then no encoder is loaded)
            summaries, failures = _encode_image_files(
                codec,
                paths,
                targets,
                checkpoint=checkpoint,
                random_init=random_init,
                ignore_weights_mismatch=ignore_weights_mismatch,
                coder=coder,
                groups=groups,
                threads=threads,
                device=device,
                batch_size=batch_size,
                workers=workers,
                force=force,
                show_progress=len(paths) > 1,
            )
    if as_json:
        click.echo(json.dumps(summaries if len(summaries) != 1 else summaries[0], indent=2))
    else:
        for s in summaries:
            click.echo(
                f"{s['output']}: {s['bytes']} bytes, {s['bits_per_element']:.4f} bits/element"
                + (f", {s['bpp_source']:.4f} bpp" if s.get("bpp_source") else ""),
                err=True,
            )
    if failures:
        raise InputError(
            f"{len(failures)} of {len(failures) + len(summaries)} images failed:\n  " + "\n  ".join(failures)
        )


def _encode_image_files(codec, paths, targets, *, force, **options) -> tuple[list[dict], list[str]]:
    """Encode and write one stream per image (probes.coding.encode_image_files); (summaries, failures)."""
    import time

    from probes.coding import encode_image_files

    summaries, failures = [], []
    for result in encode_image_files(codec, paths, targets, **options):
        if result.error is not None:
            click.echo(f"failed: {result.error}", err=True)
            failures.append(result.error)
            continue
        start = time.perf_counter()
        try:
            write_output(result.target, result.data, force)
        except (InputError, OSError) as e:
            failures.append(f"{result.target}: {e}")
            continue
        result.timings["write_s"] = time.perf_counter() - start
        summaries.append(stream_summary(result.target, result.data, result.timings, codec))
    return summaries, failures
