"""Intervals across training seeds and test images: the seed-mean t interval with a paired image bootstrap.

A study trains every codec, neck and fine-tune once per seed s = 1..S and scores each on the same n test
images. A statistic g (a BD-rate, a clean accuracy, a task-sufficient rate, …) then varies with the seed
(training noise) and with the draw of test images (sampling noise). Its interval must cover both:

    per seed s, per curve k: scores P_k × n (the same n images, aligned by id, for every seed and curve)
        ─► g_s on all images, on a scale where averaging makes sense (log rate ratio, log rate, identity)
        ─► estimate  ḡ = mean_s g_s
        ─► V_train = var_s(g_s) / S                      training noise, the images held fixed
        ─► V_img   = var_b( mean_s g_s[b] )              B paired resamples of the image ids: the same
                                                          resample for every seed and every curve
        ─► ḡ ± t_{ν, 1−α/2} · √(V_train + V_img),   ν = V² / (V_train² / (S − 1))   (Welch–Satterthwaite,
                                                          V_img taken as known: infinite df)
        ─► back-transformed (BD-rate: 100·(exp − 1); rate: exp)

The training term follows the benchmark-variance literature (Bouthillier et al., "Accounting for variance in
machine learning benchmarks", MLSys 2021: average over seeds, and count the seed variance), the image term is
the paired bootstrap of `bench.rd.bootstrap` (Efron & Tibshirani 1993), and their sum gets Satterthwaite's
(1946) degrees of freedom, so few seeds give the wide t intervals they should. With S = 1 there is nothing to
say about training: the interval is the percentile image bootstrap, flagged as covering test images only.
docs/analysis.md ("Intervals across training seeds and test images") gives the assumptions and limits.

`seed_interval` is the generic core: it takes a statistic (seed index, the resampled metrics B×P of each of
that seed's curves → B values on the transformed scale). The named functions below build the statistic for a
BD-rate, a BD-metric, a clean accuracy, a difference of clean accuracies, a task-sufficient rate and a
difference of two BD-rates; `verdict` and `bonferroni_level` turn intervals into the study's verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, TypedDict

import numpy as np

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack is 3.11+; the project supports 3.10

from .bootstrap import (
    pchip_bd_metrics,
    pchip_bd_rates,
    resample_counts,
    resampled_metrics,
    task_sufficient_rates,
)

METHOD = (
    "seed-mean t interval: training variance across seeds + paired image bootstrap (Welch–Satterthwaite df)"
)
METHOD_ONE_SEED = "percentile paired image bootstrap (one training seed)"
METHOD_SEEDS_ONLY = "seed-mean t interval (no per-image scores: training variance only)"
COVERS_BOTH = "training seeds and test images"
COVERS_IMAGES = "test images only"
COVERS_SEEDS = "training seeds only"
VERDICTS = ("reproduced", "contradicted", "inconclusive")

# (seed index, [metrics B×P_k of each of that seed's curves on the resamples]) → B values, transformed scale
Statistic = Callable[[int, list[np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Scale:
    """The scale a statistic is averaged and its interval built on, and the way back to reported units."""

    name: str
    forward: Callable[[np.ndarray], np.ndarray]
    back: Callable[[np.ndarray], np.ndarray]


# A BD-rate in % as a log rate ratio: seeds at −50 % and +100 % average to 0, as they should.
LOG_RATIO = Scale(
    "log rate ratio",
    lambda v: np.log1p(np.asarray(v, dtype=np.float64) / 100.0),
    lambda g: np.expm1(np.asarray(g, dtype=np.float64)) * 100.0,
)
LOG = Scale(
    "log",
    lambda v: np.log(np.asarray(v, dtype=np.float64)),
    lambda g: np.exp(np.asarray(g, dtype=np.float64)),
)
IDENTITY = Scale(
    "identity", lambda v: np.asarray(v, dtype=np.float64), lambda g: np.asarray(g, dtype=np.float64)
)


@dataclass(frozen=True)
class SeedInterval:
    """An estimate across training seeds with its interval, in reported units (docs/analysis.md).

    var_training, var_images: the two variance terms on the transformed `scale`; share_training their
    split; seeds: S given, defined: seeds whose statistic exists (e.g. reached the task-sufficient
    target) — only those are averaged; valid: resamples on which every defined seed's statistic exists.
    """

    estimate: float | None
    low: float | None
    high: float | None
    level: float
    per_seed: dict[str, float | None]
    var_training: float | None
    var_images: float | None
    share_training: float | None
    df: float | None  # Welch–Satterthwaite ν (inf when the seeds agree exactly); None for one seed
    seeds: int
    defined: int
    images: int
    resamples: int
    valid: int
    method: str
    covers: str
    scale: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["notes"] = list(self.notes)
        if out["df"] is not None and math.isinf(out["df"]):
            out["df"] = "inf"  # JSON has no infinity
        return out


def _finite(v) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None


def _t_quantile(p: float, df: float) -> float:
    from scipy import stats  # lazily: importing bench.rd must stay cheap

    return float(stats.t.ppf(p, df))


def combine(
    per_seed: np.ndarray,
    resampled: np.ndarray | None,
    *,
    scale: Scale = IDENTITY,
    level: float = 0.95,
    seed_names: Sequence[str] | None = None,
    images: int = 0,
    method: str | None = None,
) -> SeedInterval:
    """The interval from g_s (S, transformed scale, NaN = undefined on that seed) and, when per-image scores
    exist, their values on the B image resamples (B×S; the same resample across seeds). Without resamples
    (None) only the training variance is known, and the interval says so."""
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    g = np.asarray(per_seed, dtype=np.float64).ravel()
    S = g.size
    if S == 0:
        raise ValueError("no seeds: at least one per-seed value is needed")
    names = [str(s) for s in (seed_names if seed_names is not None else range(1, S + 1))]
    if len(names) != S:
        raise ValueError(f"{len(names)} seed names for {S} seeds")
    per_seed_out = {k: _finite(scale.back(v)) for k, v in zip(names, g, strict=True)}
    defined = np.isfinite(g)
    D = int(defined.sum())
    notes = []
    if D < S:
        missing = ", ".join(k for k, d in zip(names, defined, strict=True) if not d)
        notes.append(f"defined on {D} of {S} seeds (seed {missing} undefined, left out)")
    B = 0 if resampled is None else np.atleast_2d(resampled).shape[0]
    empty = dict(
        estimate=None,
        low=None,
        high=None,
        level=level,
        per_seed=per_seed_out,
        var_training=None,
        var_images=None,
        share_training=None,
        df=None,
        seeds=S,
        defined=D,
        images=images,
        resamples=B,
        valid=0,
        scale=scale.name,
    )
    if D == 0:
        return SeedInterval(
            **empty,
            method=method or METHOD,
            covers=COVERS_BOTH if S > 1 else COVERS_IMAGES,
            notes=(*notes, "undefined on every seed"),
        )
    gd = g[defined]
    mean = float(gd.mean())
    estimate = _finite(scale.back(mean))
    if resampled is None:  # per-seed values only: training variance, nothing on the images
        if D < 2:
            return SeedInterval(
                **{**empty, "estimate": estimate},
                method=METHOD_SEEDS_ONLY,
                covers=COVERS_SEEDS,
                notes=(*notes, "one seed and no per-image scores: no interval"),
            )
        v_train = float(np.var(gd, ddof=1)) / D
        half = _t_quantile(1 - (1 - level) / 2, D - 1) * math.sqrt(v_train)
        return SeedInterval(
            **{
                **empty,
                "estimate": estimate,
                "low": _finite(scale.back(mean - half)),
                "high": _finite(scale.back(mean + half)),
                "var_training": v_train,
                "share_training": 1.0 if v_train > 0 else None,
                "df": float(D - 1),
            },
            method=METHOD_SEEDS_ONLY,
            covers=COVERS_SEEDS,
            notes=tuple(notes),
        )
    boot = np.atleast_2d(np.asarray(resampled, dtype=np.float64))
    if boot.shape[1] != S:
        raise ValueError(f"resampled values are {boot.shape}, expected B×{S} (one column per seed)")
    boot = boot[:, defined]
    ok = np.all(np.isfinite(boot), axis=1)
    valid = int(ok.sum())
    if valid < B:
        notes.append(f"{B - valid} of {B} image resamples undefined on some seed, left out")
    base = {**empty, "estimate": estimate, "valid": valid}
    if valid < 2:
        return SeedInterval(
            **base,
            method=method or METHOD,
            covers=COVERS_BOTH if D > 1 else COVERS_IMAGES,
            notes=(*notes, "fewer than 2 valid image resamples: no interval"),
        )
    boot = boot[ok]
    if D == 1:  # one seed: today's percentile bootstrap, in reported units
        alpha = (1 - level) / 2
        low, high = np.quantile(scale.back(boot[:, 0]), [alpha, 1 - alpha])
        v_img = float(np.var(boot[:, 0], ddof=1))
        return SeedInterval(
            **{**base, "low": _finite(low), "high": _finite(high), "var_training": None, "var_images": v_img},
            method=METHOD_ONE_SEED,
            covers=COVERS_IMAGES,
            notes=(*notes, "one seed: the interval covers test images only"),
        )
    v_train = float(np.var(gd, ddof=1)) / D
    v_img = float(np.var(boot.mean(axis=1), ddof=1))
    total = v_train + v_img
    df = total**2 / (v_train**2 / (D - 1)) if v_train > 0 else math.inf
    half = _t_quantile(1 - (1 - level) / 2, df) * math.sqrt(total)
    return SeedInterval(
        **{
            **base,
            "low": _finite(scale.back(mean - half)),
            "high": _finite(scale.back(mean + half)),
            "var_training": v_train,
            "var_images": v_img,
            "share_training": v_train / total if total > 0 else None,
            "df": df,
        },
        method=method or METHOD,
        covers=COVERS_BOTH,
        notes=tuple(notes),
    )


def seed_interval(
    scores: Sequence[Sequence[np.ndarray]],
    statistic: Statistic,
    *,
    scale: Scale = IDENTITY,
    weights: Sequence[float] | None = None,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    seed_names: Sequence[str] | None = None,
) -> SeedInterval:
    """The generic core. scores[s][k]: per-image scores (P × n, or n for one value) of curve k on training
    seed s, the n images aligned across every seed and curve; weights: one per image (pose: persons).

    statistic(s, metrics) gets each of seed s's curves' metrics (B × P_k: the weighted mean over images)
    and returns B values on `scale`; it is called once on all images (B = 1) and once on the resamples.
    """
    if not scores:
        raise ValueError("no seeds: scores must hold one list of curves per training seed")
    if resamples < 2:
        raise ValueError(f"resamples must be at least 2, got {resamples}")
    mats = [[np.atleast_2d(np.asarray(c, dtype=np.float64)) for c in curves] for curves in scores]
    n = mats[0][0].shape[1]
    shapes = [[m.shape for m in curves] for curves in mats]
    if n == 0 or any(m.shape[1] != n for curves in mats for m in curves):
        raise ValueError(
            f"per-image scores must share their n images across seeds and curves, got shapes {shapes}"
        )
    if any(len(curves) != len(mats[0]) for curves in mats):
        raise ValueError(f"every seed needs the same curves, got shapes {shapes}")
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ValueError(
                f"weights must be {n} positive finite values (one per image), got shape {w.shape}"
            )
    counts = resample_counts(n, resamples, seed)  # one draw of image ids for every seed and curve: paired
    full, boot = np.empty(len(mats)), np.empty((resamples, len(mats)))
    for s, curves in enumerate(mats):
        split = np.cumsum([m.shape[0] for m in curves])[:-1]
        stacked = np.vstack(curves)
        with np.errstate(divide="ignore", invalid="ignore"):
            full[s] = np.asarray(
                statistic(s, np.split(resampled_metrics(stacked, weights, np.ones((1, n))), split, axis=1))
            ).ravel()[0]
            boot[:, s] = statistic(s, np.split(resampled_metrics(stacked, weights, counts), split, axis=1))
    return combine(full, boot, scale=scale, level=level, seed_names=seed_names, images=n)


# --- named statistics -----------------------------------------------------------------------------------
# curves_X: one (rates, scores P × n) per seed, seed s of every argument trained with the same seed.

Curves = Sequence[tuple[Sequence[float], np.ndarray]]


class Resampling(TypedDict, total=False):
    """The options every named interval below takes and hands to `seed_interval` (its defaults apply):
    weights (one per image), seeds (the seed names), resamples (B), level, seed (of the image draw)."""

    weights: Sequence[float] | None
    seeds: Sequence[str] | None
    resamples: int
    level: float
    seed: int


def _seed_interval_options(resampling: Resampling) -> dict:
    options = dict(resampling)
    options["seed_names"] = options.pop("seeds", None)
    return options


def _log_bd_rates(ra, rb, hib: bool) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    return lambda ma, mb: LOG_RATIO.forward(pchip_bd_rates(ra, ma, rb, mb, hib))


def bd_rate_interval(
    curves_a: Curves,
    curves_b: Curves,
    *,
    higher_is_better: bool = True,
    **resampling: Unpack[Resampling],
) -> SeedInterval:
    """PCHIP BD-rate of B vs A, % (seed s of B against seed s of A), averaged as a log rate ratio."""
    _same_seeds(curves_a, curves_b)
    bd = [
        _log_bd_rates(ra, rb, higher_is_better) for (ra, _), (rb, _) in zip(curves_a, curves_b, strict=True)
    ]
    return seed_interval(
        [[sa, sb] for (_, sa), (_, sb) in zip(curves_a, curves_b, strict=True)],
        lambda s, m: bd[s](m[0], m[1]),
        scale=LOG_RATIO,
        **_seed_interval_options(resampling),
    )


def bd_metric_interval(
    curves_a: Curves,
    curves_b: Curves,
    *,
    higher_is_better: bool = True,
    **resampling: Unpack[Resampling],
) -> SeedInterval:
    """PCHIP BD-metric of B vs A (B − A at equal rate, metric units), averaged as is."""
    _same_seeds(curves_a, curves_b)
    rates = [(ra, rb) for (ra, _), (rb, _) in zip(curves_a, curves_b, strict=True)]
    return seed_interval(
        [[sa, sb] for (_, sa), (_, sb) in zip(curves_a, curves_b, strict=True)],
        lambda s, m: pchip_bd_metrics(rates[s][0], m[0], rates[s][1], m[1], higher_is_better),
        **_seed_interval_options(resampling),
    )


def mean_interval(
    scores: Sequence[np.ndarray],
    **resampling: Unpack[Resampling],
) -> SeedInterval:
    """A clean accuracy: the (weighted) mean per-image score of one evaluation per seed (scores[s]: n)."""
    return seed_interval(
        [[np.asarray(x)] for x in scores],
        lambda s, m: m[0][:, 0],
        **_seed_interval_options(resampling),
    )


def mean_difference_interval(
    on: Sequence[np.ndarray],
    off: Sequence[np.ndarray],
    **resampling: Unpack[Resampling],
) -> SeedInterval:
    """A difference of clean accuracies, on − off (e.g. cross-neck − direct neck), seed by seed."""
    _same_seeds(on, off)
    return seed_interval(
        [[np.asarray(a), np.asarray(b)] for a, b in zip(on, off, strict=True)],
        lambda s, m: m[0][:, 0] - m[1][:, 0],
        **_seed_interval_options(resampling),
    )


def task_sufficient_rate_interval(
    curves: Curves,
    clean: Sequence[np.ndarray],
    *,
    fraction: float = 0.95,
    higher_is_better: bool = True,
    **resampling: Unpack[Resampling],
) -> SeedInterval:
    """The task-sufficient rate (`curves.task_sufficient_rate`) of each seed's curve against that seed's own
    clean accuracy (clean[s]: n per-image scores), averaged in log-rate. A seed that never reaches the target
    is undefined: `defined` says on how many seeds it was reached, and only those are averaged."""
    _same_seeds(curves, clean)
    rates = [r for r, _ in curves]

    def statistic(s: int, m: list[np.ndarray]) -> np.ndarray:
        return LOG.forward(task_sufficient_rates(rates[s], m[0], m[1][:, 0], fraction, higher_is_better))

    out = seed_interval(
        [[sc, np.asarray(c)] for (_, sc), c in zip(curves, clean, strict=True)],
        statistic,
        scale=LOG,
        **_seed_interval_options(resampling),
    )
    reached = f"target reached on {out.defined} of {out.seeds} seeds"
    return replace(out, notes=(reached, *out.notes))


def bd_rate_difference_interval(
    curves_a1: Curves,
    curves_b1: Curves,
    curves_a2: Curves,
    curves_b2: Curves,
    *,
    higher_is_better: bool = True,
    **resampling: Unpack[Resampling],
) -> SeedInterval:
    """BD-rate(B1 vs A1) against BD-rate(B2 vs A2), e.g. the KD gain (KD on vs off) of one encoder against
    another's, all four curves on the same images: log(1 + BD₁) − log(1 + BD₂) per seed, reported as the
    ratio of the two rate factors, % (100·((1 + BD₁)/(1 + BD₂) − 1)): < 0 when the first saves more bits."""
    for other in (curves_b1, curves_a2, curves_b2):
        _same_seeds(curves_a1, other)
    bd1 = [_log_bd_rates(a[0], b[0], higher_is_better) for a, b in zip(curves_a1, curves_b1, strict=True)]
    bd2 = [_log_bd_rates(a[0], b[0], higher_is_better) for a, b in zip(curves_a2, curves_b2, strict=True)]
    return seed_interval(
        [
            [a1[1], b1[1], a2[1], b2[1]]
            for a1, b1, a2, b2 in zip(curves_a1, curves_b1, curves_a2, curves_b2, strict=True)
        ],
        lambda s, m: bd1[s](m[0], m[1]) - bd2[s](m[2], m[3]),
        scale=LOG_RATIO,
        **_seed_interval_options(resampling),
    )


def seeds_only_interval(
    values: Mapping[str, float | None], *, scale: Scale = IDENTITY, level: float = 0.95
) -> SeedInterval:
    """Per-seed values (reported units, None = undefined) without per-image scores: the t interval of the
    training variance alone (it misses the shared test-image noise, and says so in `covers`)."""
    g = np.array(
        [np.nan if v is None else float(scale.forward(v)) for v in values.values()], dtype=np.float64
    )
    return combine(g, None, scale=scale, level=level, seed_names=list(values))


def _same_seeds(*per_seed: Sequence) -> None:
    sizes = [len(x) for x in per_seed]
    if len(set(sizes)) != 1:
        raise ValueError(f"every curve needs one entry per training seed, got {sizes} seeds")


# --- verdicts ---------------------------------------------------------------------------------------------


def verdict(interval: SeedInterval | Mapping | None, direction: str) -> str:
    """ "reproduced" when the whole interval lies on the finding's side of 0 (direction "positive": > 0,
    "negative": < 0), "contradicted" when it lies wholly on the other side, else (touching or straddling 0,
    or no interval) "inconclusive"."""
    if direction not in ("positive", "negative"):
        raise ValueError(f"direction must be 'positive' or 'negative', got {direction!r}")
    if interval is None:
        return "inconclusive"
    low, high = (
        (interval.get("low"), interval.get("high"))
        if isinstance(interval, Mapping)
        else (interval.low, interval.high)
    )
    if low is None or high is None:
        return "inconclusive"
    above, below = low > 0, high < 0
    if above or below:
        return "reproduced" if above == (direction == "positive") else "contradicted"
    return "inconclusive"


def bonferroni_level(comparisons: int, alpha: float = 0.05) -> float:
    """The level of each of m intervals so that all m hold together with probability ≥ 1 − α (Bonferroni)."""
    if comparisons < 1:
        raise ValueError(f"the number of comparisons must be ≥ 1, got {comparisons}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return 1.0 - alpha / comparisons
