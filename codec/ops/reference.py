"""Pure-torch reference of featcodec's quantisation ops: the specification the kernels in csrc/ must match.

Every function here reproduces CompressAI's `GaussianConditional` bit for bit
(Ballé et al., "Variational image compression with a scale hyperprior", ICLR 2018;
CompressAI, Bégaint et al. 2020):

- symbols = `GaussianConditional.quantize(y, "symbols", means)`: `y - means` computed in
  y's dtype (PyTorch arithmetic: float32 opmath, rounded back to y's dtype), rounded
  half-to-even (`torch.round`), converted to int32;
- indexes = `GaussianConditional.build_indexes(scales)`: `s = max(scales, scale_bound)` with
  the bound as float32 (CompressAI's `LowerBound` buffer), then
  `index = (L - 1) - #{j < L - 1 : s <= table[j]}` with the table as float32 — i.e. the
  first table entry >= s, capped at the last entry (a NaN scale gives L - 1).

The native ops replace CompressAI's one-pass-per-table-entry loop by a single pass; this
module stays the fallback when the extension is not built and the oracle of the tests.

Non-finite inputs (defined, never undefined):
- with ``check=True`` (default) a NaN/Inf in ``y`` or ``means``, a NaN in ``scales``, or a
  symbol outside int32 (only possible without ``clamp``) raises ``ValueError`` naming the tensor;
- with ``check=False`` the result is a documented saturation: a NaN difference gives
  symbol 0, ±Inf and out-of-range values saturate to ±(2**31 - 1) (or ±clamp);
  a NaN scale gives index L - 1 (as CompressAI). ±Inf scales are valid inputs either way:
  +Inf → L - 1, -Inf → the bound → 0.
"""

from __future__ import annotations

import math
import struct
import weakref
from collections.abc import Sequence

import torch
from torch import Tensor

# CompressAI's GaussianConditional default lower bound on scales.
DEFAULT_SCALE_BOUND = 0.11
INT32_MAX = 2**31 - 1

# Status bits shared with csrc/ (see quantize_common.h).
STATUS_Y_NONFINITE = 1
STATUS_MEANS_NONFINITE = 2
STATUS_SCALES_NAN = 4
STATUS_SYMBOL_OVERFLOW = 8


