"""The .fcb container: strict parsing, one BitstreamError for every malformed stream."""

import json
import random
import struct
import time
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec.bitstream import MAGIC, BitstreamError, byte_split, pack, unpack
from codec.pipeline import decode_stream, encode_features
from tests.codec.conftest import fpn_features


def _stream():
    return pack({"format": "x", "n": 1}, {"a": b"hello", "b": b"", "c": bytes(range(256))})


def _reframe(header_bytes: bytes, payload: bytes) -> bytes:
    """A stream with valid CRCs around arbitrary header bytes (to reach the checks behind the CRC)."""
    head = struct.pack("<4sBBHI", MAGIC, 1, 0, 0, len(header_bytes)) + header_bytes
    return head + struct.pack("<I", zlib.crc32(head)) + payload + struct.pack("<I", zlib.crc32(payload))


def test_pack_unpack_roundtrip():
    c = unpack(_stream())
    assert c.header["n"] == 1 and list(c.substreams) == ["a", "b", "c"]
    assert c.substreams["c"] == bytes(range(256))


def test_byte_split_names_hyper_main_and_header_bytes():
    data = pack({"format": "x"}, {"z": b"12345", "y.0": b"a" * 40, "y.1": b"b" * 7, "q": b"??"})
    split = byte_split(data)
    # z is the hyper-latent, y.* the main latent; an unknown substream counts with the header
    assert split["hyper"] == 5 and split["main"] == 47
    assert split["header"] == len(data) - 5 - 47 and sum(split.values()) == len(data)
    assert byte_split(pack({"format": "x"}, {"x.stage3": b"c" * 9}))["main"] == 9  # uniform codec payload


def test_every_truncation_raises():
    data = _stream()
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            unpack(data[:n])


def test_trailing_bytes_raise_oversized():
    with pytest.raises(BitstreamError, match="oversized"):
        unpack(_stream() + b"\0")


def test_wrong_magic_and_version():
    data = bytearray(_stream())
    with pytest.raises(BitstreamError, match="magic"):
        unpack(b"PK\x03\x04" + bytes(data[4:]))
    data[4] = 3  # 1 is the JSON header, 2 the compact one (test_compact_header.py)
    with pytest.raises(BitstreamError, match="version 3"):
        unpack(bytes(data))


def test_header_and_payload_corruption_named():
    data = bytearray(_stream())
    data[20] ^= 0x10
    with pytest.raises(BitstreamError, match="header CRC32"):
        unpack(bytes(data))
    data = bytearray(_stream())
    data[-10] ^= 0x01
    with pytest.raises(BitstreamError, match="payload CRC32"):
        unpack(bytes(data))


@pytest.mark.parametrize(
    "substreams",
    [
        [{"name": "a", "length": 1 << 62}],
        [{"name": "a", "length": -1}],
        [{"name": "a", "length": 1.5}],
        [{"name": "a", "length": 2}, {"name": "a", "length": 0}],
        [{"name": "", "length": 2}],
        [{"name": "a"}],
        "a",
    ],
)
def test_bad_lengths_behind_valid_crc(substreams):
    header = json.dumps({"substreams": substreams}).encode()
    with pytest.raises(BitstreamError):
        unpack(_reframe(header, b"xy"))


def test_huge_header_length_is_not_trusted():
    data = struct.pack("<4sBBHI", MAGIC, 1, 0, 0, 0xFFFFFFFF) + b"\0" * 16
    with pytest.raises(BitstreamError, match="header length"):
        unpack(data)


def test_non_json_header_behind_valid_crc():
    with pytest.raises(BitstreamError, match="JSON"):
        unpack(_reframe(b"\xff\xfe not json", b""))
    with pytest.raises(BitstreamError, match="JSON"):
        unpack(_reframe(b"[" * 5000 + b"]" * 5000, b""))


@settings(max_examples=200, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_random_bytes_raise(data):
    with pytest.raises(BitstreamError):
        unpack(data)


def test_fuzzed_real_streams_always_raise(fpn_codec, tmp_path):
    """Mutations, truncations, random bytes and a swapped codec: BitstreamError, each under 1 s."""
    from codec.codec_dir import save_codec
    from codec.models import create_codec
    from tests.codec.conftest import FPN_LEVELS, TINY

    (data,) = encode_features(fpn_codec, fpn_features(batch=1))
    other = save_codec(
        create_codec("hyperprior", FPN_LEVELS, resolution=64, **TINY),
        tmp_path / "other",
        encoder="test-fpn",
        weights_id="random-init",
        lmbda=1.0,
    )
    rng = random.Random(0)
    cases = [("swapped codec", other, data)]
    for i in range(60):
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        cases.append((f"mutation {i}", fpn_codec, bytes(buf)))
    for n in sorted({rng.randrange(len(data)) for _ in range(40)}):
        cases.append((f"truncated to {n}", fpn_codec, data[:n]))
    cases.append(("extended", fpn_codec, data + b"\0\0\0\0"))
    for i in range(20):
        cases.append((f"random {i}", fpn_codec, rng.randbytes(rng.randrange(2000))))
        cases.append((f"random tail {i}", fpn_codec, data[:12] + rng.randbytes(len(data) - 12)))
    for name, codec, stream in cases:
        start = time.perf_counter()
        with pytest.raises(BitstreamError):
            decode_stream(codec, stream)
        assert time.perf_counter() - start < 1.0, name


def test_header_fields_checked_against_codec(fpn_codec):
    (data,) = encode_features(
        fpn_codec, fpn_features(batch=1), compact=False
    )  # version 1: JSON fields to edit
    container = unpack(data)
    base = {k: v for k, v in container.header.items() if k != "substreams"}
    edits = [
        ("grid", [100000, 4]),
        ("grid", [8, 8]),
        ("latents", {"y": [24, 4, 4], "z": [16, 99, 99]}),
        ("coder", "lzma"),
        ("format", "png"),
        ("checksums", {"symbols": -1}),
        ("levels", []),
    ]
    for key, value in edits:
        with pytest.raises(BitstreamError):
            decode_stream(fpn_codec, pack({**base, key: value}, container.substreams))
    with pytest.raises(BitstreamError):
        decode_stream(fpn_codec, pack(base, {**container.substreams, "evil/../x": b""}))
    missing = {k: v for k, v in container.substreams.items() if k != "y.0"}
    with pytest.raises(BitstreamError):
        decode_stream(fpn_codec, pack(base, missing))
