"""`featcodec pretrain-heads`: the recipe of the pretrained built-in heads shipped in `probes/heads/weights/`.

For each task a teacher encoder (`teacher.TinyViT`) and the built-in head are
trained end to end, from seeds, on the synthetic world's **train** split with
the task's own loss (`probes.tasks`: MiDaS scale-and-shift-invariant loss on
disparity, weighted heatmap MSE, caption cross-entropy), then frozen, stored
in float16 and scored on the world's **test** split with the project's
metrics next to the task's trivial predictor (`assess.py`, the sweep's zero-rate
predictor of `probes.tasks.baselines` fitted on the same training split):

    synthetic:TASK:N (train) ─► pixels ─► TinyViT ─► tokens (= head.expects()) ─► head ─► task loss
                                              └──────── shipped as the head's teacher (--kd)

Neither of the study's encoders is involved, so the heads judge both alike.
Images are rendered once into memory; batches are a pure function of
(seed, step) (`codec.batching.batch_indices`; horizontal flips for depth, and
for pose with left/right keypoints swapped, drawn from the step's generator;
captions are not flipped: their "left"/"right" would lie), so a run resumed
from its checkpoint (`TASK/training-state.pt`, every `checkpoint_every`
steps) ends with the weights an uninterrupted one would. With one thread on
one machine the recipe reproduces the shipped files; other BLAS builds
differ in the last bits.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torchvision.transforms.functional as TF

from codec.progress import progress as progress_bar
from probes.names import TASK_NAMES

from .assess import evaluate_baseline, evaluate_with_teacher, open_eval_data
from .base import HeadError
from .builtin import BUILTIN_HEADS, BuiltinHead, build_vocabulary
from .registry import load_builtin_head, save_builtin_head

log = logging.getLogger(__name__)

STATE = "training-state.pt"
# COCO keypoint order: a horizontal flip swaps each left keypoint with its right twin
FLIP_PAIRS = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]


@dataclass(frozen=True)
class HeadRecipe:
    task: str
    head: dict  # BuiltinHead kwargs: grid, width, patch, the task's options, teacher (TinyViT kwargs)
    train_images: int  # of synthetic:TASK, split train
    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.05
    warmup_steps: int = 100
    eval_images: int = 100  # of synthetic:TASK, split test
    seed: int = 0
    checkpoint_every: int = 250

    def plan(self) -> dict:
        """What a resumed run must share with the interrupted one."""
        d = asdict(self)
        d.pop("checkpoint_every")
        return json.loads(json.dumps(d))  # tuples → lists, as read back from a checkpoint


# Steps: a scouting run (depth 1200, pose 1500, caption 1500 steps) left depth furthest from converged and
# pose far above its baseline (AP 0.73), so depth got pose's steps. Sizes: head + teacher 0.33-0.53 MB in
# float16. Inputs are the world's 144×192 frames (depth, caption) and 128×96 person crops (pose, half
# ViTPose's 256×192: synthetic people are small).
TEACHER = {"stem": [16, 32, 48], "layers": 2, "heads": 4, "mlp_ratio": 2.0}
RECIPES = {
    "depth": HeadRecipe(
        "depth",
        {"grid": [9, 12], "width": 64, "patch": 16, "channels": 32, "upsample": 3, "teacher": TEACHER},
        train_images=1200,
        steps=1500,
        batch_size=8,
        lr=2e-3,
    ),
    "pose": HeadRecipe(
        "pose",
        {"grid": [16, 12], "width": 64, "patch": 8, "channels": 48, "teacher": {**TEACHER, "stem": [16, 32]}},
        train_images=1000,
        steps=1000,
        batch_size=8,
        lr=2e-3,
    ),
    "caption": HeadRecipe(
        "caption",
        {
            "grid": [9, 12],
            "width": 64,
            "patch": 16,
            "layers": 2,
            "heads": 4,
            "max_length": 24,
            "teacher": TEACHER,
        },
        train_images=2000,
        steps=1500,
        batch_size=16,
        lr=1e-3,
    ),
}


def _lr(step: int, recipe: HeadRecipe) -> float:
    """Linear warm-up, then cosine decay to 1 % (a function of the step: resuming needs no scheduler)."""
    warmup = min(recipe.warmup_steps, recipe.steps // 10)
    if step < warmup:
        return recipe.lr * (step + 1) / warmup
    t = (step - warmup) / max(1, recipe.steps - warmup)
    return recipe.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


# -- data ---------------------------------------------------------------------------------------------


@dataclass
class TrainSet:
    """The rendered training split: uint8 pixels at the head's input size and the task's labels."""

    pixels: torch.Tensor  # N×3×H×W uint8
    labels: list = field(default_factory=list)  # per sample: depth map / (keypoints, crop) / captions

    def __len__(self) -> int:
        return self.pixels.shape[0]


def _uint8(image, size: tuple[int, int]) -> torch.Tensor:
    pixels = TF.pil_to_tensor(image.convert("RGB"))
    if tuple(pixels.shape[-2:]) != tuple(size):  # the world's frames and crops already have the size
        pixels = TF.resize(pixels, list(size), antialias=True)
    return pixels


def render_train_set(recipe: HeadRecipe, head: BuiltinHead, progress: bool = True) -> TrainSet:
    from probes.data import open_dataset

    options = {"crop_size": head.input_size} if recipe.task == "pose" else {}
    dataset = open_dataset(f"synthetic:{recipe.task}:{recipe.train_images}", split="train", **options)
    pixels, labels = [], []
    for i in progress_bar(
        range(len(dataset)), desc=f"render {recipe.task} train", unit="sample", disable=not progress
    ):
        s = dataset[i]
        pixels.append(_uint8(s["image"], head.input_size))
        if recipe.task == "depth":
            labels.append(torch.as_tensor(s["depth"]))
        elif recipe.task == "pose":
            labels.append({"keypoints": s["keypoints"], "crop": s["crop"]})
        else:
            labels.append(list(s["captions"]))
    return TrainSet(torch.stack(pixels), labels)


def _normalise(pixels: torch.Tensor, head: BuiltinHead) -> torch.Tensor:
    """uint8 → the head's `preprocess` normalisation (identical to it when no resize was needed)."""
    from probes.encoders.preprocess import normalize_uint8

    return normalize_uint8(pixels, head.mean, head.std)


