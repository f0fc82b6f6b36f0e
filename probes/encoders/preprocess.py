"""Image loading and preprocessing shared by all encoders.

Square resize to R×R (bilinear, antialiased) on the [0, 1] tensor, then
ImageNet mean/std: exactly SAM2's `SAM2Transforms` (ToTensor → Resize((R, R))
→ Normalize), used for Hiera too since dense tasks need the whole image.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps

from codec.errors import InputError
from codec.inputs import find_files

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm")


class ImageReadError(InputError):
    """An input that is not a readable image; the message names the file."""


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open an image as 8-bit RGB with EXIF orientation applied; 16-bit images are scaled, not clipped."""
    try:
        with Image.open(path) as im:
            im.load()
            return _to_rgb(ImageOps.exif_transpose(im))
    except MemoryError:
        raise
    except Exception as e:
        # Pillow parses untrusted files and fails with many types (OSError, SyntaxError, EOFError,
        # struct.error, DecompressionBombError, ...): each means this file cannot be read.
        raise ImageReadError(f"{path}: not a readable image ({type(e).__name__}: {e})") from e


def _to_rgb(image: Image.Image) -> Image.Image:
    """Pillow's convert("RGB") clips 16- and 32-bit integer pixels at 255 (a 16-bit PNG turns white): they
    are scaled from 16 bits instead. Floating-point pixels have no defined range and are refused."""
    if image.mode.startswith("I"):
        pixels = np.asarray(image, dtype=np.float64)
        gray = np.clip(np.rint(pixels / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode == "F":
        raise ValueError("32-bit floating-point pixels have no defined range; save it with 8 or 16 bits")
    return image.convert("RGB")


def preprocess_image(
    image: Image.Image, size: int | Sequence[int], mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """PIL image → 3×H×W normalised pixels: RGB, resize to `size` (R for R×R, or (H, W)), normalise.

    The one preprocessing of featcodec, for encoders (square, SAM2's transform) and heads' own encoders.
    """
    pixels = TF.to_tensor(image.convert("RGB"))
    size = [size, size] if isinstance(size, int) else [int(size[0]), int(size[1])]
    pixels = TF.resize(pixels, size, antialias=True)
    return TF.normalize(pixels, list(mean), list(std))


def normalize_uint8(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """The batched form of `preprocess_image` for images already at their size: uint8 B×3×H×W → normalised
    float (the recipes keep whole training sets as uint8 tensors and normalise a batch at a time)."""
    m = torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1)
    return (pixels.float() / 255.0 - m) / s


def sample_images_dir() -> Path:
    """Small images shipped with featcodec, so every command runs without user data."""
    return Path(__file__).parent / "samples"


def collect_images(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files, directories (recursively, sorted, hidden names skipped) and quoted globs → image paths
    (codec.inputs.find_files); a missing input is an InputError naming it."""
    return [f.path for f in find_files(list(inputs), IMAGE_SUFFIXES)]
