"""Scenes of a few coloured shapes with templated, varied reference captions: the stand-in for COCO captions.

Two to four shapes (circle, square, triangle, star, diamond) of named colours
and two sizes lie apart on a plain, textured background. Five references per
image (COCO has five) are drawn from templates that are true of the layout by
construction: a count, a left-to-right list, a horizontal and a vertical
relation between well-separated shapes, a size contrast, a position in the frame:

    "three shapes on a gray background"
    "a red circle to the left of a blue square"
    "a large green star in the top right corner of the image"
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .world import COLOURS, fractal_noise, jitter_colour, to_uint8

SHAPES = ("circle", "square", "triangle", "star", "diamond")
SHAPE_COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "pink", "brown")
BACKGROUNDS = ("white", "gray", "black")
NUMBERS = ("zero", "one", "two", "three", "four")
CAPTIONS_PER_IMAGE = 5
SUPERSAMPLE = 2


@dataclass(frozen=True)
class Shape:
    kind: str
    colour: str
    x: float  # centre, pixels
    y: float
    r: float  # circumradius, pixels
    large: bool

    def phrase(self, with_size: bool = False) -> str:
        size = ("large " if self.large else "small ") if with_size else ""
        return f"{size}{self.colour} {self.kind}"


@dataclass
class ShapeScene:
    size: tuple[int, int]
    background: str
    shapes: list[Shape]
    captions: list[str]
    render_seed: int


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _place(rng: np.random.Generator, size: tuple[int, int], n: int) -> list[tuple[float, float, float, bool]]:
    """Centres and radii of `n` non-overlapping shapes (rejection sampling, then fewer if crowded)."""
    h, w = size
    placed: list[tuple[float, float, float, bool]] = []
    for _ in range(200):
        if len(placed) == n:
            break
        large = bool(rng.random() < 0.5)
        r = (rng.uniform(0.17, 0.22) if large else rng.uniform(0.08, 0.11)) * min(h, w)
        x, y = rng.uniform(r + 2, w - r - 2), rng.uniform(r + 2, h - r - 2)
        if all(np.hypot(x - px, y - py) > r + pr + 6 for px, py, pr, _ in placed):
            placed.append((x, y, r, large))
    return placed


def _where(shape: Shape, size: tuple[int, int]) -> str:
    h, w = size
    col = "left" if shape.x < w / 3 else "right" if shape.x > 2 * w / 3 else ""
    row = "top" if shape.y < h / 3 else "bottom" if shape.y > 2 * h / 3 else ""
    if row and col:
        return f"in the {row} {col} corner of the image"
    if row or col:
        return f"at the {row or col} of the image"
    return "in the middle of the image"


def _candidate_captions(scene_shapes: list[Shape], background: str, size: tuple[int, int]) -> list[str]:
    """Every caption the templates can say truthfully about this layout."""
    n = len(scene_shapes)
    plural = "shape" if n == 1 else "shapes"
    out = [
        f"{NUMBERS[n]} {plural} on a {background} background",
        f"a {background} background with {NUMBERS[n]} coloured {plural}",
    ]
    if n > 1:
        left_to_right = [_article(s.phrase()) for s in sorted(scene_shapes, key=lambda s: s.x)]
        out.append(f"{', '.join(left_to_right[:-1])} and {left_to_right[-1]} from left to right")
    for a in scene_shapes:
        out.append(f"{_article(a.phrase(with_size=True))} {_where(a, size)}")
        for b in scene_shapes:
            if a is b or (a.kind, a.colour) == (b.kind, b.colour):
                continue
            gap = max(a.r, b.r)
            if b.x - a.x > gap and abs(b.x - a.x) > abs(b.y - a.y):
                out.append(f"{_article(a.phrase())} to the left of {_article(b.phrase())}")
                out.append(f"{_article(b.phrase())} is right of {_article(a.phrase())}")
            if b.y - a.y > gap and abs(b.y - a.y) > abs(b.x - a.x):
                out.append(f"{_article(a.phrase())} above {_article(b.phrase())}")
                out.append(f"{_article(b.phrase())} below {_article(a.phrase())}")
            if a.large and not b.large:
                out.append(f"a {a.colour} {a.kind} that is bigger than the {b.colour} {b.kind}")
    counts: dict[str, int] = {}
    for s in scene_shapes:
        counts[s.colour] = counts.get(s.colour, 0) + 1
    for colour, c in counts.items():
        if c == n > 1:
            out.append(f"all {NUMBERS[c]} shapes are {colour}")
        elif c > 1:
            other = "shape" if n - c == 1 else "shapes"
            out.append(f"{NUMBERS[c]} {colour} shapes and {NUMBERS[n - c]} other {other}")
    return out


def sample_shape_scene(rng: np.random.Generator, size: tuple[int, int]) -> ShapeScene:
    background = str(rng.choice(BACKGROUNDS))
    layout = _place(rng, size, int(rng.integers(2, 5)))
    shapes = [
        Shape(str(rng.choice(SHAPES)), str(rng.choice(SHAPE_COLOURS)), x, y, r, large)
        for x, y, r, large in layout
    ]
    candidates = list(dict.fromkeys(_candidate_captions(shapes, background, size)))
    order = rng.permutation(len(candidates))[:CAPTIONS_PER_IMAGE]
    captions = [candidates[i] for i in sorted(order)]
    return ShapeScene(size, background, shapes, captions, int(rng.integers(2**31)))


def _polygon(shape: Shape, s: float) -> list[tuple[float, float]]:
    x, y, r = shape.x * s, shape.y * s, shape.r * s
    if shape.kind == "square":
        a = r / np.sqrt(2)
        return [(x - a, y - a), (x + a, y - a), (x + a, y + a), (x - a, y + a)]
    if shape.kind == "diamond":
        return [(x, y - r), (x + 0.7 * r, y), (x, y + r), (x - 0.7 * r, y)]
    if shape.kind == "triangle":
        return [(x + r * np.sin(t), y - r * np.cos(t)) for t in (0, 2 * np.pi / 3, 4 * np.pi / 3)]
    if shape.kind == "star":
        return [
            (x + rr * np.sin(t), y - rr * np.cos(t))
            for t, rr in zip(np.arange(10) * np.pi / 5, [r, 0.45 * r] * 5, strict=True)
        ]
    raise ValueError(shape.kind)


def render_shapes(scene: ShapeScene) -> np.ndarray:
    h, w = scene.size
    rng = np.random.default_rng(scene.render_seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = jitter_colour(COLOURS[scene.background], rng, 0.05)
    back = base * (0.92 + 0.16 * fractal_noise(xx / 20, yy / 20, rng))[..., None]
    canvas = Image.fromarray(to_uint8(back, rng, noise=0.0, gamma=1.0)).resize(
        (w * SUPERSAMPLE, h * SUPERSAMPLE), Image.NEAREST
    )
    draw = ImageDraw.Draw(canvas)
    for shape in scene.shapes:
        fill = tuple(int(c) for c in np.rint(jitter_colour(COLOURS[shape.colour], rng, 0.08) * 255))
        if shape.kind == "circle":
            x, y, r = shape.x * SUPERSAMPLE, shape.y * SUPERSAMPLE, shape.r * SUPERSAMPLE
            draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
        else:
            draw.polygon(_polygon(shape, SUPERSAMPLE), fill=fill)
    pixels = np.asarray(canvas.reduce(SUPERSAMPLE), dtype=np.float32) / 255.0
    return to_uint8(pixels, rng, noise=2.0, gamma=1.0)
