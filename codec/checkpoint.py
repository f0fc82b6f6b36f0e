"""Training checkpoints: the one format, error type and seeding formula of every featcodec training loop.

    RUN_DIR/checkpoint/state.safetensors   every module's weights ("MODULE.NAME") and optimizer tensors
                                           ("OPTIMIZER.PARAM_INDEX.KEY"), never pickle
    RUN_DIR/checkpoint/state.json          plan (the settings a resumed run must share), step, optimizer
                                           layout, the loop's own JSON state (e.g. its loss history);
                                           written last, atomically: it names a complete state.safetensors

A run saves on a step interval and on a time interval (whichever comes first), and resumes from the last
save after a kill, a preemption or a retry; since every random draw of step k is a function of
(seed, k) (`step_seed`, `codec.batching.batch_indices`), a resumed run continues exactly the trajectory of
an uninterrupted one. Used by codec training (`codec/train.py`) and neck training (`probes/training/loop.py`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from .errors import InputError
from .files import atomic_write_json, load_tensors, save_tensors

CHECKPOINT_DIR = "checkpoint"
STATE_TENSORS, STATE_JSON = "state.safetensors", "state.json"


class CheckpointError(InputError):
    """A checkpoint that cannot be resumed (other settings, unreadable files); the message names it."""


def step_seed(seed: int, step: int, stream: int = 0) -> int:
    """The seed of step `step`'s random draws in a run seeded `seed`; `stream` separates a run's stages
    (e.g. a codec's training and its h_s distillation) so they never share draws."""
    return seed * 1_000_003 + stream * 500_009 + step


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


class Checkpoint:
    """Save and restore a training run's state in `directory` (see the module docstring).

    every_steps: save when the step count is a multiple of it; every_seconds: also save when this long has
    passed since the last save (a preemptible node loses at most that much work). `plan` is compared on
    resume: a checkpoint made with other settings is refused, naming the settings that differ.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        plan: dict,
        *,
        every_steps: int | None = None,
        every_seconds: float | None = None,
    ):
        self.directory = Path(directory)
        self.plan = _jsonable(plan)
        self.every_steps, self.every_seconds = every_steps, every_seconds
        self.last_save = time.monotonic()

    @property
    def exists(self) -> bool:
        return (self.directory / STATE_JSON).is_file()

    def same_plan(self) -> bool:
        """Whether the saved checkpoint was made with this plan (False when there
        is none or it is unreadable)."""
        try:
            return json.loads((self.directory / STATE_JSON).read_text()).get("plan") == self.plan
        except (OSError, json.JSONDecodeError):
            return False

    def due(self, step: int) -> bool:
        """Whether to save after `step` steps."""
        if self.every_steps and step % self.every_steps == 0:
            return True
        return bool(self.every_seconds) and time.monotonic() - self.last_save >= self.every_seconds

    def save(
        self,
        step: int,
        modules: dict[str, torch.nn.Module],
        optimizers: dict[str, torch.optim.Optimizer],
        extra: dict | None = None,
    ) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tensors = {f"{name}.{k}": v for name, m in modules.items() for k, v in m.state_dict().items()}
        layout: dict = {}
        for name, opt in optimizers.items():
            state = opt.state_dict()
            layout[name] = {"param_groups": state["param_groups"], "state": {}}
            for idx, entries in state["state"].items():
                layout[name]["state"][str(idx)] = {}
                for key, value in entries.items():
                    if torch.is_tensor(value):
                        tensors[f"{name}.{idx}.{key}"] = value
                        layout[name]["state"][str(idx)][key] = None
                    else:
                        layout[name]["state"][str(idx)][key] = value
        save_tensors(self.directory / STATE_TENSORS, tensors)
        atomic_write_json(
            self.directory / STATE_JSON,
            {"plan": self.plan, "step": step, "optimizers": layout, "extra": _jsonable(extra or {})},
        )
        self.last_save = time.monotonic()

    def load(
        self, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer]
    ) -> tuple[int, dict]:
        """Restore the saved state into `modules` and `optimizers`; (step, the loop's extra state)."""
        path = self.directory / STATE_JSON
        try:
            meta = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(
                f"{path}: unreadable checkpoint ({e}); pass --force to start over"
            ) from None
        if meta.get("plan") != self.plan:
            saved = meta.get("plan") or {}
            diff = sorted(k for k in set(saved) | set(self.plan) if saved.get(k) != self.plan.get(k))
            raise CheckpointError(
                f"{self.directory}: the checkpoint was made with other settings ({', '.join(diff)}); "
                "pass --force to start over, or use another output directory"
            )
        tensors = load_tensors(
            self.directory / STATE_TENSORS, error=CheckpointError, what="training checkpoint"
        )
        for name, module in modules.items():
            prefix = f"{name}."
            module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
        for name, opt in optimizers.items():
            layout = meta["optimizers"][name]
            state = {
                int(idx): {
                    key: tensors[f"{name}.{idx}.{key}"] if value is None else value
                    for key, value in keys.items()
                }
                for idx, keys in layout["state"].items()
            }
            opt.load_state_dict({"state": state, "param_groups": layout["param_groups"]})
        return int(meta["step"]), meta.get("extra", {})
