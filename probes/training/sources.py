"""Where a neck's input features come from: a frozen encoder, a feature cache, and/or a codec.

    samples ──► EncoderFeatures (encoder.preprocess → encoder)          ─┐
    samples ──► CachedFeatures  (rows of a `featcodec extract` cache)   ─┼─► {level: B×C×H×W}
                                   └─► CodecRoundTrip (compress → bits → decompress) ─► decoded features

Each source says in `describe()` what a results file must record to reproduce it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from probes.encoders import FeatureCache, FrozenEncoder


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_dir(path: str | os.PathLike) -> str:
    """Hash of a model directory: its config.json and weights files, by name and content."""
    path = Path(path)
    h = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors")):
        h.update(file.name.encode() + b"\0" + sha256_file(file).encode())
    return h.hexdigest()


class FeatureSource:
    levels: dict[str, tuple[int, int, int]]  # level → (C, H, W) at the working resolution
    resolution: int

    def features(self, samples: Sequence[dict]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def describe(self) -> dict:
        raise NotImplementedError


class EncoderFeatures(FeatureSource):
    """Run the frozen encoder on each sample's image."""

    def __init__(self, encoder: FrozenEncoder, levels: Sequence[str], checkpoint: str | None = None):
        self.encoder = encoder
        self.resolution = encoder.resolution
        shapes = encoder.spec.shapes(encoder.resolution)
        self.levels = {name: shapes[name] for name in levels}
        self.checkpoint = checkpoint
        self.device = next(encoder.parameters()).device

    def features(self, samples: Sequence[dict]) -> dict[str, torch.Tensor]:
        pixels = torch.stack([self.encoder.preprocess(s["image"]) for s in samples]).to(self.device)
        maps = self.encoder(pixels)
        # inference tensors out of the frozen encoder: clone so autograd may use them downstream
        return {name: maps[name].clone() for name in self.levels}

    def describe(self) -> dict:
        return {
            "name": self.encoder.spec.name,
            "weights_id": self.encoder.weights_id,
            "random_init": self.encoder.random_init,
            "checkpoint": None if self.checkpoint is None else str(Path(self.checkpoint).resolve()),
            "resolution": self.resolution,
            "spec": self.encoder.spec.to_dict(),
        }


def sample_image_path(sample: dict, dataset=None) -> str | None:
    """The image file a sample was read from, where the dataset can say (`image_path(id)`)."""
    for key in ("path", "image_path", "file"):
        if sample.get(key):
            return str(sample[key])
    # pose samples are person crops, not the cached whole images
    if dataset is not None and hasattr(dataset, "image_path") and getattr(dataset, "task", "") != "pose":
        return str(dataset.image_path(sample["id"]))
    return None


class CachedFeatures(FeatureSource):
    """Read a sample's features from a feature cache, matched by image path."""

    def __init__(self, cache: FeatureCache, levels: Sequence[str], dataset=None, device: str | torch.device = "cpu"):
        self.cache = cache
        self.dataset = dataset
        self.resolution = cache.resolution
        shapes = {lv.name: lv.shape(cache.resolution) for lv in cache.levels}
        missing = [n for n in levels if n not in shapes]
        if missing:
            raise ValueError(f"feature cache {cache.path} has no level(s) {missing}; it holds {list(shapes)}")
        self.levels = {name: shapes[name] for name in levels}
        self.device = torch.device(device)
        self._rows = {str(Path(p).resolve()): i for i, p in enumerate(cache.image_paths)}

    def features(self, samples: Sequence[dict]) -> dict[str, torch.Tensor]:
        rows = []
        for s in samples:
            path = sample_image_path(s, self.dataset)
            if path is None:
                raise ValueError(
                    f"sample {s.get('id')!r} carries no image path, so it cannot be matched to the feature cache "
                    f"{self.cache.path} (pose crops and .mat datasets need --checkpoint/--random-init instead)"
                )
            row = self._rows.get(str(Path(path).resolve()))
            if row is None:
                raise ValueError(f"{path}: image not in the feature cache {self.cache.path} (featcodec extract it)")
            rows.append(self.cache.get(row, list(self.levels)))
        return {n: torch.stack([r[n] for r in rows]).float().to(self.device) for n in self.levels}

    def describe(self) -> dict:
        m = self.cache.manifest
        return {
            "name": self.cache.encoder,
            "weights_id": self.cache.weights_id,
            "random_init": self.cache.random_init,
            "features": str(self.cache.path.resolve()),
            "resolution": self.resolution,
            "spec": m.get("encoder_spec"),
        }


