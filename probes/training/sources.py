"""Where a neck's input features come from: a frozen encoder, a feature cache, and/or a codec.

    samples ──► EncoderFeatures (encoder.preprocess → encoder)          ─┐
    samples ──► CachedFeatures  (rows of a `featcodec extract` cache)   ─┼─► {level: B×C×H×W}
                                   └─► CodecRoundTrip (compress → bits → decompress) ─► decoded features

Each source says in `describe()` what a results file must record to reproduce it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from codec.bitstream import BYTE_SPLIT
from codec.files import sha256_file
from probes.encoders import FeatureCache, FrozenEncoder


def sha256_dir(path: str | os.PathLike) -> str:
    """Hash of a model directory: its config, weights and vocabulary files, by name and content."""
    path = Path(path)
    h = hashlib.sha256()
    for file in sorted(
        p
        for p in path.iterdir()
        if p.is_file() and p.suffix in (".json", ".safetensors", ".bin", ".txt", ".model")
    ):
        h.update(file.name.encode() + b"\0" + sha256_file(file).encode())
    return h.hexdigest()


class FeatureSource:
    levels: dict[str, tuple[int, int, int]]  # level → (C, H, W) at the working resolution
    resolution: int

    def features(self, samples: Sequence[dict]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def describe(self) -> dict:
        raise NotImplementedError


def stored_rows(index: dict, samples: Sequence[dict], missing: Callable[[str], Exception]) -> list:
    """Where a stored split (neck inputs, decoded streams) holds each sample, by its id; `missing(repr(id))`
    is raised for the first one it does not hold."""
    try:
        return [index[str(s["id"])] for s in samples]
    except KeyError as e:
        raise missing(repr(e.args[0])) from None


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

    def __init__(
        self, cache: FeatureCache, levels: Sequence[str], dataset=None, device: str | torch.device = "cpu"
    ):
        if cache.manifest.get("crop"):
            raise ValueError(
                f"feature cache {cache.path} holds crops (codec training data), not the whole maps a "
                "neck reads"
            )
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
                    f"sample {s.get('id')!r} carries no image path, so it cannot be matched to the feature "
                    "cache "
                    f"{self.cache.path} (pose crops and .mat datasets need --checkpoint/--random-init "
                    "instead)"
                )
            row = self._rows.get(str(Path(path).resolve()))
            if row is None:
                raise ValueError(
                    f"{path}: image not in the feature cache {self.cache.path} (featcodec extract it)"
                )
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


class CodedFeatures(FeatureSource):
    """Features that went through real bits (a feature codec, or a picture codec: probes.anchors); `bits` and
    `images` are counted by the subclass, the rate is per pixel of the encoder's R×R input."""

    inner: FeatureSource
    bits: int = 0
    images: int = 0

    @property
    def bits_per_pixel(self) -> float | None:
        """Whole-stream bits (header included) per pixel of the encoder's R×R input image."""
        return self.bits / (self.images * self.resolution**2) if self.images else None

    def describe(self) -> dict:
        return self.inner.describe()


class CodecRoundTrip(CodedFeatures):
    """Features through a codec's real `.fcb` streams (encode → bytes → decode); counts the bits.

    The inner source must produce every level the codec codes; the neck then
    reads `levels` (a subset: a level the codec did not code would leak clean
    features past the bitstream).
    """

    def __init__(
        self, inner: FeatureSource, codec, levels: Sequence[str] | None = None, coder: str | None = None
    ):
        from codec.pipeline import DEFAULT_CODER

        self.inner = inner
        self.codec = codec
        self.coder = coder or DEFAULT_CODER
        coded = list(codec.model.level_names)
        levels = list(levels or coded)
        uncoded = [n for n in levels if n not in coded]
        if uncoded:
            raise ValueError(f"codec {codec.path}: level(s) {uncoded} are not coded by it (it codes {coded})")
        self.levels = {n: inner.levels[n] for n in levels}
        self.resolution = inner.resolution
        self.bits = 0
        self.payload_bits = 0
        self.images = 0
        # where the bytes go, summed over every stream: container + JSON header, hyper-latent z, main latent
        self.stream_bytes = dict.fromkeys(BYTE_SPLIT, 0)

    def features(self, samples: Sequence[dict]) -> dict[str, torch.Tensor]:
        from codec.pipeline import round_trip

        clean = self.inner.features(samples)
        trip = round_trip(
            self.codec, clean, coder=self.coder
        )  # one real stream per image, as `featcodec encode` writes them
        self.bits += trip.bits
        self.payload_bits += trip.payload_bits
        self.images += len(samples)
        for part, n in trip.stream_bytes.items():
            self.stream_bytes[part] += n
        device = next(iter(clean.values())).device
        return {name: trip.features[name].to(device) for name in self.levels}

    def describe_codec(self) -> dict:
        c = self.codec.config
        return {
            "dir": str(Path(self.codec.path).resolve()),
            "sha256": sha256_dir(self.codec.path),
            "codec_id": c.get("codec_id"),
            "config_hash": c.get("config_hash"),
            "kind": c.get("kind"),
            "lambda": c.get("lambda"),
            # a packed standard anchor (codec.models.packed): its family for the report, its rate point
            "anchor": f"packed-{self.codec.model.standard}"
            if getattr(self.codec.model, "standard", None)
            else None,
            "qp": (c.get("hparams") or {}).get("qp"),
            "coder": self.coder,
            "levels": list(self.codec.model.level_names),
            "bits": self.bits,
            "payload_bits": self.payload_bits,
            "images": self.images,
            "bpp": self.bits_per_pixel,
            "payload_bpp": self.payload_bits / (self.images * self.resolution**2) if self.images else None,
            "stream_bytes": dict(self.stream_bytes),
            "stream_bytes_per_image": (
                {k: v / self.images for k, v in self.stream_bytes.items()} if self.images else None
            ),
        }


