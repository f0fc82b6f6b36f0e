"""Quantisation and scale-indexing ops of featcodec's entropy-coding path (Python face of csrc/).

CompressAI's ``GaussianConditional`` builds scale indexes with one pass over the tensor per
scale-table entry and quantises in further passes; ``quantize_index`` does both in one pass in
native code (C++/OpenMP on CPU, CUDA on GPU), bit-identical to CompressAI (see
``codec.ops.reference`` for the exact semantics, including NaN/Inf handling).

Dispatch: the compiled torch custom ops ``torch.ops.featcodec.*`` (extension ``codec._C``, built by
setup.py) when available for the tensor's device, else the pure-torch reference with one log line.
``FEATCODEC_OPS=reference`` forces the reference.

    symbols, indexes = quantize_index(y, means, scales, scale_table)   # int32, int32
    y_hat = dequantize(symbols, means)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch
from torch import Tensor

from codec.ops import reference
from codec.ops.reference import (
    DEFAULT_SCALE_BOUND,
    as_scale_bound,
    as_scale_table,
    broadcasts_to,
    check_quantize_args,
    noise_quantize,
    raise_for_status,
    ste_round,
)

__all__ = [
    "DEFAULT_SCALE_BOUND",
    "backend",
    "dequantize",
    "native_available",
    "noise_quantize",
    "quantize_index",
    "ste_round",
]

logger = logging.getLogger(__name__)

_NATIVE_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)

try:  # the extension registers torch.ops.featcodec.* when imported
    from codec import _C  # noqa: F401
    from codec.ops import _fake  # noqa: F401  (fake kernels for torch.compile)

    _LOAD_ERROR: str | None = None
except ImportError as e:  # not built (or built against another torch): reference path
    _LOAD_ERROR = str(e)

_logged: set[str] = set()


def _log_once(key: str, level: int, msg: str, *args) -> None:
    if key not in _logged:
        _logged.add(key)
        logger.log(level, msg, *args)


def _registered_kernels() -> frozenset[str]:
    if _LOAD_ERROR is not None:
        return frozenset()
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    return frozenset(
        dev for dev, key in (("cpu", "CPU"), ("cuda", "CUDA")) if has("featcodec::quantize_index", key)
    )


_NATIVE_DEVICES = _registered_kernels()  # fixed once the extension is loaded


def native_available(device: torch.device | str = "cpu") -> bool:
    """Whether the compiled ops have a kernel for ``device``'s type (ignores FEATCODEC_OPS)."""
    return torch.device(device).type in _NATIVE_DEVICES


def backend(device: torch.device | str = "cpu") -> str:
    """ "native" or "reference": which implementation the public ops use for tensors on ``device``."""
    if os.environ.get("FEATCODEC_OPS", "").lower() == "reference":
        _log_once(
            "forced", logging.INFO, "codec.ops: FEATCODEC_OPS=reference, using the pure-torch reference ops"
        )
        return "reference"
    if native_available(device):
        return "native"
    dev = torch.device(device).type
    reason = _LOAD_ERROR or f"the extension has no {dev} kernels"
    _log_once(
        f"missing-{dev}",
        logging.WARNING,
        "codec.ops: native ops unavailable for %s (%s); using the pure-torch reference",
        dev,
        reason,
    )
    return "reference"


