"""The synthetic datasets: the sample formats and dataset attributes of nyuv2, coco-kpts and coco-caps.

Images render lazily from their seed (`world.image_rng`) and the last renders
are kept in memory; labels that evaluation needs up front (COCO keypoint
annotations, caption references) are built at open time from the scene
layouts alone.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

from ..base import DatasetError, TaskDataset
from ..coco_keypoints import DEFAULT_CROP_SIZE, NUM_KEYPOINTS, clean_box, load_coco
from ..crop import CropTransform
from ..nyuv2 import DEPTH_RANGE
from .instances import Instances, people_instances, room_instances, shapes_instances
from .people import PERSON_CATEGORY, person_annotations, render_people, sample_people_scene
from .rooms import RoomRender, render_room, sample_room
from .shapes import render_shapes, sample_shape_scene
from .world import SPLIT_ID_BASE, image_rng

RENDER_CACHE = 256  # renders kept per process (a 144×192 room with its depth: ~0.2 MB)


@lru_cache(maxsize=RENDER_CACHE)
def room_render(split: str, index: int, size: tuple[int, int]) -> RoomRender:
    rng = image_rng("depth", split, index)
    render = render_room(sample_room(rng, size), rng)
    for a in (render.image, render.depth, render.surface):
        a.flags.writeable = False  # shared by every caller: copies go out
    return render


@lru_cache(maxsize=RENDER_CACHE)
def people_image(split: str, index: int, size: tuple[int, int]) -> np.ndarray:
    pixels = render_people(sample_people_scene(image_rng("pose", split, index), size))
    pixels.flags.writeable = False
    return pixels


@lru_cache(maxsize=RENDER_CACHE)
def shapes_image(split: str, index: int, size: tuple[int, int]) -> np.ndarray:
    pixels = render_shapes(sample_shape_scene(image_rng("caption", split, index), size))
    pixels.flags.writeable = False
    return pixels


class SyntheticDataset(TaskDataset):
    def __init__(self, *, source: str, split: str, num_images: int, image_size: tuple[int, int]):
        self.source = source
        self.split = split
        self.num_images = num_images
        self.image_size = image_size

    def instances(self, image_index: int) -> Instances:
        """Segmentation ground truth of image `image_index` of the split (for pose: of the full
        image, not of a person crop): one mask and class per object / figure / shape."""
        if not 0 <= image_index < self.num_images:
            raise IndexError(f"{self.source}: image {image_index} outside 0..{self.num_images - 1}")
        rng = image_rng(self.task, self.split, image_index)
        if self.task == "depth":
            return room_instances(room_render(self.split, image_index, self.image_size))
        if self.task == "pose":
            return people_instances(sample_people_scene(rng, self.image_size))
        return shapes_instances(sample_shape_scene(rng, self.image_size))


class SyntheticDepthDataset(SyntheticDataset):
    """Ray-cast rooms (`rooms.py`) as NYUv2 samples {"id", "image", "depth" H×W float32 metres}.

    Evaluated like NYUv2 (`depth_range` (1e-3, 10] m) but without the Eigen crop,
    which cuts away the Kinect's invalid border that a renderer does not have.
    """

    task = "depth"
    depth_range = DEPTH_RANGE
    eval_crop = None

    def __len__(self) -> int:
        return self.num_images

    def sample_id(self, index: int) -> str:
        return f"{self.split}-{index:04d}"

    def render(self, index: int) -> RoomRender:
        if not 0 <= index < self.num_images:
            raise IndexError(f"{self.source}: index {index} outside 0..{self.num_images - 1}")
        return room_render(self.split, index, self.image_size)

    def ground_truth(self, index: int) -> tuple[str, np.ndarray]:
        return self.sample_id(index), self.render(index).depth.copy()

    def __getitem__(self, index: int) -> dict[str, Any]:
        render = self.render(index)
        return {
            "id": self.sample_id(index),
            "image": Image.fromarray(render.image.copy(), "RGB"),
            "depth": render.depth.copy(),
        }


class SyntheticKeypointsDataset(SyntheticDataset):
    """Figures (`people.py`) as coco-kpts samples: one top-down GT-box crop per person.

    `.coco` is a pycocotools COCO object over an in-memory person_keypoints
    dict (images, annotations with keypoints/bbox/area/iscrowd/RLE
    segmentation, the person category), so `probes.tasks.pose` scores it with
    COCOeval exactly as it scores COCO.
    """

    task = "pose"

    def __init__(self, *, crop_size: tuple[int, int] = DEFAULT_CROP_SIZE, **kw):
        super().__init__(**kw)
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        h, w = self.image_size
        self.image_ids = [SPLIT_ID_BASE[self.split] + i for i in range(self.num_images)]
        images, annotations = [], []
        for i, image_id in enumerate(self.image_ids):
            scene = sample_people_scene(image_rng("pose", self.split, i), self.image_size)
            images.append(
                {"id": image_id, "file_name": f"synthetic-{self.split}-{i:06d}.png", "height": h, "width": w}
            )
            for j, ann in enumerate(person_annotations(scene)):
                annotations.append({**ann, "image_id": image_id, "id": 100 * image_id + j})
        self.coco = load_coco(
            None,
            {
                "info": {"description": f"featcodec synthetic people ({self.source}, split {self.split})"},
                "licenses": [],
                "images": images,
                "annotations": annotations,
                "categories": [PERSON_CATEGORY],
            },
        )
        # every figure kept has a labelled keypoint and a visible silhouette, as coco-kpts selects
        self.samples = [
            {"ann_id": a["id"], "image_id": a["image_id"], "box": clean_box(a["bbox"], w, h), "ann": a}
            for a in annotations
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def image(self, image_id: int) -> Image.Image:
        index = image_id - SPLIT_ID_BASE[self.split]
        return Image.fromarray(people_image(self.split, index, self.image_size).copy(), "RGB")

    def __getitem__(self, index: int) -> dict[str, Any]:
        # as CocoKeypointsDataset.__getitem__, with the image from memory instead of IMG_DIR
        s = self.samples[index]
        crop = CropTransform.from_box(s["box"], self.crop_size)
        kpts = np.asarray(s["ann"]["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
        keypoints = np.concatenate([crop.to_crop(kpts[:, :2]), kpts[:, 2:]], axis=1).astype(np.float32)
        keypoints[kpts[:, 2] == 0, :2] = 0.0  # unlabelled: COCO stores (0, 0, 0)
        return {
            "id": s["ann_id"],
            "image_id": s["image_id"],
            "image": crop.warp(self.image(s["image_id"])),
            "keypoints": keypoints,
            "box": list(s["box"]),
            "crop": crop,
        }


class SyntheticCaptionsDataset(SyntheticDataset):
    """Shape scenes (`shapes.py`) as coco-caps samples {"id", "image", "captions"} with 5 references each."""

    task = "caption"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.image_ids = [SPLIT_ID_BASE[self.split] + i for i in range(self.num_images)]
        self.captions = {
            image_id: sample_shape_scene(image_rng("caption", self.split, i), self.image_size).captions
            for i, image_id in enumerate(self.image_ids)
        }

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_id = self.image_ids[index]
        pixels = shapes_image(self.split, index, self.image_size)
        return {
            "id": image_id,
            "image": Image.fromarray(pixels.copy(), "RGB"),
            "captions": list(self.captions[image_id]),
        }


DATASETS = {
    "depth": SyntheticDepthDataset,
    "pose": SyntheticKeypointsDataset,
    "caption": SyntheticCaptionsDataset,
}


def check_size(value: Any, name: str, source: str, minimum: int) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{source}: {name} must be (H, W), got {value!r}") from e
    if min(h, w) < minimum:
        raise DatasetError(f"{source}: {name} {h}×{w} is too small (at least {minimum}×{minimum})")
    return h, w
