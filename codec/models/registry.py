"""The codec kinds (`codec.registry.Registry`, timm's manner): one decorator, one constructor.

`codec.models` imports every kind's module, so each has registered itself before any lookup.
"""

from __future__ import annotations

from collections.abc import Sequence

from codec.levels import FeatureLevel
from codec.registry import Registry

CODECS: Registry[type] = Registry("codec kind", attribute="kind")
register_codec = CODECS.register  # @register_codec("hyperprior") on the class; sets its `kind`


def select_levels(spec, levels: Sequence[str] | None) -> list[FeatureLevel]:
    """The FeatureLevels to code, in the encoder's order (all of them by default).

    `spec` is anything with a `levels` sequence (an encoder spec, a feature cache) or the levels themselves.
    """
    available = list(spec.levels) if hasattr(spec, "levels") else list(spec)
    if not levels:
        return available
    by_name = {level.name: level for level in available}
    unknown = [name for name in levels if name not in by_name]
    if unknown:
        raise KeyError(f"unknown feature level(s) {unknown}; available: {list(by_name)}")
    if len(set(levels)) != len(levels):
        raise ValueError(f"feature levels repeated: {list(levels)}")
    return [level for level in available if level.name in set(levels)]


def create_codec(
    kind: str,
    spec,
    levels: Sequence[str] | None = None,
    resolution: int | None = None,
    **hparams,
):
    """Build a codec of `kind` for `levels` of an encoder (its spec, or any
    object with `levels`, or the levels)."""
    cls = CODECS.get(kind)
    chosen = select_levels(spec, levels)
    if resolution is None:
        resolution = getattr(spec, "default_resolution", None)
    return cls(chosen, resolution=resolution, **hparams)
