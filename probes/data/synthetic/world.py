"""What the three synthetic renderers share: split seeds, image sizes, colours and procedural noise.

Every image is a pure function of (task, split, index): its generator is seeded
with `SeedSequence([WORLD_SEED, task, split, index])`, so images render lazily
in any order or worker process, `synthetic:depth:8` holds the first 8 images of
`synthetic:depth`, and the splits draw from disjoint seed streams.
"""

from __future__ import annotations

import numpy as np

WORLD_SEED = 0x5A2  # one fixed root: the synthetic world is the same on every machine
SPLITS = ("train", "val", "test")
DEFAULT_NUM_IMAGES = {"train": 64, "val": 16, "test": 16}
DEFAULT_IMAGE_SIZE = (144, 192)  # H × W: NYUv2's 3:4 frame at 0.3×
# COCO-style integer image ids, unique across splits
SPLIT_ID_BASE = {"train": 1_000_000, "val": 2_000_000, "test": 3_000_000}

# Named colours (sRGB 0-255): the names appear in captions, so they must read as what they are.
COLOURS = {
    "red": (210, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 210),
    "yellow": (235, 210, 40),
    "orange": (240, 130, 30),
    "purple": (130, 50, 170),
    "pink": (240, 130, 180),
    "brown": (120, 75, 40),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
}


def image_rng(task: str, split: str, index: int) -> np.random.Generator:
    """The generator of image `index` of `split` for `task` (independent streams per image)."""
    task_code = ("depth", "pose", "caption").index(task)
    return np.random.default_rng([WORLD_SEED, task_code, SPLITS.index(split), int(index)])


def value_noise(u: np.ndarray, v: np.ndarray, rng: np.random.Generator, cells: int = 16) -> np.ndarray:
    """Smooth noise in [0, 1] at continuous lattice coordinates (u, v): a random periodic grid,
    bilinearly interpolated with smoothstep weights (Perlin's value noise)."""
    grid = rng.random((cells, cells), dtype=np.float32)
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    i0, j0 = iu.astype(np.int64) % cells, iv.astype(np.int64) % cells
    i1, j1 = (i0 + 1) % cells, (j0 + 1) % cells
    top = grid[i0, j0] * (1 - fu) + grid[i1, j0] * fu
    bottom = grid[i0, j1] * (1 - fu) + grid[i1, j1] * fu
    return top * (1 - fv) + bottom * fv


def fractal_noise(u: np.ndarray, v: np.ndarray, rng: np.random.Generator, octaves: int = 3) -> np.ndarray:
    """Sum of value-noise octaves (frequency ×2, amplitude ×½), in [0, 1]."""
    total, norm, amp, freq = np.zeros(np.shape(u)), 0.0, 1.0, 1.0
    for _ in range(octaves):
        total += amp * value_noise(u * freq, v * freq, rng)
        norm += amp
        amp, freq = amp * 0.5, freq * 2.0
    return total / norm


def jitter_colour(rgb: tuple[int, int, int], rng: np.random.Generator, amount: float = 0.12) -> np.ndarray:
    """A colour near `rgb` (linear 0-1), so surfaces of one name vary from image to image."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    return np.clip(c * (1 + amount * rng.uniform(-1, 1, 3)), 0.0, 1.0)


def to_uint8(rgb: np.ndarray, rng: np.random.Generator, noise: float = 2.0, gamma: float = 2.2) -> np.ndarray:
    """Radiance in [0, 1] → uint8 (encoded with `gamma`; 1 for values already sRGB) plus sensor noise
    of `noise` grey levels."""
    srgb = np.clip(rgb, 0.0, 1.0) ** (1 / gamma) * 255.0
    srgb += noise * rng.standard_normal(srgb.shape, dtype=np.float32)
    return np.rint(srgb).clip(0, 255).astype(np.uint8)
