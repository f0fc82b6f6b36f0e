"""Whole directories (`featcodec encode DIR`): `encode_image_files` (batched forward, reading and entropy
coding on a thread pool pipelined with the next forward) against a loop over the library's one-image
encode (`encode_images`), side by side in one run, plus the codec alone and the encoder forward three ways
(one image; a batch of 4; two images on two threads, one torch thread each): the fastest of these bounds
what any one-process pipeline can reach. Directory decode (`decode_stream_files`) against a loop over
`decode_stream`, likewise.

Target (issue 21): directory encode ≥ 1.5× the images/s of the one-image loop on 2 cores, in one process.
Weights do not change the cost, so random-init encoders and an untrained (updated) default-size
hyperprior are used; the images are the bundled samples, each copied DUPLICATES times.

    .venv/bin/python -m pytest bench/test_bench_encode.py --benchmark-only \
        --benchmark-columns=median,rounds -s
    python -m pytest bench/test_bench_encode.py --benchmark-only --bench-device cuda -s   # on a GPU
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from codec.codec_dir import load_codec, save_codec
from codec.entropy.native import default_threads
from codec.models import create_codec
from codec.pipeline import decode_stream, encode_features
from codec.stream_files import decode_stream_files
from probes.coding import encode_image_files, encode_images, image_targets
from probes.encoders import create_encoder, sample_images_dir

DUPLICATES = 3  # 4 bundled samples × 3 = 12 images: three batches of 4
BATCH = 4  # encode_image_files' default batch size
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
            + "".join(f"; {k} {row['loop'] / row[k]:.2f}×" for k in SCHEDULES if k in row)
        )
        forwards = {k: row[k] for k in ("encoder", "encoder_batched", "encoder_image_parallel") if k in row}
        if forwards:  # a pipeline that hid all reading and coding would still run the fastest forward
            fastest = min(forwards.values())
            print(
                f"{key}: forward per image "
                + ", ".join(f"{k} {1e3 * t:.1f} ms" for k, t in forwards.items())
                + f"; one-image loop {1e3 * row['loop'] / row['images']:.1f} ms per image: a forward-bound "
                f"ceiling of {row['loop'] / row['images'] / fastest:.2f}× for any one-process pipeline"
            )
    if {"decode_loop", "decode_default", "images"} <= row.keys():
        print(
            f"\n{key}: decode of {row['images']} streams, one-stream loop {1e3 * row['decode_loop']:.0f} ms; "
            + "; ".join(
                f"{k[7:]} {row['decode_loop'] / row[k]:.2f}×"
                for k in ("decode_default", "decode_pool")
                if k in row
            )
        )


def test_encoder_forward(benchmark, setup):
    key, encoder, _, _, _, pixels, _, device = setup
    with torch.no_grad():
        benchmark.pedantic(
            _synced(encoder, device), args=(pixels,), rounds=3 if device == "cpu" else 10, warmup_rounds=1
        )
    RESULTS[key, "encoder"] = benchmark.stats.stats.median


def test_encoder_forward_batched(benchmark, setup):
    """The forward of BATCH images in one call, per image: does batching alone pay on this device?"""
    key, encoder, _, _, _, pixels, _, device = setup
    batch = pixels.expand(BATCH, -1, -1, -1).contiguous()
    with torch.no_grad():
        benchmark.pedantic(
            _synced(encoder, device), args=(batch,), rounds=3 if device == "cpu" else 10, warmup_rounds=1
        )
    RESULTS[key, "encoder_batched"] = benchmark.stats.stats.median / BATCH


def test_encoder_forward_image_parallel(benchmark, setup):
    """Two images at once on two Python threads with one torch thread each, per image: the other way to
    use two cores (between images instead of inside one forward). CPU only."""
    key, encoder, _, _, _, pixels, _, device = setup
    if device != "cpu":
        pytest.skip("CPU threads")
    threads = torch.get_num_threads()

    def two_images():
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda x: encoder(x), [pixels, pixels.clone()]))

    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            benchmark.pedantic(two_images, rounds=3, warmup_rounds=1)
    finally:
        torch.set_num_threads(threads)
    RESULTS[key, "encoder_image_parallel"] = benchmark.stats.stats.median / 2


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


SCHEDULES = {  # (batch_size, workers): None = default_schedule of the device
    "default": (None, None),
    "batch4": (BATCH, 0),
    "batch4-pool": (BATCH, "cpus"),
}


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_directory(benchmark, setup, schedule):
    """`default`: the device's schedule (a CPU: no pool, batches of 4 up to 256 px input, else 1; a GPU:
    batches of 4, a pool of the CPUs); `batch4`: batches of 4 in the caller's thread; `batch4-pool`: batches
    of 4 and a pool of the CPUs on any device, to compare the schedules side by side."""
    key, _, codec, paths, targets, _, _, device = setup
    batch_size, workers = SCHEDULES[schedule]
    workers = default_threads() if workers == "cpus" else workers

    def directory():
        return [
            r.data
            for r in encode_image_files(
                codec,
                paths,
                targets,
                random_init=True,
                show_progress=False,
                device=device,
                batch_size=batch_size,
                workers=workers,
            )
        ]

    streams = benchmark.pedantic(directory, rounds=3, warmup_rounds=1)
    RESULTS[key, "directory" if schedule == "default" else schedule] = benchmark.stats.stats.median
    if (key, "reference") in RESULTS:
        assert streams == RESULTS[key, "reference"]  # the same bytes, faster
    _report(key)


@pytest.fixture(scope="module")
def stream_files(setup, tmp_path_factory):
    """The one-image loop's streams of the case's images, as .fcb files."""
    key, _, codec, paths, targets, _, _, device = setup
    folder = tmp_path_factory.mktemp("streams")
    files = []
    for i, (_, data, _) in enumerate(encode_images(codec, paths, targets, random_init=True, device=device)):
        files.append(folder / f"{i}.fcb")
        files[-1].write_bytes(data)
    return files


def test_decode_loop(benchmark, setup, stream_files):
    key, _, codec, _, _, _, _, device = setup

    def loop():
        return [decode_stream(codec, f.read_bytes(), device=device).features for f in stream_files]

    benchmark.pedantic(_synced(loop, device), rounds=3, warmup_rounds=1)
    RESULTS[key, "decode_loop"] = benchmark.stats.stats.median


@pytest.mark.parametrize("schedule", ["default", "pool"])
def test_decode_directory(benchmark, setup, stream_files, schedule):
    """`featcodec decode DIR`'s decode_stream_files: the device's default workers (a CPU: none) or a pool of
    the CPUs, against a loop over decode_stream, side by side."""
    key, _, codec, _, _, _, _, device = setup
    workers = default_threads() if schedule == "pool" else None

    def directory():
        return [
            r.decoded.features
            for r in decode_stream_files(
                codec, stream_files, device=device, workers=workers, show_progress=False
            )
        ]

    benchmark.pedantic(_synced(directory, device), rounds=3, warmup_rounds=1)
    RESULTS[key, f"decode_{schedule}"] = benchmark.stats.stats.median
    _report(key)
