"""load_image, the one image reader: every file Pillow cannot read is an ImageReadError naming it, and
16-bit pixels are scaled to 8 bits (Pillow's convert("RGB") clips them at 255)."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from probes.data import DatasetError, read_image
from probes.encoders import ImageReadError, load_image


def test_a_16_bit_png_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    Image.fromarray(np.rint(ramp / 257).astype(np.uint8)).save(tmp_path / "g8.png")
    sixteen = np.asarray(load_image(tmp_path / "g16.png"))
    assert sixteen.shape == (64, 64, 3) and sixteen.dtype == np.uint8
    assert np.array_equal(sixteen, np.asarray(load_image(tmp_path / "g8.png")))


def _png_header_only(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


@pytest.mark.parametrize(
    "name, make, why",
    [
        ("bomb.png", lambda p: p.write_bytes(_png_header_only(30000, 30000)), "DecompressionBombError"),
        ("empty.jpg", lambda p: p.write_bytes(b""), "UnidentifiedImageError"),
        ("float.tif", lambda p: Image.new("F", (8, 8), 0.5).save(p), "floating-point"),
    ],
)
def test_unreadable_files_are_named(tmp_path, name, make, why):
    make(tmp_path / name)
    with pytest.raises(ImageReadError, match=f"{name}: not a readable image .*{why}"):
        load_image(tmp_path / name)
    with pytest.raises(DatasetError, match=f"{name}: not a readable image"):  # the datasets' reader too
        read_image(tmp_path / name)
    with pytest.raises(DatasetError, match="missing.jpg: image not found"):
        read_image(tmp_path / "missing.jpg")
