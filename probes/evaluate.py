"""`evaluate_neck`: score a trained neck + its frozen head on a dataset, clean or through a codec.

    samples ─► features (encoder | cache) [─► codec: real bitstream, bits counted] ─► neck ─► head
            ─► Task.decode ─► Task.evaluate (AbsRel/RMSE/δ, COCO OKS AP, BLEU-4/CIDEr-D)

The result records everything needed to reproduce it: encoder and weights id,
neck config (and the first neck of a cross-neck), head, codec directory + hash +
bits per pixel and byte split (header / hyper-latent / main latent), dataset spec/split/limit,
metrics, per-image scores keyed by image id and package versions.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from codec.files import package_versions
from codec.names import schema_record
from codec.progress import progress as progress_bar
from probes.anchors import RemoteInference, coding_complexity
from probes.data import collate_samples
from probes.heads import load_head
from probes.names import EVAL_FIELDS, EVAL_FORMAT, ZERO_RATE_FORMAT
from probes.tasks import Task
from probes.training.neck_dir import HEAD_DIR, load_neck
from probes.training.objectives import open_task_data, predict, task_for
from probes.training.sources import build_feature_source, sha256_file

log = logging.getLogger(__name__)


def load_trained_head(neck_dir: str | os.PathLike, config: dict, device="cpu"):
    """The frozen head a neck was trained for: its own trained built-in head, or the recorded spec."""
    head = config["head"]
    if head.get("trained_here"):
        return load_head(str(Path(neck_dir) / HEAD_DIR), device=device)
    if head.get("dir"):  # a built-in head trained elsewhere, loaded from its directory
        return load_head(head["dir"], device=device)
    if head.get("source"):  # a local transformers directory, by absolute path
        return load_head(f"hf:{head['source']}", device=device)
    return load_head(head["spec"], device=device)


def evaluate_neck(
    neck_dir: str | os.PathLike,
    data: str,
    *,
    codec: str | None = None,
    coder: str | None = None,
    split: str | None = None,
    limit: int | None = None,
    checkpoint: str | None = None,
    features: str | None = None,
    batch_size: int = 8,
    device: str = "cpu",
    max_new_tokens: int = 20,
    num_beams: int = 1,
    workers: int = 0,
    progress: bool = True,
    decoded: str | os.PathLike | None = None,
    image_codec: str | None = None,
    image_quality: float | None = None,
    neck_inputs: str | os.PathLike | None = None,
) -> dict:
    """Metrics of the neck in `neck_dir` on `data`; the encoder is rebuilt from the neck's config, or the
    features were computed once: `decoded`, a `streams` step's split for this codec, decoded here
    (probes/streams.py);
    `neck_inputs`, a `features` step's clean inputs of this split (probes/neck_inputs.py).

    `image_codec` (vvc, jxl, jpeg) at `image_quality`: the remote-inference anchor (probes.anchors) — the
    picture is coded instead of the features. Every coded evaluation records its `complexity`."""
    neck_dir = Path(neck_dir)
    device = torch.device(device)
    neck, config = load_neck(neck_dir, device)
    head = load_trained_head(neck_dir, config, device)
    task = config["task"]
    head, dataset = open_task_data(task, config["head"]["spec"], data, split, limit, device, head=head)

    enc = config["encoder"]
    if not (checkpoint or features):
        checkpoint, features = enc.get("checkpoint"), enc.get("features")
    given = bool(checkpoint or features)
    random_init = bool(enc.get("random_init")) and not given
    pretrained = str(enc.get("weights_id", "")).startswith("pretrained:") and not given
    if decoded is not None:
        from probes.streams import DecodedFeatures

        source = DecodedFeatures(decoded, config["levels"], device, codec=codec)
        codec = source.describe_codec().get(
            "dir"
        )  # None: a remote-inference split (pictures coded, no codec)
    elif neck_inputs is not None:
        from probes.neck_inputs import NeckInputs

        source = NeckInputs(neck_inputs, config["levels"], device)
        source.check_neck(neck)
    else:
        source = build_feature_source(
            encoder=enc["name"],
            checkpoint=checkpoint,
            random_init=random_init,
            features=features,
            pretrained=pretrained,
            resolution=enc["resolution"],
            levels=config["levels"],
            dataset=dataset,
            device=device,
            codec=codec,
            coder=coder,
        )
    if image_codec:
        if codec or image_quality is None:
            raise ValueError("remote inference takes image_quality and no feature codec")
        source = RemoteInference(source, image_codec, image_quality)
    described = source.describe()
    if described["weights_id"] != enc["weights_id"]:
        raise ValueError(
            f"{neck_dir}: the neck was trained on encoder weights {enc['weights_id']!r}, "
            f"but the given weights are {described['weights_id']!r}"
        )
    if not codec and config.get("codec"):
        log.warning(
            "%s was trained on features decoded by %s; evaluating on clean features (no --codec)",
            neck_dir,
            config["codec"]["dir"],
        )

    coded = bool(codec or image_codec or decoded is not None)
    predictions, started = [], time.perf_counter()
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_samples, num_workers=workers)
    bar = progress_bar(total=len(dataset), desc=f"eval {task}", unit="sample", disable=not progress)
    for samples in loader:
        with torch.no_grad():
            tokens = neck(source.features(samples))
        predictions.extend(predict(head, tokens, samples, max_new_tokens=max_new_tokens, num_beams=num_beams))
        bar.update(len(samples))
    bar.close()
    if decoded is not None and len(source.served) != len(source.record["ids"]):
        raise ValueError(
            f"{decoded}: decoded {len(source.record['ids'])} samples, the evaluation read "
            f"{len(source.served)}: its bits would not be this evaluation's"
        )
    metrics, per_image = task_for(head).evaluate_per_image(predictions, dataset)

    record = {
        "format": EVAL_FORMAT,
        "task": task,
        "metrics": metrics,
        "per_image": per_image,
        "encoder": described,
        "random_init": bool(described.get("random_init")),
        "neck": {
            "dir": str(neck_dir.resolve()),
            "config_sha256": sha256_file(neck_dir / "config.json"),
            "weights_sha256": sha256_file(neck_dir / "weights.safetensors"),
            **config["neck"],
            "kd": config.get("kd"),
            "after": config.get("after"),
            "trained_on": config.get("data"),
            "trained_codec": config.get("codec"),
            "seed": (config.get("train") or {}).get("seed"),  # the neck's training seed: a study's seed axis
        },
        "head": config["head"],
        "codec": source.describe_codec() if coded else None,
        "bpp": source.bits_per_pixel if coded else None,
        "complexity": coding_complexity(source, collate_samples([dataset[0]])) if coded else None,
        "data": {"spec": data, "split": split, "limit": limit, "samples": len(dataset)},
        "generation": {"max_new_tokens": max_new_tokens, "num_beams": num_beams}
        if task == "caption"
        else None,
        "seconds": round(time.perf_counter() - started, 3),
        "device": str(device),
        "machine": platform.machine(),
        "versions": package_versions(),
    }
    return schema_record(EVAL_FIELDS, record)


def evaluate_zero_rate(
    task: str | Task,
    train_data: str,
    test_data: str,
    *,
    train_split: str | None = None,
    split: str | None = None,
    train_limit: int | None = None,
    limit: int | None = None,
    task_options: dict | None = None,
) -> dict:
    """The zero-rate point of every curve on `test_data`: the task's best feature-free prediction
    (probes/tasks/baselines.py), fitted on `train_data`, scored as `evaluate_neck` scores a neck.

    `task` is a name (with `task_options` for its constructor, e.g. a depth head's `output_kind`)
    or a Task; its `data` record matches the `data` of the evaluations it anchors.
    """
    from probes.data import open_dataset
    from probes.tasks import get_task
    from probes.tasks.baselines import score_zero_rate

    started = time.perf_counter()
    task_obj = get_task(task, **(task_options or {})) if isinstance(task, str) else task
    train = open_dataset(train_data, split=train_split, limit=train_limit)
    test = open_dataset(test_data, split=split, limit=limit)
    metrics, per_image, predictor = score_zero_rate(task_obj, train, test)
    return {
        "format": ZERO_RATE_FORMAT,
        "task": task_obj.name,
        "task_config": repr(task_obj),
        "predictor": predictor,
        "bpp": 0.0,
        "metrics": metrics,
        "per_image": per_image,
        "data": {"spec": test_data, "split": split, "limit": limit, "samples": len(test)},
        "train": {"spec": train_data, "split": train_split, "limit": train_limit, "samples": len(train)},
        "seconds": round(time.perf_counter() - started, 3),
        "versions": package_versions(),
    }
