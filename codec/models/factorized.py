"""Factorized-prior baseline for multi-level features (Ballé, Laparra, Simoncelli, ICLR 2017)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from compressai.entropy_models import EntropyBottleneck

from codec import ops
from codec.entropy import (
    CdfTable,
    decode_substreams,
    encode_substreams,
    split_channels,
)

from .base import SYMBOL_CLAMP, TransformFeatureCodec, crc32_arrays
from .registry import register_codec


@register_codec("factorized")
class FactorizedFeatureCodec(TransformFeatureCodec):
    r"""One learned, channel-wise density for y; no side information (Ballé et al. 2017).

    ::

        x {level} ─ normalise, to grid ─► g_a ─► y ─► Q (round(y - medians)) ─► EB ─► y_hat ─► g_s
                                                         (ANS / rANS per channel CDF)      │
                                                   x_hat ◄─ denormalise, from grid ◄───────┘

    Everything the decoder needs is in the stored CDF tables, so it is deterministic by
    construction; a CRC32 of the symbols still guards the entropy decoder.
    """

    def __init__(self, *args, **kwargs):  # TransformFeatureCodec's (levels, resolution, N, M, grid_stride)
        super().__init__(*args, **kwargs)
        self.entropy_bottleneck = EntropyBottleneck(self.M)

    def latent_shapes(self, grid: Sequence[int]) -> dict[str, list[int]]:
        return {"y": [self.M, int(grid[0]), int(grid[1])]}

    def _quantize_y(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        medians = self.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1).to(y.dtype)
        symbols = torch.round(y.detach() - medians).clamp_(-SYMBOL_CLAMP, SYMBOL_CLAMP).to(torch.int32)
        return symbols, ops.dequantize(symbols, medians.expand_as(y).contiguous())

    def forward(self, x: dict[str, torch.Tensor]) -> dict:
        self.grid_of(x)
        y = self.g_a(self.normalization.normalize(x))
        if self.training:
            y_hat, y_likelihoods = self.entropy_bottleneck(y)
        else:
            _, y_hat = self._quantize_y(y)
            _, y_likelihoods = self.entropy_bottleneck(y_hat, training=False)
        x_hat = self.normalization.denormalize(self.g_s(y_hat) if self.training else self.synthesize(y_hat))
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods}, "y_hat": y_hat}

    def _indexes(self, grid: Sequence[int]) -> np.ndarray:
        return np.broadcast_to(np.arange(self.M, dtype=np.int32)[:, None, None], (self.M, *grid))

    def _compress_items(self, x, grid, entropy_coder, groups, threads) -> list[dict]:
        y = self.g_a(x, self.normalization)  # normalised in the grid pass
        symbols, y_hat = self._quantize_y(y)
        _, likelihoods = self.entropy_bottleneck(y_hat, training=False)
        table = CdfTable.from_entropy_model(self.entropy_bottleneck)
        indexes = self._indexes(grid)
        channel_groups = split_channels(self.M, groups, symbols[0].numel())  # groups=None: auto_groups
        symbols = symbols.cpu().numpy()
        items = []
        for b in range(symbols.shape[0]):
            strings = encode_substreams(entropy_coder, symbols[b], indexes, table, channel_groups, threads)
            items.append(
                {
                    "strings": {f"y.{g}": s for g, s in enumerate(strings)},
                    "checksums": {"symbols": crc32_arrays(symbols[b])},
                    "estimated_bits": float(-torch.log2(likelihoods[b]).sum()),
                }
            )
        return items

    def _decompress_items(self, strings, grid, entropy_coder, threads, checksums, device) -> dict:
        table = CdfTable.from_entropy_model(self.entropy_bottleneck)
        indexes = self._indexes(grid)
        channel_groups = self._groups(strings, self.M)
        symbols = []
        for b, item in enumerate(strings):
            y_strings = [item[f"y.{g}"] for g in range(len(channel_groups))]
            sym = decode_substreams(entropy_coder, y_strings, indexes, table, channel_groups, threads)
            self.verify("symbols", checksums[b].get("symbols"), crc32_arrays(sym))
            symbols.append(sym)
        symbols = torch.from_numpy(np.stack(symbols))
        medians = self.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1).cpu()
        y_hat = ops.dequantize(symbols, medians.expand_as(symbols).contiguous()).to(device)
        x_hat = self.normalization.denormalize_(self.synthesize(y_hat))
        return {"x_hat": x_hat, "y_hat": y_hat}
