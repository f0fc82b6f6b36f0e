"""Safe loading of the checkpoint formats users actually have.

Formats: official SAM2 (`{"model": state_dict}`, keys under `image_encoder.`),
official Hiera/MAE (`{"model_state": ...}`), timm `.safetensors` / `.pth`
state dicts.  Everything is loaded with safetensors or `weights_only=True`;
a file that needs pickle code execution is refused.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from codec.errors import InputError
from codec.files import sha256_file  # noqa: F401  (re-exported)


class CheckpointError(InputError):
    """A checkpoint file that cannot be used; the message names the file and the keys."""


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat {key: tensor} dict, unwrapping known containers."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"checkpoint {path}: not a readable safetensors file ({e})") from e
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"checkpoint {path}: refusing to load, it needs pickle code execution "
            f"(weights_only=True failed: {str(e).splitlines()[0]}). Re-save the state dict with "
            "torch.save(model.state_dict()) or as .safetensors."
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: unreadable or truncated ({e})") from e
    return unwrap_state_dict(obj, source=str(path))


def unwrap_state_dict(obj: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the state dict inside the containers used by SAM2, MAE/Hiera and common trainers."""
    if isinstance(obj, Mapping):
        for key in ("model", "model_state", "state_dict", "model_ema"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner:
                return unwrap_state_dict(inner, source)
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors and len(tensors) == len(obj):
            return dict(tensors)
        if tensors:
            bad = sorted(k for k, v in obj.items() if not isinstance(v, torch.Tensor))[:5]
            raise CheckpointError(f"{source}: state dict has non-tensor entries {bad}")
    raise CheckpointError(
        f"{source}: no state dict found (expected a dict of tensors, or one under 'model', "
        f"'model_state' or 'state_dict'; got {type(obj).__name__})"
    )


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keep the keys under `prefix` (the part of a bigger model we use), without it."""
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


def load_strict(
    module: torch.nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    source: str,
    ignore_prefixes: Iterable[str] = (),
) -> None:
    """Load `state_dict` into `module`, failing with the key names on any mismatch.

    `ignore_prefixes` are parts of the checkpoint that belong to other modules
    (e.g. a classifier head or an MAE decoder) and are dropped on purpose.
    """
    ignore = tuple(ignore_prefixes)
    state_dict = {k: v for k, v in state_dict.items() if not (ignore and k.startswith(ignore))}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_preview(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_preview(unexpected)}")
        raise CheckpointError(f"{source}: does not match the model: " + "; ".join(parts))
    wrong_shape = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state_dict.items()
        if tuple(v.shape) != tuple(expected[k].shape)
    ]
    if wrong_shape:
        raise CheckpointError(f"{source}: shape mismatch: {_preview(wrong_shape)}")
    module.load_state_dict(state_dict, strict=True)


def _preview(items: list[str], n: int = 8) -> str:
    shown = ", ".join(items[:n])
    return f"[{shown}{', ...' if len(items) > n else ''}] ({len(items)} in all)"
