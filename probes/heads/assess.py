"""A head with its own teacher on held-out images, next to the trivial predictor of its task.

    image ─► head.preprocess ─► head.teacher ─► head ─► Task.decode ─► Task.evaluate

(the project's metrics: AbsRel/δ1 after scale-and-shift alignment, COCO OKS AP,
BLEU/CIDEr-D). The trivial baselines use only statistics of the training split,
never the evaluated image:

    depth    the mean depth map of the training images (as disparity 1/mean, aligned like any prediction)
    pose     the mean keypoint layout of the training crops, at every person box
    caption  the most common reference caption of the training images
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from probes.data import collate_samples, open_dataset

from .base import FrozenHead
from .builtin import COCO_KEYPOINTS

BASELINES = {
    "depth": "mean depth map of the training split",
    "pose": "mean keypoint layout of the training crops",
    "caption": "most common reference caption of the training split",
}


def open_eval_data(head: FrozenHead, data: str, split: str | None, limit: int | None):
    """`data` as the head's task reads it (pose: crops at the head's input size)."""
    from probes.training.objectives import open_task_data

    return open_task_data(head.task, head.spec, data, split, limit, "cpu", head=head)[1]


@torch.no_grad()
def evaluate_with_teacher(head: FrozenHead, dataset, *, batch_size: int = 16, max_new_tokens: int = 20) -> dict:
    """The project's metrics of `head` fed by its own teacher's tokens on every sample of `dataset`."""
    from probes.training.objectives import predict, task_for

    predictions = []
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_samples)
    for samples in loader:
        pixels = torch.stack([head.preprocess(s["image"]) for s in samples])
        predictions.extend(predict(head, head.teacher(pixels), samples, max_new_tokens=max_new_tokens))
    return task_for(head).evaluate(predictions, dataset)


def training_statistics(task: str, train: Sequence[dict] | None = None, *, data: str | None = None,
                        crop_size=None) -> dict:  # fmt: skip
    """What a trivial predictor of `task` knows: from samples `train`, or read from the training split `data`.

    Only labels are read (no image is decoded where the dataset allows it).
    """
    if train is None:
        options = {"crop_size": tuple(crop_size)} if task == "pose" else {}
        dataset = open_dataset(data, split="train", **options)
        if task == "depth":
            train = [{"depth": dataset.ground_truth(i)[1]} for i in range(len(dataset))]
        elif task == "pose":
            train = [_label_only_pose_sample(dataset, i) for i in range(len(dataset))]
        else:
            train = [{"captions": dataset.captions[i]} for i in dataset.image_ids]
    if task == "depth":
        return {"mean_depth": np.mean([np.asarray(s["depth"], dtype=np.float64) for s in train], axis=0)}
    if task == "pose":
        total, count = np.zeros((COCO_KEYPOINTS, 2)), np.zeros(COCO_KEYPOINTS)
        for s in train:
            labelled = np.asarray(s["keypoints"])[:, 2] > 0
            total[labelled] += np.asarray(s["keypoints"])[labelled, :2]
            count[labelled] += 1
        return {"mean_keypoints": total / np.maximum(count, 1)[:, None]}
    counts = Counter(c.strip().lower() for s in train for c in s["captions"])
    return {"caption": min(counts, key=lambda c: (-counts[c], c))}  # ties: alphabetical, so it is reproducible


def _label_only_pose_sample(dataset, index: int) -> dict:
    """A synthetic pose sample's crop-space keypoints without rendering its image (as its __getitem__)."""
    from probes.data.coco_keypoints import NUM_KEYPOINTS
    from probes.data.crop import CropTransform

    s = dataset.samples[index]
    crop = CropTransform.from_box(s["box"], dataset.crop_size)
    kpts = np.asarray(s["ann"]["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
    return {"keypoints": np.concatenate([crop.to_crop(kpts[:, :2]), kpts[:, 2:]], axis=1)}


def evaluate_baseline(head: FrozenHead, dataset, stats: dict) -> dict:
    """The project's metrics of the trivial predictor (`training_statistics`) on `dataset`, scored as `head`'s."""
    from probes.tasks import encode_heatmaps
    from probes.training.objectives import task_for

    task = task_for(head)
    if head.task == "depth":
        mean = torch.as_tensor(1.0 / np.maximum(stats["mean_depth"], 1e-6), dtype=torch.float32)
        samples = [{"id": sid, "depth": gt} for sid, gt in (_depth_truth(dataset, i) for i in range(len(dataset)))]
        predictions = task.decode(mean[None].expand(len(samples), *mean.shape), samples)
    elif head.task == "pose":
        # the head's own heatmap grid, so the baseline is decoded exactly as the head's outputs are
        spec = head.expects()
        h, w = head(torch.zeros(1, *spec.shape(1)[1:])).shape[-2:]
        samples = [dataset[i] for i in range(len(dataset))]
        layout = np.concatenate([stats["mean_keypoints"], np.full((COCO_KEYPOINTS, 1), 2.0)], axis=1)
        maps = torch.stack([encode_heatmaps(layout, s["crop"].crop_size, (h, w), task._sigma(w))[0] for s in samples])
        predictions = task.decode(maps, samples)
    else:
        predictions = [{"image_id": i, "caption": stats["caption"]} for i in dataset.image_ids]
    return task.evaluate(predictions, dataset)


def _depth_truth(dataset, index: int):
    if hasattr(dataset, "ground_truth"):
        return dataset.ground_truth(index)
    s = dataset[index]
    return s["id"], s["depth"]


HEADLINE = {"depth": ("abs_rel", "delta1"), "pose": ("AP", "AR"), "caption": ("CIDEr-D", "BLEU-4")}


def headline(task: str, metrics: dict) -> str:
    return ", ".join(f"{k} {metrics[k]:.4f}" for k in HEADLINE[task])
