"""Bootstrap confidence interval of a BD-rate over test images.

A BD-rate compares two curves measured on one test set; a different draw of test images would
move every point a little, and the BD-rate with them. The bootstrap puts a number on that:

    per-image scores s[p, i] of every point p of both curves, on the images i they share
        ─► B resamples of the image ids, with replacement (seeded): counts c[b, i]
        ─► each point's metric on each resample: Σᵢ c[b,i] wᵢ s[p,i] / Σᵢ c[b,i] wᵢ   (one matrix product)
        ─► the BD-rate of each resample (monotone hull, PCHIP, as `bd_rate`)
        ─► the percentile interval of the B values (e.g. 2.5 % and 97.5 % for 95 %)

The resample is *paired*: the same image ids for every point of both curves, since all points
are scored on the same test images, so the interval reflects how the two encoders differ
image by image, not the spread of either curve alone. wᵢ = 1 except where one record stands for
several scored items (pose: an image's persons).

`pchip_bd_rate` is `bd_rate(method="pchip")` in plain numpy, and `pchip_bd_rates` the same for
many metric vectors at once (grouped by hull shape), so a thousand resamples take milliseconds;
tests check both agree with `bd_rate` to 1e-9. `pchip_bd_metrics` and `task_sufficient_rates` do the
same for `bd_metric` and `curves.task_sufficient_rate`, for the intervals across seeds (`seeds.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def hull_mask(rates: np.ndarray, metric: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Indices of the monotone hull (as `curves.monotone_hull`): by rate, strictly improving."""
    sign = 1.0 if higher_is_better else -1.0
    order = np.lexsort((-sign * metric, rates))
    s = sign * metric[order]
    keep = np.ones(s.size, dtype=bool)
    keep[1:] = s[1:] > np.maximum.accumulate(s)[:-1]
    return order[keep]


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch–Carlson slopes as scipy's PchipInterpolator sets them
    (weighted harmonic means, 3-point ends)."""
    h = np.diff(x)
    m = np.diff(y) / h
    if x.size == 2:
        return np.array([m[0], m[0]])
    d = np.zeros_like(x)
    w1, w2 = 2 * h[1:] + h[:-1], h[1:] + 2 * h[:-1]
    same = (np.sign(m[1:]) == np.sign(m[:-1])) & (m[1:] != 0) & (m[:-1] != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = (w1 + w2) / (w1 / m[:-1] + w2 / m[1:])
    d[1:-1] = np.where(same, harmonic, 0.0)
    for i, (h0, h1, m0, m1) in ((0, (h[0], h[1], m[0], m[1])), (-1, (h[-1], h[-2], m[-1], m[-2]))):
        e = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(e) != np.sign(m0):
            e = 0.0
        elif np.sign(m0) != np.sign(m1) and abs(e) > abs(3 * m0):
            e = 3 * m0
        d[i] = e
    return d


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """∫_lo^hi of the PCHIP through (x, y) (x increasing), in closed form piece by piece."""
    d = _pchip_slopes(x, y)
    h = np.diff(x)
    delta = np.diff(y) / h
    c2 = (3 * delta - 2 * d[:-1] - d[1:]) / h
    c3 = (d[:-1] - 2 * delta + d[1:]) / h**2
    t0 = np.clip(x[:-1], lo, hi) - x[:-1]
    t1 = np.clip(x[1:], lo, hi) - x[:-1]
    return float(
        np.sum(
            (t1 - t0) * y[:-1]
            + (t1**2 - t0**2) * d[:-1] / 2
            + (t1**3 - t0**3) * c2 / 3
            + (t1**4 - t0**4) * c3 / 4
        )
    )


def pchip_bd_rate(rate_a, metric_a, rate_b, metric_b, higher_is_better: bool = True) -> float:
    """`bd_rate(..., method="pchip")`; NaN where it would raise (fewer than 2 hull points, no overlap)."""
    return float(
        np.expm1(_pchip_mean_difference(rate_a, metric_a, rate_b, metric_b, higher_is_better, "rate")) * 100.0
    )


def pchip_bd_metric(rate_a, metric_a, rate_b, metric_b, higher_is_better: bool = True) -> float:
    """`bd_metric(..., method="pchip")`; NaN where it would raise (fewer than 2 hull points, no overlap)."""
    return _pchip_mean_difference(rate_a, metric_a, rate_b, metric_b, higher_is_better, "metric")


def _pchip_mean_difference(rate_a, metric_a, rate_b, metric_b, higher_is_better: bool, kind: str) -> float:
    """Mean of B − A over the overlap, on the hulls: log-rate over the metric (kind "rate") or the metric over
    log-rate (kind "metric"); NaN with fewer than 2 hull points or no overlap."""
    curves = []
    for r, m in ((rate_a, metric_a), (rate_b, metric_b)):
        r, m = np.asarray(r, dtype=np.float64), np.asarray(m, dtype=np.float64)
        keep = hull_mask(r, m, higher_is_better)
        if keep.size < 2:
            return float("nan")
        x, y = (m[keep], np.log(r[keep])) if kind == "rate" else (np.log(r[keep]), m[keep])
        order = np.argsort(x)
        curves.append((x[order], y[order]))
    (xa, ya), (xb, yb) = curves
    lo, hi = max(xa[0], xb[0]), min(xa[-1], xb[-1])
    if not lo < hi:
        return float("nan")
    return float((_pchip_integral(xb, yb, lo, hi) - _pchip_integral(xa, ya, lo, hi)) / (hi - lo))


def _pchip_slopes_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`_pchip_slopes` for each row of x, y (R×k, k ≥ 2, x increasing along rows)."""
    h = np.diff(x, axis=1)
    m = np.diff(y, axis=1) / h
    if x.shape[1] == 2:
        return np.concatenate([m, m], axis=1)
    d = np.zeros_like(x)
    w1, w2 = 2 * h[:, 1:] + h[:, :-1], h[:, 1:] + 2 * h[:, :-1]
    same = (np.sign(m[:, 1:]) == np.sign(m[:, :-1])) & (m[:, 1:] != 0) & (m[:, :-1] != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = (w1 + w2) / (w1 / m[:, :-1] + w2 / m[:, 1:])
    d[:, 1:-1] = np.where(same, harmonic, 0.0)
    for i, (h0, h1, m0, m1) in (
        (0, (h[:, 0], h[:, 1], m[:, 0], m[:, 1])),
        (-1, (h[:, -1], h[:, -2], m[:, -1], m[:, -2])),
    ):
        e = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        e = np.where(
            np.sign(e) != np.sign(m0),
            0.0,
            np.where((np.sign(m0) != np.sign(m1)) & (np.abs(e) > np.abs(3 * m0)), 3 * m0, e),
        )
        d[:, i] = e
    return d


def _pchip_integral_rows(x: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    d = _pchip_slopes_rows(x, y)
    h = np.diff(x, axis=1)
    delta = np.diff(y, axis=1) / h
    c2 = (3 * delta - 2 * d[:, :-1] - d[:, 1:]) / h
    c3 = (d[:, :-1] - 2 * delta + d[:, 1:]) / h**2
    t0 = np.clip(x[:, :-1], lo[:, None], hi[:, None]) - x[:, :-1]
    t1 = np.clip(x[:, 1:], lo[:, None], hi[:, None]) - x[:, :-1]
    return np.sum(
        (t1 - t0) * y[:, :-1]
        + (t1**2 - t0**2) * d[:, :-1] / 2
        + (t1**3 - t0**3) * c2 / 3
        + (t1**4 - t0**4) * c3 / 4,
        axis=1,
    )


def pchip_bd_rates(
    rates_a, metrics_a: np.ndarray, rates_b, metrics_b: np.ndarray, higher_is_better: bool = True
):
    """`pchip_bd_rate` of every row of metrics_a (R×Pa) against the same row of metrics_b (R×Pb), at once.

    The rates are fixed and only the metrics vary (a bootstrap), so rows are grouped by which points
    are on their monotone hulls, and each group is one set of array operations. NaN where undefined.
    """
    return _pchip_deltas(rates_a, metrics_a, rates_b, metrics_b, higher_is_better, "rate")


def pchip_bd_metrics(
    rates_a, metrics_a: np.ndarray, rates_b, metrics_b: np.ndarray, higher_is_better: bool = True
):
    """`bd_metric(method="pchip")` (B − A, metric units) of every row pair, at once, as `pchip_bd_rates`."""
    return _pchip_deltas(rates_a, metrics_a, rates_b, metrics_b, higher_is_better, "metric")


def _pchip_deltas(rates_a, metrics_a, rates_b, metrics_b, higher_is_better: bool, kind: str) -> np.ndarray:
    """Row-wise PCHIP BD-rate (kind "rate", %) or BD-metric (kind "metric"), grouped by hull pattern."""
    ra, rb = np.asarray(rates_a, dtype=np.float64), np.asarray(rates_b, dtype=np.float64)
    ma, mb = np.atleast_2d(metrics_a).astype(np.float64), np.atleast_2d(metrics_b).astype(np.float64)
    if len(np.unique(ra)) < ra.size or len(np.unique(rb)) < rb.size:  # ties in rate: the hull's tie-break
        one = pchip_bd_rate if kind == "rate" else pchip_bd_metric
        return np.array([one(ra, a, rb, b, higher_is_better) for a, b in zip(ma, mb, strict=True)])
    sign = 1.0 if higher_is_better else -1.0
    oa, ob = np.argsort(ra), np.argsort(rb)
    ra, rb, ma, mb = ra[oa], rb[ob], ma[:, oa], mb[:, ob]

    def hull(m):
        s = sign * m
        keep = np.ones(m.shape, dtype=bool)
        keep[:, 1:] = s[:, 1:] > np.maximum.accumulate(s, axis=1)[:, :-1]
        return keep

    keep = np.concatenate([hull(ma), hull(mb)], axis=1)
    out = np.full(ma.shape[0], np.nan)
    patterns, group = np.unique(keep, axis=0, return_inverse=True)
    for g, pattern in enumerate(patterns):
        rows = np.flatnonzero(group.ravel() == g)
        ka, kb = pattern[: ra.size], pattern[ra.size :]
        if ka.sum() < 2 or kb.sum() < 2:
            continue
        if kind == "metric":  # the metric as a function of log-rate, over the common log-rate range
            la, lb = np.log(ra[ka]), np.log(rb[kb])
            lo, hi = max(la[0], lb[0]), min(la[-1], lb[-1])
            if not lo < hi:
                continue
            ya, yb = ma[np.ix_(rows, np.flatnonzero(ka))], mb[np.ix_(rows, np.flatnonzero(kb))]
            bound = np.full(rows.size, lo), np.full(rows.size, hi)
            diff = _pchip_integral_rows(np.broadcast_to(lb, yb.shape), yb, *bound) - _pchip_integral_rows(
                np.broadcast_to(la, ya.shape), ya, *bound
            )
            out[rows] = diff / (hi - lo)
            continue
        # on the hull the metric is monotone in rate: ascending metric = ascending rate, or descending
        step = 1 if higher_is_better else -1
        xa, la = ma[np.ix_(rows, np.flatnonzero(ka))][:, ::step], np.log(ra[ka])[::step]
        xb, lb = mb[np.ix_(rows, np.flatnonzero(kb))][:, ::step], np.log(rb[kb])[::step]
        lo, hi = np.maximum(xa[:, 0], xb[:, 0]), np.minimum(xa[:, -1], xb[:, -1])
        ok = lo < hi
        if not ok.any():
            continue
        la_rows, lb_rows = np.broadcast_to(la, xa.shape), np.broadcast_to(lb, xb.shape)
        diff = _pchip_integral_rows(xb[ok], lb_rows[ok], lo[ok], hi[ok]) - _pchip_integral_rows(
            xa[ok], la_rows[ok], lo[ok], hi[ok]
        )
        out[rows[ok]] = np.expm1(diff / (hi[ok] - lo[ok])) * 100.0
    return out


def task_sufficient_rates(
    rates, metrics: np.ndarray, clean: np.ndarray, fraction: float = 0.95, higher_is_better: bool = True
) -> np.ndarray:
    """`curves.task_sufficient_rate(...).rate` for every row of metrics (R×P) with its clean value, at once.

    NaN where the target is never reached on the row's hull or is undefined (clean ≤ 0 for a
    higher-is-better metric); met at the cheapest point gives that rate (the upper bound).
    """
    r = np.asarray(rates, dtype=np.float64)
    m = np.atleast_2d(metrics).astype(np.float64)
    clean = np.broadcast_to(np.asarray(clean, dtype=np.float64), (m.shape[0],))
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if len(np.unique(r)) < r.size:  # ties in rate: the hull's tie-break, row by row
        from .curves import task_sufficient_rate

        def one(row, c):
            try:
                t = task_sufficient_rate(r, row, c, fraction, higher_is_better).rate
            except ValueError:
                return np.nan
            return np.nan if t is None else t

        return np.array([one(row, c) for row, c in zip(m, clean, strict=True)])
    order = np.argsort(r)
    r, m = r[order], m[:, order]
    sign = 1.0 if higher_is_better else -1.0
    s = sign * m
    keep = np.ones(m.shape, dtype=bool)
    keep[:, 1:] = s[:, 1:] > np.maximum.accumulate(s, axis=1)[:, :-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        target = fraction * clean if higher_is_better else clean / fraction
    defined = np.isfinite(clean) & ((clean > 0) if higher_is_better else (clean >= 0))
    meets = keep & (s >= sign * target[:, None])
    k = np.argmax(meets, axis=1)
    rows = np.arange(m.shape[0])
    # the hull point before k: the last kept index below k (index 0, the cheapest point, is always kept)
    last = np.maximum.accumulate(np.where(keep, np.arange(r.size), 0), axis=1)
    prev = last[rows, np.maximum(k - 1, 0)]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (target - m[rows, prev]) / (m[rows, k] - m[rows, prev])
        log_rate = np.log(r[prev]) + t * (np.log(r[k]) - np.log(r[prev]))
    out = np.where(k == 0, r[0], np.exp(log_rate))
    return np.where(meets.any(axis=1) & defined, out, np.nan)


def resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """B×n: how often each of n items is drawn in each of B resamples with replacement (seeded)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    flat = (np.arange(resamples)[:, None] * n + draws).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(np.float64)


def resampled_metrics(scores: np.ndarray, weights: np.ndarray | None, counts: np.ndarray) -> np.ndarray:
    """B×P: the weighted mean of each point's per-image scores (P×n) on each resample (counts B×n)."""
    w = np.ones(scores.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    return (counts @ (scores * w).T) / (counts @ w)[:, None]


def bootstrap_bd_rate(
    rates_a: Sequence[float],
    scores_a: np.ndarray,
    rates_b: Sequence[float],
    scores_b: np.ndarray,
    *,
    weights: Sequence[float] | None = None,
    higher_is_better: bool = True,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """Paired bootstrap of the PCHIP BD-rate of B vs A; scores_X: points × images, images aligned.

    Returns the estimate on all images, the percentile interval, the fraction of resamples with
    BD-rate > 0 (B needs more bits) and how many resamples gave a BD-rate at all.
    """
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    scores_a, scores_b = np.atleast_2d(scores_a), np.atleast_2d(scores_b)
    n = scores_a.shape[1]
    if scores_b.shape[1] != n or n == 0:
        raise ValueError(f"per-image scores must share their images: {scores_a.shape} vs {scores_b.shape}")
    ra, rb = np.asarray(rates_a, dtype=np.float64), np.asarray(rates_b, dtype=np.float64)
    full = resampled_metrics(np.vstack([scores_a, scores_b]), weights, np.ones((1, n)))[0]
    estimate = pchip_bd_rate(ra, full[: len(ra)], rb, full[len(ra) :], higher_is_better)
    counts = resample_counts(n, resamples, seed)
    metrics = resampled_metrics(np.vstack([scores_a, scores_b]), weights, counts)
    values = pchip_bd_rates(ra, metrics[:, : len(ra)], rb, metrics[:, len(ra) :], higher_is_better)
    ok = values[np.isfinite(values)]
    alpha = (1 - level) / 2
    low, high = np.quantile(ok, [alpha, 1 - alpha]).tolist() if ok.size else (None, None)
    return {
        "estimate": None if not np.isfinite(estimate) else estimate,
        "low": low,
        "high": high,
        "level": level,
        "fraction_positive": float(np.mean(ok > 0)) if ok.size else None,
        "resamples": resamples,
        "valid": int(ok.size),
        "seed": seed,
        "images": n,
    }
