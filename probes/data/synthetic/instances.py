"""Instance masks of every synthetic image, exact by construction: one boolean mask and a class per thing.

    rooms   each sphere / box standing in the room, and the room's floor, ceiling and walls
    people  each figure's visible silhouette ("person"), the foreground crate ("crate")
    shapes  each coloured shape, named by its kind ("circle", "square", ...)

Masks come from the renderers' own geometry (the ray-cast surface ids, the
figures' silhouette layers, the shapes' polygons at the renderers'
supersampling), so they are the segmentation ground truth of the very pixels
rendered. Masks of one image never overlap; empty ones are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .people import PeopleScene, _layer_masks
from .rooms import SURFACES, RoomRender
from .shapes import SUPERSAMPLE as SHAPES_SUPERSAMPLE
from .shapes import ShapeScene, _polygon

ROOM_SURFACE_CLASSES = ("floor", "ceiling", "wall", "wall", "wall")  # per entry of rooms.SURFACES


@dataclass
class Instances:
    masks: np.ndarray  # N×H×W bool, pairwise disjoint
    classes: list[str]  # N class names

    def __post_init__(self):
        if self.masks.ndim != 3 or len(self.masks) != len(self.classes):
            raise ValueError(f"instances: {self.masks.shape} masks for {len(self.classes)} classes")

    def __len__(self) -> int:
        return len(self.classes)

    @classmethod
    def from_list(cls, masks: list[np.ndarray], classes: list[str], size: tuple[int, int]) -> Instances:
        keep = [i for i, m in enumerate(masks) if m.any()]
        stacked = np.stack([masks[i] for i in keep]) if keep else np.zeros((0, *size), dtype=bool)
        return cls(stacked.astype(bool), [classes[i] for i in keep])


def room_instances(render: RoomRender) -> Instances:
    """Objects first (class = primitive kind), then the room's surfaces, from the ray-cast surface ids."""
    surface = render.surface.astype(np.int64)
    masks, classes = [], []
    for k, obj in enumerate(render.room.objects):
        masks.append(surface == len(SURFACES) + k)
        classes.append(obj.kind)
    for s, name in enumerate(ROOM_SURFACE_CLASSES):
        masks.append(surface == s)
        classes.append(name)
    return Instances.from_list(masks, classes, render.surface.shape)


def people_instances(scene: PeopleScene) -> Instances:
    """Visible silhouettes back to front: what is covered by a later layer belongs to that layer."""
    layers = _layer_masks(scene)  # figures back to front, then the crate (drawn last)
    classes = ["person"] * len(scene.figures) + (["crate"] if scene.crate is not None else [])
    masks = []
    for i, layer in enumerate(layers):
        in_front = np.zeros_like(layer)
        for m in layers[i + 1 :]:
            in_front |= m
        masks.append(layer & ~in_front)
    return Instances.from_list(masks, classes, scene.size)


def shapes_instances(scene: ShapeScene) -> Instances:
    """Each shape drawn alone as the renderer draws it (2× supersampled, box-filtered, ≥ ½ coverage)."""
    h, w = scene.size
    s = SHAPES_SUPERSAMPLE
    masks = []
    for shape in scene.shapes:
        im = Image.new("L", (w * s, h * s), 0)
        draw = ImageDraw.Draw(im)
        if shape.kind == "circle":
            x, y, r = shape.x * s, shape.y * s, shape.r * s
            draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
        else:
            draw.polygon(_polygon(shape, s), fill=255)
        masks.append(np.asarray(im.reduce(s)) >= 128)
    return Instances.from_list(masks, [shape.kind for shape in scene.shapes], scene.size)


def render_with_instances(task: str, rng: np.random.Generator, size: tuple[int, int]):
    """Render one image of `task` ("depth" | "pose" | "caption") from `rng`: (H×W×3 uint8, Instances).

    Draws from `rng` exactly as the probe datasets do, so the same generator gives the same pixels.
    """
    from .people import render_people, sample_people_scene
    from .rooms import render_room, sample_room
    from .shapes import render_shapes, sample_shape_scene

    if task == "depth":
        render = render_room(sample_room(rng, size), rng)
        return render.image, room_instances(render)
    if task == "pose":
        scene = sample_people_scene(rng, size)
        return render_people(scene), people_instances(scene)
    if task == "caption":
        scene = sample_shape_scene(rng, size)
        return render_shapes(scene), shapes_instances(scene)
    raise ValueError(f"unknown synthetic task {task!r}")
