"""Entropy coding of a 1×256×64×64 latent (SAM2's stride-16 grid at 1024²):
featcodec vs CompressAI vs constriction.

featcodec encode = codec.ops.quantize_index (symbols + scale indexes) + coder; decode = index rebuild +
coder + dequantize. Baselines: CompressAI's GaussianConditional.compress / decompress (build_indexes
included), and constriction used directly with per-element QuantizedGaussian parameters.
Latents are drawn from the model they are coded with (log-uniform scales, Gaussian means), so the
streams measure the coders and not a model mismatch.

    .venv/bin/python -m pytest bench/test_bench_entropy.py --benchmark-only --benchmark-columns=median,iqr
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from compressai.entropy_models import GaussianConditional

from codec import ops
from codec.entropy import CdfTable, decode_substreams, encode_substreams, get_coder, split_channels
from codec.models.hyperprior import get_scale_table

SHAPE = (1, 256, 64, 64)
SIZES: dict[str, int] = {}


@pytest.fixture(scope="module")
def latent():
    g = torch.Generator().manual_seed(0)
    scales = torch.exp(torch.empty(SHAPE).uniform_(np.log(0.2), np.log(16.0), generator=g))
    means = torch.randn(SHAPE, generator=g) * 2
    y = means + scales * torch.randn(SHAPE, generator=g)
    gc = GaussianConditional(get_scale_table())
    gc.update()
    return y, scales, means, gc, CdfTable.from_entropy_model(gc)


def _featcodec_encode(y, scales, means, gc, table, coder, groups=1, threads=None):
    symbols, indexes = ops.quantize_index(y, means, scales, gc.scale_table)
    return encode_substreams(
        get_coder(coder),
        symbols[0].numpy(),
        indexes[0].numpy(),
        table,
        split_channels(SHAPE[1], groups),
        threads,
    )


def _featcodec_decode(strings, scales, means, gc, table, coder, groups=1, threads=None):
    _, indexes = ops.quantize_index(means, means, scales, gc.scale_table)
    symbols = decode_substreams(
        get_coder(coder), strings, indexes[0].numpy(), table, split_channels(SHAPE[1], groups), threads
    )
    return ops.dequantize(torch.from_numpy(symbols)[None], means)


# (coder, channel groups, threads) of the encode and decode benchmarks, side by side
CODER_CASES = [
    ("native", 1, 1),
    ("native", 4, 2),
    ("constriction", 1, None),
    ("constriction", 4, 2),
    ("compressai", 1, None),
]


@pytest.mark.parametrize("coder,groups,threads", CODER_CASES)
def test_featcodec_encode(benchmark, latent, coder, groups, threads):
    strings = benchmark.pedantic(
        _featcodec_encode, args=(*latent, coder, groups, threads), rounds=9, warmup_rounds=1
    )
    SIZES[f"featcodec-{coder}-{groups}"] = sum(map(len, strings))
    benchmark.extra_info["bytes"] = SIZES[f"featcodec-{coder}-{groups}"]


@pytest.mark.parametrize("coder,groups,threads", CODER_CASES)
def test_featcodec_decode(benchmark, latent, coder, groups, threads):
    y, scales, means, gc, table = latent
    strings = _featcodec_encode(*latent, coder, groups)
    y_hat = benchmark.pedantic(
        _featcodec_decode,
        args=(strings, scales, means, gc, table, coder, groups, threads),
        rounds=9,
        warmup_rounds=1,
    )
    assert torch.equal(y_hat, gc.quantize(y, "dequantize", means))


def test_compressai_gaussian_conditional_compress(benchmark, latent):
    y, scales, means, gc, _ = latent
    strings = benchmark.pedantic(
        lambda: gc.compress(y, gc.build_indexes(scales), means), rounds=5, warmup_rounds=1
    )
    SIZES["compressai-gc"] = len(strings[0])
    benchmark.extra_info["bytes"] = len(strings[0])
    ours = sum(map(len, _featcodec_encode(*latent, "constriction")))
    assert ours <= len(strings[0]), (ours, len(strings[0]))  # the stream is no larger


def test_compressai_gaussian_conditional_decompress(benchmark, latent):
    y, scales, means, gc, _ = latent
    indexes = gc.build_indexes(scales)
    strings = gc.compress(y, indexes, means)
    benchmark.pedantic(
        lambda: gc.decompress(strings, gc.build_indexes(scales), means=means), rounds=5, warmup_rounds=1
    )


def _constriction_direct_encode(y, scales, means):
    import constriction

    model = constriction.stream.model.QuantizedGaussian(-2048, 2048)
    symbols = torch.round(y - means).clamp(-2048, 2048).int().numpy().ravel()
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(
        symbols, model, np.zeros(symbols.size), scales.clamp_min(0.11).double().numpy().ravel()
    )
    return coder.get_compressed()


def test_constriction_direct_encode(benchmark, latent):
    y, scales, means, _, _ = latent
    words = benchmark.pedantic(
        _constriction_direct_encode, args=(y, scales, means), rounds=5, warmup_rounds=1
    )
    benchmark.extra_info["bytes"] = int(words.nbytes)


def test_constriction_direct_decode(benchmark, latent):
    import constriction

    y, scales, means, _, _ = latent
    words = _constriction_direct_encode(y, scales, means)
    stds = scales.clamp_min(0.11).double().numpy().ravel()

    def decode():
        coder = constriction.stream.stack.AnsCoder(words)
        model = constriction.stream.model.QuantizedGaussian(-2048, 2048)
        return coder.decode(model, np.zeros(stds.size), stds)

    benchmark.pedantic(decode, rounds=5, warmup_rounds=1)
