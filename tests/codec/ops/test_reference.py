"""The pure-torch reference is the specification: it must equal CompressAI's GaussianConditional."""

import pytest
import torch

from codec.ops import reference

from .conftest import DTYPES, compressai_oracle, random_latents


@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_matches_compressai_on_random_latents(dtype, scale_table, seed):
    y, means, scales = random_latents((2, 8, 9, 7), dtype, "cpu", seed)
    symbols, indexes = reference.quantize_index(y, means, scales, scale_table)
    want_symbols, want_indexes = compressai_oracle(y, means, scales, scale_table)
    assert symbols.dtype == indexes.dtype == torch.int32
    assert torch.equal(symbols, want_symbols)
    assert torch.equal(indexes, want_indexes)


def test_reference_indexes_match_compressai_on_and_around_table_entries(scale_table):
    below = torch.nextafter(scale_table, torch.zeros_like(scale_table))
    above = torch.nextafter(scale_table, torch.full_like(scale_table, 1e9))
    scales = torch.cat([scale_table, below, above, torch.tensor([0.0, -1.0, 0.11, 1e6, float("inf")])])
    y = torch.zeros_like(scales)
    _, indexes = reference.quantize_index(y, None, scales, scale_table)
    assert torch.equal(indexes, compressai_oracle(y, None, scales, scale_table)[1])


def test_reference_dequantize_matches_compressai(scale_table):
    symbols = torch.randint(-300, 300, (3, 5, 4), dtype=torch.int32)
    means = torch.randn(3, 5, 4)
    from compressai.entropy_models import GaussianConditional

    assert torch.equal(reference.dequantize(symbols, means), GaussianConditional.dequantize(symbols, means))
    assert torch.equal(reference.dequantize(symbols), GaussianConditional.dequantize(symbols))


def test_noise_quantize_stays_within_half_a_step_and_passes_gradients():
    y = torch.randn(1000, requires_grad=True)
    noisy = reference.noise_quantize(y)
    assert (noisy - y).abs().max() <= 0.5
    noisy.sum().backward()
    assert torch.equal(y.grad, torch.ones_like(y))


def test_ste_round_rounds_around_means_forward_and_is_identity_backward():
    y = torch.randn(100, requires_grad=True)
    means = torch.randn(100)
    out = reference.ste_round(y, means)
    assert torch.equal(out.detach(), torch.round(y.detach() - means) + means)
    out.sum().backward()
    assert torch.equal(y.grad, torch.ones_like(y))
