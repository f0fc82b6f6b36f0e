"""The encoder of a pretrained built-in head: a tiny ViT with a convolutional stem.

    pixels B×3×(h·p)×(w·p) ─► log2(p) × [conv 3×3 / 2 → GELU] ─► h×w×C ─► + learned positions
                           ─► L pre-norm transformer layers ─► LayerNorm ─► tokens B×1×(h·w)×C

A ViT whose patchify layer is a stack of stride-2 convolutions ("Early
convolutions help transformers see better", Xiao et al., NeurIPS 2021):
small and quick to train from scratch on a few thousand images on a CPU,
where a 16×16 linear patch embedding is not. Its tokens are exactly the
head's `expects()` (one map, no CLS), so they serve both as the head's input
when it is pretrained end to end and as the distillation target of a neck
(`--kd`), as the backbone of an HF head does.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .spec import TokenSpec


class TinyViT(nn.Module):
    def __init__(
        self,
        grid: tuple[int, int],
        width: int,
        patch: int = 16,
        stem: tuple[int, ...] | list[int] = (16, 32),
        layers: int = 2,
        heads: int = 4,
        mlp_ratio: float = 2.0,
    ):
        super().__init__()
        steps = int(round(math.log2(patch)))
        if 2**steps != patch or steps < 1:
            raise ValueError(f"teacher patch size must be a power of two, got {patch}")
        stem = [int(c) for c in stem]
        if len(stem) != steps - 1:
            raise ValueError(
                f"a patch of {patch} px takes {steps} stride-2 convs: give {steps - 1} stem widths, got "
                f"{stem}"
            )
        self.grid, self.width, self.patch = (int(grid[0]), int(grid[1])), int(width), int(patch)
        channels = [3, *stem, self.width]
        convs: list[nn.Module] = []
        for cin, cout in zip(channels[:-1], channels[1:], strict=True):
            convs += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.GELU()]
        self.stem = nn.Sequential(*convs[:-1])  # no activation on the embedding itself, as a ViT's patchify
        self.pos = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], self.width))
        layer = nn.TransformerEncoderLayer(
            self.width,
            heads,
            int(mlp_ratio * self.width),
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # nested-tensor fast path is for inference with padding masks; we have none and want identical math
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(self.width)
        nn.init.trunc_normal_(self.pos, std=0.02)

    def spec(self) -> TokenSpec:
        return TokenSpec(self.grid, self.width, 1, False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.stem(pixels)
        if tuple(x.shape[-2:]) != self.grid:
            h, w = self.grid[0] * self.patch, self.grid[1] * self.patch
            raise ValueError(f"teacher input: expected B×3×{h}×{w} pixels, got {tuple(pixels.shape)}")
        x = x.flatten(2).transpose(1, 2) + self.pos
        return self.norm(self.blocks(x)).unsqueeze(1)
