"""The native interleaved rANS coder: lossless, near the model's entropy, thread-independent, and
safe on malformed input (BitstreamError only)."""

import random

import numpy as np
import pytest
import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec.bitstream import BitstreamError
from codec.entropy import (
    CODERS,
    CdfTable,
    decode_substreams,
    encode_substreams,
    get_coder,
    native,
    split_channels,
)
from codec.models.hyperprior import get_scale_table

pytestmark = pytest.mark.skipif(not native.native_available(), reason="codec._C not built")

ALL_CODERS = ["native", "constriction", "compressai"]


@pytest.fixture(scope="module")
def gc_table():
    gc = GaussianConditional(get_scale_table())
    gc.update()
    return CdfTable.from_entropy_model(gc)


@pytest.fixture(scope="module")
def eb_table():
    """Many rows (one per channel), as for the hyper-latent z."""
    torch.manual_seed(0)
    eb = EntropyBottleneck(96)
    eb.update(force=True)
    return CdfTable.from_entropy_model(eb)


def _gaussian(n, seed=0, rows=64):
    rng = np.random.default_rng(seed)
    indexes = rng.integers(0, rows, n).astype(np.int32)
    symbols = np.round(rng.normal(0, np.asarray(get_scale_table())[indexes])).astype(np.int32)
    return symbols, indexes


def _ideal_bits(symbols, indexes, table):
    """-sum log2 p under the quantised table, escapes as the coder codes them (escape bin + 4-bit
    count + 4-bit chunks of the CompressAI raw value)."""
    return table.ideal_bits(symbols, indexes)


