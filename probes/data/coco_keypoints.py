"""COCO person keypoints (`person_keypoints_*.json` + images), read top-down from GT boxes.

One sample per person annotation, selected as HRNet / mmpose / ViTPose do for
GT-box evaluation: crowd annotations and annotations with no labelled
keypoint are skipped, and the box is clipped to the image (boxes that vanish
are skipped). Evaluation (`probes.tasks.pose`) uses `.coco`, the pycocotools
COCO object of the same file, restricted to the images kept here.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from .base import (
    DatasetError,
    TaskDataset,
    existing_dir,
    existing_file,
    read_image,
    read_json,
    register_dataset,
    require_keys,
)
from .crop import CropTransform

NUM_KEYPOINTS = 17
DEFAULT_CROP_SIZE = (256, 192)  # H × W, ViTPose / HRNet input
ANNOTATION_KEYS = ("area", "iscrowd", "num_keypoints", "category_id")


def load_coco(path: Path, data: dict) -> COCO:
    """A pycocotools COCO object from already-parsed JSON (without its stdout chatter)."""
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def open_coco_files(
    ann_json: str | Path, img_dir: str | Path, kind: str, pattern: str, keys: tuple[str, ...]
) -> tuple[Path, Path, dict, str]:
    """(annotation file, image folder, the file's JSON with its top-level `keys` checked, what it is called in
    errors) of a COCO `kind` ("captions", "keypoints") source whose files are named `pattern`."""
    ann = existing_file(ann_json, f"COCO {kind} annotation file")
    images = existing_dir(img_dir, "COCO image directory")
    data = read_json(ann, f"COCO {kind} annotation file")
    what = f"COCO {kind} annotation file ({pattern})"
    require_keys(data, keys, ann, what)
    return ann, images, data, what


def check_first_image(img_dir: Path, images: list[dict], ann_json: Path) -> None:
    """Fail at open time, not mid-run, when IMG_DIR does not hold the annotation file's images."""
    if images and not (img_dir / images[0]["file_name"]).is_file():
        raise DatasetError(
            f"{img_dir / images[0]['file_name']}: image of {ann_json.name} not found "
            f"(is {img_dir} the image folder matching the annotations, e.g. val2017?)"
        )


def clean_box(box: list[float], width: int, height: int) -> list[float] | None:
    """The GT box clipped to the image, or None if nothing is left (HRNet's `clean_bbox`)."""
    x, y, w, h = (float(v) for v in box)
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if x2 < x1 or y2 < y1:
        return None
    return [x1, y1, x2 - x1, y2 - y1]


class CocoKeypointsDataset(TaskDataset):
    task = "pose"

    def __init__(
        self,
        ann_json: str | Path,
        img_dir: str | Path,
        *,
        source: str = "",
        limit: int | None = None,
        crop_size: tuple[int, int] = DEFAULT_CROP_SIZE,
    ):
        self.ann_json, self.img_dir, data, what = open_coco_files(
            ann_json, img_dir, "keypoints", "person_keypoints_*.json", ("images", "annotations", "categories")
        )
        self.source = source or f"coco-kpts:{ann_json}:{img_dir}"
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        for i, ann in enumerate(data["annotations"]):
            if not isinstance(ann, dict) or not {"keypoints", "bbox", "image_id", "id"} <= set(ann):
                raise DatasetError(
                    f"{self.ann_json}: annotation #{i} lacks 'keypoints'/'bbox'/'image_id'/'id': not a {what}"
                )
            missing = [k for k in ANNOTATION_KEYS if k not in ann]
            if missing:  # COCOeval reads them: fail here, not deep inside pycocotools
                raise DatasetError(
                    f"{self.ann_json}: annotation id {ann['id']} lacks {', '.join(map(repr, missing))} "
                    "(needed by COCO keypoint evaluation)"
                )
            if len(ann["keypoints"]) != 3 * NUM_KEYPOINTS:
                raise DatasetError(
                    f"{self.ann_json}: annotation id {ann['id']} has {len(ann['keypoints'])} keypoint "
                    "values, "
                    f"expected {3 * NUM_KEYPOINTS} (17 COCO keypoints × (x, y, v))"
                )
        images = {}
        for i, img in enumerate(data["images"]):
            if not isinstance(img, dict) or not {"id", "file_name", "width", "height"} <= set(img):
                raise DatasetError(f"{self.ann_json}: image #{i} lacks 'id'/'file_name'/'width'/'height'")
            images[img["id"]] = img
        self.coco = load_coco(self.ann_json, data)

        image_ids = sorted(images)
        if limit is not None:
            image_ids = image_ids[:limit]
        self.image_ids = image_ids
        check_first_image(self.img_dir, [images[i] for i in image_ids], self.ann_json)
        self.samples: list[dict[str, Any]] = []
        for image_id in image_ids:
            img = images[image_id]
            for ann in self.coco.imgToAnns.get(image_id, []):
                if ann.get("iscrowd", 0) or max(ann["keypoints"][2::3]) == 0:
                    continue
                if ann.get("num_keypoints", 1) == 0:
                    continue
                box = clean_box(ann["bbox"], img["width"], img["height"])
                if box is None or ann.get("area", 1) <= 0:
                    continue
                self.samples.append({"ann_id": ann["id"], "image_id": image_id, "box": box, "ann": ann})

    def __len__(self) -> int:
        return len(self.samples)

    def image_path(self, image_id: int) -> Path:
        return self.img_dir / self.coco.imgs[image_id]["file_name"]

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        image = read_image(self.image_path(s["image_id"]))
        crop = CropTransform.from_box(s["box"], self.crop_size)
        kpts = np.asarray(s["ann"]["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
        xy = crop.to_crop(kpts[:, :2])
        keypoints = np.concatenate([xy, kpts[:, 2:]], axis=1).astype(np.float32)
        keypoints[kpts[:, 2] == 0, :2] = 0.0  # unlabelled: COCO stores (0, 0, 0)
        return {
            "id": s["ann_id"],
            "image_id": s["image_id"],
            "image": crop.warp(image),
            "keypoints": keypoints,
            "box": list(s["box"]),
            "crop": crop,
        }


@register_dataset("coco-kpts", usage="coco-kpts:ANN_JSON:IMG_DIR", num_paths=2, task="pose")
def open_coco_keypoints(paths: list[str], *, source: str, split: str | None, limit: int | None, **options):
    if split is not None:
        raise DatasetError(
            f"{source}: coco-kpts takes no split (the annotation file is the split), got {split!r}"
        )
    unknown = set(options) - {"crop_size"}
    if unknown:
        raise DatasetError(f"{source}: unknown option(s) for coco-kpts: {', '.join(sorted(unknown))}")
    return CocoKeypointsDataset(paths[0], paths[1], source=source, limit=limit, **options)
