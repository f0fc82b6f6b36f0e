"""Quantised CDF tables: the one probability-model format every coder reads.

CompressAI's convention (entropy_models.py): row k holds `cdf_length[k]` increasing integers from
0 to 2**precision; a symbol s coded with row k has value v = s - offset[k]; values 0..L-3 are
regular bins and L-2 (the last bin) is the escape for values outside them.
"""

from __future__ import annotations

import weakref
import zlib
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class CdfTable:
    cdf: np.ndarray  # int32 [K, Lmax]
    cdf_length: np.ndarray  # int32 [K]
    offset: np.ndarray  # int32 [K]
    precision: int = 16

    @classmethod
    def from_entropy_model(cls, model: torch.nn.Module) -> CdfTable:
        """From an updated CompressAI EntropyBottleneck or GaussianConditional.

        Cached per entropy model while its three buffers are the same tensors, unmodified (`update()`
        replaces them, an in-place edit bumps their version): on a GPU model every rebuild costs three
        device-to-host copies, each a synchronisation, on every encode and decode."""
        buffers = (model._quantized_cdf, model._cdf_length, model._offset)
        key = tuple((id(t), t._version) for t in buffers)
        cached = _TABLES.get(model)
        if (
            cached is not None
            and cached[0] == key
            and all(a is b for a, b in zip(cached[1], buffers, strict=True))
        ):
            return cached[2]
        cdf = model._quantized_cdf
        if cdf.numel() == 0:
            raise RuntimeError(f"{type(model).__name__} has no CDF table: update() was not run")
        table = cls(
            cdf=cdf.detach().cpu().numpy().astype(np.int32, copy=False),
            cdf_length=model._cdf_length.detach().cpu().numpy().reshape(-1).astype(np.int32),
            offset=model._offset.detach().cpu().numpy().reshape(-1).astype(np.int32),
            precision=int(model.entropy_coder_precision),
        )
        for a in (table.cdf, table.cdf_length, table.offset):
            a.flags.writeable = False  # shared by every caller from now on
        _TABLES[model] = (key, buffers, table)  # the buffers are held so that their ids stay unique
        return table

    @property
    def size(self) -> int:
        return int(self.cdf_length.shape[0])

    @property
    def escape(self) -> np.ndarray:
        """Per-row value of the escape bin (CompressAI's max_value = cdf_length - 2)."""
        return self.cdf_length - 2

    def digest(self) -> int:
        """CRC32 of the table contents: a cache key for coder-side models."""
        crc = zlib.crc32(np.ascontiguousarray(self.cdf).tobytes())
        crc = zlib.crc32(self.cdf_length.tobytes(), crc)
        return zlib.crc32(self.offset.tobytes(), crc)

    def probabilities(self, k: int) -> np.ndarray:
        """Bin probabilities of row k (exact dyadic float64, escape bin last)."""
        row = self.cdf[k, : int(self.cdf_length[k])].astype(np.float64)
        return np.diff(row) / float(1 << self.precision)

    def ideal_bits(self, symbols: np.ndarray, indexes: np.ndarray) -> float:
        """−Σ log2 p of `symbols` (row `indexes`) under this quantised table, an escape counting its bin plus
        4 bits of chunk count and 4 per 4-bit chunk of CompressAI's raw value (docs/bitstream.md)."""
        idx = indexes.astype(np.int64)
        values = symbols.astype(np.int64) - self.offset[idx]
        escape = self.escape[idx].astype(np.int64)
        escaped = (values < 0) | (values >= escape)
        bins = np.where(escaped, escape, values)
        freq = self.cdf[idx, bins + 1].astype(np.int64) - self.cdf[idx, bins]
        raw = np.where(values < 0, -2 * values - 1, 2 * (values - escape))[escaped]
        chunks = (
            np.frexp(raw.astype(np.float64))[1] + 3
        ) // 4  # frexp's exponent = bit length, exact < 2**53
        return float(np.sum(self.precision - np.log2(freq))) + float(np.sum(4 + 4 * chunks))


# entropy model -> (buffer ids and versions, the buffers, its table); entries go with their model
_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