def load_codec_dir(codec_dir: str | os.PathLike, source: FeatureSource):
    """The codec saved in `codec_dir`, checked against the features it will code."""
    from codec.codec_dir import load_codec

    codec = load_codec(codec_dir)
    enc = source.describe()
    c = codec.config
    if c["encoder"] != enc["name"] or c["weights_id"] != enc["weights_id"]:
        raise ValueError(
            f"codec {codec_dir} was trained for {c['encoder']} ({c['weights_id'][:16]}), "
            f"these features come from {enc['name']} ({enc['weights_id'][:16]})"
        )
    if c.get("resolution") not in (None, source.resolution):
        raise ValueError(
            f"codec {codec_dir} codes {c['resolution']} px inputs, the encoder runs at {source.resolution}"
        )
    return codec


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
    codec: str | os.PathLike | None = None,
    coder: str | None = None,
) -> FeatureSource:
    """An encoder run on the fly (one of `checkpoint`, `pretrained`, `random_init`) or a feature cache,
    optionally through a codec (the neck then reads `levels`, default: every coded level)."""
    if codec:
        from codec.codec_dir import read_codec_config

        coded = [lv["name"] for lv in read_codec_config(codec)["levels"]]
        inner = build_feature_source(
            encoder=encoder,
            checkpoint=checkpoint,
            random_init=random_init,
            features=features,
            resolution=resolution,
            levels=coded,
            dataset=dataset,
            device=device,
            pretrained=pretrained,
        )
        return CodecRoundTrip(inner, load_codec_dir(codec, inner), levels, coder)
    from probes.encoders import create_encoder, get_spec

    if features:
        if checkpoint or random_init or pretrained:
            raise ValueError(
                "give one feature source: --features, or an encoder with --checkpoint/--random-init"
            )
        cache = FeatureCache(features)
        if encoder and encoder != cache.encoder:
            raise ValueError(
                f"--features {features}: the cache holds {cache.encoder!r} features, not {encoder!r}"
            )
        return CachedFeatures(cache, list(levels) or cache.level_names, dataset, device)
    if not encoder:
        raise ValueError("--encoder is required (or --features CACHE)")
    spec = get_spec(encoder)
    for name in levels:
        spec.level(name)  # KeyError naming the encoder's levels
    model = create_encoder(
        encoder,
        checkpoint=checkpoint,
        pretrained=pretrained,
        random_init=random_init,
        resolution=resolution,
        device=device,
    )
    return EncoderFeatures(model, list(levels) or spec.level_names, checkpoint)


def feature_bytes(source: FeatureSource) -> int:
    """Bytes of one sample's float32 features from `source`."""
    total = 0
    for c, h, w in source.levels.values():
        total += 4 * c * h * w
    return total


class PrecomputedFeatures(FeatureSource):
    """Every sample's features computed once, before the first training step, then read from memory.

    A frozen encoder (and a deterministic codec) gives each sample the same features at every visit, so a
    neck trained for several epochs over a small set need not run them again (in the embedded study the
    encoder forward was ~40 % of a neck step). They are computed in dataset order and fixed batches — the
    same numbers whether a run starts or resumes, on every DDP rank.
    """

    def __init__(
        self, inner: FeatureSource, dataset, *, batch_size: int = 16, progress: bool = False, targets=None
    ):
        from torch.utils.data import DataLoader

        from codec.progress import progress as progress_bar
        from probes.data import collate_samples

        self.inner = inner
        self.levels = dict(inner.levels)
        self.resolution = inner.resolution
        self._rows: dict = {}
        self.samples: list[dict] = []  # dataset order, without their images: what the losses read
        self.targets: dict | None = {} if targets is not None else None  # {sample id: targets(samples)[j]}
        loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_samples)
        for samples in progress_bar(loader, desc="features", unit="batch", disable=not progress):
            with torch.no_grad():
                batch = inner.features(samples)
                extra = targets(samples) if targets is not None else None
            for j, sample in enumerate(samples):
                self._rows[sample["id"]] = {name: t[j].clone() for name, t in batch.items()}
                if extra is not None:
                    self.targets[sample["id"]] = extra[j].clone()
                self.samples.append({k: v for k, v in sample.items() if k != "image"})
        if len(self._rows) != len(dataset):
            raise ValueError(
                f"{len(dataset)} samples but {len(self._rows)} distinct sample ids: cannot precompute"
            )

    def batches(self, sampler):
        """The samples of each batch of index lists from `sampler`, from memory (no image is read again)."""
        for indexes in sampler:
            yield [self.samples[i] for i in indexes]

    def features(self, samples: Sequence[dict]) -> dict[str, torch.Tensor]:
        rows = [self._rows[s["id"]] for s in samples]
        return {name: torch.stack([r[name] for r in rows]) for name in self.levels}

    def describe(self) -> dict:
        return self.inner.describe()

    def __getattr__(self, name: str):  # bits_per_pixel, describe_codec, ... of the inner source
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
