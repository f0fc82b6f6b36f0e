"""Per-channel feature normalisation stored in the codec, so one λ scale fits every encoder.

Feature statistics differ by orders of magnitude between encoders and levels (SAM2's FPN vs
Hiera's last stage); the codec codes (x - mean) / std and the distortion is the MSE there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from codec.levels import FeatureLevel


class FeatureNormalization(nn.Module):
    def __init__(self, levels: Sequence[FeatureLevel], eps: float = 1e-6):
        super().__init__()
        self.names = [level.name for level in levels]
        self.eps = eps
        for level in levels:
            self.register_buffer(f"{level.name}_mean", torch.zeros(level.channels))
            self.register_buffer(f"{level.name}_std", torch.ones(level.channels))

    def _stats(self, name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = getattr(self, f"{name}_mean").to(x.dtype)[None, :, None, None]
        std = getattr(self, f"{name}_std").to(x.dtype)[None, :, None, None]
        return mean, std

    def affine(self, name: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(shift, scale) per channel of level `name`: normalised = shift + x·scale."""
        mean = getattr(self, f"{name}_mean").to(dtype)
        std = getattr(self, f"{name}_std").to(dtype)
        return -mean / std, 1 / std

    def normalize(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for name in self.names:
            shift, scale = self.affine(name, x[name].dtype)
            # one pass over the features
            out[name] = torch.addcmul(shift[None, :, None, None], x[name], scale[None, :, None, None])
        return out

    def denormalize(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for name in self.names:
            mean, std = self._stats(name, x[name])
            out[name] = x[name] * std + mean
        return out

    @torch.no_grad()
    def denormalize_(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """In place (decoders: no autograd, and one copy of the features fewer at peak)."""
        for name in self.names:
            mean, std = self._stats(name, x[name])
            x[name].mul_(std).add_(mean)
        return x

    @torch.no_grad()
    def fit(self, batches: Iterable[dict[str, torch.Tensor]]) -> int:
        """Set mean/std from batches of {level: B×C×H×W} (float64 sums); returns items seen."""
        sums = {n: 0.0 for n in self.names}
        squares = {n: 0.0 for n in self.names}
        counts = {n: 0 for n in self.names}
        items = 0
        for batch in batches:
            items += next(iter(batch.values())).shape[0]
            for name in self.names:
                x = batch[name].to(torch.float64)
                sums[name] = sums[name] + x.sum(dim=(0, 2, 3))
                squares[name] = squares[name] + (x * x).sum(dim=(0, 2, 3))
                counts[name] += x.shape[0] * x.shape[2] * x.shape[3]
        if not items:
            raise ValueError("no features to fit the normalisation on")
        for name in self.names:
            mean = sums[name] / counts[name]
            var = (squares[name] / counts[name] - mean * mean).clamp_min(0)
            getattr(self, f"{name}_mean").copy_(mean.float())
            getattr(self, f"{name}_std").copy_(var.sqrt().clamp_min(self.eps).float())
        return items
