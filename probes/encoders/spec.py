"""What an encoder produces: named feature levels with channels and stride.

This is the one interface between encoders and everything downstream (cache,
codec, necks), playing the role of timm's `feature_info`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from codec.levels import FeatureLevel  # re-exported: encoders describe their outputs in codec levels

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class EncoderSpec:
    """Everything known about an encoder before it is built."""

    name: str
    source: str  # package the model class comes from: "timm" or "sam2"
    family: str  # "hiera" (MAE, generalist) or "sam2" (segmentation-specialised)
    levels: tuple[FeatureLevel, ...]
    default_resolution: int
    resolution_multiple: int = 32  # inputs must be square multiples of this
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    description: str = ""
    model_id: str = field(default="", compare=False)  # timm model name or sam2 config path

    def level(self, name: str) -> FeatureLevel:
        for level in self.levels:
            if level.name == name:
                return level
        raise KeyError(f"encoder {self.name!r} has no level {name!r}; levels: {self.level_names}")

    @property
    def level_names(self) -> list[str]:
        return [level.name for level in self.levels]

    def shapes(self, resolution: int | None = None) -> dict[str, tuple[int, int, int]]:
        """C×H×W of every level for a square input of `resolution` pixels."""
        resolution = resolution or self.default_resolution
        return {level.name: level.shape(resolution) for level in self.levels}

    def check_resolution(self, resolution: int) -> int:
        if resolution <= 0 or resolution % self.resolution_multiple:
            raise ValueError(
                f"encoder {self.name!r}: resolution {resolution} must be a positive multiple of "
                f"{self.resolution_multiple}"
            )
        return resolution

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "family": self.family,
            "levels": [level.to_dict() for level in self.levels],
            "default_resolution": self.default_resolution,
            "mean": list(self.mean),
            "std": list(self.std),
        }
