"""A neck directory: what a trained neck is, and the state to resume its training.

NECK_DIR/config.json          format, task, encoder (name, weights id, checkpoint, resolution),
                              levels, neck config, head (spec, trained?), kd, codec (dir, sha256),
                              after (first neck dir + config sha256), training options, versions
NECK_DIR/weights.safetensors  the trainable neck (the second one of a cross-neck)
NECK_DIR/head/                a built-in head trained jointly (--train-head), saved frozen
NECK_DIR/checkpoint/          the training state to resume from: step, neck/head/optimizer state, loss
                              history (codec.checkpoint's format, shared with codec training)
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from codec.errors import InputError
from codec.files import (
    CONFIG,
    WEIGHTS,
    atomic_write,
    atomic_write_json,
    load_tensors,
    read_json_document,
    save_tensors,
)
from probes.names import NECK_FORMAT, NECK_FORMAT_VERSION
from probes.necks import CrossNeck, Neck

STATE, HEAD_DIR = (
    "training-state.pt",
    "head",
)  # STATE: the built-in heads' pretraining (probes/heads/pretrain.py)


class NeckDirError(InputError):
    """A neck directory that cannot be used; the message names the file."""


def read_neck_config(neck_dir: str | os.PathLike) -> dict:
    return read_json_document(
        Path(neck_dir) / CONFIG,
        format=NECK_FORMAT,
        format_version=NECK_FORMAT_VERSION,
        required=("task", "encoder", "levels", "neck", "head"),
        error=NeckDirError,
        missing_hint=f"no neck config; is {neck_dir} a featcodec neck directory (train-neck -o)?",
    )


def write_neck_config(neck_dir: str | os.PathLike, config: dict) -> None:
    atomic_write_json(Path(neck_dir) / CONFIG, config)


def save_weights(module: torch.nn.Module, path: Path) -> None:
    save_tensors(path, module.state_dict())


def load_weights(module: torch.nn.Module, path: Path) -> None:
    tensors = load_tensors(path, error=NeckDirError, what="neck weights (did training finish?)")
    try:
        module.load_state_dict(tensors)
    except RuntimeError as e:
        raise NeckDirError(f"{path}: weights do not match the neck config ({e})") from e


def save_state(path: Path, state: dict) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch.load raises several types on a bad file
        raise NeckDirError(f"{path}: unreadable training state ({e}); pass --force to start over") from e


def load_neck(
    neck_dir: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, dict]:
    """The trained neck of `neck_dir` (a `CrossNeck` when trained with --after), frozen, and its config."""
    neck_dir = Path(neck_dir)
    config = read_neck_config(neck_dir)
    second = Neck.from_config(config["neck"])
    load_weights(second, neck_dir / WEIGHTS)
    neck: torch.nn.Module = second
    if config.get("after"):
        first, _ = load_neck(config["after"]["dir"], device)
        neck = CrossNeck(first, second)
    return neck.requires_grad_(False).eval().to(device), config
