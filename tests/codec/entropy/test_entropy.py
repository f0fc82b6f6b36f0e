"""Entropy coders: lossless for every int32 symbol, on the same CDF tables, same size."""

import numpy as np
import pytest
import torch
from compressai.entropy_models import GaussianConditional

from codec.entropy import CdfTable, decode_substreams, encode_substreams, get_coder, split_channels
from codec.models.hyperprior import get_scale_table


@pytest.fixture(scope="module")
def table():
    gc = GaussianConditional(get_scale_table())
    gc.update()
    return CdfTable.from_entropy_model(gc), gc


def _data(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    indexes = rng.integers(0, 64, n).astype(np.int32)
    scales = np.asarray(get_scale_table())[indexes]
    symbols = np.round(rng.normal(0, scales)).astype(np.int32)
    return symbols, indexes


@pytest.mark.parametrize("coder", ["constriction", "compressai"])
def test_roundtrip_with_escapes(table, coder):
    t, _ = table
    symbols, indexes = _data()
    symbols[:6] = [10**6, -(10**6), 5000, -5000, 2**26, -(2**26)]  # far outside their bins
    c = get_coder(coder)
    assert np.array_equal(c.decode(c.encode(symbols, indexes, t), indexes, t), symbols)


def test_constriction_codes_int32_extremes(table):
    t, _ = table
    symbols = np.array([2**31 - 1, -(2**31), 0, 7], np.int32)
    indexes = np.zeros(4, np.int32)
    c = get_coder("constriction")
    assert np.array_equal(c.decode(c.encode(symbols, indexes, t), indexes, t), symbols)


def test_compressai_refuses_symbols_its_bypass_cannot_code(table):
    t, _ = table
    with pytest.raises(ValueError, match="2\\*\\*27"):
        get_coder("compressai").encode(np.array([2**28], np.int32), np.zeros(1, np.int32), t)


def test_both_coders_match_gaussian_conditional_size(table):
    t, gc = table
    symbols, indexes = _data(50000)
    reference = gc.compress(torch.from_numpy(symbols).float()[None], torch.from_numpy(indexes)[None])[0]
    for coder in ("constriction", "compressai"):
        size = len(get_coder(coder).encode(symbols, indexes, t))
        assert size <= len(reference) * 1.001 + 8, (coder, size, len(reference))


def test_empty_input(table):
    t, _ = table
    empty = np.zeros(0, np.int32)
    for coder in ("constriction", "compressai"):
        c = get_coder(coder)
        assert c.decode(c.encode(empty, empty, t), empty, t).size == 0


def test_substreams_decode_with_any_thread_count(table):
    t, _ = table
    symbols, indexes = _data(24 * 100)
    symbols, indexes = symbols.reshape(24, 10, 10), indexes.reshape(24, 10, 10)
    groups = split_channels(24, 5)
    strings = encode_substreams(get_coder("constriction"), symbols, indexes, t, groups, threads=3)
    for threads in (None, 1, 2, 8):
        decoded = decode_substreams(get_coder("constriction"), strings, indexes, t, groups, threads=threads)
        assert np.array_equal(decoded, symbols)


def test_indexes_outside_table_rejected(table):
    t, _ = table
    with pytest.raises(ValueError, match="outside"):
        get_coder("constriction").encode(np.zeros(2, np.int32), np.array([0, 64], np.int32), t)


@pytest.mark.parametrize("coder", ["constriction", "compressai"])
def test_actual_bits_within_one_percent_of_model_estimate(table, coder):
    """Rate accounting: symbols drawn from the model cost what the model says (+ < 1 %)."""
    t, gc = table
    rng = np.random.default_rng(1)
    scales = torch.from_numpy(np.exp(rng.uniform(np.log(0.5), np.log(20.0), 100000))).float()
    indexes = gc.build_indexes(scales)
    table_scales = gc.scale_table[indexes.long()]
    symbols = torch.round(torch.randn(100000, generator=torch.Generator().manual_seed(0)) * table_scales)
    estimate = float(-torch.log2(gc.likelihood_lower_bound(gc._likelihood(symbols, table_scales))).sum())
    size = len(get_coder(coder).encode(symbols.int().numpy(), indexes.int().numpy(), t))
    assert abs(8 * size - estimate) / (8 * size) < 0.01, (8 * size, estimate)


def test_table_cache_follows_the_entropy_model():
    """CdfTable.from_entropy_model is cached per model, and rebuilt when update() replaces the buffers or an
    in-place edit changes them: a stale table would code with the wrong probabilities."""
    gc = GaussianConditional(get_scale_table())
    gc.update()
    first = CdfTable.from_entropy_model(gc)
    assert CdfTable.from_entropy_model(gc) is first
    assert not first.cdf.flags.writeable  # shared by every caller
    gc.update_scale_table(torch.tensor(get_scale_table()[::2]), force=True)  # new buffers, another table
    second = CdfTable.from_entropy_model(gc)
    assert second is not first and second.size == 32
    gc._offset.add_(1)  # in place: same tensor, new version
    third = CdfTable.from_entropy_model(gc)
    assert third is not second
    np.testing.assert_array_equal(third.offset, second.offset + 1)
