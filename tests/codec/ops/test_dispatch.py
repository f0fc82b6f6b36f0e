"""Which implementation runs: native ops when built, the reference otherwise, with one log line."""

import logging
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import codec.ops as ops

from .conftest import compressai_oracle, random_latents


def test_extension_is_built_for_the_cpu():
    # `make` (pip install -e .) builds codec._C; without it every op silently runs the slow reference.
    assert ops.native_available("cpu"), "codec._C is not built: pip install --no-build-isolation -e ."
    assert ops.backend("cpu") == "native"


def test_env_var_forces_the_reference_with_one_log_line(monkeypatch, caplog, scale_table):
    monkeypatch.setenv("FEATCODEC_OPS", "reference")
    ops._logged.discard("forced")
    y = torch.randn(10)
    with caplog.at_level(logging.INFO, logger="codec.ops"):
        native = ops.native_available("cpu")
        first = ops.quantize_index(y, None, y.abs(), scale_table)
        second = ops.quantize_index(y, None, y.abs(), scale_table)
    assert native  # the extension is there, but not used
    assert ops.backend("cpu") == "reference"
    assert [r.getMessage() for r in caplog.records].count(
        "codec.ops: FEATCODEC_OPS=reference, using the pure-torch reference ops"
    ) == 1
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_missing_device_kernels_fall_back_with_one_warning(monkeypatch, caplog, scale_table):
    monkeypatch.setattr(ops, "native_available", lambda device="cpu": False)
    ops._logged.discard("missing-cpu")
    y = torch.randn(10)
    with caplog.at_level(logging.WARNING, logger="codec.ops"):
        ops.quantize_index(y, None, y.abs(), scale_table)
        ops.dequantize(torch.zeros(3, dtype=torch.int32))
    assert len([r for r in caplog.records if "using the pure-torch reference" in r.getMessage()]) == 1


def _run_python(code: str, **env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


_PARITY_SCRIPT = """
    import torch, codec.ops as ops
    from compressai.entropy_models import GaussianConditional
    from compressai.models.google import get_scale_table
    assert ops.backend("cpu") == "native", ops._LOAD_ERROR
    t = get_scale_table(); gc = GaussianConditional(t.tolist())
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float16):
        y = (torch.randn(3, 5, 77, generator=g) * 20).to(dtype)
        m = torch.randn(3, 5, 77, generator=g).to(dtype)
        s = (torch.rand(3, 5, 77, generator=g) * 300).to(dtype)
        sym, idx = ops.quantize_index(y, m, s, t)
        assert torch.equal(sym, gc.quantize(y, "symbols", m)) and torch.equal(idx, gc.build_indexes(s))
    print("ok")
"""


def test_extension_loads_and_runs_without_a_gpu():
    # A CUDA build of the extension must import on a machine without a usable GPU.
    proc = _run_python(_PARITY_SCRIPT, CUDA_VISIBLE_DEVICES="")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


def test_baseline_loops_without_avx2_match_compressai():
    proc = _run_python(_PARITY_SCRIPT, FEATCODEC_NO_AVX2="1")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


@pytest.mark.parametrize("intrinsics", ["0", "1"])
def test_auto_vectorised_and_intrinsic_paths_agree(monkeypatch, intrinsics, scale_table, seed):
    # The float32 AVX2 intrinsic path hands chunks with special values to the generic loop.
    monkeypatch.setenv("FEATCODEC_NO_INTRINSICS", intrinsics)
    y, means, scales = random_latents((70001,), torch.float32, "cpu", seed)
    y[:8] = torch.tensor([0.5, 1.5, -0.5, -2.5, 1e10, 2147483520.0, 3e9, -0.0])
    scales[8:16] = torch.tensor([0.0, -1.0, 0.11, 0.1244, 256.0, 1e30, float("inf"), float("nan")])
    y[40000] = float("nan")
    symbols, indexes = ops.quantize_index(y, means, scales, scale_table, clamp=70000, check=False)
    want = ops.reference.quantize_index(y, means, scales, scale_table, clamp=70000, check=False)
    assert torch.equal(symbols, want[0]) and torch.equal(indexes, want[1])
    # and a clean slice (no special values) equals CompressAI
    sl = slice(1000, 3000)
    symbols, indexes = ops.quantize_index(y[sl], means[sl], scales[sl], scale_table)
    oracle = compressai_oracle(y[sl], means[sl], scales[sl], scale_table)
    assert torch.equal(symbols, oracle[0]) and torch.equal(indexes, oracle[1])
