"""Articulated stick-and-ellipse people with the 17 COCO keypoints: the stand-in for COCO persons.

Each image holds one or two front-facing figures (so a person's left side is
on the image's right, as in COCO) posed by random joint angles, drawn back to
front over a textured background, sometimes behind a foreground crate:

    pelvis ─ torso (lean) ─ neck ─ head (nose, eyes, ears)
      ├─ hips ─ knees ─ ankles          shoulders ─ elbows ─ wrists

Labels follow COCO's conventions: v = 2 visible, v = 1 labelled but hidden
(covered by a figure or crate drawn later; self-occlusion is not modelled),
(0, 0, 0) outside the image. `bbox`, `area` and the RLE `segmentation` are
those of the person's visible silhouette, as COCO's are of its visible mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from .world import COLOURS, fractal_noise, jitter_colour, to_uint8

COCO_KEYPOINT_NAMES = [
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
]
COCO_SKELETON = [
    [16, 14],
    [14, 12],
    [17, 15],
    [15, 13],
    [12, 13],
    [6, 12],
    [7, 13],
    [6, 7],
    [6, 8],
    [7, 9],
    [8, 10],
    [9, 11],
    [2, 3],
    [1, 2],
    [1, 3],
    [2, 4],
    [3, 5],
    [4, 6],
    [5, 7],
]
PERSON_CATEGORY = {
    "supercategory": "person",
    "id": 1,
    "name": "person",
    "keypoints": COCO_KEYPOINT_NAMES,
    "skeleton": COCO_SKELETON,
}
SUPERSAMPLE = 2  # figures are drawn at 2× and box-filtered down: anti-aliased edges


@dataclass
class Figure:
    keypoints: np.ndarray  # 17×2 image pixels (x, y), pixel-centre based
    head: tuple[float, float, float]  # centre x, y and radius
    scale: float  # body height in pixels
    skin: tuple[int, int, int]
    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]


def _unit(angle: float) -> np.ndarray:
    """Direction `angle` radians from straight down, counter-clockwise on screen (x right, y down)."""
    return np.array([np.sin(angle), np.cos(angle)])


def sample_figure(rng: np.random.Generator, size: tuple[int, int]) -> Figure:
    img_h, img_w = size
    s = img_h * rng.uniform(0.5, 1.0)  # body height in pixels
    pelvis = np.array([rng.uniform(0.1, 0.9) * img_w, rng.uniform(0.35, 0.75) * img_h])
    lean = rng.uniform(-0.2, 0.2)
    up = -_unit(lean)  # pelvis → neck
    side = np.array([-up[1], up[0]])  # towards the image right (the person's left)
    neck = pelvis + 0.30 * s * up
    k = np.zeros((17, 2))
    k[5], k[6] = neck + 0.11 * s * side, neck - 0.11 * s * side
    k[11], k[12] = pelvis + 0.07 * s * side, pelvis - 0.07 * s * side
    for shoulder, elbow, wrist, out in ((5, 7, 9, 1.0), (6, 8, 10, -1.0)):
        upper = lean + out * rng.uniform(-0.3, 2.6)
        fore = upper + out * rng.uniform(0.0, 2.2)
        k[elbow] = k[shoulder] + 0.17 * s * _unit(upper)
        k[wrist] = k[elbow] + 0.15 * s * _unit(fore)
    for hip, knee, ankle, out in ((11, 13, 15, 1.0), (12, 14, 16, -1.0)):
        thigh = lean + out * rng.uniform(-0.15, 0.6)
        shin = thigh - out * rng.uniform(0.0, 0.9)
        k[knee] = k[hip] + 0.23 * s * _unit(thigh)
        k[ankle] = k[knee] + 0.23 * s * _unit(shin)
    head_r = 0.065 * s
    head = neck + 0.11 * s * up
    turn = rng.uniform(-0.5, 0.5)  # face turned a little: the features shift sideways
    k[0] = head + turn * 0.04 * s * side - 0.01 * s * up  # nose
    k[1], k[2] = k[0] + (0.025 * s) * side + 0.02 * s * up, k[0] - (0.025 * s) * side + 0.02 * s * up
    k[3], k[4] = head + 0.06 * s * side, head - 0.06 * s * side
    skin = tuple(int(c) for c in rng.choice([(241, 194, 160), (198, 134, 94), (141, 85, 54), (92, 58, 40)]))
    names = list(COLOURS)
    shirt, trousers = (COLOURS[names[i]] for i in rng.choice(len(names), 2, replace=False))
    return Figure(k, (float(head[0]), float(head[1]), head_r), s, skin, shirt, trousers)


def _draw_figure(draw: ImageDraw.ImageDraw, fig: Figure, fill=None) -> None:
    """The figure in supersampled coordinates; `fill` overrides every colour (silhouette masks)."""
    k = fig.keypoints * SUPERSAMPLE + (SUPERSAMPLE - 1) / 2  # pixel centres at the finer grid

    def limb(a: int, b: int, width: float, colour) -> None:
        w = max(1, int(round(width * fig.scale * SUPERSAMPLE)))
        draw.line([tuple(k[a]), tuple(k[b])], fill=fill or colour, width=w)
        for p in (k[a], k[b]):  # round joints
            r = w / 2
            draw.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], fill=fill or colour)

    for a, b in ((11, 13), (13, 15), (12, 14), (14, 16)):
        limb(a, b, 0.075, fig.trousers)
    draw.polygon([tuple(k[i]) for i in (5, 6, 12, 11)], fill=fill or fig.shirt)
    limb(5, 6, 0.06, fig.shirt)
    limb(11, 12, 0.07, fig.trousers)
    for a, b, colour in ((5, 7, fig.shirt), (6, 8, fig.shirt), (7, 9, fig.skin), (8, 10, fig.skin)):
        limb(a, b, 0.055, colour)
    hx, hy = np.array(fig.head[:2]) * SUPERSAMPLE + (SUPERSAMPLE - 1) / 2
    hr = fig.head[2] * SUPERSAMPLE
    neck_top = (k[5] + k[6]) / 2
    draw.line(
        [tuple(neck_top), (hx, hy)], fill=fill or fig.skin, width=max(1, int(0.05 * fig.scale * SUPERSAMPLE))
    )
    draw.ellipse([hx - hr, hy - hr * 1.15, hx + hr, hy + hr * 1.15], fill=fill or fig.skin)
    if fill is None:  # facial features: the cues that tell the keypoints apart
        r = max(1.0, 0.008 * fig.scale * SUPERSAMPLE)
        for i, colour in ((1, (30, 30, 30)), (2, (30, 30, 30)), (0, (150, 70, 60))):
            x, y = k[i]
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
        for i in (3, 4):
            x, y = k[i]
            draw.ellipse(
                [x - 1.5 * r, y - 2.5 * r, x + 1.5 * r, y + 2.5 * r],
                fill=tuple(int(c * 0.8) for c in fig.skin),
            )


@dataclass
class PeopleScene:
    size: tuple[int, int]  # H × W
    figures: list[Figure]  # back to front
    crate: tuple[float, float, float, float] | None  # x0, y0, x1, y1 of a foreground occluder
    crate_colour: tuple[int, int, int]
    background_seed: int


def sample_people_scene(rng: np.random.Generator, size: tuple[int, int]) -> PeopleScene:
    figures = [sample_figure(rng, size) for _ in range(rng.integers(1, 3))]
    figures.sort(key=lambda f: f.scale)  # smaller figures are further away: drawn first
    h, w = size
    crate = None
    if rng.random() < 0.4:
        x0, y0 = rng.uniform(-0.2, 0.7) * w, rng.uniform(0.6, 0.85) * h
        crate = (x0, y0, x0 + rng.uniform(0.25, 0.5) * w, h + 10.0)
    colour = tuple(int(c) for c in rng.integers(60, 200, 3))
    return PeopleScene(size, figures, crate, colour, int(rng.integers(2**31)))


def _layer_masks(scene: PeopleScene) -> list[np.ndarray]:
    """Full-resolution boolean silhouettes of each figure, then of the crate (if any), back to front."""
    h, w = scene.size
    masks = []
    for fig in scene.figures:
        im = Image.new("L", (w * SUPERSAMPLE, h * SUPERSAMPLE), 0)
        _draw_figure(ImageDraw.Draw(im), fig, fill=255)
        masks.append(np.asarray(im.reduce(SUPERSAMPLE)) >= 128)
    if scene.crate is not None:
        x0, y0, x1, y1 = scene.crate
        yy, xx = np.mgrid[0:h, 0:w]
        masks.append((xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1))
    return masks


def render_people(scene: PeopleScene) -> np.ndarray:
    """H×W×3 uint8: a textured floor/wall backdrop, the figures back to front, the crate."""
    h, w = scene.size
    rng = np.random.default_rng(scene.background_seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    horizon = rng.uniform(0.35, 0.65) * h
    wall, floor = (
        jitter_colour(tuple(rng.integers(90, 230, 3)), rng),
        jitter_colour(tuple(rng.integers(40, 180, 3)), rng),
    )
    texture = fractal_noise(xx / 12, yy / 12, rng)
    back = np.where((yy < horizon)[..., None], wall, floor) * (0.75 + 0.5 * texture)[..., None]
    back = to_uint8(back, rng, noise=0.0, gamma=1.0)
    canvas = Image.fromarray(back).resize((w * SUPERSAMPLE, h * SUPERSAMPLE), Image.NEAREST)
    draw = ImageDraw.Draw(canvas)
    for fig in scene.figures:
        _draw_figure(draw, fig)
    if scene.crate is not None:
        x0, y0, x1, y1 = (v * SUPERSAMPLE for v in scene.crate)
        draw.rectangle([x0, y0, x1, y1], fill=scene.crate_colour, outline=(40, 30, 20), width=SUPERSAMPLE * 2)
    pixels = np.asarray(canvas.reduce(SUPERSAMPLE), dtype=np.float32) / 255.0
    return to_uint8(pixels, rng, noise=2.0, gamma=1.0)


def person_annotations(scene: PeopleScene) -> list[dict]:
    """COCO person annotations (without ids) of the figures that keep a labelled keypoint."""
    h, w = scene.size
    layers = _layer_masks(scene)
    anns = []
    for i, fig in enumerate(scene.figures):
        in_front = np.zeros((h, w), dtype=bool)
        for m in layers[i + 1 :]:
            in_front |= m
        visible = layers[i] & ~in_front
        kpts = []
        for x, y in fig.keypoints:
            if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
                kpts += [0, 0, 0]
                continue
            hidden = in_front[int(round(y)), int(round(x))]
            kpts += [round(float(x), 2), round(float(y), 2), 1 if hidden else 2]
        num = sum(1 for v in kpts[2::3] if v > 0)
        area = int(visible.sum())
        if num == 0 or area == 0:
            continue
        ys, xs = np.nonzero(visible)
        rle = mask_utils.encode(np.asfortranarray(visible.astype(np.uint8)))
        anns.append(
            {
                "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")},
                "num_keypoints": num,
                "area": float(area),
                "iscrowd": 0,
                "keypoints": kpts,
                "bbox": [
                    float(xs.min()),
                    float(ys.min()),
                    float(xs.max() - xs.min() + 1),
                    float(ys.max() - ys.min() + 1),
                ],
                "category_id": 1,
            }
        )
    return anns
