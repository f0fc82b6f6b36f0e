"""Container version 2 (compact binary header): ≤ 64 bytes, same decode as version 1, strict parsing."""

import random
import struct
import time
import zlib

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec.bitstream import MAGIC, BitstreamError, stream_info, unpack
from codec.bitstream.compact import pack_compact
from codec.pipeline import decode_stream, encode_features
from tests.codec.conftest import fpn_features


def _fixed(**fields):
    """The 46 fixed bytes of a version-2 header (defaults: a 4×4 hyperprior stream, native coder)."""
    f = {
        "flags": 0,
        "kind": 1,
        "coder": 1,
        "count": 2,
        "gh": 4,
        "gw": 4,
        "checks": (1, 2, 3),
        "bits": 10.0,
        **fields,
    }
    return struct.pack(
        "<4sBBBBBB8s8sHHIIIf",
        MAGIC,
        2,
        0,
        f["flags"],
        f["kind"],
        f["coder"],
        f["count"],
        bytes(8),
        bytes(8),
        f["gh"],
        f["gw"],
        *f["checks"],
        f["bits"],
    )


def _frame(head: bytes, payload: bytes) -> bytes:
    """Valid CRCs around arbitrary header bytes, to reach the checks behind them."""
    return head + struct.pack("<I", zlib.crc32(head)) + payload + struct.pack("<I", zlib.crc32(payload))


def test_default_streams_are_compact_and_decode_like_version_1(fpn_codec):
    x = fpn_features(batch=1)
    for groups in (1, 2, 3):
        (compact,) = encode_features(fpn_codec, x, groups=groups)
        (json_v1,) = encode_features(fpn_codec, x, groups=groups, compact=False)
        info = stream_info(compact)
        assert info["container_version"] == [2, 1] and stream_info(json_v1)["container_version"] == [1, 1]
        assert info["header_bytes"] <= 64, info["header_bytes"]
        assert info["header_bytes"] < stream_info(json_v1)["header_bytes"] - 300
        assert compact[-info["payload_bytes"] - 4 :] == json_v1[-info["payload_bytes"] - 4 :]  # same payload
        a, b = decode_stream(fpn_codec, compact), decode_stream(fpn_codec, json_v1)  # version 1 still read
        assert torch.equal(a.y_hat, b.y_hat)
        assert all(torch.equal(a.features[k], b.features[k]) for k in x)
        assert a.header["levels"] == b.header["levels"]  # filled in from the codec


def test_info_describes_compact_streams_with_the_codec(fpn_codec):
    x = fpn_features(batch=1)
    (compact,) = encode_features(fpn_codec, x, sources=[{"name": "a.png", "width": 640, "height": 480}])
    (json_v1,) = encode_features(fpn_codec, x, compact=False)
    bare, full, reference = stream_info(compact), stream_info(compact, fpn_codec), stream_info(json_v1)
    assert bare["levels"] is None and bare["bits_per_element"] is None
    assert bare["source"] == {"name": "a.png", "width": 640, "height": 480} and bare["bpp_source"] > 0
    for key in ("codec", "encoder", "resolution", "levels", "latents", "coder", "elements", "substreams"):
        assert full[key] == reference[key], key
    assert full["estimated_bits"] == pytest.approx(reference["estimated_bits"], rel=1e-6)  # float32 in v2


def test_every_truncation_and_extension_raises(fpn_codec):
    (data,) = encode_features(
        fpn_codec, fpn_features(batch=1), sources=[{"name": "s", "width": 1, "height": 1}]
    )
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            unpack(data[:n])
    with pytest.raises(BitstreamError, match="oversized"):
        unpack(data + b"\0")


@pytest.mark.parametrize(
    "head, message",
    [
        (_fixed(flags=2) + b"\x01\x01", "reserved flag"),
        (_fixed(kind=3) + b"\x01\x01", "kind"),
        (_fixed(coder=9) + b"\x01\x01", "coder"),
        (_fixed(count=0), "no substreams"),
        (_fixed(gh=0) + b"\x01\x01", "grid"),
        (_fixed(gw=1025) + b"\x01\x01", "grid"),
        (_fixed() + b"\x81\x00\x01", "non-minimal"),
        (_fixed() + b"\xff\xff\xff\xff\x7f\x01", "oversized length"),
        (_fixed() + b"\x80\x80\x80\x80\x80\x01\x01", "longer than 5"),
        (_fixed(kind=2, checks=(1, 2, 0)) + b"\x01\x01", "factorized"),
        (_fixed(flags=1) + b"\x01\x01" + struct.pack("<H", 9) + b'{"grid":1', "extension"),
        (_fixed(flags=1) + b"\x01\x01" + struct.pack("<H", 4) + b"[1,]", "extension"),
        (_fixed(flags=1) + b"\x01\x01" + struct.pack("<H", 60000) + b"{}", "extension length"),
    ],
)
def test_malformed_fields_behind_a_valid_crc(head, message):
    with pytest.raises(BitstreamError, match=message):
        unpack(_frame(head, b"ab"))


def test_payload_lengths_must_match(fpn_codec):
    assert unpack(_frame(_fixed() + b"\x01\x01", b"ab")).substreams == {"z": b"a", "y.0": b"b"}
    with pytest.raises(BitstreamError, match="truncated"):
        unpack(_frame(_fixed() + b"\x01\x02", b"ab"))
    with pytest.raises(BitstreamError, match="oversized"):
        unpack(_frame(_fixed() + b"\x01\x00", b"ab"))


@settings(max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes_after_the_version_raise(tail):
    with pytest.raises(BitstreamError):
        unpack(MAGIC + b"\x02\x00" + tail)


def test_fuzzed_compact_streams_raise(fpn_codec):
    (data,) = encode_features(fpn_codec, fpn_features(batch=1))
    assert data[4] == 2
    rng = random.Random(1)
    cases = []
    for i in range(60):
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        cases.append((f"mutation {i}", bytes(buf)))
    for i in range(20):
        cases.append((f"random tail {i}", data[:6] + rng.randbytes(len(data) - 6)))
    for name, stream in cases:
        start = time.perf_counter()
        with pytest.raises(BitstreamError):
            decode_stream(fpn_codec, stream)
        assert time.perf_counter() - start < 1.0, name


def test_compact_huge_grid_rejected_by_the_pixel_limit(fpn_codec):
    (data,) = encode_features(fpn_codec, fpn_features(batch=1))
    container = unpack(data)
    header = {k: v for k, v in container.header.items() if k != "substreams"}
    huge = pack_compact({**header, "grid": [1024, 1024]}, container.substreams)
    start = time.perf_counter()
    with pytest.raises(BitstreamError, match="16384×16384 px grid"):
        decode_stream(fpn_codec, huge)
    assert time.perf_counter() - start < 3.0


def test_uniform_baseline_keeps_version_1(trained_codecs, feature_cache):
    from tests.codec.conftest import cache_batch

    (data, _) = encode_features(trained_codecs[("uniform", 10.0)], cache_batch(feature_cache, (0, 1)))
    assert stream_info(data)["container_version"] == [1, 1]
