"""Whole directories (`featcodec encode DIR`): `encode_image_files` (batched forward, reading and entropy
coding on a thread pool pipelined with the next forward) against a loop over the library's one-image
encode (`encode_images`), side by side in one run, plus the encoder forward and the codec alone.

Target (issue 21): directory encode ≥ 1.5× the images/s of the one-image loop on 2 cores, in one process.
Weights do not change the cost, so random-init encoders and an untrained (updated) default-size
hyperprior are used; the images are the bundled samples, each copied DUPLICATES times.

    .venv/bin/python -m pytest bench/test_bench_encode.py --benchmark-only \
        --benchmark-columns=median,rounds -s
"""

from __future__ import annotations

import shutil

import pytest
import torch

from codec.codec_dir import save_codec
from codec.models import create_codec
from codec.pipeline import decode_stream, encode_features
from probes.coding import encode_image_files, encode_images, image_targets
from probes.encoders import create_encoder, sample_images_dir

DUPLICATES = 3  # 4 bundled samples × 3 = 12 images: three batches of 4
# (encoder, resolution): SAM2.1-tiny at 512 px (1024 px costs minutes per round on 2 vCPUs) and mini-sam2
CASES = [("sam2.1-hiera-tiny", 512), ("mini-sam2-random", 128)]
RESULTS: dict[tuple[str, str], float] = {}


@pytest.fixture(scope="module", params=CASES, ids=[f"{e}-{r}" for e, r in CASES])
def setup(request, tmp_path_factory):
    name, resolution = request.param
    encoder = create_encoder(name, random_init=True, resolution=resolution)
    torch.manual_seed(0)
    model = create_codec("hyperprior", encoder.spec, resolution=resolution)
    codec = save_codec(model, tmp_path_factory.mktemp("codec"), encoder=name, weights_id=encoder.weights_id,
                       lmbda=1.0)
    folder = tmp_path_factory.mktemp("images")
    for path in sorted(sample_images_dir().iterdir()):
        if path.suffix.lower() in (".png", ".jpg"):
            for k in range(DUPLICATES):
                shutil.copy(path, folder / f"{path.stem}-{k}{path.suffix}")
    paths, targets = image_targets([folder], tmp_path_factory.mktemp("out"), force=False)
    pixels = torch.randn(1, 3, resolution, resolution)
    features = {k: v.clone() for k, v in encoder(pixels).items()}
    return f"{name}-{resolution}", encoder, codec, paths, targets, pixels, features


def _report(key: str) -> None:
    row = {what: t for (case, what), t in RESULTS.items() if case == key}
    if {"encoder", "codec_encode"} <= row.keys():
        print(f"\n{key}: codec encode {1e3 * row['codec_encode']:.1f} ms = "
              f"{100 * row['codec_encode'] / row['encoder']:.1f} % of the encoder forward ({1e3 * row['encoder']:.1f} ms)")
    if {"loop", "directory"} <= row.keys():
        print(f"\n{key}: directory {row['images'] / row['directory']:.2f} images/s vs one-image loop "
              f"{row['images'] / row['loop']:.2f} images/s = {row['loop'] / row['directory']:.2f}×")


def test_encoder_forward(benchmark, setup):
    key, encoder, _, _, _, pixels, _ = setup
    benchmark.pedantic(encoder, args=(pixels,), rounds=3, warmup_rounds=1)
    RESULTS[key, "encoder"] = benchmark.stats.stats.median


def test_codec_encode(benchmark, setup):
    key, _, codec, _, _, _, features = setup
    benchmark.pedantic(encode_features, args=(codec, features), rounds=5, warmup_rounds=1)
    RESULTS[key, "codec_encode"] = benchmark.stats.stats.median
    _report(key)


def test_codec_decode(benchmark, setup):
    key, _, codec, _, _, _, features = setup
    (data,) = encode_features(codec, features)
    benchmark.pedantic(decode_stream, args=(codec, data), rounds=5, warmup_rounds=1)
    RESULTS[key, "codec_decode"] = benchmark.stats.stats.median


def test_one_image_loop(benchmark, setup):
    key, _, codec, paths, targets, _, _ = setup

    def loop():
        return [data for _, data, _ in encode_images(codec, paths, targets, random_init=True)]

    RESULTS[key, "reference"] = benchmark.pedantic(loop, rounds=3, warmup_rounds=1)
    RESULTS[key, "loop"] = benchmark.stats.stats.median
    RESULTS[key, "images"] = len(paths)


def test_directory(benchmark, setup):
    key, _, codec, paths, targets, _, _ = setup

    def directory():
        return [r.data for r in encode_image_files(codec, paths, targets, random_init=True, show_progress=False)]

    streams = benchmark.pedantic(directory, rounds=3, warmup_rounds=1)
    RESULTS[key, "directory"] = benchmark.stats.stats.median
    if (key, "reference") in RESULTS:
        assert streams == RESULTS[key, "reference"]  # the same bytes, faster
    _report(key)
