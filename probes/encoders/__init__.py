"""Frozen vision encoders: registry, preprocessing, checkpoints, feature extraction and cache."""

from codec.devices import resolve_device

from .base import RANDOM_INIT, FrozenEncoder
from .cache import FeatureCache
from .checkpoints import CheckpointError
from .extract import extract_features
from .preprocess import IMAGE_SUFFIXES, ImageReadError, collect_images, load_image, sample_images_dir
from .registry import ENCODERS, bundled_weights, create_encoder, get_spec, register_encoder
from .spec import EncoderSpec, FeatureLevel

__all__ = [
    "ENCODERS",
    "IMAGE_SUFFIXES",
    "RANDOM_INIT",
    "CheckpointError",
    "EncoderSpec",
    "FeatureCache",
    "FeatureLevel",
    "FrozenEncoder",
    "ImageReadError",
    "bundled_weights",
    "collect_images",
    "create_encoder",
    "extract_features",
    "get_spec",
    "load_image",
    "register_encoder",
    "resolve_device",
    "sample_images_dir",
]
