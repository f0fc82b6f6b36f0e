"""Bjøntegaard deltas between two rate–accuracy curves: BD-rate and BD-metric.

    curve A (anchor), curve B (test): points (rate, metric)
        └─► monotone hull ─► log-rate ─► interpolate ─► integrate over the overlap ─► mean difference

    BD-rate   = exp( mean over the common metric interval of  log R_B(m) − log R_A(m) ) − 1   [%]
    BD-metric =      mean over the common log-rate interval of  m_B(log R) − m_A(log R)     [metric units]

Bjøntegaard, "Calculation of average PSNR differences between RD-curves", VCEG-M33 (2001):
a cubic polynomial through the points (`method="cubic"`, at least 4 points; more are
least-squares fitted). The HEVC/VVC common test conditions (JCTVC-L1100, JVET-T2010
spreadsheets) replaced the polynomial by piecewise cubic Hermite interpolation
(`method="pchip"`, Fritsch & Carlson 1980; at least 2 points), which cannot overshoot
between points. Both integrate exactly, not by sampling.

Conventions: BD-rate < 0 means B needs fewer bits than A for the same accuracy.
BD-metric is B − A in the metric's units, so it is positive when B is better for a
higher-is-better metric (AP, δ1, CIDEr-D) and negative when B is better for a
lower-is-better one (AbsRel, RMSE, feature MSE). Points off the monotone hull
(dominated: more bits, no better accuracy) are dropped first — see `monotone_hull`;
that also sorts the points and removes duplicated rates or accuracies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator

from .curves import _as_curve, monotone_hull

METHODS = ("pchip", "cubic")
MIN_POINTS = {"pchip": 2, "cubic": 4}


def _hull_curve(
    rates, metric, higher_is_better: bool, method: str, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """(log-rate, metric) on the monotone hull, with enough points for `method`."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    r, m = _as_curve(rates, metric, name)
    keep = monotone_hull(r, m, higher_is_better)
    if keep.size < MIN_POINTS[method]:
        dropped = r.size - keep.size
        detail = f" ({dropped} dominated or duplicate point(s) dropped)" if dropped else ""
        raise ValueError(
            f"{name}: {method} BD needs at least {MIN_POINTS[method]} points on the rate–accuracy hull, "
            f"got {keep.size} of {r.size}{detail}"
        )
    return np.log(r[keep]), m[keep]


def _integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    """∫_lo^hi f where f interpolates (x, y) by `method`."""
    order = np.argsort(x)
    x, y = x[order], y[order]
    if method == "pchip":
        return float(PchipInterpolator(x, y, extrapolate=False).integrate(lo, hi))
    # VCEG-M33's cubic, fitted in a centred and scaled variable: same polynomial, better conditioned
    centre, scale = (x[0] + x[-1]) / 2, (x[-1] - x[0]) / 2
    antiderivative = np.polyint(np.polyfit((x - centre) / scale, y, 3))
    a, b = (lo - centre) / scale, (hi - centre) / scale
    return float(scale * (np.polyval(antiderivative, b) - np.polyval(antiderivative, a)))


def _mean_difference(xa, ya, xb, yb, method: str, axis: str, shown=lambda v: v) -> float:
    """Mean of f_B − f_A over the interval where both curves have points (no extrapolation)."""
    lo, hi = max(xa.min(), xb.min()), min(xa.max(), xb.max())
    if not lo < hi:
        raise ValueError(
            f"the curves do not overlap in {axis}: A spans [{shown(xa.min()):.6g}, {shown(xa.max()):.6g}], "
            f"B spans [{shown(xb.min()):.6g}, {shown(xb.max()):.6g}]"
        )
    return (_integral(xb, yb, lo, hi, method) - _integral(xa, ya, lo, hi, method)) / (hi - lo)


def _hull_curves(rate_a, metric_a, rate_b, metric_b, higher_is_better: bool, method: str):
    """(log-rate A, metric A, log-rate B, metric B) on each curve's hull."""
    return (
        *_hull_curve(rate_a, metric_a, higher_is_better, method, "curve A"),
        *_hull_curve(rate_b, metric_b, higher_is_better, method, "curve B"),
    )


def bd_rate(
    rate_a: Sequence[float],
    metric_a: Sequence[float],
    rate_b: Sequence[float],
    metric_b: Sequence[float],
    *,
    method: str = "pchip",
    higher_is_better: bool = True,
) -> float:
    """Percent rate change of B relative to A at equal accuracy (negative: B needs fewer bits)."""
    la, ma, lb, mb = _hull_curves(rate_a, metric_a, rate_b, metric_b, higher_is_better, method)
    # log-rate as a function of the metric, averaged over the common metric range
    mean_log_ratio = _mean_difference(ma, la, mb, lb, method, "metric")
    return float(np.expm1(mean_log_ratio) * 100.0)


def bd_metric(
    rate_a: Sequence[float],
    metric_a: Sequence[float],
    rate_b: Sequence[float],
    metric_b: Sequence[float],
    *,
    method: str = "pchip",
    higher_is_better: bool = True,
) -> float:
    """Mean metric difference B − A at equal rate (BD-PSNR generalised), over the common log-rate range."""
    la, ma, lb, mb = _hull_curves(rate_a, metric_a, rate_b, metric_b, higher_is_better, method)
    # the metric as a function of log-rate, averaged over the common rate range
    return float(_mean_difference(la, ma, lb, mb, method, "rate", shown=np.exp))


def cubic_is_monotone(rates: Sequence[float], metric: Sequence[float], higher_is_better: bool = True) -> bool:
    """Whether VCEG-M33's cubic of log-rate in the metric is monotone over the curve's hull range.

    The cubic BD-rate integrates that polynomial; where it turns (a saturating curve fitted through 4 points),
    log-rate is no longer a function the metric decides, and the BD-rate can run to "+685 578 %". The report
    marks such a value unreliable instead of printing it (docs/analysis.md).
    """
    la, ma = _hull_curve(rates, metric, higher_is_better, "cubic", "curve")
    order = np.argsort(ma)
    x, y = ma[order], la[order]
    centre, scale = (x[0] + x[-1]) / 2, (x[-1] - x[0]) / 2
    slope = np.polyder(np.polyfit((x - centre) / scale, y, 3))
    grid = np.linspace(-1.0, 1.0, 257)
    values = np.polyval(slope, grid)
    return bool(np.all(values > 0) or np.all(values < 0))
