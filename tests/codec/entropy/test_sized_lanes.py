"""Substream format 2 (`coder = "native2"`): the lane count follows the coded size and is recorded in the
substream, so a near-empty substream costs a few bytes; format 1 (`native`) streams still decode."""

import numpy as np
import pytest
from compressai.entropy_models import GaussianConditional

from codec.bitstream import BitstreamError
from codec.entropy import CdfTable, decode_substreams, encode_substreams, get_coder, native, split_channels
from codec.models.hyperprior import get_scale_table

pytestmark = pytest.mark.skipif(not native.native_available(), reason="codec._C not built")


@pytest.fixture(scope="module")
def gc_table():
    gc = GaussianConditional(get_scale_table())
    gc.update()
    return CdfTable.from_entropy_model(gc)


def _latent(n, scale, seed=0):
    """n symbols drawn from the Gaussian of the scale-table row nearest `scale` (row 0 for scale 0)."""
    rng = np.random.default_rng(seed)
    row = int(np.searchsorted(np.asarray(get_scale_table()), scale)) if scale else 0
    symbols = np.round(rng.normal(0, scale, n)).astype(np.int32) if scale else np.zeros(n, np.int32)
    return symbols, np.full(n, row, np.int32)


def test_all_zero_y_costs_at_most_8_bytes(gc_table):
    symbols, indexes = _latent(192 * 16 * 16, 0.0)  # a 256 px SAM2 latent, every symbol 0
    data = get_coder("native2").encode(symbols, indexes, gc_table)
    assert len(data) <= 8 and data[0] == 0  # one lane: the lane byte and one state
    assert len(get_coder("native").encode(symbols, indexes, gc_table)) == 32  # format 1: 8 states


@pytest.mark.parametrize("n,scale,lanes", [(1000, 1.0, 1), (5000, 2.0, 2), (8000, 3.0, 4), (20000, 3.0, 8)])
def test_lanes_follow_the_payload_and_states_stay_within_half_a_percent(gc_table, n, scale, lanes):
    symbols, indexes = _latent(n, scale)
    c = get_coder("native2")
    data = c.encode(symbols, indexes, gc_table)
    assert data[0] == lanes.bit_length() - 1
    payload = len(data) - 1 - 4 * lanes
    assert native.BYTES_PER_LANE * lanes <= payload or lanes == 1
    assert lanes == 8 or payload < native.BYTES_PER_LANE * 2 * lanes
    ideal = gc_table.ideal_bits(symbols, indexes) / 8
    assert len(data) <= 1.005 * ideal + 5
    assert np.array_equal(c.decode(data, indexes, gc_table), symbols)


def test_every_lane_count_and_tail_decodes_with_escapes(gc_table):
    c = get_coder("native2")
    for n in [*range(1, 20), 1000, 2001, 5003]:
        for scale in (0.0, 1.0, 2.0, 3.0):
            symbols, indexes = _latent(n, scale, seed=n)
            symbols[: min(n, 3)] = [10**6, -(10**6), 2**31 - 1][: min(n, 3)]  # escapes on the first lanes
            data = c.encode(symbols, indexes, gc_table)
            assert np.array_equal(c.decode(data, indexes, gc_table), symbols), (n, scale, data[0])


def test_threads_do_not_change_format_2_bytes(gc_table):
    c = get_coder("native2")
    symbols, indexes = _latent(24 * 2000, 2.0, seed=3)
    symbols[:4000] = 0  # groups of different sizes: different lane counts in one call
    symbols, indexes = symbols.reshape(24, 2000), indexes.reshape(24, 2000)
    groups = split_channels(24, 5)
    one = encode_substreams(c, symbols, indexes, gc_table, groups, threads=1)
    assert len({s[0] for s in one}) > 1
    for threads in (2, 3, None):
        assert encode_substreams(c, symbols, indexes, gc_table, groups, threads=threads) == one
        assert np.array_equal(decode_substreams(c, one, indexes, gc_table, groups, threads=threads), symbols)


def test_malformed_lane_byte_and_truncation_are_stream_errors(gc_table):
    c = get_coder("native2")
    symbols, indexes = _latent(3000, 2.0)
    data = c.encode(symbols, indexes, gc_table)
    for bad in (bytes([4]) + data[1:], bytes([255]) + data[1:], b"", data[:-1], data + b"\0", data[:1]):
        with pytest.raises(BitstreamError):
            c.decode(bad, indexes, gc_table)
    other = bytes([(data[0] + 1) % 4]) + data[1:]  # another valid lane count: the states no longer agree
    with pytest.raises(BitstreamError):
        c.decode(other, indexes, gc_table)
