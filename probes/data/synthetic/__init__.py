"""The synthetic world: procedurally rendered data for every probe task, offline and without files.

    synthetic:depth[:N]     ray-cast rooms with exact metric depth       (samples as nyuv2)
    synthetic:pose[:N]      articulated figures with 17 COCO keypoints   (samples and `.coco` as coco-kpts)
    synthetic:caption[:N]   coloured shapes with 5 templated references  (samples as coco-caps)
    synthetic:mix[:N]       the pretraining corpus: all three renderers, with instance masks,
                            from seeds disjoint from every split (see corpus.py; N default 3000)

N is the number of images of the split (default 64 for train, 16 for val and
test); `split` is train (the default), val or test, each from its own seed
stream, so the splits never share an image; `limit` keeps the first images as
for the real sources. Every image is a pure function of (task, split, index):
the same spec gives the same pixels on any machine. Options: `image_size=(H, W)`
(default 144×192, NYUv2's 3:4 frame), and for pose `crop_size` as coco-kpts.
Depth is evaluated over NYUv2's (1e-3, 10] m without the Eigen crop.
"""

from __future__ import annotations

from typing import Any

from probes.names import TASK_NAMES

from ..base import DatasetError, register_dataset
from .corpus import CORPUS_IMAGE_SIZE, DEFAULT_CORPUS_IMAGES, SyntheticMixDataset
from .datasets import (
    DATASETS,
    SyntheticCaptionsDataset,
    SyntheticDepthDataset,
    SyntheticKeypointsDataset,
    check_size,
)
from .world import DEFAULT_IMAGE_SIZE, DEFAULT_NUM_IMAGES, SPLITS

USAGE = "synthetic:depth|pose|caption[:N] or synthetic:mix[:N]"


@register_dataset("synthetic", usage=USAGE, files=False)
def open_synthetic(paths: list[str], *, source: str, split: str | None, limit: int | None, **options: Any):
    if paths[:1] == ["mix"]:
        return _open_mix(paths, source=source, split=split, limit=limit, **options)
    if len(paths) not in (1, 2) or paths[0] not in TASK_NAMES:
        raise DatasetError(f"--data {source!r}: expected {USAGE} (a task: {', '.join(TASK_NAMES)}; N images)")
    task = paths[0]
    split = split or "train"
    if split not in SPLITS:
        raise DatasetError(f"{source}: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    num_images = DEFAULT_NUM_IMAGES[split]
    if len(paths) == 2:
        if not paths[1].isdigit() or int(paths[1]) < 1:
            raise DatasetError(f"--data {source!r}: N must be a positive number of images, got {paths[1]!r}")
        num_images = int(paths[1])
    if limit is not None:
        num_images = min(num_images, limit)
    allowed = {"image_size", "crop_size"} if task == "pose" else {"image_size"}
    unknown = set(options) - allowed
    if unknown:
        raise DatasetError(f"{source}: unknown option(s) for synthetic:{task}: {', '.join(sorted(unknown))}")
    kw = {"image_size": check_size(options.pop("image_size", DEFAULT_IMAGE_SIZE), "image_size", source, 32)}
    if "crop_size" in options:
        kw["crop_size"] = check_size(options.pop("crop_size"), "crop_size", source, 8)
    return DATASETS[task](source=source, split=split, num_images=num_images, **kw)


def _open_mix(paths: list[str], *, source: str, split: str | None, limit: int | None, **options: Any):
    if split not in (None, "train", "pretrain"):
        raise DatasetError(
            f"{source}: the pretraining corpus has one split; held-out images are the probe splits"
        )
    if len(paths) > 2 or (len(paths) == 2 and (not paths[1].isdigit() or int(paths[1]) < 1)):
        raise DatasetError(
            f"--data {source!r}: expected synthetic:mix[:N] with N a positive number of images"
        )
    num_images = int(paths[1]) if len(paths) == 2 else DEFAULT_CORPUS_IMAGES
    if limit is not None:
        num_images = min(num_images, limit)
    unknown = set(options) - {"image_size"}
    if unknown:
        raise DatasetError(f"{source}: unknown option(s) for synthetic:mix: {', '.join(sorted(unknown))}")
    size = check_size(options.get("image_size", CORPUS_IMAGE_SIZE), "image_size", source, 32)
    return SyntheticMixDataset(source=source, num_images=num_images, image_size=size)


__all__ = [
    "USAGE",
    "SyntheticCaptionsDataset",
    "SyntheticDepthDataset",
    "SyntheticKeypointsDataset",
    "SyntheticMixDataset",
    "open_synthetic",
]
