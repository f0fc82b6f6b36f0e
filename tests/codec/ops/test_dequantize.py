"""featcodec::dequantize equals CompressAI's GaussianConditional.dequantize."""

import pytest
import torch
from compressai.entropy_models import GaussianConditional

import codec.ops as ops
from codec.ops import reference

from .conftest import DTYPES


@pytest.mark.parametrize("dtype", DTYPES)
def test_dequantize_with_means_matches_compressai(device, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    # up to 2^25: beyond fp16/bf16/fp32 integer precision, so the int -> float rounding is exercised
    symbols = torch.randint(-(2**25), 2**25, (3, 7, 11), generator=g, dtype=torch.int32).to(device)
    symbols[0] = torch.randint(-300, 300, (7, 11), generator=g, dtype=torch.int32).to(device)
    means = (torch.randn(3, 7, 11, generator=g) * 5).to(device, dtype)
    out = ops.dequantize(symbols, means)
    assert out.dtype == dtype and out.device == symbols.device
    assert torch.equal(out, GaussianConditional.dequantize(symbols, means))
    assert torch.equal(out.cpu(), reference.dequantize(symbols.cpu(), means.cpu()))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dequantize_without_means_casts_to_dtype(device, dtype):
    symbols = torch.tensor(
        [-(2**31) + 1, -70000, -1, 0, 1, 2049, 65519, 2**24 + 1, 2**31 - 1], dtype=torch.int32
    )
    out = ops.dequantize(symbols.to(device), dtype=dtype)
    assert torch.equal(out.cpu(), GaussianConditional.dequantize(symbols, dtype=dtype))


def test_dequantize_broadcasts_means_and_casts_the_result(device):
    symbols = torch.randint(-50, 50, (2, 4, 5, 6), dtype=torch.int32, device=device)
    means = torch.randn(1, 4, 1, 1, device=device)
    out = ops.dequantize(symbols, means, dtype=torch.float16)
    assert out.dtype == torch.float16
    assert torch.equal(out, (symbols.float() + means).half())


def test_dequantize_accepts_int64_and_non_contiguous_symbols(device):
    symbols = torch.randint(-50, 50, (6, 8), device=device)
    means = torch.randn(8, 6, device=device).t()
    assert torch.equal(ops.dequantize(symbols, means), symbols.float() + means)
    assert torch.equal(ops.dequantize(symbols.int().t(), means.t()), symbols.int().t().float() + means.t())


def test_dequantize_rejects_float_symbols_and_bad_means(device):
    with pytest.raises(TypeError, match="integer"):
        ops.dequantize(torch.zeros(3, device=device))
    with pytest.raises(ValueError, match="does not broadcast"):
        ops.dequantize(torch.zeros(3, dtype=torch.int32, device=device), torch.zeros(4, device=device))


def test_quantize_then_dequantize_round_trips_within_half_a_step(device, scale_table, seed):
    g = torch.Generator().manual_seed(seed)
    y = (torch.randn(4, 8, 8, generator=g) * 10).to(device)
    means = torch.randn(4, 8, 8, generator=g).to(device)
    symbols, _ = ops.quantize_index(y, means, torch.ones_like(y), scale_table)
    assert (ops.dequantize(symbols, means) - y).abs().max() <= 0.5 + 1e-5
