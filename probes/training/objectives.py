"""What a head is trained and scored on: task data at the head's input size, the
task loss, decoded predictions."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypedDict

import torch

from probes.data import open_dataset
from probes.heads import CaptionHead, FrozenHead, load_head
from probes.tasks import Task, get_task


def task_for(head: FrozenHead) -> Task:
    """The Task scoring this head's outputs (depth: in the head's `output_kind`)."""
    if head.task == "depth":
        return get_task("depth", output_kind=head.output_kind)
    return get_task(head.task)


def _dataset_captions(dataset) -> list[str]:
    captions = getattr(dataset, "captions", None)
    if isinstance(captions, dict):
        return [c for cs in captions.values() for c in cs]
    return [c for i in range(len(dataset)) for c in dataset[i]["captions"]]


def open_task_data(
    task: str, head_spec: str, data: str, split, limit, device, head: FrozenHead | None = None
):
    """(head, dataset) for `task`: pose crops at the head's input size, a caption vocabulary from the data."""
    if task == "caption":
        dataset = open_dataset(data, split=split, limit=limit)
        if head is None:
            # only a new built-in head builds its vocabulary from the data (a pretrained one ships its own)
            captions = _dataset_captions(dataset) if head_spec == "builtin-new:caption" else None
            head = load_head(head_spec, captions=captions, device=device)
    else:
        head = head if head is not None else load_head(head_spec, device=device)
        options = {"crop_size": head.input_size} if task == "pose" else {}
        dataset = open_dataset(data, split=split, limit=limit, **options)
    if head.task != task:
        raise ValueError(f"head {head_spec!r} is a {head.task} head, not a {task} head")
    if dataset.task != task:
        raise ValueError(f"--data {data!r} is a {dataset.task} dataset, not a {task} dataset")
    return head, dataset


class EncodedSplit(TypedDict):
    """A task's data split run once through a frozen encoder: what a stored split (probes.neck_inputs,
    probes.streams) is computed from; bench.sweep.steps builds it from a study step."""

    task: str
    head: str  # the head spec the split is opened for (pose: its crop size; caption: its vocabulary)
    data: str
    split: str | None
    limit: int | None
    encoder: str
    resolution: int | None


def open_encoded_split(what: EncodedSplit, encoder_weights: dict | None, device: str):
    """(frozen head, dataset, the encoder's features of a sample) of the split."""
    from probes.encoders import create_encoder

    from .sources import EncoderFeatures

    head, dataset = open_task_data(
        what["task"], what["head"], what["data"], what["split"], what["limit"], torch.device(device)
    )
    model = create_encoder(
        what["encoder"], resolution=what["resolution"], device=device, **(encoder_weights or {})
    )
    return head, dataset, EncoderFeatures(model, model.spec.level_names)


def split_record(what: EncodedSplit) -> dict:
    """The `data` record of a stored split: where its samples come from."""
    return {"spec": what["data"], "split": what["split"], "limit": what["limit"], "task": what["task"]}


def task_loss(task: str, head: FrozenHead, tokens: torch.Tensor, samples: Sequence[dict], rng: random.Random):
    """The task loss of the head's output on `tokens` (captions: one reference per image, drawn by `rng`)."""
    scorer = task_for(head)
    if isinstance(head, CaptionHead):
        t = head.tokenize([rng.choice(s["captions"]) for s in samples])
        t = {k: v.to(tokens.device) for k, v in t.items()}
        logits = head(tokens, t["input_ids"], t["attention_mask"])
        return scorer.loss(logits, {"labels": t["labels"]})
    outputs = head(tokens)
    return scorer.loss(outputs, scorer.make_targets(samples, tuple(outputs.shape[-2:])))


@torch.no_grad()
def predict(
    head: FrozenHead, tokens: torch.Tensor, samples: Sequence[dict], *, max_new_tokens=20, num_beams=1
):
    """Decoded predictions (the Task's format) for a batch."""
    scorer = task_for(head)
    if isinstance(head, CaptionHead):
        outputs = head.generate(tokens, max_new_tokens=max_new_tokens, num_beams=num_beams)
    else:
        outputs = head(tokens)
    return scorer.decode(outputs, samples)
