"""Feature extraction: throughput, and peak memory that does not grow with the number of images.

Run: .venv/bin/python -m pytest bench/test_bench_extract.py --benchmark-only
Peak RSS is measured in fresh subprocesses (ru_maxrss), for N and 4N images.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from probes.encoders import collect_images, create_encoder, extract_features

_CHILD = """
import resource, sys, json
from probes.encoders import create_encoder, extract_features, collect_images
enc = create_encoder("sam2.1-hiera-tiny", random_init=True, resolution=256)
extract_features(enc, collect_images([sys.argv[1]]), sys.argv[2], batch_size=4, shard_size=8, progress=False)
print(json.dumps({"maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _images(folder, n):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return folder


def _peak_rss_mib(images, out):
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, str(images), str(out)], capture_output=True, text=True, check=True
    )
    return json.loads(res.stdout.strip().splitlines()[-1])["maxrss_kib"] / 1024


def test_extract_peak_memory_does_not_grow_with_images(tmp_path, benchmark):
    small = _peak_rss_mib(_images(tmp_path / "n16", 16), tmp_path / "c16")
    large = _peak_rss_mib(_images(tmp_path / "n64", 64), tmp_path / "c64")
    benchmark.extra_info.update(
        {"peak_rss_mib_16_images": small, "peak_rss_mib_64_images": large, "ratio": large / small}
    )
    benchmark.pedantic(lambda: None, rounds=1)
    # 4× the images adds 48 images × ~1.5 MiB of features; a streaming extractor stays within noise of that
    assert large < small * 1.25, (small, large)


@pytest.mark.parametrize("encoder_name", ["sam2.1-hiera-tiny", "hiera-tiny"])
def test_extract_throughput(tmp_path, benchmark, encoder_name):
    encoder = create_encoder(encoder_name, random_init=True, resolution=256)
    images = collect_images([_images(tmp_path / "imgs", 8)])
    counter = iter(range(10**6))
    benchmark.pedantic(
        lambda: extract_features(
            encoder, images, tmp_path / f"c{next(counter)}", batch_size=4, progress=False
        ),
        rounds=3,
        iterations=1,
    )
