"""Rate–accuracy curves: which way a metric improves, the monotone hull, the task-sufficient rate.

A curve is a set of operating points (rate in bits per pixel, task metric). Codec
sweeps are noisy: a higher-λ codec can land at more bits for no better accuracy.
Such a point is *dominated* (more bits, no gain) and nobody would operate there, so
every rate–accuracy computation here runs on the monotone hull (the Pareto front):
points sorted by rate, each kept only if it improves on every cheaper point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

# Which way each metric the probes report improves (probes/tasks, bench/demo.py).
HIGHER_IS_BETTER = frozenset(
    ["delta1", "delta2", "delta3"]  # depth: fraction of pixels with max(p/g, g/p) < 1.25^k
    + ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]  # COCO keypoints (OKS)
    + ["oks", "oks_ar"]  # pose, per person: OKS with its own ground truth, fraction of OKS thresholds passed
    + ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "CIDEr-D"]  # captions
)
LOWER_IS_BETTER = frozenset(["abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "mse"])
# The metric a report plots when none is asked for, per task.
PRIMARY_METRIC = {"depth": "abs_rel", "pose": "AP", "caption": "CIDEr-D"}
# pycocotools writes -1 for a statistic with no ground truth in its area range: undefined, not a score.
UNDEFINED_COCO_VALUE = -1.0
COCO_STATS = frozenset(["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"])


def metric_direction(metric: str, overrides: dict[str, bool] | None = None) -> bool:
    """True when a higher value of `metric` is better; `overrides` (name → bool) wins over the table."""
    if overrides and metric in overrides:
        return overrides[metric]
    if metric in HIGHER_IS_BETTER:
        return True
    if metric in LOWER_IS_BETTER:
        return False
    raise ValueError(
        f"metric {metric!r}: unknown direction; say whether higher or lower is better "
        "(featcodec report --direction NAME=higher|lower)"
    )


def _as_curve(
    rates: Sequence[float], metric: Sequence[float], name: str = "curve"
) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rates, dtype=np.float64)
    m = np.asarray(metric, dtype=np.float64)
    if r.ndim != 1 or m.ndim != 1 or r.shape != m.shape:
        raise ValueError(
            f"{name}: rates and metric must be 1-D and of equal length, got {r.shape} and {m.shape}"
        )
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(m))):
        raise ValueError(
            f"{name}: rates and metric must be finite, got rates {r.tolist()} metric {m.tolist()}"
        )
    if np.any(r <= 0):
        raise ValueError(f"{name}: rates must be positive (they are compared in log-rate), got {r.tolist()}")
    return r, m


def monotone_hull(
    rates: Sequence[float], metric: Sequence[float], higher_is_better: bool = True
) -> np.ndarray:
    """Indices of the non-dominated points, by increasing rate (and strictly improving metric).

    A point is dropped when a point at the same or a lower rate is at least as
    good; among equal rates the best metric stays. The result is strictly
    monotone in both coordinates, which interpolating either as a function of
    the other requires.
    """
    r, m = _as_curve(rates, metric)
    sign = 1.0 if higher_is_better else -1.0
    order = np.lexsort((-sign * m, r))  # by rate, then best metric first
    keep: list[int] = []
    for i in order:
        if not keep or sign * m[i] > sign * m[keep[-1]]:
            keep.append(int(i))
    return np.asarray(keep, dtype=np.int64)


@dataclass(frozen=True)
class TaskSufficientRate:
    """The lowest rate reaching `fraction` of the clean accuracy, or why there is none.

    `upper_bound`: the target is already met at the lowest measured rate, so the
    true task-sufficient rate is at most `rate` (nothing is extrapolated below it).
    """

    rate: float | None
    target: float
    clean: float
    fraction: float
    higher_is_better: bool
    upper_bound: bool = False
    reason: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def sufficiency_target(clean_metric: float, fraction: float, higher_is_better: bool) -> float:
    """`fraction` of the clean accuracy: fraction·clean when higher is better, clean/fraction when lower."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if not math.isfinite(clean_metric):
        raise ValueError(f"clean metric must be finite, got {clean_metric}")
    if higher_is_better and clean_metric <= 0:
        raise ValueError(f"a fraction of a non-positive clean accuracy ({clean_metric}) is not a target")
    if not higher_is_better and clean_metric < 0:
        raise ValueError(f"a lower-is-better clean metric must be non-negative, got {clean_metric}")
    return fraction * clean_metric if higher_is_better else clean_metric / fraction


def task_sufficient_rate(
    rates: Sequence[float],
    metric: Sequence[float],
    clean_metric: float,
    fraction: float = 0.95,
    higher_is_better: bool = True,
) -> TaskSufficientRate:
    """Lowest rate at which the metric reaches `fraction` of its clean (uncompressed) value.

    On the monotone hull, the first point meeting the target and the hull point
    before it bracket the crossing; the rate there is interpolated linearly in
    log-rate (rate–accuracy curves are close to linear in log-rate, as in the
    Bjøntegaard model). Met at the cheapest point already → that rate, flagged
    as an upper bound. Never met → rate None and the reason.
    """
    r, m = _as_curve(rates, metric, "task_sufficient_rate")
    target = sufficiency_target(clean_metric, fraction, higher_is_better)
    result = dict(
        target=target, clean=float(clean_metric), fraction=fraction, higher_is_better=higher_is_better
    )
    if r.size == 0:
        return TaskSufficientRate(rate=None, reason="no rate points", **result)
    hull = monotone_hull(r, m, higher_is_better)
    hr, hm = r[hull], m[hull]
    meets = hm >= target if higher_is_better else hm <= target
    if not meets.any():
        word = "below" if higher_is_better else "above"
        return TaskSufficientRate(
            rate=None,
            reason=(
                f"never reached: the best point ({hm[-1]:.6g} at {hr[-1]:.6g}) is {word} the target "
                f"{target:.6g} ({fraction:g} of clean {clean_metric:.6g})"
            ),
            **result,
        )
    k = int(np.argmax(meets))
    if k == 0:
        return TaskSufficientRate(rate=float(hr[0]), upper_bound=True, **result)
    # hm[k-1] misses the target and hm[k] meets it: the crossing lies between them
    t = (target - hm[k - 1]) / (hm[k] - hm[k - 1])
    log_rate = math.log(hr[k - 1]) + t * (math.log(hr[k]) - math.log(hr[k - 1]))
    return TaskSufficientRate(rate=math.exp(log_rate), **result)