# -- one step ------------------------------------------------------------------------------------------


def step_loss(
    head: BuiltinHead, train: TrainSet, indices: list[int], step: int, recipe: HeadRecipe
) -> torch.Tensor:
    """The task loss of teacher + head on the batch `indices` of step `step`."""
    from probes.training.objectives import task_for

    task = task_for(head)
    generator = torch.Generator().manual_seed(recipe.seed * 1_000_003 + step)
    flip = (torch.rand(len(indices), generator=generator) < 0.5) if recipe.task != "caption" else None
    pixels = train.pixels[indices]
    if flip is not None:
        pixels = torch.where(flip[:, None, None, None], pixels.flip(-1), pixels)
    tokens = head.encoder(_normalise(pixels, head))
    if recipe.task == "caption":
        rng = random.Random(
            recipe.seed * 7919 + step
        )  # which of the 5 references: a function of the step too
        t = head.tokenize([rng.choice(train.labels[i]) for i in indices])
        logits = head(tokens, t["input_ids"], t["attention_mask"])
        return task.loss(logits, {"labels": t["labels"]})
    outputs = head(tokens)
    size = tuple(outputs.shape[-2:])
    if recipe.task == "depth":
        targets = task.make_targets([{"depth": train.labels[i].numpy()} for i in indices], size)
        for k in targets:
            targets[k] = torch.where(flip[:, None, None], targets[k].flip(-1), targets[k])
    else:
        targets = task.make_targets([train.labels[i] for i in indices], size)
        maps, weights = targets["heatmaps"], targets["weights"]
        targets["heatmaps"] = torch.where(flip[:, None, None, None], maps.flip(-1)[:, FLIP_PAIRS], maps)
        targets["weights"] = torch.where(flip[:, None], weights[:, FLIP_PAIRS], weights)
    return task.loss(outputs, targets)


