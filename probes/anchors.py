"""Remote inference, the anchor of feature coding for machines: send the
picture, run the network at the receiver.

    image ─► resize to R×R (the encoder's preprocessing) ─► uint8 RGB ─► standard image codec (VVC intra,
          JPEG XL, JPEG; codec.standard) ─► bits ─► decoder ─► frozen encoder ─► features ─► neck ─► head

The picture coded is the R×R one the encoder reads, so the rate is bits per pixel of that picture: the same
denominator as every feature codec's bpp (bits / R²), and the cheapest picture a remote server could ask for.
`RemoteInference` is a feature source (probes.training.sources), so `evaluate_neck(..., image_codec="vvc",
image_quality=37)` scores a neck on it; `coding_complexity` gives every coded evaluation its complexity
record.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from codec import standard
from probes.training.sources import CodedFeatures, EncoderFeatures, FeatureSource

IMAGE_CODECS = tuple(standard.IMAGE_FORMATS)  # vvc (QP), jxl (Butteraugli distance), jpeg (q-scale 2..31)


def code_picture(
    image: Image.Image, resolution: int, image_codec: str, quality: float
) -> tuple[Image.Image, dict]:
    """The R×R picture the encoder would read, through `image_codec` at `quality`: (decoded picture, record
    with `bits`, `encode_s`, `decode_s`)."""
    pixels = TF.resize(TF.to_tensor(image.convert("RGB")), [resolution, resolution], antialias=True)
    rgb = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    start = time.perf_counter()
    data = standard.encode_image(rgb, image_codec, quality)
    coded = time.perf_counter()
    decoded = standard.decode_image(data, image_codec, rgb.shape[:2])
    record = {"bits": 8 * len(data), "encode_s": coded - start, "decode_s": time.perf_counter() - coded}
    return Image.fromarray(np.ascontiguousarray(decoded)), record


class RemoteInference(CodedFeatures):
    """The frozen encoder on each sample's picture after a standard image codec; counts the picture's bits
    (the whole image file or elementary stream)."""

    def __init__(self, inner: FeatureSource, image_codec: str, quality: float):
        if not isinstance(inner, EncoderFeatures):
            raise ValueError("remote inference codes the pictures: it needs an encoder, not a feature cache")
        standard.image_format(image_codec)  # ValueError naming the choices
        self.inner, self.image_codec, self.quality = inner, image_codec, float(quality)
        self.levels, self.resolution = inner.levels, inner.resolution
        self.bits, self.images, self.encode_s, self.decode_s = 0, 0, 0.0, 0.0

    def features(self, samples: Sequence[dict]) -> dict[str, torch.Tensor]:
        coded = []
        for sample in samples:
            picture, record = code_picture(sample["image"], self.resolution, self.image_codec, self.quality)
            self.bits += record["bits"]
            self.encode_s += record["encode_s"]
            self.decode_s += record["decode_s"]
            coded.append({**sample, "image": picture})
        self.images += len(samples)
        return self.inner.features(coded)

    def describe_codec(self) -> dict:
        """What an evaluation records in its `codec` field (the report's anchor rows read `anchor`)."""
        return {
            "kind": f"remote-{self.image_codec}",
            "anchor": f"remote-{self.image_codec}",
            "image_codec": self.image_codec,
            "encoder": standard.image_format(self.image_codec).encoder,
            "quality": self.quality,
            "quality_option": standard.image_format(self.image_codec).quality_option,
            "bits": self.bits,
            "images": self.images,
            "bpp": self.bits_per_pixel,
            "payload_bpp": self.bits_per_pixel,
        }

    def complexity(self) -> dict:
        """The picture codec's ms per image, measured during the evaluation; no learned coding parts (the
        frozen encoder runs at the receiver, as in every remote-inference anchor)."""
        per_image = self.images or 1
        return {
            "encoder_kmac_per_pixel": 0.0,
            "decoder_kmac_per_pixel": 0.0,
            "encode_ms": 1e3 * self.encode_s / per_image,
            "decode_ms": 1e3 * self.decode_s / per_image,
            "items": self.images,
            "kind": f"remote-{self.image_codec}",
            "anchor": f"remote-{self.image_codec}",
        }


def coding_complexity(source: FeatureSource, samples: Sequence[dict]) -> dict | None:
    """The complexity record of an evaluation's coding: kMAC/pixel (learned parts) and encode/decode ms
    (codec.complexity) of a feature codec on `samples`, or a remote-inference anchor's own measurements."""
    if callable(getattr(source, "complexity", None)):  # measured where the coding ran (anchor, streams step)
        return source.complexity()
    codec = getattr(source, "codec", None)
    if codec is None:
        return None
    from codec.complexity import codec_complexity

    with torch.no_grad():
        clean = source.inner.features(samples)
    record = codec_complexity(
        codec, {n: clean[n] for n in codec.model.level_names}, pixels=source.resolution**2
    )
    anchor = getattr(codec.model, "standard", "")
    return {**record, "kind": codec.model.kind, "anchor": f"packed-{anchor}" if anchor else None}