def quantize_index(
    y: Tensor,
    means: Tensor | None,
    scales: Tensor,
    scale_table: Tensor | Sequence[float],
    *,
    scale_bound: float | Tensor | None = None,
    clamp: int | None = None,
    check: bool = True,
    out: tuple[Tensor, Tensor] | None = None,
    with_status: bool = False,
) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor]:
    """Symbols and scale-table indexes of y in one pass: ``(symbols: int32, indexes: int32)``, y's shape.

    symbols == ``GaussianConditional.quantize(y, "symbols", means)`` and indexes ==
    ``GaussianConditional(scale_table, scale_bound=scale_bound).build_indexes(scales)``.

    Args:
        means: broadcastable to y's shape, or None (zero).
        scales: y's shape; any floating dtype.
        scale_table: sorted positive scales (list or tensor), e.g.
        ``compressai.models.google.get_scale_table()``. scale_bound: lower bound applied to scales before
        indexing (default CompressAI's 0.11). clamp: if given, symbols are clamped to [-clamp, clamp].
        check: raise ValueError on NaN/Inf in y or means, NaN in scales, or symbols beyond int32; with
            ``check=False`` such values saturate as documented in ``codec.ops.reference`` (no host sync
            on CUDA, and traceable by ``torch.compile(fullgraph=True)``).
        out: optional (symbols, indexes) to write into: contiguous int32 tensors of y's shape on y's
            device, reused across calls (fresh outputs cost page faults on first touch: on large
            tensors more than the op itself). Returned as the result.
        with_status: also return the status bits, a 0-d int32 tensor on y's device, for the caller to check
            later (``codec.ops.reference.raise_for_status(int(status))``): with ``check=False`` no step of
            the call waits for the device (CUDA-graph capturable).
    """
    check_quantize_args(y, means, scales, clamp)
    if out is not None:
        check_out(y, out)
    native = (
        y.dtype in _NATIVE_DTYPES
        # float64 means/scales with lower-precision y: CompressAI computes in float64; keep that exact.
        and not (means is not None and means.dtype == torch.float64 and y.dtype != torch.float64)
        and not (scales.dtype == torch.float64 and y.dtype != torch.float64)
        and backend(y.device) == "native"
    )
    if not native:
        result = reference.quantize_index(
            y,
            means,
            scales,
            scale_table,
            scale_bound=scale_bound,
            clamp=clamp,
            check=check,
            with_status=with_status,
        )
        if out is not None:
            out[0].copy_(result[0])
            out[1].copy_(result[1])
            result = (*out, *result[2:])
        return result
    table = as_scale_table(scale_table, y.device)
    bound = as_scale_bound(scale_bound)
    # The kernels take means/scales in y's dtype or in y's opmath dtype (fp16/bf16 -> fp32 is exact).
    opmath = torch.float64 if y.dtype == torch.float64 else torch.float32
    if means is not None:
        means = means.detach()
        if means.dtype not in (y.dtype, opmath):
            means = means.to(opmath)
        if means.shape != y.shape:
            means = means.expand(y.shape)
        means = means.contiguous()
    scales = scales.detach()
    if scales.dtype not in (y.dtype, opmath):
        scales = scales.to(opmath)
    if out is None:
        symbols, indexes, status = torch.ops.featcodec.quantize_index(
            y.detach().contiguous(), means, scales.contiguous(), table, bound, clamp
        )
    else:
        symbols, indexes = out
        status = torch.ops.featcodec.quantize_index_out(
            y.detach().contiguous(), means, scales.contiguous(), table, bound, clamp, symbols, indexes
        )
    if check:
        raise_for_status(int(status))
    return (symbols, indexes, status) if with_status else (symbols, indexes)


def check_out(y: Tensor, out: tuple[Tensor, Tensor]) -> None:
    """`out` must be two contiguous int32 tensors of y's shape on y's device."""
    if len(out) != 2:
        raise ValueError("quantize_index: out must be a (symbols, indexes) pair")
    for name, t in zip(("symbols", "indexes"), out, strict=True):
        if t.dtype != torch.int32 or t.shape != y.shape or t.device != y.device or not t.is_contiguous():
            raise ValueError(
                f"quantize_index: out {name} must be a contiguous int32 tensor of shape {tuple(y.shape)} on "
                f"{y.device}, got {t.dtype} {tuple(t.shape)} on {t.device}"
            )


def dequantize(symbols: Tensor, means: Tensor | None = None, dtype: torch.dtype | None = None) -> Tensor:
    """``GaussianConditional.dequantize(symbols, means)``: ``symbols.type_as(means) + means`` in one pass.

    ``dtype`` is the result's dtype (default: means' dtype, or float32 without means); the arithmetic
    happens in means' dtype as in CompressAI.
    """
    if (
        symbols.dtype != torch.int32
        or (means is not None and means.dtype not in _NATIVE_DTYPES)
        or (means is None and (dtype or torch.float32) not in _NATIVE_DTYPES)
        or backend(symbols.device) != "native"
    ):
        return reference.dequantize(symbols, means, dtype)
    if means is not None:
        if means.device != symbols.device:
            raise ValueError(f"dequantize: means is on {means.device} but symbols are on {symbols.device}")
        if not broadcasts_to(means.shape, symbols.shape):
            raise ValueError(
                f"dequantize: means of shape {tuple(means.shape)} does not broadcast to symbols' shape "
                f"{tuple(symbols.shape)}"
            )
        means = means.detach().expand(symbols.shape).contiguous()
    out_dtype = dtype or (means.dtype if means is not None else torch.float32)
    out = torch.ops.featcodec.dequantize(
        symbols.contiguous(), means, out_dtype if means is None else means.dtype
    )
    return out if out.dtype == out_dtype else out.to(out_dtype)