def _opmath(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# id(table tensor) -> (weakref to it, its _version, device, validated float32 table); tuple of values -> table
_TABLE_CACHE: dict = {}


def _cached_table(scale_table, device: torch.device) -> Tensor | None:
    if isinstance(scale_table, Tensor):
        hit = _TABLE_CACHE.get(id(scale_table))
        # the weakref makes a reused id (a freed tensor) a miss; _version catches in-place writes
        if hit and hit[0]() is scale_table and hit[1] == scale_table._version and hit[2] == device:
            return hit[3]
        return None
    try:
        return _TABLE_CACHE.get((tuple(float(v) for v in scale_table), device))
    except TypeError:
        return None


def _cache_table(scale_table, device: torch.device, table: Tensor) -> None:
    if len(_TABLE_CACHE) >= 32:
        _TABLE_CACHE.clear()
    if isinstance(scale_table, Tensor):
        _TABLE_CACHE[id(scale_table)] = (weakref.ref(scale_table), scale_table._version, device, table)
    else:
        _TABLE_CACHE[(tuple(float(v) for v in scale_table), device)] = table


def as_scale_table(scale_table: Tensor | Sequence[float], device: torch.device) -> Tensor:
    """The scale table as CompressAI stores it (a 1-D float32 tensor), validated, on ``device``.

    Validated tables are cached (a codec calls this with the same table for every tensor).
    """
    if torch.compiler.is_compiling():  # values are data: validated eagerly only (no graph break)
        return torch.as_tensor(scale_table, dtype=torch.float32).to(device=device).contiguous()
    device = torch.device(device)
    cached = _cached_table(scale_table, device)
    if cached is not None:
        return cached
    table = torch.as_tensor(scale_table, dtype=torch.float32)
    if table.dim() != 1 or table.numel() < 1:
        raise ValueError(f"scale_table must be a non-empty 1-D sequence, got shape {tuple(table.shape)}")
    values = table.detach().cpu().tolist()
    if not all(0 < v < math.inf for v in values):
        raise ValueError("scale_table must hold finite positive values")
    if any(b < a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError("scale_table must be sorted in increasing order")
    table = table.detach().to(device=device).contiguous()
    _cache_table(scale_table, device, table)
    return table


def as_scale_bound(scale_bound: float | Tensor | None) -> float:
    """The lower bound on scales, rounded to float32 as CompressAI's `LowerBound` buffer is."""
    bound = DEFAULT_SCALE_BOUND if scale_bound is None else float(scale_bound)
    if not bound > 0 or bound == float("inf"):
        raise ValueError(f"scale_bound must be a finite positive number, got {scale_bound!r}")
    return struct.unpack("f", struct.pack("f", bound))[0]


def broadcasts_to(shape: torch.Size, target: torch.Size) -> bool:
    """Whether a tensor of ``shape`` broadcasts to exactly ``target`` (as in ``target_tensor -= other``)."""
    if shape == target:
        return True
    try:
        return torch.broadcast_shapes(shape, target) == target
    except RuntimeError:
        return False


def check_quantize_args(y: Tensor, means: Tensor | None, scales: Tensor, clamp: int | None) -> None:
    """Shape and dtype rules shared by the reference and the native dispatch."""
    for name, t in (("y", y), ("means", means), ("scales", scales)):
        if t is not None and not t.is_floating_point():
            raise TypeError(f"quantize_index: {name} must be a floating-point tensor, got {t.dtype}")
        if t is not None and t.device != y.device:
            raise ValueError(f"quantize_index: {name} is on {t.device} but y is on {y.device}")
    if scales.shape != y.shape:
        raise ValueError(
            f"quantize_index: scales must have y's shape {tuple(y.shape)}, got {tuple(scales.shape)}"
        )
    if means is not None and not broadcasts_to(means.shape, y.shape):
        raise ValueError(
            f"quantize_index: means of shape {tuple(means.shape)} does not broadcast to y's shape "
            f"{tuple(y.shape)}"
        )
    if clamp is not None and not (0 <= int(clamp) <= INT32_MAX):
        raise ValueError(f"quantize_index: clamp must be in [0, 2**31 - 1], got {clamp}")


def raise_for_status(status: int, where: str = "quantize_index") -> None:
    """Turns the status bits of a quantize_index call into a ValueError naming the culprit."""
    if status & STATUS_Y_NONFINITE:
        raise ValueError(f"{where}: y contains NaN or Inf")
    if status & STATUS_MEANS_NONFINITE:
        raise ValueError(f"{where}: means contains NaN or Inf")
    if status & STATUS_SCALES_NAN:
        raise ValueError(f"{where}: scales contains NaN")
    if status & STATUS_SYMBOL_OVERFLOW:
        raise ValueError(
            f"{where}: round(y - means) does not fit in int32 (pass clamp=K to clamp symbols to [-K, K])"
        )


def quantize_index(
    y: Tensor,
    means: Tensor | None,
    scales: Tensor,
    scale_table: Tensor | Sequence[float],
    *,
    scale_bound: float | Tensor | None = None,
    clamp: int | None = None,
    check: bool = True,
    with_status: bool = False,
) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor]:
    """(symbols, indexes), both int32 with y's shape; see the module docstring for the exact semantics.

    ``with_status=True`` also returns the status bits as a 0-d int32 tensor on y's device (see
    ``raise_for_status``), so a caller can check them later with one host read.

    ``clamp=K`` clamps symbols to [-K, K] (the coder's escape-free range); ``means=None`` means zero
    and ``means`` broadcasts to y's shape as in CompressAI's in-place ``outputs -= means``.
    """
    check_quantize_args(y, means, scales, clamp)
    table = as_scale_table(scale_table, y.device)
    bound = as_scale_bound(scale_bound)
    y, scales = y.detach(), scales.detach()
    means = None if means is None else means.detach()

    # Symbols: exactly GaussianConditional.quantize(y, "symbols", means) up to the int cast.
    diff = y.clone()
    if means is not None:
        diff -= means
    rounded = torch.round(diff)

    # Indexes: max with the float32 bound, then count of table[:-1] entries < s.
    op = _opmath(scales.dtype)
    s = torch.maximum(scales.to(op), torch.tensor(bound, dtype=torch.float32, device=y.device).to(op))
    indexes = torch.searchsorted(table[:-1].to(op).contiguous(), s.contiguous(), out_int32=True)
    indexes = torch.where(torch.isnan(s), torch.full_like(indexes, table.numel() - 1), indexes)

    limit = INT32_MAX if clamp is None else int(clamp)
    status = _status(y, means, scales, rounded, clamp) if check or with_status else None
    if check:
        raise_for_status(int(status))
    # Saturating conversion: defined for every input (NaN -> 0, beyond the range -> ±limit).
    wide = torch.nan_to_num(rounded.to(torch.float64), nan=0.0).clamp_(-limit, limit)
    if with_status:
        return wide.to(torch.int32), indexes, status
    return wide.to(torch.int32), indexes


def _status(y: Tensor, means: Tensor | None, scales: Tensor, rounded: Tensor, clamp: int | None) -> Tensor:
    """The status bits as a 0-d int32 tensor on y's device, computed without a host synchronisation."""
    status = (~torch.isfinite(y).all()).to(torch.int32) * STATUS_Y_NONFINITE
    if means is not None:
        status |= (~torch.isfinite(means).all()).to(torch.int32) * STATUS_MEANS_NONFINITE
    status |= torch.isnan(scales).any().to(torch.int32) * STATUS_SCALES_NAN
    if clamp is None:  # reported only when nothing else is (raise_for_status names the first bit anyway)
        overflow = ~(rounded.to(torch.float64).abs() <= INT32_MAX).all() & (status == 0)
        status |= overflow.to(torch.int32) * STATUS_SYMBOL_OVERFLOW
    return status


def dequantize(symbols: Tensor, means: Tensor | None = None, dtype: torch.dtype | None = None) -> Tensor:
    """``GaussianConditional.dequantize``: ``symbols.type_as(means) + means``, or ``symbols.to(dtype)``.

    With means the arithmetic happens in means' dtype (as CompressAI); ``dtype`` (default: means'
    dtype, or float32 without means) is the dtype of the result.
    """
    if symbols.is_floating_point() or symbols.is_complex():
        raise TypeError(f"dequantize: symbols must be an integer tensor, got {symbols.dtype}")
    if means is None:
        return symbols.to(dtype or torch.float32)
    if not means.is_floating_point():
        raise TypeError(f"dequantize: means must be a floating-point tensor, got {means.dtype}")
    if not broadcasts_to(means.shape, symbols.shape):
        raise ValueError(
            f"dequantize: means of shape {tuple(means.shape)} does not broadcast to symbols' shape "
            f"{tuple(symbols.shape)}"
        )
    out = symbols.type_as(means)
    out += means.detach()
    return out if dtype is None or dtype == out.dtype else out.to(dtype)


def noise_quantize(y: Tensor) -> Tensor:
    """Training surrogate of rounding: ``y + U(-0.5, 0.5)`` (Ballé et al. 2017), differentiable in y.

    Kept in torch: the noise comes from torch's generator, so a kernel would only fuse one add.
    """
    return y + torch.empty_like(y).uniform_(-0.5, 0.5)


def ste_round(y: Tensor, means: Tensor | None = None) -> Tensor:
    """Straight-through rounding around the means: ``round(y - means) + means`` forward, identity backward.

    The "mixed quantisation" of Minnen & Singh (ICIP 2020); CompressAI's ``quantize_ste`` applied to
    ``y - means``. Kept in torch: autograd needs both paths, and torch fuses them under compile.
    """
    centred = y if means is None else y - means
    rounded = centred + (torch.round(centred) - centred).detach()
    return rounded if means is None else rounded + means
