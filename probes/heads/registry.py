"""One place that turns a head spec into a frozen head: `load_head(spec)`.

A spec `SCHEME:REST` goes to the resolver registered for SCHEME in `HEADS` (`@register_head("hf")`);
anything else is a head directory. Specs:
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
from collections.abc import Callable
from pathlib import Path

from codec.files import WEIGHTS, load_tensors, write_artifact
from codec.registry import Registry
from probes.names import HEAD_FORMAT

from .base import FrozenHead, HeadError
from .builtin import BUILTIN_HEADS, BuiltinHead, build_vocabulary
from .hf import load_hf_head

# the pretrained built-in heads, package data (pyproject `[tool.setuptools.package-data]`)
SHIPPED_WEIGHTS = Path(__file__).parent / "weights"


def shipped_head_dir(task: str) -> Path:
    """The directory of the pretrained built-in head for `task` inside the package."""
    return SHIPPED_WEIGHTS / task


# resolver(rest_of_spec, *, spec, captions) -> FrozenHead, by the spec's scheme (before its first ':')
HEADS: Registry[Callable[..., FrozenHead]] = Registry("head scheme", error=HeadError)
register_head = HEADS.register


def load_head(spec: str, *, captions=None, device="cpu") -> FrozenHead:
    """A frozen head for `spec`; `captions` (training captions) build a new
    built-in caption head's vocabulary."""
    scheme, sep, rest = spec.partition(":")
    if sep and scheme in HEADS:
        return HEADS.get(scheme)(rest, spec=spec, captions=captions).to(device)
    path = Path(spec)
    if path.is_dir():
        config = _read_config(path)
        if config.get("format") == HEAD_FORMAT:
            return load_builtin_head(path).to(device)
        if "model_type" in config:
            return load_hf_head(str(path), f"hf:{path}").to(device)
        raise HeadError(f"{path / 'config.json'}: neither a featcodec head nor a transformers checkpoint")
    raise HeadError(
        f"head {spec!r}: expected hf:ID_OR_DIR, builtin:TASK, builtin-new:TASK or an existing head directory"
    )


def _builtin_task(scheme: str, task: str, spec: str) -> str:
    if task not in BUILTIN_HEADS:
        choices = "|".join(f"{scheme}:{name}" for name in BUILTIN_HEADS.names())
        raise HeadError(f"head {spec!r}: unknown built-in head; choose {choices}")
    return task


@register_head("builtin")
def _shipped_head(task: str, *, spec: str, captions=None) -> FrozenHead:
    """A pretrained built-in head; its vocabulary is stored with it, so `captions` is not needed."""
    path = shipped_head_dir(_builtin_task("builtin", task, spec))
    if not (path / "config.json").is_file():
        raise HeadError(
            f"head {spec!r}: {path} is missing; `featcodec pretrain-heads -o {SHIPPED_WEIGHTS}` makes it"
        )
    return load_builtin_head(path)


@register_head("builtin-new")
def _new_head(task: str, *, spec: str, captions=None) -> FrozenHead:
    """A new, untrained built-in head (a caption head's vocabulary is built from the training captions)."""
    kwargs = {}
    if _builtin_task("builtin-new", task, spec) == "caption":
        if captions is None:
            raise HeadError("head 'builtin-new:caption' needs the training captions to build its vocabulary")
        kwargs["vocab"] = build_vocabulary(captions)
    return BUILTIN_HEADS.get(task)(spec, **kwargs).freeze()


@register_head("hf")
def _hf_head(source: str, *, spec: str, captions=None) -> FrozenHead:
    """A transformers checkpoint: a local directory or a hub id."""
    return load_hf_head(source, spec)


def _read_config(path: Path) -> dict:
    file = path / "config.json"
    if not file.is_file():
        raise HeadError(f"{path}: no config.json; not a head directory")
    try:
        return json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HeadError(f"{file}: not valid JSON ({e})") from e


def save_builtin_head(
    head: BuiltinHead, path: str | os.PathLike, *, dtype=None, extra: dict | None = None
) -> None:
    """Write a (trained) built-in head to `path`: config.json + weights.safetensors, atomically per file.

    `dtype` (e.g. torch.float16) stores floating-point weights at that precision (loading casts them back
    to the head's float32); `extra` adds fields to config.json (a pretraining record).
    """
    tensors = head.state_dict()
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    config = {
        "format": HEAD_FORMAT,
        "task": head.task,
        "spec": head.spec,
        "trained": head.trained,
        "config": head.config(),
        **(extra or {}),
    }
    write_artifact(path, config, tensors)


def load_builtin_head(path: str | os.PathLike) -> BuiltinHead:
    path = Path(path)
    config = _read_config(path)
    task = config.get("task")
    if task not in BUILTIN_HEADS:
        raise HeadError(
            f"{path / 'config.json'}: field 'task' is {task!r}, expected one of {BUILTIN_HEADS.names()}"
        )
    head = BUILTIN_HEADS.get(task)(config.get("spec", f"builtin:{task}"), **config["config"])
    weights = path / WEIGHTS
    tensors = load_tensors(weights, error=HeadError, what="head weights")
    try:
        head.load_state_dict(tensors)
    except RuntimeError as e:
        raise HeadError(f"{weights}: weights do not match the head config ({e})") from e
    head.trained = bool(config.get("trained"))
    return head.freeze()
