"""Codec registry in timm's manner: one decorator, one constructor."""

from __future__ import annotations

from collections.abc import Sequence

from codec.levels import FeatureLevel

_CODECS: dict[str, type] = {}


def register_codec(kind: str):
    def wrap(cls):
        if kind in _CODECS:
            raise ValueError(f"codec kind {kind!r} registered twice")
        cls.kind = kind
        _CODECS[kind] = cls
        return cls

    return wrap


def codec_kinds() -> list[str]:
    return sorted(_CODECS)


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
    """Build a codec of `kind` for `levels` of an encoder (its spec, or any object with `levels`, or the levels)."""
    from . import factorized, hyperprior, packed, uniform  # noqa: F401  (register the kinds)

    if kind not in _CODECS:
        raise KeyError(f"unknown codec kind {kind!r}; choose from {', '.join(codec_kinds())}")
    chosen = select_levels(spec, levels)
    if resolution is None:
        resolution = getattr(spec, "default_resolution", None)
    return _CODECS[kind](chosen, resolution=resolution, **hparams)
