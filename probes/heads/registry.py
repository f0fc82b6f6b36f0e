"""One place that turns a head spec into a frozen head: `load_head(spec)`.

Specs:
    hf:LOCAL_DIR_OR_HUB_ID   a transformers checkpoint (Depth Anything, ViTPose, BLIP captioning)
    builtin:TASK             a pretrained built-in head shipped with featcodec (`weights/TASK/`), with
                             its own teacher encoder (`featcodec pretrain-heads` reproduces it)
    builtin-new:TASK         a new, untrained built-in head (train it with `train-neck --train-head`)
    DIR                      a saved head directory: a built-in head (config.json "format":
                             "featcodec-head") or a transformers `save_pretrained` directory
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from codec.files import WEIGHTS, load_tensors, write_artifact

from .base import TASKS, FrozenHead, HeadError
from .builtin import BUILTIN_HEADS, HEAD_FORMAT, BuiltinHead, build_vocabulary
from .hf import load_hf_head

# the pretrained built-in heads, package data (pyproject `[tool.setuptools.package-data]`)
SHIPPED_WEIGHTS = Path(__file__).parent / "weights"


def shipped_head_dir(task: str) -> Path:
    """The directory of the pretrained built-in head for `task` inside the package."""
    return SHIPPED_WEIGHTS / task


def load_head(spec: str, *, captions=None, device="cpu") -> FrozenHead:
    """A frozen head for `spec`; `captions` (training captions) build a new built-in caption head's vocabulary."""
    if spec.startswith("builtin:"):
        task = spec.split(":", 1)[1]
        if task not in BUILTIN_HEADS:
            raise HeadError(f"head {spec!r}: unknown built-in head; choose builtin:{'|builtin:'.join(TASKS)}")
        path = shipped_head_dir(task)
        if not (path / "config.json").is_file():
            raise HeadError(f"head {spec!r}: {path} is missing; `featcodec pretrain-heads -o {SHIPPED_WEIGHTS}` makes it")
        return load_builtin_head(path).to(device)  # its vocabulary is stored with it: `captions` is not needed
    if spec.startswith("builtin-new:"):
        task = spec.split(":", 1)[1]
        if task not in BUILTIN_HEADS:
            raise HeadError(f"head {spec!r}: unknown built-in head; choose builtin-new:{'|builtin-new:'.join(TASKS)}")
        kwargs = {}
        if task == "caption":
            if captions is None:
                raise HeadError("head 'builtin-new:caption' needs the training captions to build its vocabulary")
            kwargs["vocab"] = build_vocabulary(captions)
        return BUILTIN_HEADS[task](spec, **kwargs).freeze().to(device)
    if spec.startswith("hf:"):
        return load_hf_head(spec[3:], spec).to(device)
    path = Path(spec)
    if path.is_dir():
        config = _read_config(path)
        if config.get("format") == HEAD_FORMAT:
            return load_builtin_head(path).to(device)
        if "model_type" in config:
            return load_hf_head(str(path), f"hf:{path}").to(device)
        raise HeadError(f"{path / 'config.json'}: neither a featcodec head nor a transformers checkpoint")
    raise HeadError(f"head {spec!r}: expected hf:ID_OR_DIR, builtin:TASK, builtin-new:TASK or an existing head directory")


def _read_config(path: Path) -> dict:
    file = path / "config.json"
    if not file.is_file():
        raise HeadError(f"{path}: no config.json; not a head directory")
    try:
        return json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HeadError(f"{file}: not valid JSON ({e})") from e


def save_builtin_head(head: BuiltinHead, path: str | os.PathLike, *, dtype=None, extra: dict | None = None) -> None:
    """Write a (trained) built-in head to `path`: config.json + weights.safetensors, atomically per file.

    `dtype` (e.g. torch.float16) stores floating-point weights at that precision (loading casts them back
    to the head's float32); `extra` adds fields to config.json (a pretraining record).
    """
    tensors = head.state_dict()
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    config = {"format": HEAD_FORMAT, "task": head.task, "spec": head.spec, "trained": head.trained,
              "config": head.config(), **(extra or {})}  # fmt: skip
    write_artifact(path, config, tensors)


def load_builtin_head(path: str | os.PathLike) -> BuiltinHead:
    path = Path(path)
    config = _read_config(path)
    task = config.get("task")
    if task not in BUILTIN_HEADS:
        raise HeadError(f"{path / 'config.json'}: field 'task' is {task!r}, expected one of {list(BUILTIN_HEADS)}")
    head = BUILTIN_HEADS[task](config.get("spec", f"builtin:{task}"), **config["config"])
    weights = path / WEIGHTS
    tensors = load_tensors(weights, error=HeadError, what="head weights")
    try:
        head.load_state_dict(tensors)
    except RuntimeError as e:
        raise HeadError(f"{weights}: weights do not match the head config ({e})") from e
    head.trained = bool(config.get("trained"))
    return head.freeze()
