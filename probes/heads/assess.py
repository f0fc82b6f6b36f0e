"""A head with its own teacher on held-out images, next to the trivial predictor of its task.

    image ─► head.preprocess ─► head.teacher ─► head ─► Task.decode ─► Task.evaluate

(the project's metrics: AbsRel/δ1 after scale-and-shift alignment, COCO OKS AP,
BLEU/CIDEr-D). The trivial baseline is the task's zero-rate predictor
(`probes.tasks.baselines`: fitted on the training split's labels only, never on
the evaluated image), scored exactly as the sweep scores its zero-rate point,
with the Task that scores the head (a depth head's output kind decides the alignment).
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from probes.data import collate_samples, open_dataset

from .base import FrozenHead


def open_eval_data(head: FrozenHead, data: str, split: str | None, limit: int | None):
    """`data` as the head's task reads it (pose: crops at the head's input size)."""
    from probes.training.objectives import open_task_data

    return open_task_data(head.task, head.spec, data, split, limit, "cpu", head=head)[1]


@torch.no_grad()
def evaluate_with_teacher(
    head: FrozenHead, dataset, *, batch_size: int = 16, max_new_tokens: int = 20
) -> dict:
    """The project's metrics of `head` fed by its own teacher's tokens on every sample of `dataset`."""
    from probes.training.objectives import predict, task_for

    predictions = []
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_samples)
    for samples in loader:
        pixels = torch.stack([head.preprocess(s["image"]) for s in samples])
        predictions.extend(predict(head, head.teacher(pixels), samples, max_new_tokens=max_new_tokens))
    return task_for(head).evaluate(predictions, dataset)


def evaluate_baseline(head: FrozenHead, dataset, train_data: str) -> dict:
    """The task's zero-rate predictor fitted on the train split of `train_data`, scored on `dataset` as
    `head` is scored: {"name" (what was predicted), "data", "split", "samples", "metrics"}."""
    from probes.tasks.baselines import score_zero_rate
    from probes.training.objectives import task_for

    train = open_dataset(train_data, split="train")
    metrics, _, predictor = score_zero_rate(task_for(head), train, dataset)
    return {
        "name": predictor,
        "data": train_data,
        "split": "train",
        "samples": len(train),
        "metrics": metrics,
    }


HEADLINE = {"depth": ("abs_rel", "delta1"), "pose": ("AP", "AR"), "caption": ("CIDEr-D", "BLEU-4")}


def headline(task: str, metrics: dict) -> str:
    return ", ".join(f"{k} {metrics[k]:.4f}" for k in HEADLINE[task])
