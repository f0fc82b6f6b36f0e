"""The probing neck: encoder feature maps → exactly the tokens a frozen head expects.

Following "How Universal Are SAM2 Features?" (PCS 2025), a small trainable
transformer adapts frozen (possibly decoded) encoder features to a frozen,
pretrained task head; how well it can, per task, measures what information the
features hold. Data flow (one or several levels, fused on one grid):

    {level: B×C_l×H_l×W_l} ──resample to anchor grid──► LN → Linear(C_l→d) (+ level embedding) ──Σ──►
        B×N×d + learnable positions (interpolated if the grid changes) [+ CLS]
        ──► L × pre-norm TransformerEncoderLayer ──► LN
        ──► patch tokens resampled to the head grid h×w ──► M × Linear(d→width)
        ──► B×M×T×width   (= head.expects(); T = h·w [+1 CLS])

The anchor (working) grid is the grid of the chosen level whose token count is
closest to the head's, so the attention cost stays that of the head's own ViT.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from probes.heads.spec import TokenSpec

NECK_SIZES = {"neck-2L": 2, "neck-4L": 4, "neck-6L": 6}


def resample_map(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """B×C×H×W → B×C×size: area averaging when shrinking, bilinear when growing."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _anchor_level(in_shapes: Mapping[str, tuple[int, int, int]], out: TokenSpec | int) -> str:
    target = out if isinstance(out, int) else out.grid[0] * out.grid[1]
    return min(in_shapes, key=lambda n: abs(math.log(in_shapes[n][1] * in_shapes[n][2] / target)))


def anchor_grid(in_shapes: Mapping[str, tuple[int, int, int]], head_tokens: int) -> tuple[int, int]:
    """The working grid a neck on `in_shapes` uses for a head of `head_tokens` patch tokens."""
    return tuple(in_shapes[_anchor_level(in_shapes, head_tokens)][1:])


def consumed_shape(shape: tuple[int, int, int], grid: tuple[int, int]) -> tuple[int, int, int]:
    """The shape of a level after what the neck's first operation would do to it and is exact to do
    beforehand:
    area-averaged onto `grid` when it covers the grid (resample_map
    shrinks), else kept (the neck grows it)."""
    c, h, w = shape
    return (c, *grid) if h >= grid[0] and w >= grid[1] else (c, h, w)


class Neck(nn.Module):
    """Trainable transformer neck; `in_shapes` = {level: (C, H, W)} it is trained on."""

    def __init__(
        self,
        in_shapes: Mapping[str, tuple[int, int, int]],
        out: TokenSpec,
        *,
        layers: int = 2,
        dim: int = 256,
        heads: int = 8,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        if not in_shapes:
            raise ValueError("a neck needs at least one input level")
        if layers < 1:
            raise ValueError(f"neck layers must be >= 1, got {layers}")
        if dim % heads:
            raise ValueError(f"neck width {dim} is not divisible by {heads} attention heads")
        self.in_shapes = {name: tuple(int(v) for v in shape) for name, shape in in_shapes.items()}
        self.out = out
        self.layers, self.dim, self.heads, self.mlp_ratio = layers, dim, heads, mlp_ratio
        self.anchor = _anchor_level(self.in_shapes, out)
        self.grid = self.in_shapes[self.anchor][1:]

        self.embed = nn.ModuleDict(
            {
                name: nn.Sequential(nn.LayerNorm(c), nn.Linear(c, dim))
                for name, (c, _, _) in self.in_shapes.items()
            }
        )
        self.level_embed = (
            nn.Parameter(torch.zeros(len(self.in_shapes), dim)) if len(self.in_shapes) > 1 else None
        )
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, *self.grid))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if out.cls_token else None
        layer = nn.TransformerEncoderLayer(
            dim,
            heads,
            int(dim * mlp_ratio),
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.ModuleList(nn.Linear(dim, out.width) for _ in range(out.maps))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        if self.level_embed is not None:
            nn.init.trunc_normal_(self.level_embed, std=0.02)

    @property
    def levels(self) -> list[str]:
        return list(self.in_shapes)

    def config(self) -> dict:
        return {
            "in_shapes": {name: list(shape) for name, shape in self.in_shapes.items()},
            "out": self.out.to_dict(),
            "layers": self.layers,
            "dim": self.dim,
            "heads": self.heads,
            "mlp_ratio": self.mlp_ratio,
        }

    @classmethod
    def from_config(cls, config: dict) -> Neck:
        return cls(
            {name: tuple(shape) for name, shape in config["in_shapes"].items()},
            TokenSpec.from_dict(config["out"]),
            layers=config["layers"],
            dim=config["dim"],
            heads=config["heads"],
            mlp_ratio=config["mlp_ratio"],
        )

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = [name for name in self.in_shapes if name not in features]
        if missing:
            raise KeyError(f"neck input lacks level(s) {missing}; it was built for {self.levels}")
        # the anchor grid follows the input (another resolution ⇒ interpolated positions)
        grid = tuple(features[self.anchor].shape[-2:])
        x = 0
        for i, name in enumerate(self.in_shapes):
            fmap = resample_map(features[name], grid)
            tokens = self.embed[name](fmap.flatten(2).transpose(1, 2))
            x = x + (tokens + self.level_embed[i] if self.level_embed is not None else tokens)
        pos = (
            self.pos_embed if grid == self.grid else F.interpolate(self.pos_embed, size=grid, mode="bicubic")
        )
        x = x + pos.flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.norm(self.blocks(x))

        cls, patches = (x[:, :1], x[:, 1:]) if self.cls_token is not None else (None, x)
        b = patches.shape[0]
        patches = resample_map(patches.transpose(1, 2).reshape(b, self.dim, *grid), self.out.grid)
        patches = patches.flatten(2).transpose(1, 2)
        x = torch.cat([cls, patches], dim=1) if cls is not None else patches
        return torch.stack([proj(x) for proj in self.proj], dim=1)


def tokens_to_features(tokens: torch.Tensor, spec: TokenSpec, name: str = "neck") -> dict[str, torch.Tensor]:
    """A neck's output as a feature map for a second neck: last map, CLS dropped, B×C×h×w."""
    spec.check(tokens, "neck output")
    patches = tokens[:, -1, int(spec.cls_token) :]
    return {name: patches.transpose(1, 2).reshape(tokens.shape[0], spec.width, *spec.grid)}


class CrossNeck(nn.Module):
    """A frozen first neck (adapted to task A) followed by a trainable second neck (task B).

    The cross-neck analysis of the paper: features pass two adaptations, each
    a bottleneck; the second neck only sees what the first kept.
    """

    def __init__(self, first: Neck, second: Neck):
        super().__init__()
        if list(second.in_shapes) != ["neck"]:
            raise ValueError(f"the second neck of a cross-neck must read level 'neck', not {second.levels}")
        self.first = first.requires_grad_(False).eval()
        self.second = second
        self.out = second.out

    def train(self, mode: bool = True) -> CrossNeck:
        super().train(mode)
        self.first.eval()  # frozen
        return self

    @staticmethod
    def second_in_shapes(first: Neck) -> dict[str, tuple[int, int, int]]:
        return {"neck": (first.out.width, *first.out.grid)}

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            first = self.first(features)
        return self.second(tokens_to_features(first, self.first.out))
