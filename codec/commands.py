"""CLI: `featcodec train-codec`, `encode`, `decode`, `info` — thin wrappers over codec.* functions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import torch

from codec.cli import InputError

from .bitstream import BitstreamError
from .entropy import CODERS, DEFAULT_CODER
from .pipeline import decode_stream, encode_features, stream_info
from .zoo import CodecLoadError, load_codec


def _atomic_write(path: Path, data: bytes, force: bool) -> None:
    from codec.files import atomic_write_bytes

    if path.exists() and not force:
        raise InputError(f"{path}: exists; pass --force to overwrite")
    atomic_write_bytes(path, data)


def _load_codec(path: Path, device: str = "cpu"):
    try:
        return load_codec(path, device=device)
    except CodecLoadError as e:
        raise InputError(str(e)) from e


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from e


@click.command("train-codec")
@click.option("--features", "features", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Feature cache directory (featcodec extract -o).")
@click.option("--lambda", "lmbda", required=True, type=click.FloatRange(min=0, min_open=True),
              help="Rate–distortion trade-off: loss = bits/element + λ·MSE(normalised features).")
@click.option("--model", "kind", type=click.Choice(["hyperprior", "factorized", "uniform"]), default="hyperprior",
              show_default=True)
@click.option("--levels", help="Comma-separated feature levels to code jointly (default: all).")
@click.option("--steps", default=2000, show_default=True, type=click.IntRange(min=0))
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=1e-4, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--channels", "N", type=click.IntRange(min=1), help="Hidden / hyper channels N (default 128).")
@click.option("--latent-channels", "M", type=click.IntRange(min=1), help="Latent channels M (default 192).")
@click.option("--grid-stride", type=click.IntRange(min=1), help="Stride of the common grid (default 16).")
@click.option("--checkpoint-every", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in the output directory.")
@click.option("--force", is_flag=True, help="Overwrite a codec already in the output directory.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path))
def train_codec_command(features, lmbda, kind, levels, steps, batch_size, lr, N, M, grid_stride, checkpoint_every,
                        seed, device, resume, force, output):
    """Train a feature codec on a feature cache (resumable) and save it as a codec directory."""
    from probes.encoders.cache import CacheError

    from .train import TrainingError, train_codec

    hparams = {k: v for k, v in {"N": N, "M": M, "grid_stride": grid_stride}.items() if v is not None}
    if kind == "uniform":
        hparams.pop("N", None)
        hparams.pop("M", None)
    try:
        codec = train_codec(
            features, output, lmbda=lmbda, kind=kind, levels=levels.split(",") if levels else None, steps=steps,
            batch_size=batch_size, lr=lr, device=device, resume=resume, force=force,
            checkpoint_every=checkpoint_every, seed=seed, hparams=hparams,
        )
    except (CacheError, TrainingError, KeyError, ValueError, FileExistsError) as e:
        raise InputError(str(e).strip('"')) from e
    click.echo(f"wrote {kind} codec {codec.codec_id} (λ={lmbda:g}, levels {','.join(codec.model.level_names)}) "
               f"to {output}", err=True)


@click.command("encode")
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--features", "features_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Encode features from a safetensors file ({level: C×H×W}) instead of images.")
@click.option("--codec", "codec_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), help="Encoder checkpoint.")
@click.option("--random-init", is_flag=True, help="Random encoder weights (for codecs trained on such features).")
@click.option("--ignore-weights-mismatch", is_flag=True,
              help="Encode although the encoder weights differ from those the codec was trained for.")
@click.option("--coder", type=click.Choice(sorted(CODERS)), default=DEFAULT_CODER, show_default=True,
              help="Entropy coder (native: featcodec's rANS, constriction where codec._C is not built).")
@click.option("--groups", default=1, show_default=True, type=click.IntRange(min=1),
              help="Independent channel-group substreams.")
@click.option("--threads", type=click.IntRange(min=1), help="Threads for substreams.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite existing outputs.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Directory for IMAGE inputs (one .fcb each); a .fcb file with --features.")
def encode_command(images, features_file, codec_dir, checkpoint, random_init, ignore_weights_mismatch, coder, groups,
                   threads, device, force, as_json, output):
    """Encode images (frozen encoder, then codec) or a features file into .fcb streams."""
    if bool(images) == bool(features_file):
        raise click.UsageError("give IMAGE paths or --features FILE (not both)")
    codec = _load_codec(codec_dir, device)
    summaries = []
    try:
        if features_file:
            summaries.append(_encode_features_file(codec, features_file, output, coder, groups, threads, force))
        else:
            summaries.extend(_encode_images(codec, images, output, checkpoint, random_init, ignore_weights_mismatch,
                                            coder, groups, threads, device, force))
    except ValueError as e:
        raise InputError(str(e)) from e
    if as_json:
        click.echo(json.dumps(summaries if len(summaries) != 1 else summaries[0], indent=2))
    else:
        for s in summaries:
            click.echo(f"{s['output']}: {s['bytes']} bytes, {s['bits_per_element']:.4f} bits/element"
                       + (f", {s['bpp_source']:.4f} bpp" if s.get("bpp_source") else ""), err=True)


def _summary(path: Path, data: bytes, seconds: dict, codec) -> dict:
    info = stream_info(data, codec)
    keys = ("bytes", "payload_bytes", "bits_per_element", "bpp_input", "bpp_source", "estimated_bits", "coder")
    return {"output": str(path), **{k: info.get(k) for k in keys}, "seconds": seconds}


def _encode_features_file(codec, path, output, coder, groups, threads, force) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if output.exists() and not force:
        raise InputError(f"{output}: exists; pass --force to overwrite")
    start = time.perf_counter()
    try:
        features = load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise InputError(f"{path}: not a readable safetensors file ({e})") from e
    timings: dict = {"read_s": time.perf_counter() - start}
    for name in codec.model.level_names:
        t = features.get(name)
        if t is None:
            raise InputError(f"{path}: no tensor {name!r}; the codec codes {codec.model.level_names}")
        if t.ndim not in (3, 4) or (t.ndim == 4 and t.shape[0] != 1) or not t.is_floating_point():
            raise InputError(f"{path}: tensor {name!r} must be float C×H×W or 1×C×H×W, got {t.dtype} {tuple(t.shape)}")
    try:
        (data,) = encode_features(codec, features, coder=coder, groups=groups, threads=threads, timings=timings)
    except ValueError as e:
        raise InputError(f"{path}: {e}") from e
    start = time.perf_counter()
    _atomic_write(output, data, force)
    timings["write_s"] = time.perf_counter() - start
    return _summary(output, data, timings, codec)


def _encode_images(codec, images, output, checkpoint, random_init, ignore_mismatch, coder, groups, threads, device,
                   force) -> list[dict]:
    from probes.encoders import collect_images, create_encoder, load_image
    from probes.encoders.checkpoints import CheckpointError
    from probes.encoders.preprocess import ImageReadError

    if (checkpoint is None) == (not random_init):
        raise click.UsageError("give exactly one of --checkpoint PATH or --random-init for the frozen encoder")
    try:
        paths = collect_images(images)
    except FileNotFoundError as e:
        raise InputError(str(e)) from e
    if not paths:
        raise InputError(f"no images found in {', '.join(map(str, images))}")
    if output.exists() and not output.is_dir():
        raise InputError(f"{output}: exists and is not a directory (image inputs write one .fcb each into -o DIR)")
    targets = [output / f"{p.stem}.fcb" for p in paths]
    if len(set(targets)) != len(targets):
        raise InputError("two inputs share a file name stem; their .fcb outputs would collide")
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise InputError(f"{existing[0]}: exists; pass --force to overwrite")
    try:
        encoder = create_encoder(codec.encoder, checkpoint=checkpoint, random_init=random_init,
                                 resolution=codec.config.get("resolution"), device=device)
    except (KeyError, ValueError, CheckpointError, RuntimeError) as e:
        raise InputError(str(e).strip('"')) from e
    if encoder.weights_id != codec.config["weights_id"] and not ignore_mismatch:
        raise InputError(
            f"encoder weights {encoder.weights_id} differ from the codec's ({codec.config['weights_id']}); "
            "pass --ignore-weights-mismatch to encode anyway"
        )
    output.mkdir(parents=True, exist_ok=True)
    summaries = []
    for path, target in zip(paths, targets, strict=True):
        timings: dict = {}
        start = time.perf_counter()
        try:
            image = load_image(path)
        except ImageReadError as e:
            raise InputError(str(e)) from e
        pixels = encoder.preprocess(image).unsqueeze(0).to(encoder_device(encoder))
        timings["read_s"] = time.perf_counter() - start
        start = time.perf_counter()
        features = {k: v.clone() for k, v in encoder(pixels).items()}
        timings["encoder_s"] = time.perf_counter() - start
        source = {"name": path.name, "width": image.size[0], "height": image.size[1]}
        (data,) = encode_features(codec, features, coder=coder, groups=groups, threads=threads, sources=[source],
                                  timings=timings)
        start = time.perf_counter()
        _atomic_write(target, data, force)
        timings["write_s"] = time.perf_counter() - start
        summaries.append(_summary(target, data, timings, codec))
    return summaries


def encoder_device(encoder) -> torch.device:
    return next(encoder.parameters()).device


@click.command("decode")
@click.argument("stream", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--codec", "codec_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--threads", type=click.IntRange(min=1))
@click.option("--device", default="cpu", show_default=True)
@click.option("--max-pixels", type=click.IntRange(min=1),
              help="Refuse streams whose grid covers more pixels (default: 4× the codec's training resolution²).")
@click.option("--force", is_flag=True, help="Overwrite an existing output.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
def decode_command(stream, codec_dir, threads, device, max_pixels, force, as_json, output):
    """Decode a .fcb stream into a safetensors file of features {level: C×H×W}."""
    from safetensors.torch import save

    if output.exists() and not force:
        raise InputError(f"{output}: exists; pass --force to overwrite")
    codec = _load_codec(codec_dir, device)
    data = _read(stream)
    try:
        decoded = decode_stream(codec, data, threads=threads, device=device, max_pixels=max_pixels)
    except BitstreamError as e:
        raise InputError(f"{stream}: {e}") from e
    start = time.perf_counter()
    header = decoded.header
    metadata = {
        "encoder": str(header["encoder"].get("name")), "weights_id": str(header["encoder"].get("weights_id")),
        "codec_id": codec.codec_id, "source": json.dumps(header.get("source")),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in decoded.features.items()}
    _atomic_write(output, save(tensors, metadata=metadata), force)
    timings = {**decoded.timings, "write_s": time.perf_counter() - start}
    summary = {"output": str(output), "levels": {k: list(v.shape) for k, v in tensors.items()}, "seconds": timings}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"wrote {output} ({', '.join(f'{k} {tuple(v.shape)}' for k, v in tensors.items())})", err=True)


@click.command("info")
@click.argument("stream", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--codec", "codec_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The codec that wrote the stream: adds what a compact (v2) header leaves to it (levels, latents, "
                   "encoder, bits per element).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info_command(stream, codec_dir, as_json):
    """Print a .fcb stream's header, sizes, bits per element and bits per pixel."""
    data = _read(stream)
    codec = _load_codec(codec_dir) if codec_dir else None
    try:
        info = stream_info(data, codec)
    except BitstreamError as e:
        raise InputError(f"{stream}: {e}") from e
    info = {"file": str(stream), **info}
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    codec, encoder = info["codec"] or {}, info["encoder"] or {}
    lines = [
        f"file              {stream} (container {'.'.join(map(str, info['container_version']))})",
        f"codec             {codec.get('kind')} {codec.get('id')} (config {codec.get('config_hash')})",
        f"encoder           {encoder.get('name')} ({encoder.get('weights_id')}) at {info['resolution']} px",
        "levels            " + (", ".join(f"{lv.get('name')} {tuple(lv.get('shape', ()))}" for lv in info["levels"])
                                  if info["levels"] else "(not in a compact stream: pass --codec)"),
        f"latents           {info['latents'] if info['latents'] else '(pass --codec)'}",
        f"coder             {info['coder']}",
        f"bytes             {info['bytes']} (header {info['header_bytes']}, payload {info['payload_bytes']})",
        "substreams        " + ", ".join(f"{s['name']}:{s['bytes']}" for s in info["substreams"]),
    ]
    if info.get("bits_per_element") is not None:
        lines.append(f"bits/element      {info['bits_per_element']:.5f} (payload {info['payload_bits_per_element']:.5f})")
    if info.get("estimated_bits") is not None:
        lines.append(f"model estimate    {info['estimated_bits']:.0f} bits (coding overhead "
                     f"{100 * info.get('coding_overhead', 0):.2f} %)")
    if info.get("bpp_input") is not None:
        lines.append(f"bpp (input)       {info['bpp_input']:.5f}")
    if info.get("bpp_source") is not None:
        src = info["source"]
        lines.append(f"bpp (source)      {info['bpp_source']:.5f} ({src.get('name')}, {src.get('width')}×{src.get('height')})")
    click.echo("\n".join(lines))


COMMANDS = [train_codec_command, encode_command, decode_command, info_command]
