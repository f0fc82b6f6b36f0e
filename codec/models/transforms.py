"""Analysis / synthesis transforms for several feature levels coded as one latent.

Every level is rearranged losslessly onto a common grid (stride `grid_stride`): finer levels by
space-to-depth (pixel_unshuffle), coarser ones by depth-to-space (pixel_shuffle). A 1×1 adapter
per level maps it to N channels; the adapters' outputs are concatenated and a small trunk
(1×1 conv, GDN (Ballé et al. 2016), 3×3 conv) makes the latent y. Synthesis mirrors it: a trunk, then one 1×1
head per level and the inverse rearrangement. Cost is dominated by the 1×1 convs at grid resolution,
the same as one 1×1 conv at each level's own resolution.

`adapter_rank` (optional) makes the analysis cheaper for levels finer than the grid: such a level is first
projected to `adapter_rank` channels by a 1×1 conv at its own resolution, then rearranged, then adapted
(a factorised adapter: the same per-pixel projection for each of the r² pixels of a grid cell). SAM2's own
mask decoder reads its stride-4 and stride-8 levels so, through 256 → 32 and 256 → 64 projections. For
SAM2.1's fpn0 at 1024 px (256 channels, r = 4) the adapter's 4.3 GFLOP become 0.8 at rank 16; the
normalisation folds into the projection's weights, so compress reads that level once. Synthesis is not
changed: the encoder gets cheaper, the decoder (and the stream format) stays as it was. A rank below the
level's per-pixel dimension costs rate (bench/RESULTS.md, "A cheaper analysis"), so it is off by default.
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


def projected(level: FeatureLevel, grid_stride: int, rank: int | None) -> bool:
    """Whether the analysis projects `level` to `rank` channels before the grid: only a level finer than
    the grid (a coarser one is already at most C channels per cell) with more channels than `rank`."""
    return rank is not None and level.stride < grid_stride and rank < level.channels


def _project(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 1×1 convolution (weight k×C). On a contiguous NCHW level one batched GEMM over the level as it lies
    (a k×C by C×HW product: the level is read once, no layout conversion); a channels-last level keeps the
    convolution, whose kernel reads that layout."""
    if not x.is_contiguous():
        return F.conv2d(x, weight[:, :, None, None], bias)
    b, c, h, w = x.shape
    flat = x.view(b, c, h * w)
    out = torch.matmul(weight, flat)
    if bias is not None:
        out += bias[:, None]
    return out.view(b, -1, h, w)


class MultiLevelAnalysis(nn.Module):
    """{level: B×C×H×W} (normalised) → y: B×M×(R/grid)×(R/grid)."""

    def __init__(
        self,
        levels: Sequence[FeatureLevel],
        N: int,
        M: int,
        grid_stride: int,
        adapter_rank: int | None = None,
    ):
        super().__init__()
        self.levels = list(levels)
        self.grid_stride = grid_stride
        self.projections = nn.ParameterDict(
            {
                level.name: nn.Parameter(torch.empty(adapter_rank, level.channels))
                for level in self.levels
                if projected(level, grid_stride, adapter_rank)
            }
        )
        for weight in self.projections.values():  # as nn.Conv2d initialises a 1×1 convolution's weight
            nn.init.kaiming_uniform_(weight, a=5**0.5)
        self.adapters = nn.ModuleDict(
            {
                level.name: nn.Conv2d(
                    grid_channels(
                        FeatureLevel(level.name, adapter_rank, level.stride)
                        if level.name in self.projections
                        else level,
                        grid_stride,
                    ),
                    N,
                    1,
                )
                for level in self.levels
            }
        )
        self.trunk = nn.Sequential(conv(N * len(self.levels), N, 1, 1), GDN(N), conv(N, M, 3, 1))

    def _level(self, level: FeatureLevel, x: torch.Tensor, normalization: nn.Module | None) -> torch.Tensor:
        affine = normalization.affine(level.name, x.dtype) if normalization is not None else None
        if level.name in self.projections:
            weight, bias = self.projections[level.name], None
            if affine is not None:  # W(shift + x·scale) = (W·diag(scale)) x + W·shift: one read of the level
                shift, scale = affine
                weight, bias = weight * scale, weight @ shift
            return to_grid(_project(x, weight, bias), level.stride, self.grid_stride)
        return to_grid(x, level.stride, self.grid_stride, affine)

    def forward(self, x: dict[str, torch.Tensor], normalization: nn.Module | None = None) -> torch.Tensor:
        """x normalised, or raw with `normalization` (a FeatureNormalization): without autograd each level is
        then normalised in the same pass that rearranges (or projects) it onto the grid (the codec's
        compress)."""
        if normalization is not None and torch.is_grad_enabled():
            x, normalization = normalization.normalize(x), None
        parts = [
            self.adapters[level.name](self._level(level, x[level.name], normalization))
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