@pytest.mark.parametrize("coder", ALL_CODERS)
def test_every_coder_decodes_its_own_streams(gc_table, eb_table, coder):
    c = get_coder(coder)
    symbols, indexes = _gaussian(30000, seed=1)
    symbols[:6] = [10**6, -(10**6), 5000, -5000, 2**26, -(2**26)]  # escapes, in CompressAI's range too
    cases = [
        (symbols, indexes, gc_table),
        (np.zeros(0, np.int32), np.zeros(0, np.int32), gc_table),
        (np.array([3], np.int32), np.array([7], np.int32), gc_table),
    ]
    rng = np.random.default_rng(2)
    z_idx = np.repeat(np.arange(96, dtype=np.int32), 37)  # many rows, channel-major like z
    cases.append((rng.integers(-40, 40, z_idx.size).astype(np.int32), z_idx, eb_table))
    for n in range(1, 20):  # every tail length around the 8-way interleave
        cases.append((symbols[:n].copy(), indexes[:n].copy(), gc_table))
    for sym, idx, table in cases:
        assert np.array_equal(c.decode(c.encode(sym, idx, table), idx, table), sym), (coder, sym.size)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(st.tuples(st.integers(-(2**31), 2**31 - 1), st.integers(0, 63)), max_size=300),
    st.integers(-50, 50),
)
def test_native_lossless_for_any_int32(gc_table, pairs, bias):
    symbols = np.array(
        [min(max(s // (1 + abs(s) % 7) + bias, -(2**31)), 2**31 - 1) for s, _ in pairs] or [], np.int32
    )
    indexes = np.array([k for _, k in pairs], np.int32)
    c = get_coder("native")
    data = c.encode(symbols, indexes, gc_table)
    assert np.array_equal(c.decode(data, indexes, gc_table), symbols)
    assert len(data) == 0 if symbols.size == 0 else len(data) >= 4 * min(symbols.size, native.STATES)


def test_int32_extremes_and_empty(gc_table):
    c = get_coder("native")
    symbols = np.array([2**31 - 1, -(2**31), 0, 7, -(2**31) + 1, 2**31 - 2], np.int32)
    indexes = np.array([0, 63, 5, 0, 1, 62], np.int32)
    assert np.array_equal(c.decode(c.encode(symbols, indexes, gc_table), indexes, gc_table), symbols)
    empty = np.zeros(0, np.int32)
    assert c.encode(empty, empty, gc_table) == b""
    with pytest.raises(BitstreamError, match="empty"):
        c.decode(b"\0", empty, gc_table)


def test_length_within_a_tenth_of_a_percent_of_the_model(gc_table, eb_table):
    """8·bytes ≤ 1.001·(−Σ log2 p) + 32 bits per state; and ≥ −Σ log2 p − 32 bits per state."""
    c = get_coder("native")
    symbols, indexes = _gaussian(200_000, seed=3)
    symbols[::5000] += 3000  # a few escapes
    rng = np.random.default_rng(4)
    z_idx = np.repeat(np.arange(96, dtype=np.int32), 1100)
    z_sym = np.round(rng.laplace(0, 3, z_idx.size)).astype(np.int32)
    for sym, idx, table in [(symbols, indexes, gc_table), (z_sym, z_idx, eb_table)]:
        ideal = _ideal_bits(sym, idx, table)
        bits = 8 * len(c.encode(sym, idx, table))
        constant = 32 * native.STATES
        assert ideal - constant <= bits <= 1.001 * ideal + constant, (bits, ideal, bits / ideal - 1)


def test_threads_do_not_change_the_bytes(gc_table):
    c = get_coder("native")
    symbols, indexes = _gaussian(24 * 500, seed=5)
    symbols, indexes = symbols.reshape(24, 500), indexes.reshape(24, 500)
    groups = split_channels(24, 7)
    one = encode_substreams(c, symbols, indexes, gc_table, groups, threads=1)
    assert one == [c.encode(symbols[a:b].ravel(), indexes[a:b].ravel(), gc_table) for a, b in groups]
    for threads in (2, 3, 8, None):
        assert encode_substreams(c, symbols, indexes, gc_table, groups, threads=threads) == one
        assert np.array_equal(decode_substreams(c, one, indexes, gc_table, groups, threads=threads), symbols)


def test_every_truncation_and_extension_raises(gc_table):
    c = get_coder("native")
    symbols, indexes = _gaussian(400, seed=6)
    symbols[10] = 10**7
    data = c.encode(symbols, indexes, gc_table)
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            c.decode(data[:n], indexes, gc_table)
    with pytest.raises(BitstreamError, match="left over"):
        c.decode(data + b"\0", indexes, gc_table)
    with pytest.raises(BitstreamError):  # the decoder is told fewer symbols than were coded
        c.decode(data, indexes[:-1], gc_table)


def test_bit_flips_are_detected(gc_table):
    """Flipped bits: BitstreamError, never a crash. Without escapes the final-state check catches every
    flip here (each decoding step is a bijection of the state); bits of an escape's bypass chunks
    are raw, so flips there change the value only, as in CompressAI (the
    container's symbol CRC catches those)."""
    c = get_coder("native")
    symbols, indexes = _gaussian(3000, seed=7)
    escaped = symbols.copy()
    escaped[::700] = -(10**6)
    rng = random.Random(0)
    for sym, must_detect in [(symbols, True), (escaped, False)]:
        data = c.encode(sym, indexes, gc_table)
        undetected = 0
        for _ in range(800):
            buf = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
            try:
                decoded = c.decode(bytes(buf), indexes, gc_table)
            except BitstreamError:
                continue
            undetected += 1
            assert decoded.shape == sym.shape
        assert undetected == 0 or not must_detect, undetected


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.binary(max_size=300), st.integers(0, 200))
def test_random_bytes_never_crash(gc_table, data, n):
    indexes = (np.arange(n, dtype=np.int32) * 7) % 64
    try:
        out = get_coder("native").decode(data, indexes, gc_table)
    except BitstreamError:
        return
    assert out.shape == (n,)


def test_bad_inputs_are_usage_errors(gc_table):
    c = get_coder("native")
    with pytest.raises(ValueError, match="outside the CDF table"):
        c.encode(np.zeros(3, np.int32), np.array([0, 64, 1], np.int32), gc_table)
    with pytest.raises(ValueError, match="outside the CDF table"):
        c.decode(
            c.encode(np.zeros(3, np.int32), np.zeros(3, np.int32), gc_table),
            np.array([0, -1, 0], np.int32),
            gc_table,
        )
    bad = CdfTable(
        cdf=gc_table.cdf[:2].copy(), cdf_length=gc_table.cdf_length[:2], offset=gc_table.offset[:2]
    )
    bad.cdf[0, 2] = bad.cdf[0, 1]  # an empty bin: the table is refused, not coded with
    with pytest.raises(ValueError, match="empty or negative bin"):
        c.encode(np.zeros(1, np.int32), np.zeros(1, np.int32), bad)


def test_missing_extension_is_a_clear_error_and_constriction_the_default(monkeypatch):
    monkeypatch.setattr(native, "_C", None)
    monkeypatch.setattr(native, "_LOAD_ERROR", "codec._C could not be imported (test)")
    with pytest.raises(RuntimeError, match="native entropy coder is unavailable.*constriction"):
        native.NativeCoder()
    assert native.default_coder() == "constriction"
    assert "native" in CODERS  # streams that name it are still recognised


def test_native_is_the_default_when_built():
    from codec import entropy

    # native2: substream format 2 (lanes sized to the substream); "native" streams still decode
    assert entropy.DEFAULT_CODER == native.default_coder() == "native2"


def test_thread_count_from_environment(monkeypatch):
    monkeypatch.setenv(native.THREADS_ENV, "3")
    assert native.default_threads() == 3
    monkeypatch.setenv(native.THREADS_ENV, "x")
    with pytest.raises(ValueError, match=native.THREADS_ENV):
        native.default_threads()
