"""Issue 22: every stream decodes exactly or is refused with a BitstreamError naming the problem."""

import numpy as np
import pytest
import torch

from codec.bitstream import BitstreamError, pack, unpack
from codec.entropy import CdfTable, get_coder, legacy_group_bounds, split_channels
from codec.entropy.coders import _fits_rans64_buffer, rans64_decode
from codec.pipeline import decode_stream, encode_features

from . import fuzz


@pytest.fixture(scope="module")
def codecs(tmp_path_factory):
    return fuzz.make_codecs(tmp_path_factory.mktemp("hardening"))


@pytest.fixture(scope="module")
def table(codecs):
    return CdfTable.from_entropy_model(codecs["hyperprior"].model.gaussian_conditional)


def _repack(data: bytes, **changes) -> bytes:
    c = unpack(data)
    header = {k: v for k, v in c.header.items() if k != "substreams"}
    subs = changes.pop("substreams", c.substreams)
    return pack({**header, **changes}, subs)


@pytest.mark.parametrize("symbols", [[0], [40000, -40000], [1 << 20] * 3, list(range(-50, 50, 7))])
def test_compressai_encoder_codes_tiny_and_escape_heavy_substreams(table, symbols):
    from compressai import ans

    coder = get_coder("compressai")
    s = np.asarray(symbols, np.int32)
    idx = np.zeros(s.size, np.int32)  # row 0: the narrowest Gaussian, so large values are rare-bin escapes
    data = coder.encode(s, idx, table)
    assert np.array_equal(coder.decode(data, idx, table), s)
    big = np.tile(s, 200)
    if _fits_rans64_buffer(
        big, np.zeros(big.size, np.int32), table
    ):  # the library where it is safe: same bytes
        assert coder.encode(
            big, np.zeros(big.size, np.int32), table
        ) == ans.RansEncoder().encode_with_indexes(big.tolist(), [0] * big.size, *coder._lists(table))


def test_compressai_decoder_is_bounded_and_exact(table):
    coder = get_coder("compressai")
    idx = np.full(5000, 3, np.int32)
    data = coder.encode(np.zeros(5000, np.int32) + 1, idx, table)
    for bad in (bytes(8), data[:-4], data + bytes(4), data[:-1], b"\xff" * 12):
        with pytest.raises(BitstreamError, match="compressai rANS"):
            coder.decode(bad, idx, table)
    lists = coder._lists(table)
    with pytest.raises(BitstreamError, match="truncated"):  # the case that crashed compressai's own reader
        rans64_decode(bytes(8), [0] * 10**5, *lists)


def test_group_bounds_are_the_integer_formula_and_minor_0_keeps_the_old_ones():
    for m in range(1, 65):
        for g in range(1, m + 1):
            bounds = [a for a, _ in split_channels(m, g)] + [m]
            assert bounds == [(2 * i * m + g) // (2 * g) for i in range(g + 1)]
    assert split_channels(25, 2) == [(0, 13), (13, 25)]
    with legacy_group_bounds():
        assert split_channels(25, 2) == [(0, 12), (12, 25)]  # np.linspace(0, 25, 3).round(): half to even


def _as_minor_0(data: bytes) -> bytes:
    body = bytearray(data)
    body[5] = 0
    return bytes(fuzz._fix_crcs(body))


@pytest.mark.parametrize("compact", [True, False])
def test_version_x0_streams_decode_with_their_own_group_bounds(codecs, compact):
    codec, x = codecs["factorized"], fuzz.features((2, 2))
    (new,) = encode_features(codec, x, groups=2, compact=compact)  # M = 25: the bounds differ (12 vs 13)
    with legacy_group_bounds():
        (old,) = encode_features(codec, x, groups=2, compact=compact)
    old = _as_minor_0(old)
    assert unpack(old).version[1] == 0 and unpack(new).version[1] == 1
    a, b = decode_stream(codec, new).features, decode_stream(codec, old).features
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(BitstreamError):  # a new stream read with the old bounds fails loudly, never silently
        decode_stream(codec, _as_minor_0(new))


def test_unknown_minor_version_is_refused(codecs):
    (data,) = encode_features(codecs["factorized"], fuzz.features((2, 2)))
    body = bytearray(data)
    body[5] = 2
    with pytest.raises(BitstreamError, match="unsupported stream version 2.2"):
        unpack(bytes(fuzz._fix_crcs(body)))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("codec", {"kind": "factorized"}, "codec mismatch"),
        ("encoder", {"name": "other", "weights_id": "random-init"}, "stream's encoder"),
        ("resolution", 128, "stream's resolution"),
        ("checksums", {}, "'checksums' has"),
        ("checksums", {"symbols": 0, "probability_model": 0}, "'checksums' has"),
        ("extra", 1, "unknown header field"),
    ],
)
def test_identity_and_checksums_are_checked_against_the_codec(codecs, field, value, message):
    codec = codecs["hyperprior"]
    (data,) = encode_features(codec, fuzz.features((2, 2)), compact=False)
    if field == "codec":
        value = {**unpack(data).header["codec"], **value}
    with pytest.raises(BitstreamError, match=message):
        decode_stream(codec, _repack(data, **{field: value}))


def test_unused_unknown_and_trailing_data_are_refused(codecs):
    (data,) = encode_features(codecs["factorized"], fuzz.features((2, 2)), compact=False)
    subs = unpack(data).substreams
    for extra in ({"z": b""}, {"w": b"1"}, {"y.5": b""}):
        with pytest.raises(BitstreamError, match="not the factorized codec's"):
            decode_stream(codecs["factorized"], _repack(data, substreams={**subs, **extra}))
    (uniform,) = encode_features(codecs["uniform"], fuzz.features((2, 2)))
    subs = unpack(uniform).substreams
    name = next(iter(subs))
    for tail in (b"\x00", bytes(subs[name][1:])):  # a stray byte, or a whole second frame
        with pytest.raises(BitstreamError, match="after the zstd frame"):
            decode_stream(codecs["uniform"], _repack(uniform, substreams={**subs, name: subs[name] + tail}))


@pytest.mark.parametrize("grid", [(1, 1), (3, 5), (2, 3)])
def test_grids_a_level_does_not_fit_are_refused_before_decoding(codecs, grid):
    for kind in ("factorized", "hyperprior"):
        data = fuzz.craft_stream(codecs[kind], "native", grid, 1)
        with pytest.raises(BitstreamError, match="does not fit level 'coarse'"):
            decode_stream(codecs[kind], data)
    assert decode_stream(codecs["factorized"], fuzz.craft_stream(codecs["factorized"], "native", (2, 6), 1))


def test_packed_anchor_streams_are_checked_as_strictly(tmp_path):
    from codec.codec_dir import save_codec
    from codec.models import create_codec

    model = create_codec("hevc", fuzz.LEVELS, resolution=64, qp=30)
    codec = save_codec(model, tmp_path / "hevc", encoder="fuzz-levels", weights_id="random-init", lmbda=None)
    (data,) = encode_features(codec, fuzz.features((2, 2)))
    assert decode_stream(codec, data).features["coarse"].shape == (8, 1, 1)
    subs = unpack(data).substreams
    for changes, message in (
        ({"checksums": {"symbols": 0}}, "'checksums' has"),
        ({"substreams": {**subs, "y.0": b""}}, "not the hevc codec's"),
        ({"packing": None}, "packing"),
        ({"extra": 1}, "unknown header field"),
    ):
        with pytest.raises(BitstreamError, match=message):
            decode_stream(codec, _repack(data, **changes))
