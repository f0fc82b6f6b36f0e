"""What a codec codes: named feature levels with channels and stride.

The one description shared by encoders (which produce the levels), codecs (sized from them), the
feature cache and necks; it plays the role of timm's `feature_info`. It lives in the lowest layer
because the codec needs it and must not import the encoders.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureLevel:
    """One feature map: `channels` × (resolution / `stride`)²."""

    name: str
    channels: int
    stride: int

    def shape(self, resolution: int) -> tuple[int, int, int]:
        return (self.channels, resolution // self.stride, resolution // self.stride)

    def to_dict(self) -> dict:
        return {"name": self.name, "channels": self.channels, "stride": self.stride}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureLevel:
        return cls(str(d["name"]), int(d["channels"]), int(d["stride"]))


def grid_channels(level: FeatureLevel, grid_stride: int) -> int:
    """Channels of `level` after lossless rearrangement onto a stride-`grid_stride` grid (pixel unshuffle /
    shuffle, codec.models.transforms); ValueError if it does not fit."""
    if level.stride <= grid_stride:
        if grid_stride % level.stride:
            raise ValueError(
                f"level {level.name}: stride {level.stride} does not divide grid stride {grid_stride}"
            )
        return level.channels * (grid_stride // level.stride) ** 2
    factor = level.stride // grid_stride
    if level.stride % grid_stride or level.channels % (factor * factor):
        raise ValueError(
            f"level {level.name}: stride {level.stride} / {level.channels} channels cannot be "
            f"rearranged onto a stride-{grid_stride} grid"
        )
    return level.channels // (factor * factor)


def random_features(levels, resolution, *, batch: int = 1, seed: int = 0, scale: float = 1.0) -> dict:
    """Seeded Gaussian features {level: batch×C×H×W} of `levels` for a `resolution` (pixels: an int or
    (height, width)): the inputs of tests and benchmarks whose cost or checks do not depend on real images."""
    import torch  # here, not at the top: this module stays importable without torch

    height, width = (resolution, resolution) if isinstance(resolution, int) else resolution
    g = torch.Generator().manual_seed(seed)
    return {
        lv.name: torch.randn(batch, lv.channels, height // lv.stride, width // lv.stride, generator=g) * scale
        for lv in levels
    }
