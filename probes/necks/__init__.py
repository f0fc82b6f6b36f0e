"""Trainable necks between (decoded) encoder features and frozen task heads."""

from .transformer import (
    NECK_SIZES,
    CrossNeck,
    Neck,
    anchor_grid,
    consumed_shape,
    resample_map,
    tokens_to_features,
)

__all__ = [
    "NECK_SIZES",
    "CrossNeck",
    "Neck",
    "anchor_grid",
    "consumed_shape",
    "resample_map",
    "tokens_to_features",
]
