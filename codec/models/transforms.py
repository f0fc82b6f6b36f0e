"""Analysis / synthesis transforms for several feature levels coded as one latent.

Every level is rearranged losslessly onto a common grid (stride `grid_stride`): finer levels by
space-to-depth (pixel_unshuffle), coarser ones by depth-to-space (pixel_shuffle). A 1×1 adapter
per level maps it to N channels; the adapters' outputs are concatenated and a small trunk
(1×1 conv, GDN (Ballé et al. 2016), 3×3 conv) makes the latent y. Synthesis mirrors it: a trunk, then one 1×1
head per level and the inverse rearrangement. Cost is dominated by the 1×1 convs at grid resolution,
the same as one 1×1 conv at each level's own resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from compressai.layers import GDN
from compressai.models.utils import conv
from torch import nn

from codec.levels import FeatureLevel, grid_channels


def to_grid(
    x: torch.Tensor, stride: int, grid_stride: int, affine: tuple[torch.Tensor, torch.Tensor] | None = None
) -> torch.Tensor:
    """Level → grid. affine = (shift, scale) per channel: to_grid(shift + x·scale) computed in the
    rearrangement's one pass (a strided read into the grid layout) instead of two, with bit-identical
    values (an elementwise op commutes with a permutation); `out=` allows no autograd."""
    if affine is None:
        if stride < grid_stride:
            return F.pixel_unshuffle(x, grid_stride // stride)
        if stride > grid_stride:
            return F.pixel_shuffle(x, stride // grid_stride)
        return x
    shift, scale = affine
    b, c, h, w = x.shape
    if stride == grid_stride:
        return torch.addcmul(shift[None, :, None, None], x, scale[None, :, None, None])
    if stride < grid_stride and not x.is_contiguous():
        # A channels-last level (SAM2's FPN gives fpn1 so): the affine in its own layout, then torch's
        # pixel_unshuffle (channels-last kernel), 6 ms instead of 18 for a 1×256×128×128 level (2 cores); the
        # strided pass below would first need a transposing copy. The same values (a permutation commutes
        # with an elementwise op), and the same layout as the training forward's normalize + pixel_unshuffle.
        affined = torch.addcmul(shift[None, :, None, None], x, scale[None, :, None, None])
        return F.pixel_unshuffle(affined, grid_stride // stride)
    x = x.contiguous()
    if stride < grid_stride:  # pixel_unshuffle's order: channel c·r² + i·r + j <- pixel (h·r + i, w·r + j)
        r = grid_stride // stride
        src = x.view(b, c, h // r, r, w // r, r).permute(0, 1, 3, 5, 2, 4)
        params = (1, c, 1, 1, 1, 1)
        out = x.new_empty(b, c, r, r, h // r, w // r)
        grid = (b, c * r * r, h // r, w // r)
    else:  # pixel_shuffle's order: pixel (h·r + i, w·r + j) <- channel c·r² + i·r + j
        r = stride // grid_stride
        c //= r * r
        src = x.view(b, c, r, r, h, w).permute(0, 1, 4, 2, 5, 3)
        shift, scale = (t.view(1, c, r, r, 1, 1).permute(0, 1, 4, 2, 5, 3) for t in (shift, scale))
        params = shift.shape
        out = x.new_empty(b, c, h, r, w, r)
        grid = (b, c, h * r, w * r)
    torch.addcmul(shift.reshape(params), src, scale.reshape(params), out=out)
    return out.view(grid)


def from_grid(x: torch.Tensor, stride: int, grid_stride: int) -> torch.Tensor:
    if stride < grid_stride:
        return F.pixel_shuffle(x, grid_stride // stride)
    if stride > grid_stride:
        return F.pixel_unshuffle(x, stride // grid_stride)
    return x


class MultiLevelAnalysis(nn.Module):
    """{level: B×C×H×W} (normalised) → y: B×M×(R/grid)×(R/grid)."""

    def __init__(self, levels: Sequence[FeatureLevel], N: int, M: int, grid_stride: int):
        super().__init__()
        self.levels = list(levels)
        self.grid_stride = grid_stride
        self.adapters = nn.ModuleDict(
            {level.name: nn.Conv2d(grid_channels(level, grid_stride), N, 1) for level in self.levels}
        )
        self.trunk = nn.Sequential(conv(N * len(self.levels), N, 1, 1), GDN(N), conv(N, M, 3, 1))

    def forward(self, x: dict[str, torch.Tensor], normalization: nn.Module | None = None) -> torch.Tensor:
        """x normalised, or raw with `normalization` (a FeatureNormalization): without autograd each level is
        then normalised in the same pass that rearranges it onto the grid (the codec's compress)."""
        if normalization is not None and torch.is_grad_enabled():
            x, normalization = normalization.normalize(x), None
        parts = [
            self.adapters[level.name](
                to_grid(
                    x[level.name],
                    level.stride,
                    self.grid_stride,
                    normalization.affine(level.name, x[level.name].dtype)
                    if normalization is not None
                    else None,
                )
            )
            for level in self.levels
        ]
        return self.trunk(torch.cat(parts, dim=1))


class MultiLevelSynthesis(nn.Module):
    """y_hat → {level: B×C×H×W} (normalised)."""

    def __init__(self, levels: Sequence[FeatureLevel], N: int, M: int, grid_stride: int):
        super().__init__()
        self.levels = list(levels)
        self.grid_stride = grid_stride
        self.trunk = nn.Sequential(conv(M, N, 3, 1), GDN(N, inverse=True), conv(N, N, 1, 1))
        self.heads = nn.ModuleDict(
            {level.name: nn.Conv2d(N, grid_channels(level, grid_stride), 1) for level in self.levels}
        )

    def forward(self, y_hat: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = self.trunk(y_hat)
        return {
            level.name: from_grid(self.heads[level.name](shared), level.stride, self.grid_stride)
            for level in self.levels
        }
