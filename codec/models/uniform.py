"""Baseline: per-channel normalisation, uniform scalar quantisation, zstd. Nothing learned but stats."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import zstandard

from codec.bitstream import BitstreamError
from codec.levels import FeatureLevel

from .base import FeatureCodec, crc32_arrays
from .registry import register_codec

_DTYPES = {2: np.dtype("<i2"), 4: np.dtype("<i4")}  # first byte of a substream: symbol width


def step_for_lambda(lmbda: float) -> float:
    """High-rate optimum of R + λ·D for a uniform quantiser: D = Δ²/12, dR/dΔ = -1/(Δ ln 2).

    So Δ² = 6 / (λ ln 2): the baseline is placed on the same λ axis as the learned codecs.
    """
    if lmbda <= 0:
        raise ValueError(f"lambda must be positive, got {lmbda}")
    return math.sqrt(6.0 / (lmbda * math.log(2.0)))


_FEED = 256  # zstd input bytes per step: at most ~85 blocks of 128 KiB of output before the size check


def _one_frame(dctx, body: bytes, expected: int, what: str) -> bytes:
    """Exactly one zstd frame of `expected` bytes and nothing after it; decompressed in small input
    steps so that a frame claiming more output is refused before it is all produced."""
    dobj, parts, size, pos = dctx.decompressobj(), [], 0, 0
    try:
        while pos < len(body) and not dobj.eof:
            part = dobj.decompress(body[pos : pos + _FEED])
            pos += _FEED
            size += len(part)
            if size > expected:
                raise BitstreamError(f"{what}: decodes to more than the {expected} bytes its shape allows")
            parts.append(part)
    except zstandard.ZstdError as e:
        raise BitstreamError(f"{what}: zstd data does not decode ({e})") from None
    if not dobj.eof or size != expected:
        raise BitstreamError(f"{what}: decodes to {size} bytes in an incomplete frame, expected {expected}")
    trailing = len(dobj.unused_data) + max(0, len(body) - pos)
    if trailing:
        raise BitstreamError(f"{what}: {trailing} bytes after the zstd frame")
    return b"".join(parts)


class NoEntropyModel:
    """A codec with no learned entropy model (uniform, the packed anchors): no auxiliary loss, and nothing
    for `update` to build."""

    def aux_loss(self) -> torch.Tensor:
        return torch.zeros(())

    def update(self, scale_table=None, force: bool = False, update_quantiles: bool = False) -> bool:
        return False


@register_codec("uniform")
class UniformZstdCodec(NoEntropyModel, FeatureCodec):
    r"""The curve every learned codec must beat.

    ::

        x {level} ─► normalise ─► round(x / step) ─► int16|int32 ─► zstd ─► substream "x.<level>"
        x_hat     ◄─ denormalise ◄─ symbols · step ◄──────────────── zstd ◄─┘
    """

    def __init__(
        self,
        levels: Sequence[FeatureLevel],
        resolution: int | None = None,
        step: float = 0.5,
        zstd_level: int = 10,
        grid_stride: int = 16,
    ):
        super().__init__(levels, resolution, grid_stride)
        if not step > 0:
            raise ValueError(f"step must be positive, got {step}")
        self.step = float(step)
        self.zstd_level = int(zstd_level)

    def hparams(self) -> dict:
        return {"step": self.step, "zstd_level": self.zstd_level, "grid_stride": self.grid_stride}

    def latent_shapes(self, grid: Sequence[int]) -> dict[str, list[int]]:
        return {f"x.{name}": list(shape) for name, shape in self.level_shapes(grid).items()}

    def _symbols(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        xn = self.normalization.normalize(x)
        limit = float(np.iinfo(np.int32).max // 2)
        return {
            name: torch.round(t.detach() / self.step).clamp_(-limit, limit).to(torch.int32)
            for name, t in xn.items()
        }

    def _reconstruct(self, symbols: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.normalization.denormalize(
            {n: s.to(torch.float32) * self.step for n, s in symbols.items()}
        )

    def forward(self, x: dict[str, torch.Tensor]) -> dict:
        self.grid_of(x)
        if self.training:  # straight-through: nothing to train but keeps the interface
            xn = self.normalization.normalize(x)
            q = {n: t + (torch.round(t / self.step) * self.step - t).detach() for n, t in xn.items()}
            return {"x_hat": self.normalization.denormalize(q), "likelihoods": {}}
        return {"x_hat": self._reconstruct(self._symbols(x)), "likelihoods": {}}

    @torch.no_grad()
    def compress(
        self, x: dict[str, torch.Tensor], coder: str = "zstd", groups: int = 1, threads: int | None = None
    ) -> dict:
        grid = self.grid_of(x)
        symbols = {n: s.cpu().numpy() for n, s in self._symbols(x).items()}
        cctx = zstandard.ZstdCompressor(level=self.zstd_level, threads=threads or 0)
        batch = next(iter(symbols.values())).shape[0]
        items = []
        for b in range(batch):
            strings = {}
            for name in self.level_names:
                s = symbols[name][b]
                width = 2 if s.size == 0 or (s.min() >= -(1 << 15) and s.max() < (1 << 15)) else 4
                strings[f"x.{name}"] = bytes([width]) + cctx.compress(s.astype(_DTYPES[width]).tobytes())
            items.append(
                {
                    "strings": strings,
                    "checksums": {"symbols": crc32_arrays(*(symbols[n][b] for n in self.level_names))},
                    "estimated_bits": None,
                }
            )
        return {"items": items, "shape": list(grid), "coder": "zstd"}

    @torch.no_grad()
    def decompress(
        self,
        strings: list[dict[str, bytes]],
        shape: Sequence[int],
        coder: str = "zstd",
        threads: int | None = None,
        checksums: list[dict] | None = None,
        device: str | torch.device = "cpu",
    ) -> dict:
        shapes = self.level_shapes(shape)
        dctx = zstandard.ZstdDecompressor()
        out: dict[str, list[torch.Tensor]] = {n: [] for n in self.level_names}
        for b, item in enumerate(strings):
            arrays = []
            for name in self.level_names:
                data = item.get(f"x.{name}")
                if data is None or len(data) < 1 or data[0] not in _DTYPES:
                    raise BitstreamError(f"substream x.{name} missing or with an unknown symbol width")
                dtype = _DTYPES[data[0]]
                expected = int(np.prod(shapes[name])) * dtype.itemsize
                raw = _one_frame(dctx, data[1:], expected, f"substream x.{name}")
                arrays.append(np.frombuffer(raw, dtype).astype(np.int32).reshape(shapes[name]))
            self.verify(
                "symbols", (checksums or [{}] * len(strings))[b].get("symbols"), crc32_arrays(*arrays)
            )
            for name, a in zip(self.level_names, arrays, strict=True):
                out[name].append(torch.from_numpy(a))
        symbols = {n: torch.stack(v).to(device) for n, v in out.items()}
        return {"x_hat": self._reconstruct(symbols), "y_hat": None}
