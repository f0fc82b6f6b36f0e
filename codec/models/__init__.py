"""Learned codecs for multi-level encoder features, and the baselines they must beat.

    create_codec("hyperprior", spec, levels=["fpn0", "fpn1", "fpn2"], resolution=1024, N=128, M=192)

kinds: "hyperprior" (mean-scale, Minnen et al. 2018), "factorized" (Ballé et al. 2017),
"uniform" (per-channel uniform quantisation + zstd); the standard anchors "vvc", "hevc", "av1"
(features packed into frames, codec.models.packed).
"""

from .base import FeatureCodec
from .factorized import FactorizedFeatureCodec
from .hyperprior import MeanScaleFeatureHyperprior
from .packed import PACKED_KINDS, PackedFeatureCodec
from .registry import CODECS, create_codec, register_codec
from .uniform import UniformZstdCodec

__all__ = [
    "CODECS",
    "FactorizedFeatureCodec",
    "FeatureCodec",
    "MeanScaleFeatureHyperprior",
    "PACKED_KINDS",
    "PackedFeatureCodec",
    "UniformZstdCodec",
    "create_codec",
    "register_codec",
]
