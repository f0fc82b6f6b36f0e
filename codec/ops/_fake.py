"""Fake (meta) kernels of the featcodec ops, so torch.compile / torch.export trace through them.

Imported by codec.ops right after the extension registered the op schemas.
"""

from __future__ import annotations

import torch


@torch.library.register_fake("featcodec::quantize_index")
def _quantize_index_fake(y, means, scales, scale_table, scale_bound, clamp):
    torch._check(scales.shape == y.shape, lambda: "quantize_index: scales must have y's shape")
    symbols = torch.empty_like(y, dtype=torch.int32, memory_format=torch.contiguous_format)
    indexes = torch.empty_like(y, dtype=torch.int32, memory_format=torch.contiguous_format)
    status = y.new_empty((), dtype=torch.int32)
    return symbols, indexes, status


@torch.library.register_fake("featcodec::dequantize")
def _dequantize_fake(symbols, means, dtype):
    return torch.empty_like(symbols, dtype=dtype, memory_format=torch.contiguous_format)


@torch.library.register_fake("featcodec::quantize_index_out")
def _quantize_index_out_fake(y, means, scales, scale_table, scale_bound, clamp, symbols, indexes):
    return y.new_empty((), dtype=torch.int32)
