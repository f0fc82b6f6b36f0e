"""Shared fixtures for the quantisation-op tests: devices, CompressAI oracles, input builders."""

from __future__ import annotations

import os

import pytest
import torch
from compressai.entropy_models import GaussianConditional
from compressai.models.google import get_scale_table

import codec.ops as ops

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


def _cuda_param():
    return pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
        ],
    )


@pytest.fixture(params=["cpu", _cuda_param()])
def device(request):
    """Every parity test runs on the CPU kernels and, where a GPU is present, on the CUDA kernels."""
    if not ops.native_available(request.param):
        if request.param == "cuda" and os.environ.get("FEATCODEC_NO_CUDA") == "1":
            pytest.skip("extension built without CUDA (FEATCODEC_NO_CUDA=1)")
        pytest.fail(
            f"codec._C has no {request.param} kernels: build it (pip install --no-build-isolation -e .)"
        )
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _native_by_default(monkeypatch):
    monkeypatch.delenv("FEATCODEC_OPS", raising=False)


@pytest.fixture(scope="session")
def scale_table() -> torch.Tensor:
    return get_scale_table()


def compressai_oracle(y, means, scales, table, scale_bound=0.11):
    """What CompressAI computes: (quantize(y, "symbols", means), build_indexes(scales)), on y's device."""
    gc = GaussianConditional([float(v) for v in table], scale_bound=scale_bound).to(y.device)
    return gc.quantize(y, "symbols", means), gc.build_indexes(scales)


def random_latents(shape, dtype, device, seed, scale_high=300.0):
    """y spread over many symbols, means off-grid, scales over (and beyond) the whole table."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(shape, generator=g) * 20
    means = torch.randn(shape, generator=g) * 3
    scales = torch.rand(shape, generator=g) * scale_high
    return y.to(device, dtype), means.to(device, dtype), scales.to(device, dtype)


@pytest.fixture
def seed() -> int:
    """A fresh seed each run (printed, so a failure can be replayed)."""
    import secrets

    value = secrets.randbelow(2**31)
    print(f"seed={value}")
    return value
