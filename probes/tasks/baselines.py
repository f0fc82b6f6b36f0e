"""Zero-rate predictions: the best a probe can do with no features at all (0 bits).

Every rate–accuracy curve starts here. Each predictor is fitted on the training split only and
is the same for every test image, so the accuracy it reaches is what the task gives away for
free; what a curve gains above it is what the bits buy.

- depth: the training set's mean depth map, per pixel, at the test ground truth's size (each
  training map resized there by nearest neighbour, averaged over its valid pixels; a pixel never
  valid takes the global mean). A relative-disparity head's protocol aligns it per image (scale
  and shift in disparity) as it aligns every prediction, so it is handed over as 1/depth.
- pose: the mean keypoint layout, normalised to the person box ((x − x₀)/w, (y − y₀)/h per
  labelled keypoint, averaged per keypoint over the training persons), placed in each test
  person's ground-truth box — the same boxes the top-down probes crop.
- caption: the most common training caption (after coco-caption tokenisation; ties → the
  lexicographically first), given for every test image.

This is the one implementation of a task's trivial predictor: the sweep's zero-rate point
(`probes.evaluate.evaluate_zero_rate`, `featcodec zero-rate`) and the baseline recorded next to
each built-in head (`probes.heads.assess.evaluate_baseline`: `featcodec eval-head`,
`featcodec pretrain-heads`) both come from `score_zero_rate`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .caption import ptb_tokenize
from .pose import NUM_KEYPOINTS


def _depth_maps(dataset: Any):
    """(id, ground-truth depth) per sample, without decoding images where the dataset allows it."""
    for i in range(len(dataset)):
        if hasattr(dataset, "ground_truth"):
            yield dataset.ground_truth(i)
        else:
            sample = dataset[i]
            yield sample["id"], sample["depth"]


def _resize_nearest(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if depth.shape == tuple(size):
        return depth
    t = torch.as_tensor(np.asarray(depth, dtype=np.float32))[None, None]
    return F.interpolate(t, size=size, mode="nearest-exact")[0, 0].numpy()


def mean_depth_map(
    train: Any, size: tuple[int, int], depth_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Per-pixel mean of the valid training depths at `size` (H, W)."""
    lo, hi = depth_range or getattr(train, "depth_range", (1e-3, 10.0))
    total = np.zeros(size, dtype=np.float64)
    count = np.zeros(size, dtype=np.float64)
    for _, depth in _depth_maps(train):
        d = _resize_nearest(np.asarray(depth, dtype=np.float64), size)
        valid = (d > lo) & (d <= hi) & np.isfinite(d)
        total += np.where(valid, d, 0.0)
        count += valid
    if not count.any():
        raise ValueError(f"{getattr(train, 'source', 'training data')}: no valid depth pixel")
    overall = total.sum() / count.sum()
    return np.where(count > 0, total / np.maximum(count, 1), overall)


def zero_rate_depth(task: Any, train: Any, test: Any) -> tuple[list[dict], str]:
    """Depth predictions for `test` from the training mean map, in the units `task` decodes."""
    gts = list(_depth_maps(test))
    size = np.asarray(gts[0][1]).shape
    mean = mean_depth_map(train, size, task.depth_range)
    relative = task.output_kind == "relative-disparity"
    preds = []
    for sample_id, gt in gts:
        m = _resize_nearest(mean, np.asarray(gt).shape).astype(np.float32)
        preds.append({"id": sample_id, "depth": 1.0 / m if relative else m})
    what = f"training-set mean depth map ({len(train)} images, per pixel at {size[0]}×{size[1]})"
    return preds, what + (", as disparity 1/depth" if relative else "")


def _persons(dataset: Any) -> Sequence[dict]:
    samples = getattr(dataset, "samples", None)
    if samples is None:
        raise ValueError(
            f"{getattr(dataset, 'source', dataset)}: the mean pose needs a COCO keypoints dataset"
        )
    return samples


def mean_pose_layout(train: Any) -> np.ndarray:
    """17×2 mean keypoint position in box-normalised coordinates (NaN-free:
    unseen keypoints at the centre)."""
    total, count = np.zeros((NUM_KEYPOINTS, 2)), np.zeros(NUM_KEYPOINTS)
    for s in _persons(train):
        x0, y0, w, h = s["box"]
        k = np.asarray(s["ann"]["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
        labelled = k[:, 2] > 0
        if w <= 0 or h <= 0:
            continue
        uv = (k[:, :2] - [x0, y0]) / [w, h]
        total[labelled] += uv[labelled]
        count[labelled] += 1
    if not count.any():
        raise ValueError(f"{getattr(train, 'source', 'training data')}: no labelled keypoint")
    return np.where(count[:, None] > 0, total / np.maximum(count, 1)[:, None], 0.5)


def zero_rate_pose(task: Any, train: Any, test: Any) -> tuple[list[dict], str]:
    """COCO detections: the mean layout in each test person's box (score 1, as for every GT box)."""
    layout = mean_pose_layout(train)
    dets = []
    for s in _persons(test):
        x0, y0, w, h = s["box"]
        xy = layout * [w, h] + [x0, y0]
        kpts = np.concatenate([xy, np.ones((NUM_KEYPOINTS, 1))], 1).reshape(-1)
        dets.append(
            {
                "image_id": int(s["image_id"]),
                "ann_id": s["ann_id"],
                "category_id": 1,
                "keypoints": [float(v) for v in kpts],
                "score": 1.0,
            }
        )
    return (
        dets,
        f"mean box-normalised keypoint layout of {len(_persons(train))} training persons, in each GT box",
    )


def most_common_caption(train: Any) -> str:
    captions = getattr(train, "captions", None)
    if not captions:
        raise ValueError(f"{getattr(train, 'source', train)}: no training captions")
    counts = Counter(ptb_tokenize(c) for refs in captions.values() for c in refs)
    best = max(counts.values())
    return min(c for c, n in counts.items() if n == best)


def zero_rate_caption(task: Any, train: Any, test: Any) -> tuple[list[dict], str]:
    caption = most_common_caption(train)
    preds = [{"image_id": i, "caption": caption} for i in test.image_ids]
    return preds, f"most common training caption: {caption!r}"


ZERO_RATE = {"depth": zero_rate_depth, "pose": zero_rate_pose, "caption": zero_rate_caption}


def zero_rate_predictions(task: Any, train: Any, test: Any) -> tuple[list[dict], str]:
    """The zero-rate predictions of `task` (a Task) for `test`, fitted on `train`, and what they are."""
    if task.name not in ZERO_RATE:
        raise ValueError(
            f"no zero-rate predictor for task {task.name!r}; expected one of {sorted(ZERO_RATE)}"
        )
    return ZERO_RATE[task.name](task, train, test)


def score_zero_rate(task: Any, train: Any, test: Any) -> tuple[dict, dict | None, str]:
    """(metrics, per-image scores, what was predicted) of `task`'s zero-rate predictions for `test`,
    fitted on `train` and scored by the task's own metrics, as every evaluation is scored."""
    predictions, predictor = zero_rate_predictions(task, train, test)
    metrics, per_image = task.evaluate_per_image(predictions, test)
    return metrics, per_image, predictor
