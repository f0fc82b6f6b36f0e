"""Fused quantize_index vs CompressAI's build_indexes + quantize, against a copy of the same bytes.

Run: .venv/bin/python -m pytest bench/test_bench_ops.py --benchmark-only [--bench-size small|tiny]
(`make bench` runs every benchmark). The terminal summary prints, per shape and device, each
median, the speed-up over CompressAI and the fraction of copy bandwidth (copy time / op time,
where the copy moves as many bytes as the op reads and writes).

The functions above the tests are also run at a tiny size by tests/codec/ops/test_bench_smoke.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from compressai.entropy_models import GaussianConditional
from compressai.models.google import get_scale_table

import codec.ops as ops
from codec.ops import reference

from .conftest import KERNEL_MEDIANS

SHAPES = {
    "tiny-1x8x16x16": (1, 8, 16, 16),
    "fpn2-1x256x64x64": (1, 256, 64, 64),
    "fpn0-1x256x256x256": (1, 256, 256, 256),
    "gpu-fill-8x256x256x256": (8, 256, 256, 256),
}
SIZE_SETS = {
    "tiny": ["tiny-1x8x16x16"],
    "small": ["fpn2-1x256x64x64"],
    "sam2": ["fpn2-1x256x64x64", "fpn0-1x256x256x256", "gpu-fill-8x256x256x256"],
}
CPU_SHAPES = {"tiny-1x8x16x16", "fpn2-1x256x64x64", "fpn0-1x256x256x256"}

# Bytes per element that quantize_index must read and write: y, means, scales in (float32),
# symbols and indexes out (int32). The copy moves the same: 10 bytes read, 10 written.
BYTES_PER_ELEMENT = 20


# dequantize reads symbols (int32) and means (float32) and writes float32: 12 bytes per element.
DEQUANTIZE_BYTES_PER_ELEMENT = 12
DEQUANTIZE = "dequantize/"  # prefix of the dequantize benchmarks' shape names in KERNEL_MEDIANS


def numel(shape_name: str) -> int:
    n = 1
    for d in SHAPES[shape_name.removeprefix(DEQUANTIZE)]:
        n *= d
    return n


def bytes_moved(shape_name: str, impl: str) -> int:
    """Bytes the op (or the equivalent copy) reads plus writes; `impl` kept for other op families."""
    if shape_name.startswith(DEQUANTIZE):
        return numel(shape_name) * DEQUANTIZE_BYTES_PER_ELEMENT
    return numel(shape_name) * BYTES_PER_ELEMENT


def make_inputs(shape, device="cpu", dtype=torch.float32, seed=0) -> dict:
    """SAM2-like latents: y, means, scales (over the whole table), CompressAI's table and model."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(shape, generator=g) * 4
    means = torch.randn(shape, generator=g)
    scales = torch.rand(shape, generator=g) * 30
    table = get_scale_table()
    gc = GaussianConditional(table.tolist()).to(device)
    return {
        "y": y.to(device, dtype),
        "means": means.to(device, dtype),
        "scales": scales.to(device, dtype),
        "table": table.to(device),
        "gc": gc,
    }


def quantize_index_impls(inputs: dict) -> dict[str, Callable[[], object]]:
    """Each implementation as a no-argument callable over the same inputs."""
    y, means, scales, table, gc = (inputs[k] for k in ("y", "means", "scales", "table", "gc"))
    n_bytes = y.numel() * BYTES_PER_ELEMENT // 2  # a copy reads and writes these
    src = torch.empty(n_bytes, dtype=torch.uint8, device=y.device).fill_(1)
    dst = torch.empty_like(src)
    bound = ops.reference.as_scale_bound(None)
    impls = {
        "compressai": lambda: (gc.build_indexes(scales), gc.quantize(y, "symbols", means)),
        "reference": lambda: reference.quantize_index(y, means, scales, table),
        "copy": lambda: dst.copy_(src),
    }
    if ops.native_available(y.device):
        impls["fused"] = lambda: ops.quantize_index(y, means, scales, table)
        # into reused output buffers, as the copy writes into a reused destination
        out = (
            torch.empty(y.shape, dtype=torch.int32, device=y.device),
            torch.empty_like(y, dtype=torch.int32),
        )
        out[0].fill_(0), out[1].fill_(0)
        impls["fused-out"] = lambda: ops.quantize_index(y, means, scales, table, out=out)
        # the raw op: no argument checks, no status read-back (no host sync on CUDA)
        impls["fused-op"] = lambda: torch.ops.featcodec.quantize_index(y, means, scales, table, bound, None)
    return impls


