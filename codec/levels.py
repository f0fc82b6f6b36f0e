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
