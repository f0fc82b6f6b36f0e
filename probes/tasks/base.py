"""The task interface between heads and metrics, and its registry.

A head family produces standard outputs (depth: B×H×W; pose: B×17×h×w
heatmaps; caption: B×T×V teacher-forced logits, or generated strings); a
Task turns dataset samples into training targets on the head's output grid,
scores outputs against them, decodes outputs into predictions in the
dataset's own coordinates and evaluates those with the field's metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from codec.registry import Registry


class Task:
    """make_targets → loss (training); decode → evaluate (metrics)."""

    name: str = ""

    def make_targets(
        self, samples: Sequence[dict[str, Any]], output_shape: Sequence[int]
    ) -> dict[str, Tensor]:
        raise NotImplementedError

    def loss(self, outputs: Any, targets: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def decode(self, outputs: Any, samples: Sequence[dict[str, Any]]) -> list[Any]:
        raise NotImplementedError

    def evaluate(self, predictions: Sequence[Any], dataset: Any) -> dict[str, float]:
        return self.evaluate_per_image(predictions, dataset)[0]

    def evaluate_per_image(
        self, predictions: Sequence[Any], dataset: Any
    ) -> tuple[dict[str, float], dict | None]:
        """The metrics and, where the task defines them, per-image scores (`per_image_scores`), or None."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


TASKS: Registry[type[Task]] = Registry("task", attribute="name")
register_task = TASKS.register  # @register_task("depth") on the Task class; sets its `name`


def get_task(name: str, **options: Any) -> Task:
    """The task called `name` (depth, pose, caption); options go to its constructor."""
    return TASKS.get(name)(**options)


def per_image_scores(
    ids: Sequence[Any],
    scores: dict[str, Sequence[float]],
    *,
    weights: Sequence[float] | None = None,
    proxies: dict[str, str] | None = None,
    note: str = "",
) -> dict:
    """Per-image scores as an eval result records them (field `per_image`), keyed by image id.

    A corpus metric of any subset of the images is the weighted mean Σ wᵢ sᵢ / Σ wᵢ of its per-image
    scores (wᵢ = 1 when `weights` is None), which is what lets the report bootstrap over test images:
    the same ids line up across every point of a sweep. `proxies` maps a corpus metric that has no
    per-image form (COCO AP) to the per-image score that stands in for it.
    """
    ids = [str(i) for i in ids]
    if len(set(ids)) != len(ids):
        raise ValueError("per-image scores: image ids repeat")
    out = {
        "ids": ids,
        "weights": None if weights is None else [float(w) for w in weights],
        "scores": {k: [float(v) for v in vals] for k, vals in scores.items()},
        "proxies": dict(proxies or {}),
        "note": note,
    }
    for name, vals in out["scores"].items():
        if len(vals) != len(ids):
            raise ValueError(f"per-image scores: {name} has {len(vals)} values for {len(ids)} images")
    if out["weights"] is not None and len(out["weights"]) != len(ids):
        raise ValueError(f"per-image scores: {len(out['weights'])} weights for {len(ids)} images")
    return out


def samples_by_id(dataset: Any, key: str = "id") -> dict[Any, int]:
    """Map each sample id of a dataset to its index (reads every sample: eval-sized datasets only)."""
    return {dataset[i][key]: i for i in range(len(dataset))}