# -- the recipe ----------------------------------------------------------------------------------------


def build_head(
    recipe: HeadRecipe, train: TrainSet | None = None, vocab: list[str] | None = None
) -> BuiltinHead:
    """The untrained teacher + head of `recipe`, seeded (a caption head needs the
    training captions' vocabulary)."""
    kwargs = dict(recipe.head)
    if recipe.task == "caption":
        kwargs["vocab"] = (
            vocab if vocab is not None else build_vocabulary(c for cs in train.labels for c in cs)
        )
    torch.manual_seed(recipe.seed)
    return BUILTIN_HEADS.get(recipe.task)(f"builtin:{recipe.task}", **kwargs)


def _vocab_for(recipe: HeadRecipe) -> list[str] | None:
    """The caption vocabulary, from labels only (the head must exist before
    images are rendered at its size)."""
    if recipe.task != "caption":
        return None
    from probes.data import open_dataset

    dataset = open_dataset(f"synthetic:caption:{recipe.train_images}", split="train")
    return build_vocabulary(c for i in dataset.image_ids for c in dataset.captions[i])


def pretrain_head(
    recipe: HeadRecipe,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
    dtype: torch.dtype = torch.float16,
) -> dict:
    """Train `recipe`'s teacher + head into `out_dir` (config.json +
    weights.safetensors); returns config.json."""
    from codec.batching import batch_indices
    from probes.training.neck_dir import load_state, save_state

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / STATE
    # wall time depends on what else runs on the machine; CPU time of this process much less so
    started, cpu_started, load_start = time.perf_counter(), time.process_time(), os.getloadavg()
    head = build_head(recipe, vocab=_vocab_for(recipe))
    head.unfreeze()
    head.encoder.requires_grad_(True)  # pretraining is the one time the teacher itself learns
    params = [p for p in head.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    start, losses, seconds_before, cpu_before = 0, [], 0.0, 0.0
    if resume and state_path.is_file():
        state = load_state(state_path)
        if state.get("plan") != recipe.plan():
            raise HeadError(
                f"{state_path}: the interrupted run used another recipe; pass --force to start over"
            )
        head.load_state_dict(state["head"])
        optimizer.load_state_dict(state["optimizer"])
        start, losses = int(state["step"]), list(state["losses"])
        seconds_before, cpu_before = float(state["seconds"]), float(state["cpu_seconds"])
        log.info("%s: resuming at step %d of %d", out_dir, start, recipe.steps)

    train = render_train_set(recipe, head, progress)

    def checkpoint(step: int) -> None:
        save_state(
            state_path,
            {
                "plan": recipe.plan(),
                "step": step,
                "head": head.state_dict(),
                "optimizer": optimizer.state_dict(),
                "losses": losses,
                "seconds": seconds_before + time.perf_counter() - started,
                "cpu_seconds": cpu_before + time.process_time() - cpu_started,
            },
        )

    bar = progress_bar(
        range(start, recipe.steps),
        desc=f"pretrain {recipe.task}",
        unit="step",
        disable=not progress,
        initial=start,
        total=recipe.steps,
    )
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = _lr(step, recipe)
        loss = step_loss(
            head, train, batch_indices(step, recipe.batch_size, len(train), recipe.seed), step, recipe
        )
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pretrain {recipe.task}: loss became {loss.item()} at step {step + 1}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        losses.append(round(loss.item(), 6))
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        if (step + 1) % recipe.checkpoint_every == 0 and step + 1 < recipe.steps:
            checkpoint(step + 1)
            tail = losses[-recipe.checkpoint_every :]
            log.info(
                "pretrain %s: step %d/%d, mean loss %.4f",
                recipe.task,
                step + 1,
                recipe.steps,
                sum(tail) / len(tail),
            )
    bar.close()
    train_seconds = seconds_before + time.perf_counter() - started
    train_cpu = cpu_before + time.process_time() - cpu_started

    head.trained = True
    head.freeze()
    tenth = max(1, len(losses) // 10)
    record = {
        "recipe": recipe.plan(),
        "data": {
            "spec": f"synthetic:{recipe.task}:{recipe.train_images}",
            "split": "train",
            "samples": len(train),
        },
        "dtype": str(dtype).removeprefix("torch."),
        "training": {  # means over the first and the last tenth of the steps
            "first_loss": sum(losses[:tenth]) / tenth,
            "final_loss": sum(losses[-tenth:]) / tenth,
            "losses_every_50": losses[::50],
        },
        "seconds": round(train_seconds, 1),  # rendering the training split + training, wall clock
        "cpu_seconds": round(train_cpu, 1),
        "threads": torch.get_num_threads(),
        "loadavg_start": [round(v, 2) for v in load_start],
        "machine": platform.machine(),
        "torch": torch.__version__,
    }
    save_builtin_head(head, out_dir, dtype=dtype, extra={"pretraining": record})
    # scored as shipped: reloaded from the float16 file, through the project's own metrics
    shipped = load_builtin_head(out_dir)
    data = f"synthetic:{recipe.task}:{recipe.eval_images}"
    dataset = open_eval_data(shipped, data, "test", None)
    record["test"] = {
        "data": data,
        "split": "test",
        "samples": len(dataset),
        "metrics": evaluate_with_teacher(shipped, dataset),
    }
    record["baseline"] = evaluate_baseline(shipped, dataset, record["data"]["spec"])
    record["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    record["seconds_with_eval"] = round(seconds_before + time.perf_counter() - started, 1)
    record["cpu_seconds_with_eval"] = round(cpu_before + time.process_time() - cpu_started, 1)
    config = json.loads((out_dir / "config.json").read_text())
    config["pretraining"] = record
    from codec.files import atomic_write_json

    atomic_write_json(out_dir / "config.json", config)
    state_path.unlink(missing_ok=True)  # the shipped directory holds only config.json + weights.safetensors
    return config


def pretrain_heads(
    out_dir: str | os.PathLike,
    tasks=TASK_NAMES,
    *,
    resume: bool = False,
    force: bool = False,
    threads: int = 1,
    progress: bool = True,
    overrides: dict | None = None,
) -> dict:
    """Run the recipe of each task into `out_dir/TASK`; a finished task is skipped with `resume`."""
    torch.set_num_threads(threads)
    out_dir = Path(out_dir)
    results = {}
    for task in tasks:
        task_dir = out_dir / task
        done = (task_dir / "config.json").is_file() and not (task_dir / STATE).exists()
        if not force:
            if done and resume:
                log.info("%s: already pretrained, skipped (--force redoes it)", task_dir)
                results[task] = json.loads((task_dir / "config.json").read_text())
                continue
            if (done or (task_dir / STATE).exists()) and not resume:
                raise HeadError(
                    f"{task_dir}: already holds a head or a run; pass --resume to continue or --force"
                )
        elif task_dir.exists():
            for stale in (STATE, "config.json", "weights.safetensors"):
                (task_dir / stale).unlink(missing_ok=True)
        recipe = replace(RECIPES[task], **(overrides or {}))
        results[task] = pretrain_head(recipe, task_dir, resume=resume and not force, progress=progress)
    return results


__all__ = ["RECIPES", "HeadRecipe", "build_head", "pretrain_head", "pretrain_heads", "step_loss"]
