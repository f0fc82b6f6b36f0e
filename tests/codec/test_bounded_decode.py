"""Bounded decoding: a stream's declared grid is checked against the decoder's pixel limit before
anything is sized from it, and the hyper-latent's checksum before the hyper path runs."""

import time
import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner

from bench.cli import main
from codec.bitstream import BitstreamError, pack, pack_compact, unpack
from codec.entropy import CdfTable, get_coder
from codec.models.base import crc32_arrays
from codec.pipeline import MAX_PIXELS_FACTOR, decode_stream, default_max_pixels, encode_features

from .conftest import fpn_features


def _huge_stream(codec, grid=(1024, 1024)):
    """A self-consistent stream for `grid`: header fields as the codec derives them, a z substream
    that really decodes (all-zero hyper symbols) and whose hyper checksum matches, so only the
    pixel limit stands between it and a float64 hyper path over gigabytes."""
    (data,) = encode_features(codec, fpn_features(batch=1), compact=False)
    header = {k: v for k, v in unpack(data).header.items() if k != "substreams"}
    model = codec.model
    shapes = model.level_shapes(grid)
    latents = model.latent_shapes(grid)
    z = np.zeros(int(np.prod(latents["z"])), np.int32)
    z_indexes = np.repeat(np.arange(latents["z"][0], dtype=np.int32), z.size // latents["z"][0])
    z_table = CdfTable.from_entropy_model(model.entropy_bottleneck)
    header.update(
        grid=list(grid),
        latents=latents,
        coder="native",
        levels=[{**lv.to_dict(), "shape": list(shapes[lv.name])} for lv in model.levels],
        checksums={**header["checksums"], "hyper": crc32_arrays(z)},
    )
    return pack(header, {"z": get_coder("native").encode(z, z_indexes, z_table), "y.0": b"\0" * 64})


def test_huge_declared_grid_is_rejected_before_allocating(fpn_codec):
    assert (
        fpn_codec.config["resolution"] == 64 and default_max_pixels(fpn_codec) == MAX_PIXELS_FACTOR * 64 * 64
    )
    data = _huge_stream(fpn_codec)
    assert len(data) < 1 << 20  # a small file claiming a 16384×16384 px grid
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(BitstreamError, match=r"16384×16384 px grid .* limit of 4× the codec's 64² px"):
            decode_stream(fpn_codec, data)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * len(data) + (4 << 20), peak  # parsing copies of the stream, nothing grid-sized
    assert elapsed < 3.0, elapsed  # loose: the point is "not minutes", the check itself is microseconds


def test_max_pixels_moves_the_limit(fpn_codec):
    (data,) = encode_features(fpn_codec, fpn_features(batch=1, resolution=128))  # 128² = 4 × 64²: allowed
    assert decode_stream(fpn_codec, data).features["fpn0"].shape == (8, 32, 32)
    with pytest.raises(BitstreamError, match="max_pixels=16383"):
        decode_stream(fpn_codec, data, max_pixels=128 * 128 - 1)
    (big,) = encode_features(fpn_codec, fpn_features(batch=1, resolution=192))
    with pytest.raises(BitstreamError, match="192×192 px grid"):
        decode_stream(fpn_codec, big)
    assert decode_stream(fpn_codec, big, max_pixels=192 * 192).features["fpn2"].shape == (16, 12, 12)


def test_cli_max_pixels(fpn_codec, tmp_path):
    (data,) = encode_features(fpn_codec, fpn_features(batch=1, resolution=128))
    (tmp_path / "x.fcb").write_bytes(data)
    args = [
        "decode",
        str(tmp_path / "x.fcb"),
        "--codec",
        str(fpn_codec.path),
        "-o",
        str(tmp_path / "o.safetensors"),
    ]
    result = CliRunner().invoke(main, [*args, "--max-pixels", "1000"], catch_exceptions=False)
    assert result.exit_code == 3 and "max_pixels=1000" in result.output
    assert CliRunner().invoke(main, args, catch_exceptions=False).exit_code == 0


def test_hyper_checksum_checked_before_the_hyper_path(fpn_codec, monkeypatch):
    """Validly coded but different z symbols: caught by the hyper checksum, h_s never runs."""
    (data,) = encode_features(fpn_codec, fpn_features(batch=1))
    container = unpack(data)
    model = fpn_codec.model
    latents = model.latent_shapes(container.header["grid"])
    z_table = CdfTable.from_entropy_model(model.entropy_bottleneck)
    z_indexes = np.repeat(np.arange(latents["z"][0], dtype=np.int32), int(np.prod(latents["z"][1:])))
    coder = get_coder(container.header["coder"])
    z = coder.decode(container.substreams["z"], z_indexes, z_table)
    z[0] += 1
    assert container.version[0] == 2  # the default, compact container
    forged = pack_compact(
        {k: v for k, v in container.header.items() if k != "substreams"},
        {**container.substreams, "z": coder.encode(z, z_indexes, z_table)},
    )

    def must_not_run(*args, **kwargs):
        raise AssertionError("the hyper path ran on unverified z symbols")

    monkeypatch.setattr(model, "entropy_parameters", must_not_run)
    with pytest.raises(BitstreamError, match="hyper checksum mismatch"):
        decode_stream(fpn_codec, forged)
