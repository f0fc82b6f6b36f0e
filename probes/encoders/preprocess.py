"""Image loading and preprocessing shared by all encoders.

Square resize to R×R (bilinear, antialiased) on the [0, 1] tensor, then
ImageNet mean/std: exactly SAM2's `SAM2Transforms` (ToTensor → Resize((R, R))
→ Normalize), used for Hiera too since dense tasks need the whole image.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps, UnidentifiedImageError

from codec.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm")


class ImageReadError(InputError):
    """An input that is not a readable image; the message names the file."""


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open an image as RGB with EXIF orientation applied."""
    try:
        with Image.open(path) as im:
            im.load()
            return ImageOps.exif_transpose(im).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageReadError(f"{path}: not a readable image ({e})") from e


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
    """Expand files and directories (recursively, sorted) into a list of image paths."""
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found.extend(
                sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
            )
        elif p.exists():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")
    return found