def _params(impls: tuple[str, ...]) -> list:
    """(device, shape, implementation) for every shape, on the CPU and (marked cuda) on CUDA."""
    out = []
    for shape_name in SHAPES:
        for device in ("cpu", "cuda"):
            for impl in impls:
                marks = [pytest.mark.cuda] if device == "cuda" else []
                out.append(
                    pytest.param(device, shape_name, impl, marks=marks, id=f"{device}-{shape_name}-{impl}")
                )
    return out


def _timed(impls: dict, impl: str, device: str) -> Callable[[], object]:
    """The implementation to time (synchronised on CUDA), or a skip if it is not built here."""
    if impl not in impls:
        pytest.skip("codec._C not built for this device")
    fn = impls[impl]
    if device != "cuda":
        return fn

    def synchronised():
        fn()
        torch.cuda.synchronize()

    return synchronised


def _runnable(device: str, shape_name: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    if device == "cpu" and shape_name not in CPU_SHAPES:
        pytest.skip("GPU-sized tensor")


@pytest.mark.parametrize(
    ("device", "shape_name", "impl"),
    _params(("compressai", "reference", "fused", "fused-out", "fused-op", "copy")),
)
def test_quantize_index(benchmark, bench_size, bench_threads, device, shape_name, impl):
    if shape_name not in SIZE_SETS[bench_size]:
        pytest.skip(f"not in --bench-size {bench_size}")
    _runnable(device, shape_name)
    big = numel(shape_name) > 2**22
    if impl == "reference" and big and device == "cpu":
        pytest.skip("the reference is ~10x slower than the op; measured on the small shape only")
    fn = _timed(quantize_index_impls(make_inputs(SHAPES[shape_name], device)), impl, device)
    benchmark.group = f"quantize_index {device} {shape_name}"
    benchmark.extra_info["bytes_moved"] = bytes_moved(shape_name, impl)
    benchmark.extra_info["threads"] = bench_threads
    if impl == "compressai" and big:
        # one pass over the tensor per scale-table entry: seconds per call on a CPU
        benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=1)
    else:
        benchmark(fn)
    if benchmark.stats is not None:
        KERNEL_MEDIANS[(device, shape_name, impl)] = benchmark.stats.stats.median


def dequantize_impls(inputs: dict) -> dict[str, Callable[[], object]]:
    """dequantize(symbols, means) as CompressAI writes it, fused, and a copy of the same bytes."""
    y, means = inputs["y"], inputs["means"]
    symbols = torch.round(y - means).to(torch.int32)
    n_bytes = y.numel() * DEQUANTIZE_BYTES_PER_ELEMENT // 2
    src = torch.empty(n_bytes, dtype=torch.uint8, device=y.device).fill_(1)
    dst = torch.empty_like(src)
    impls = {
        "compressai": lambda: inputs["gc"].dequantize(symbols, means),
        "copy": lambda: dst.copy_(src),
    }
    if ops.native_available(y.device):
        impls["fused"] = lambda: ops.dequantize(symbols, means)
        impls["fused-op"] = lambda: torch.ops.featcodec.dequantize(symbols, means, means.dtype)
    return impls


@pytest.mark.parametrize(
    ("device", "shape_name", "impl"), _params(("compressai", "fused", "fused-op", "copy"))
)
def test_dequantize(benchmark, bench_size, bench_threads, device, shape_name, impl):
    if shape_name not in SIZE_SETS[bench_size]:
        pytest.skip(f"not in --bench-size {bench_size}")
    _runnable(device, shape_name)
    fn = _timed(dequantize_impls(make_inputs(SHAPES[shape_name], device)), impl, device)
    benchmark.group = f"dequantize {device} {shape_name}"
    benchmark.extra_info["bytes_moved"] = bytes_moved(DEQUANTIZE + shape_name, impl)
    benchmark.extra_info["threads"] = bench_threads
    benchmark(fn)
    if benchmark.stats is not None:
        KERNEL_MEDIANS[(device, DEQUANTIZE + shape_name, impl)] = benchmark.stats.stats.median
