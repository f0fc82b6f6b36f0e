"""The embedded demo: a small rate–accuracy comparison of a generalist and a specialised encoder.

    bundled images → {hiera-tiny, sam2.1-hiera-tiny} → feature cache → hyperprior codecs at several λ
    → .fcb streams (real entropy coding) → decode → bits per pixel and feature MSE per (encoder, λ)
    synthetic:depth → encoder → neck-2L + built-in depth head (trained on clean features)
    → eval clean and through every codec's real streams → AbsRel vs bpp
    → featcodec report: curves, BD-rate of each encoder vs the first, task-sufficient rate

Runs offline on a CPU in minutes. Without checkpoints the encoders have random weights, so the numbers
exercise the whole pipeline but say nothing about Hiera vs SAM2; pass official checkpoints for that.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bench.rd import report_from_files
from codec.files import atomic_write_bytes, atomic_write_json
from codec.pipeline import round_trip
from codec.train import train_codec
from probes.encoders import collect_images, create_encoder, extract_features, sample_images_dir

DEFAULT_ENCODERS = ("hiera-tiny", "sam2.1-hiera-tiny")
DEFAULT_LAMBDAS = (0.25, 4.0)


@dataclass
class DemoPoint:
    encoder: str
    weights_id: str
    lmbda: float
    images: int
    bytes_per_image: float
    bpp: float  # bits per pixel of the encoder input
    bits_per_element: float
    feature_mse: float  # on the codec's normalised features, decoded vs original
    exact: bool  # decoded stream == the codec's own quantised reconstruction
    encode_s: float
    decode_s: float


def run_demo(
    out_dir: str | Path,
    *,
    encoders: tuple[str, ...] = DEFAULT_ENCODERS,
    checkpoints: dict[str, str] | None = None,
    images: list[str] | None = None,
    resolution: int = 128,
    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS,
    steps: int = 60,
    probe_steps: int = 150,
    force: bool = False,
    progress: bool = True,
) -> list[DemoPoint]:
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        if not force:
            raise FileExistsError(f"{out_dir}: exists and is not empty; pass --force to replace it")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    paths = collect_images(images or [sample_images_dir()])
    checkpoints = checkpoints or {}
    points: list[DemoPoint] = []
    probe_results: list[Path] = []
    for name in encoders:
        ckpt = checkpoints.get(name)
        encoder = create_encoder(name, checkpoint=ckpt, random_init=ckpt is None, resolution=resolution)
        cache = extract_features(encoder, paths, out_dir / name / "features", batch_size=2, progress=progress)
        for lmbda in lambdas:
            codec_dir = out_dir / name / f"codec-lambda{lmbda:g}"
            codec = train_codec(
                cache, codec_dir, lmbda=lmbda, steps=steps, batch_size=2, lr=1e-3,
                hparams={"N": 32, "M": 48}, checkpoint_every=max(steps, 1), progress=progress,
            )
            stream_dir = codec_dir / "streams"
            stream_dir.mkdir()
            total_bytes = bits_el = mse = enc_s = dec_s = 0.0
            exact = True
            for i, path in enumerate(cache.image_paths):
                batch = {k: v[None].float() for k, v in cache[i].items()}
                trip = round_trip(codec, batch, check=True)
                (stream,) = trip.streams
                enc_s += trip.timings["encode_s"]
                dec_s += trip.timings["decode_s"]
                exact &= bool(trip.exact)
                atomic_write_bytes(stream_dir / f"{Path(path).stem}.fcb", stream)
                norm = codec.model.normalization
                decoded_n, original_n = norm.normalize(trip.features), norm.normalize(batch)
                mse += sum(float(torch.mean((decoded_n[k] - original_n[k]) ** 2)) for k in batch) / len(batch)
                total_bytes += len(stream)
                bits_el += 8 * len(stream) / sum(v.numel() for v in batch.values())
            n = len(cache)
            points.append(DemoPoint(
                encoder=name, weights_id=cache.weights_id, lmbda=lmbda, images=n,
                bytes_per_image=total_bytes / n, bpp=8 * total_bytes / n / resolution**2,
                bits_per_element=bits_el / n, feature_mse=mse / n, exact=exact,
                encode_s=enc_s / n, decode_s=dec_s / n,
            ))
        if probe_steps:
            codec_dirs = [out_dir / name / f"codec-lambda{lmbda:g}" for lmbda in lambdas]
            probe_results += run_depth_probe(
                out_dir / name, name, ckpt, resolution, codec_dirs, steps=probe_steps, progress=progress
            )
    report = {
        "what": "featcodec demo: rate vs feature distortion per encoder and λ (bundled images)",
        "resolution": resolution,
        "random_init": [e for e in encoders if e not in checkpoints],
        "points": [asdict(p) for p in points],
    }
    atomic_write_json(out_dir / "report.json", report)
    atomic_write_bytes(out_dir / "report.md", format_table(points).encode())
    report_from_files([out_dir / "report.json", *probe_results], out_dir / "rate-accuracy", anchor=encoders[0])
    return points


def run_depth_probe(
    encoder_dir: Path, encoder: str, checkpoint: str | None, resolution: int, codec_dirs: list[Path], *,
    steps: int, progress: bool,
) -> list[Path]:
    """Neck-2L + built-in depth head on synthetic:depth; eval clean and through each codec's streams."""
    from probes.evaluate import evaluate_neck
    from probes.training import TrainNeckOptions, train_neck

    neck_dir = encoder_dir / "neck-depth-2L"
    opts = TrainNeckOptions(
        task="depth", head="builtin:depth", data="synthetic:depth", split="train", encoder=encoder,
        checkpoint=checkpoint, random_init=checkpoint is None, resolution=resolution, neck_layers=2,
        neck_dim=64, neck_heads=4, train_head=True, steps=steps, batch_size=4, lr=1e-3, device="cpu",
        progress=progress,
    )
    train_neck(opts, neck_dir)
    results = []
    for codec_dir in [None, *codec_dirs]:
        result = evaluate_neck(
            neck_dir, "synthetic:depth", split="test", codec=None if codec_dir is None else str(codec_dir),
            checkpoint=checkpoint, progress=progress,
        )
        path = encoder_dir / f"eval-depth-{'clean' if codec_dir is None else codec_dir.name}.json"
        atomic_write_json(path, result)
        results.append(path)
    return results


def format_table(points: list[DemoPoint]) -> str:
    lines = [
        "| encoder | weights | λ | bytes/image | bpp | bits/element | feature MSE | decode == model | enc s | dec s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        weights = p.weights_id if len(p.weights_id) < 16 else p.weights_id[:12] + "…"
        lines.append(
            f"| {p.encoder} | {weights} | {p.lmbda:g} | {p.bytes_per_image:.0f} | {p.bpp:.4f} | "
            f"{p.bits_per_element:.4f} | {p.feature_mse:.4f} | {'yes' if p.exact else 'NO'} | "
            f"{p.encode_s:.3f} | {p.decode_s:.3f} |"
        )
    return "\n".join(lines) + "\n"