class CodecRoundTrip(FeatureSource):
    """Features passed through a codec's real compress → bitstream → decompress; counts the bits."""

    def __init__(self, inner: FeatureSource, codec_dir: str | os.PathLike):
        self.inner = inner
        self.levels, self.resolution = inner.levels, inner.resolution
        self.codec_dir = Path(codec_dir)
        self.codec = load_codec_dir(self.codec_dir)
        self.bits = 0
        self.images = 0

    def features(self, samples: Sequence[dict]) -> dict[str, torch.Tensor]:
        clean = self.inner.features(samples)
        decoded, bits = decode_through_codec(self.codec, clean)
        self.bits += bits
        self.images += len(samples)
        return {name: decoded[name] for name in self.levels}

    @property
    def bits_per_pixel(self) -> float | None:
        """Stream bits per pixel of the encoder's R×R input image."""
        return self.bits / (self.images * self.resolution**2) if self.images else None

    def describe(self) -> dict:
        return self.inner.describe()

    def describe_codec(self) -> dict:
        return {
            "dir": str(self.codec_dir.resolve()),
            "sha256": sha256_dir(self.codec_dir),
            "bits": self.bits,
            "images": self.images,
            "bpp": self.bits_per_pixel,
        }


def load_codec_dir(codec_dir: str | os.PathLike):
    """The saved codec in `codec_dir`, through the codec layer's own loader."""
    codec_dir = Path(codec_dir)
    if not codec_dir.is_dir():
        raise FileNotFoundError(f"{codec_dir}: codec directory not found")
    try:
        from codec.models import load_codec
    except ImportError as e:  # the codec layer is not in this checkout
        raise RuntimeError(f"--codec {codec_dir}: this featcodec has no codec.models.load_codec ({e})") from e
    return load_codec(codec_dir)


def decode_through_codec(codec, features: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """Real compress → decompress of a batch of features; returns (decoded features, stream bits).

    Streams are per image (`compress` returns one byte string per batch item), so
    `bits` is the sum of their real lengths, not the model's rate estimate.
    """
    with torch.no_grad():
        coded = codec.compress(features)
        decoded = codec.decompress(coded)
    bits = 8 * sum(len(s) for s in _stream_bytes(coded))
    return {k: v.clone().float() for k, v in decoded.items()}, bits


def _stream_bytes(coded) -> list[bytes]:
    if isinstance(coded, (bytes, bytearray)):
        return [bytes(coded)]
    if isinstance(coded, dict):
        return _stream_bytes(coded["strings"] if "strings" in coded else list(coded.values()))
    if isinstance(coded, (list, tuple)):
        return [b for item in coded if not isinstance(item, (int, float, torch.Size)) for b in _stream_bytes(item)]
    return []


def build_feature_source(
    *,
    encoder: str | None,
    checkpoint: str | None,
    random_init: bool,
    features: str | None,
    resolution: int | None,
    levels: Sequence[str],
    dataset=None,
    device: str | torch.device = "cpu",
    pretrained: bool = False,
) -> FeatureSource:
    """An encoder run on the fly (one of `checkpoint`, `pretrained`, `random_init`) or a feature cache."""
    from probes.encoders import create_encoder, get_spec

    if features:
        if checkpoint or random_init or pretrained:
            raise ValueError("give one feature source: --features, or an encoder with --checkpoint/--random-init")
        cache = FeatureCache(features)
        if encoder and encoder != cache.encoder:
            raise ValueError(f"--features {features}: the cache holds {cache.encoder!r} features, not {encoder!r}")
        return CachedFeatures(cache, list(levels) or cache.level_names, dataset, device)
    if not encoder:
        raise ValueError("--encoder is required (or --features CACHE)")
    spec = get_spec(encoder)
    for name in levels:
        spec.level(name)  # KeyError naming the encoder's levels
    model = create_encoder(
        encoder, checkpoint=checkpoint, pretrained=pretrained, random_init=random_init, resolution=resolution,
        device=device,
    )
    return EncoderFeatures(model, list(levels) or spec.level_names, checkpoint)
