"""The study's steps on a GPU: encoder forward, the codec inside `featcodec encode` / `decode`, codec and
neck training steps per second — each on CUDA and, side by side in the same run, on the CPU.

    .venv/bin/python -m pytest bench/test_bench_gpu_steps.py --benchmark-only -s          # CUDA + CPU
    .venv/bin/python -m pytest bench/test_bench_gpu_steps.py --benchmark-only --bench-size tiny  # smoke

`--bench-size sam2` (default) measures at the study's 1024 px (SAM2.1 / Hiera, random-init weights: the
weights do not change the cost); `tiny` runs everything at 128 px (a CPU smoke run of this file).
Neck training is measured on the miniature (mini-sam2 at 128 px onto the frozen builtin:depth head, the
embedded study's neck): the full study's heads come from the hub, which a test machine cannot reach.
A table of medians and the codec's share of the encode is printed at the end (also under `-q`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from codec.codec_dir import load_codec, save_codec
from codec.levels import FeatureLevel
from codec.models import create_codec
from codec.pipeline import decode_stream, encode_features
from codec.train import train_codec
from probes.encoders import create_encoder

from .conftest import STEP_MEDIANS as ROWS

DEVICES = [pytest.param("cuda", marks=pytest.mark.cuda), "cpu"]
ENCODERS_1024 = ["sam2.1-hiera-tiny", "hiera-tiny", "sam2.1-hiera-base-plus", "hiera-base-plus"]


@pytest.fixture(scope="module")
def resolution(bench_size) -> int:
    return 1024 if bench_size == "sam2" else 128


def _need(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _record(benchmark, what: str, device: str, value: float | None = None) -> None:
    ROWS[(what, device)] = benchmark.stats.stats.median if value is None else value


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ENCODERS_1024)
def test_encoder_forward(benchmark, resolution, name, device):
    _need(device)
    if resolution != 1024 and "base-plus" in name:
        pytest.skip("tiny run: the tiny encoders only")
    if device == "cpu" and "base-plus" in name:
        pytest.skip("base-plus at 1024 px on the CPU: seconds per image, not needed for the GPU comparison")
    encoder = create_encoder(name, random_init=True, resolution=resolution, device=device)
    pixels = torch.randn(1, 3, resolution, resolution, device=device)

    def forward():
        with torch.no_grad():
            encoder(pixels)
        _sync(device)

    benchmark.pedantic(forward, rounds=5 if device == "cuda" else 2, warmup_rounds=1)
    _record(benchmark, f"encoder forward {name} {resolution}px, 1 image", device)


@dataclass
class _Codec:
    codec: object
    features: dict
    stream: bytes


@pytest.fixture(scope="module", params=["integer", "float64"])
def sam2_codec(request, tmp_path_factory, resolution):
    """SAM2.1-tiny's three FPN levels of one image and an updated default-size hyperprior over them, with the
    integer hyper path (what train-codec trains) or the float64 one (codecs written before it)."""
    encoder = create_encoder("sam2.1-hiera-tiny", random_init=True, resolution=resolution)
    torch.manual_seed(0)
    model = create_codec("hyperprior", encoder.spec, resolution=resolution, hyper_path=request.param)
    path = tmp_path_factory.mktemp("codec")
    save_codec(model, path, encoder=encoder.spec.name, weights_id=encoder.weights_id, lmbda=1.0)
    with torch.no_grad():
        features = {k: v.clone() for k, v in encoder(torch.randn(1, 3, resolution, resolution)).items()}
    return path, features, request.param


@pytest.mark.parametrize("device", DEVICES)
def test_codec_encode(benchmark, sam2_codec, resolution, device):
    _need(device)
    path, features, hyper = sam2_codec
    codec = load_codec(path, device=device)
    x = {k: v.to(device) for k, v in features.items()}
    benchmark.pedantic(lambda: encode_features(codec, x), rounds=5, warmup_rounds=1)
    _record(benchmark, f"codec encode ({hyper} hyper path; SAM2.1 FPN, {resolution}px), 1 image", device)


@pytest.mark.parametrize("device", DEVICES)
def test_codec_decode(benchmark, sam2_codec, resolution, device):
    _need(device)
    path, features, hyper = sam2_codec
    codec = load_codec(path, device=device)
    (data,) = encode_features(codec, {k: v.to(device) for k, v in features.items()})

    def decode():
        decode_stream(codec, data, device=device)
        _sync(device)

    benchmark.pedantic(decode, rounds=5, warmup_rounds=1)
    _record(benchmark, f"codec decode ({hyper} hyper path; SAM2.1 FPN, {resolution}px), 1 image", device)


class _MemoryFeatures:
    """A FeatureSet of random SAM2-like FPN features held in memory (cost does not depend on values)."""

    def __init__(self, levels, resolution: int, items: int = 16):
        self.path, self.levels, self.resolution = Path("<memory>"), list(levels), resolution
        self.encoder, self.weights_id = "sam2.1-hiera-tiny", "random-init"
        g = torch.Generator().manual_seed(0)
        self._items = [
            {
                lv.name: torch.randn(
                    lv.channels, resolution // lv.stride, resolution // lv.stride, generator=g
                )
                for lv in self.levels
            }
            for _ in range(items)
        ]

    def __len__(self) -> int:
        return len(self._items)

    def get(self, index: int, levels=None) -> dict[str, torch.Tensor]:
        item = self._items[index]
        return {k: item[k] for k in (levels or item)}


def _seconds_per_step(run, short: int, long: int) -> float:
    """(time of `long` steps - time of `short` steps) / (long - short): set-up and saving cancel out."""
    times = {}
    for steps in (short, long):
        start = time.perf_counter()
        run(steps)
        times[steps] = time.perf_counter() - start
    return (times[long] - times[short]) / (long - short)


@pytest.mark.parametrize("device", DEVICES)
def test_codec_training_steps(benchmark, tmp_path, resolution, device):
    _need(device)
    if device == "cpu" and resolution == 1024:
        pytest.skip("1024 px codec training on the CPU takes minutes per step; the GPU row stands alone")
    levels = [FeatureLevel("fpn0", 256, 4), FeatureLevel("fpn1", 256, 8), FeatureLevel("fpn2", 256, 16)]
    features = _MemoryFeatures(levels, resolution)
    batch = 8 if device == "cuda" else 2
    counter = iter(range(10**6))

    def run(steps: int) -> None:
        train_codec(
            features,
            tmp_path / f"c{next(counter)}",
            lmbda=1.0,
            steps=steps,
            batch_size=batch,
            device=device,
            progress=False,
            checkpoint_every=10**6,
            norm_items=4,
        )

    short, long = (5, 25) if device == "cuda" else (1, 3)
    seconds = benchmark.pedantic(lambda: _seconds_per_step(run, short, long), rounds=1, iterations=1)
    benchmark.extra_info.update({"seconds_per_step": seconds, "batch": batch})
    _record(benchmark, f"codec training (SAM2.1 FPN, {resolution}px, batch {batch}), s/step", device, seconds)


@pytest.mark.parametrize("device", DEVICES)
def test_neck_training_steps(benchmark, tmp_path, device):
    _need(device)
    from probes.training.loop import TrainNeckOptions, train_neck

    counter = iter(range(10**6))

    def run(steps: int) -> None:
        opts = TrainNeckOptions(
            task="depth",
            head="builtin:depth",
            data="synthetic:depth",
            split="train",
            limit=64,
            encoder="mini-sam2",
            resolution=128,
            neck_layers=2,
            neck_dim=64,
            neck_heads=4,
            steps=steps,
            batch_size=8,
            lr=2e-3,
            device=device,
            progress=False,
            checkpoint_every=max(steps, 1),
        )
        train_neck(opts, tmp_path / f"n{next(counter)}", force=True)

    seconds = benchmark.pedantic(lambda: _seconds_per_step(run, 10, 60), rounds=1, iterations=1)
    benchmark.extra_info["seconds_per_step"] = seconds
    _record(
        benchmark, "neck training (mini-sam2 128px → builtin:depth, 2L d64, batch 8), s/step", device, seconds
    )
