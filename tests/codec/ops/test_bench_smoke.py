"""Smoke run of the kernel benchmarks' code at a tiny size (no timing): every
implementation runs and agrees."""

import torch

from bench.conftest import kernel_summary_lines
from bench.test_bench_ops import SHAPES, make_inputs, quantize_index_impls


def test_benchmark_implementations_run_and_agree_at_a_tiny_size():
    inputs = make_inputs(SHAPES["tiny-1x8x16x16"])
    impls = quantize_index_impls(inputs)
    assert {"compressai", "reference", "copy", "fused", "fused-out", "fused-op"} <= set(impls)
    indexes, symbols = impls["compressai"]()
    for name in ("reference", "fused", "fused-out"):
        got_symbols, got_indexes = impls[name]()
        assert torch.equal(got_symbols, symbols) and torch.equal(got_indexes, indexes), name
    raw_symbols, raw_indexes, status = impls["fused-op"]()
    assert torch.equal(raw_symbols, symbols) and torch.equal(raw_indexes, indexes) and int(status) == 0
    impls["copy"]()


def test_kernel_summary_reports_speedup_and_copy_fraction():
    medians = {
        ("cpu", "tiny-1x8x16x16", "compressai"): 1e-3,
        ("cpu", "tiny-1x8x16x16", "fused"): 1e-5,
        ("cpu", "tiny-1x8x16x16", "copy"): 5e-6,
    }
    rows = {line.split("|")[3].strip(): line for line in kernel_summary_lines(medians)}
    assert "| 100.0× |" in rows["fused"] and "| 50% |" in rows["fused"]
