"""Whole directories (`featcodec encode DIR`): `encode_image_files` (batched forward, reading and entropy
coding on a thread pool pipelined with the next forward) against a loop over the library's one-image
encode (`encode_images`), side by side in one run, plus the encoder forward and the codec alone.

Target (issue 21): directory encode ≥ 1.5× the images/s of the one-image loop on 2 cores, in one process.
Weights do not change the cost, so random-init encoders and an untrained (updated) default-size
hyperprior are used; the images are the bundled samples, each copied DUPLICATES times.

    .venv/bin/python -m pytest bench/test_bench_encode.py --benchmark-only \
        --benchmark-columns=median,rounds -s
    python -m pytest bench/test_bench_encode.py --benchmark-only --bench-device cuda -s   # on a GPU
"""

from __future__ import annotations

import shutil

import pytest
import torch

from codec.codec_dir import load_codec, save_codec
from codec.models import create_codec
from codec.pipeline import decode_stream, encode_features
from probes.coding import encode_image_files, encode_images, image_targets
from probes.encoders import create_encoder, sample_images_dir

DUPLICATES = 3  # 4 bundled samples × 3 = 12 images: three batches of 4
# (encoder, resolution): SAM2.1-tiny at 512 px (1024 px costs minutes per round on 2 vCPUs) and mini-sam2
CASES = [("sam2.1-hiera-tiny", 512), ("mini-sam2-random", 128)]
# --bench-device cuda: SAM2.1-tiny at 1024 px (the GPU target), 4 × 8 = 32 images
CUDA_CASES, CUDA_DUPLICATES = [("sam2.1-hiera-tiny", 1024)], 8
RESULTS: dict[tuple[str, str], float] = {}


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        cuda = metafunc.config.getoption("--bench-device") == "cuda"
        cases = CUDA_CASES if cuda else CASES
        metafunc.parametrize("case", cases, ids=[f"{e}-{r}" for e, r in cases], scope="module")


@pytest.fixture(scope="module")
def setup(request, case, tmp_path_factory):
    name, resolution = case
    device = request.config.getoption("--bench-device")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("--bench-device cuda needs a CUDA device")
    encoder = create_encoder(name, random_init=True, resolution=resolution, device=device)
    torch.manual_seed(0)
    model = create_codec("hyperprior", encoder.spec, resolution=resolution, hyper_path="integer")
    codec_dir = tmp_path_factory.mktemp("codec")
    save_codec(model, codec_dir, encoder=name, weights_id=encoder.weights_id, lmbda=1.0)
    codec = load_codec(codec_dir, device=device)
    folder = tmp_path_factory.mktemp("images")
    for path in sorted(sample_images_dir().iterdir()):
        if path.suffix.lower() in (".png", ".jpg"):
            for k in range(CUDA_DUPLICATES if device == "cuda" else DUPLICATES):
                shutil.copy(path, folder / f"{path.stem}-{k}{path.suffix}")
    paths, targets = image_targets([folder], tmp_path_factory.mktemp("out"), force=False)
    pixels = torch.randn(1, 3, resolution, resolution, device=device)
    with torch.no_grad():
        features = {k: v.clone() for k, v in encoder(pixels).items()}
    return f"{name}-{resolution}-{device}", encoder, codec, paths, targets, pixels, features, device


def _synced(fn, device: str):
    """fn, then a CUDA synchronisation (a GPU op's time is its completion, not its launch)."""

    def run(*args):
        out = fn(*args)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return run


def _report(key: str) -> None:
    row = {what: t for (case, what), t in RESULTS.items() if case == key}
    if {"encoder", "codec_encode"} <= row.keys():
        print(
            f"\n{key}: codec encode {1e3 * row['codec_encode']:.1f} ms = "
            f"{100 * row['codec_encode'] / row['encoder']:.1f} % of the encoder forward "
            f"({1e3 * row['encoder']:.1f} ms)"
        )
    if {"loop", "directory"} <= row.keys():
        print(
            f"\n{key}: directory {row['images'] / row['directory']:.2f} images/s vs one-image loop "
            f"{row['images'] / row['loop']:.2f} images/s = {row['loop'] / row['directory']:.2f}×"
        )


def test_encoder_forward(benchmark, setup):
    key, encoder, _, _, _, pixels, _, device = setup
    with torch.no_grad():
        benchmark.pedantic(
            _synced(encoder, device), args=(pixels,), rounds=3 if device == "cpu" else 10, warmup_rounds=1
        )
    RESULTS[key, "encoder"] = benchmark.stats.stats.median


def test_codec_encode(benchmark, setup):
    key, _, codec, _, _, _, features, device = setup
    benchmark.pedantic(
        encode_features, args=(codec, features), rounds=5 if device == "cpu" else 20, warmup_rounds=1
    )
    RESULTS[key, "codec_encode"] = benchmark.stats.stats.median
    _report(key)


def test_codec_decode(benchmark, setup):
    key, _, codec, _, _, _, features, device = setup
    (data,) = encode_features(codec, features)
    decode = _synced(lambda d: decode_stream(codec, d, device=device), device)
    benchmark.pedantic(decode, args=(data,), rounds=5 if device == "cpu" else 20, warmup_rounds=1)
    RESULTS[key, "codec_decode"] = benchmark.stats.stats.median


def test_one_image_loop(benchmark, setup):
    key, _, codec, paths, targets, _, _, device = setup

    def loop():
        return [data for _, data, _ in encode_images(codec, paths, targets, random_init=True, device=device)]

    RESULTS[key, "reference"] = benchmark.pedantic(loop, rounds=3, warmup_rounds=1)
    RESULTS[key, "loop"] = benchmark.stats.stats.median
    RESULTS[key, "images"] = len(paths)


def test_directory(benchmark, setup):
    key, _, codec, paths, targets, _, _, device = setup

    def directory():
        return [
            r.data
            for r in encode_image_files(
                codec, paths, targets, random_init=True, show_progress=False, device=device
            )
        ]

    streams = benchmark.pedantic(directory, rounds=3, warmup_rounds=1)
    RESULTS[key, "directory"] = benchmark.stats.stats.median
    if (key, "reference") in RESULTS:
        assert streams == RESULTS[key, "reference"]  # the same bytes, faster
    _report(key)
