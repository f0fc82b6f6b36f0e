"""Bjøntegaard deltas: exact cases, a hand-computed example, the CTC spreadsheet's PCHIP, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.rd import bd_metric, bd_rate

METHODS = ["pchip", "cubic"]
# x265 operating points (kbps, Y-PSNR dB) used as the example of the FAU-LMS `bjontegaard` package
X265_A = ([9487.76, 4593.60, 2486.44, 1358.24], [40.037, 38.615, 36.845, 34.851])
X265_B = ([9787.80, 4469.00, 2451.52, 1356.24], [40.121, 38.651, 36.970, 34.987])
# a depth-like curve, lower is better: AbsRel falling with bits per pixel
ABSREL = ([0.02, 0.05, 0.12, 0.3, 0.8], [0.31, 0.22, 0.17, 0.145, 0.138])


@pytest.mark.parametrize("method", METHODS)
def test_identical_curves_give_zero(method):
    assert bd_rate(*X265_A, *X265_A, method=method) == pytest.approx(0.0, abs=1e-12)
    assert bd_metric(*X265_A, *X265_A, method=method) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("curve, higher", [(X265_A, True), (ABSREL, False)])
def test_rates_scaled_by_0_8_give_minus_20_percent(method, curve, higher):
    rates, metric = curve
    bd = bd_rate(rates, metric, [0.8 * r for r in rates], metric, method=method, higher_is_better=higher)
    assert abs(bd - (-20.0)) < 1e-9


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("curve, higher, shift", [(X265_A, True, 0.37), (ABSREL, False, -0.01)])
def test_metric_shift_gives_bd_metric_equal_to_the_shift(method, curve, higher, shift):
    rates, metric = curve
    bd = bd_metric(rates, metric, rates, [m + shift for m in metric], method=method, higher_is_better=higher)
    assert bd == pytest.approx(shift, abs=1e-9)


def test_hand_computed_two_point_pchip_is_linear_in_log_rate():
    # A: log R = (D − 30)/5 on D ∈ [30, 40];  B: log R = −0.5 + 0.15 (D − 32) on D ∈ [32, 42].
    # On the overlap [32, 40], log R_B − log R_A = 0.7 − 0.05 D, whose mean (at D = 36) is −1.1.
    a = ([1.0, math.exp(2.0)], [30.0, 40.0])
    b = ([math.exp(-0.5), math.exp(1.0)], [32.0, 42.0])
    assert bd_rate(*a, *b) == pytest.approx(100 * (math.exp(-1.1) - 1), abs=1e-9)
    # Metric as a function of L = log R: m_A = 30 + 5L, m_B = 32 + (L + 0.5)/0.15; on L ∈ [0, 1] the mean of
    # m_B − m_A = 16/3 + (5/3) L is 16/3 + 5/6 = 37/6.
    assert bd_metric(*a, *b) == pytest.approx(37 / 6, abs=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_collinear_points_give_the_hand_value_for_both_methods(method):
    d_a, d_b = np.array([30.0, 33.0, 36.0, 40.0]), np.array([32.0, 35.0, 39.0, 42.0])
    a = (np.exp((d_a - 30) / 5), d_a)
    b = (np.exp(-0.5 + 0.15 * (d_b - 32)), d_b)
    assert bd_rate(*a, *b, method=method) == pytest.approx(100 * (math.exp(-1.1) - 1), abs=1e-9)


def test_classic_cubic_reproduces_a_cubic_difference_exactly():
    # log R_B − log R_A = g(D) = −0.2 + 0.002 (D−35)³ + 0.0005 (D−35)²: its mean over [30, 40]
    # is −0.2 + 0.0005 · 25/3 (the odd term integrates to zero); only a cubic fit recovers it.
    d = np.array([30.0, 32.0, 37.0, 40.0])
    f = 0.001 * (d - 35) ** 3 + 0.1 * d - 1
    g = -0.2 + 0.002 * (d - 35) ** 3 + 0.0005 * (d - 35) ** 2
    expected = 100 * (math.exp(-0.2 + 0.0005 * 25 / 3) - 1)
    assert bd_rate(np.exp(f), d, np.exp(f + g), d, method="cubic") == pytest.approx(expected, abs=1e-9)


def _spreadsheet_bd_rate(rate_a, psnr_a, rate_b, psnr_b) -> float:
    """The JCTVC-L1100 / JVET-T2010 spreadsheet's piecewise cubic BD-rate, written out term by term.

    Hermite slopes: Fritsch–Carlson weighted harmonic means inside, the three-point
    shape-preserving formula at the ends; integral of each cubic piece in closed form.
    """

    def end_slope(h1, h2, d1, d2):
        s = ((2 * h1 + h2) * d1 - h1 * d2) / (h1 + h2)
        if s * d1 < 0:
            return 0.0
        if d1 * d2 < 0 and abs(s) > abs(3 * d1):
            return 3 * d1
        return s

    def integral(rate, psnr, lo, hi):
        order = np.argsort(psnr)
        x, y = np.asarray(psnr)[order], np.log10(np.asarray(rate)[order])
        n = len(x)
        h = np.diff(x)
        delta = np.diff(y) / h
        s = np.zeros(n)
        s[0] = end_slope(h[0], h[1], delta[0], delta[1])
        s[-1] = end_slope(h[-1], h[-2], delta[-1], delta[-2])
        for i in range(1, n - 1):
            s[i] = (
                3
                * (h[i - 1] + h[i])
                / ((2 * h[i] + h[i - 1]) / delta[i - 1] + (h[i] + 2 * h[i - 1]) / delta[i])
            )
        total = 0.0
        for i in range(n - 1):
            c = (3 * delta[i] - 2 * s[i] - s[i + 1]) / h[i]
            b = (s[i] - 2 * delta[i] + s[i + 1]) / h[i] ** 2
            t0 = min(max(x[i], lo), hi) - x[i]
            t1 = min(max(x[i + 1], lo), hi) - x[i]
            total += (
                (t1 - t0) * y[i]
                + (t1**2 - t0**2) * s[i] / 2
                + (t1**3 - t0**3) * c / 3
                + (t1**4 - t0**4) * b / 4
            )
        return total

    lo, hi = max(min(psnr_a), min(psnr_b)), min(max(psnr_a), max(psnr_b))
    mean = (integral(rate_b, psnr_b, lo, hi) - integral(rate_a, psnr_a, lo, hi)) / (hi - lo)
    return 100 * (10**mean - 1)


@pytest.mark.parametrize(
    "a, b",
    [
        (X265_A, X265_B),
        (  # high rates (the FAU-LMS package's second example)
            ([82472.76, 26875.24, 9487.76, 4593.6], [43.825, 41.404, 40.037, 38.615]),
            ([99896.96, 33952.04, 9787.8, 4469.0], [44.731, 41.875, 40.121, 38.651]),
        ),
    ],
)
def test_pchip_matches_the_common_test_conditions_spreadsheet(a, b):
    expected = _spreadsheet_bd_rate(*a, *b)
    assert bd_rate(*a, *b, method="pchip") == pytest.approx(expected, rel=1e-9)


def test_x265_example_values():
    # reference values of this implementation, cross-checked against the spreadsheet formula above
    assert bd_rate(*X265_A, *X265_B, method="pchip") == pytest.approx(-4.4175, abs=5e-4)
    assert bd_rate(*X265_A, *X265_B, method="cubic") == pytest.approx(-4.4205, abs=5e-4)
    assert bd_metric(*X265_A, *X265_B, method="pchip") == pytest.approx(0.1197, abs=5e-4)


@pytest.mark.parametrize("method", METHODS)
def test_point_order_does_not_matter(method):
    rates, psnr = X265_B
    shuffled = ([rates[i] for i in (2, 0, 3, 1)], [psnr[i] for i in (2, 0, 3, 1)])
    assert bd_rate(*X265_A, *shuffled, method=method) == pytest.approx(
        bd_rate(*X265_A, *X265_B, method=method)
    )


def test_dominated_points_are_dropped_before_interpolating():
    rates, psnr = X265_B
    # more bits than the 4469 kbps point for a worse PSNR: nobody would operate there
    noisy = (list(rates) + [5200.0], list(psnr) + [38.0])
    assert bd_rate(*X265_A, *noisy) == pytest.approx(bd_rate(*X265_A, *X265_B), abs=1e-12)
    # for a lower-is-better metric "worse" is higher
    r, m = ABSREL
    noisy = (list(r) + [0.4], list(m) + [0.16])
    assert bd_rate(r, m, *noisy, higher_is_better=False) == pytest.approx(0.0, abs=1e-12)


def test_too_few_points_raise_a_clear_error():
    with pytest.raises(ValueError, match="cubic BD needs at least 4 points"):
        bd_rate(X265_A[0][:3], X265_A[1][:3], *X265_B, method="cubic")
    with pytest.raises(ValueError, match="pchip BD needs at least 2 points"):
        bd_rate([1000.0], [35.0], *X265_B)
    # two points are enough for PCHIP (a line in log-rate)
    assert math.isfinite(bd_rate(X265_A[0][:2], X265_A[1][:2], *X265_B))


def test_dominated_points_count_towards_the_error_message():
    with pytest.raises(ValueError, match=r"got 3 of 4 \(1 dominated or duplicate"):
        bd_rate(
            [1.0, 2.0, 3.0, 4.0],
            [30.0, 31.0, 30.5, 32.0],
            [1.0, 2.0, 3.0, 4.0],
            [30, 31, 32, 33],
            method="cubic",
        )


def test_non_overlapping_curves_name_their_ranges():
    far = ([r * 100 for r in X265_A[0]], [p + 20 for p in X265_A[1]])
    with pytest.raises(
        ValueError, match=r"do not overlap in metric: A spans \[34.851, 40.037\], B spans \[54.851"
    ):
        bd_rate(*X265_A, *far)
    with pytest.raises(
        ValueError, match=r"do not overlap in rate: A spans \[1358.24, 9487.76\], B spans \[135824"
    ):
        bd_metric(*X265_A, *far)


@pytest.mark.parametrize(
    "rates, metric, message",
    [
        ([0.0, 1.0], [1.0, 2.0], "positive"),
        ([1.0, float("nan")], [1.0, 2.0], "finite"),
        ([1.0], [1.0, 2.0], "equal length"),
    ],
)
def test_invalid_points_raise(rates, metric, message):
    with pytest.raises(ValueError, match=message):
        bd_rate(rates, metric, *X265_B)


def test_unknown_method_raises():
    with pytest.raises(ValueError, match="method must be one of"):
        bd_rate(*X265_A, *X265_B, method="akima")


def _curve(draw_rates, draw_gains):
    rates = np.cumsum(draw_rates)
    return rates, 30 + np.cumsum(draw_gains)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0.2, 2.0), min_size=4, max_size=6),
    st.lists(st.floats(0.2, 3.0), min_size=4, max_size=6),
    st.floats(0.8, 1.25),
    st.floats(-0.5, 0.5),
)
def test_swapping_the_curves_inverts_the_deltas(steps, gains, scale, shift):
    n = min(len(steps), len(gains))
    rates_a, metric_a = _curve(steps[:n], gains[:n])
    rates_b, metric_b = rates_a * scale, metric_a + shift
    for method in METHODS:
        ab, ba = (
            bd_rate(rates_a, metric_a, rates_b, metric_b, method=method),
            bd_rate(rates_b, metric_b, rates_a, metric_a, method=method),
        )
        assert (1 + ab / 100) * (1 + ba / 100) == pytest.approx(1.0, rel=1e-9)
        assert bd_metric(rates_a, metric_a, rates_b, metric_b, method=method) == pytest.approx(
            -bd_metric(rates_b, metric_b, rates_a, metric_a, method=method), abs=1e-9
        )


X265_HIGH_A = ([82472.76, 26875.24, 9487.76, 4593.6], [43.825, 41.404, 40.037, 38.615])
X265_HIGH_B = ([99896.96, 33952.04, 9787.8, 4469.0], [44.731, 41.875, 40.121, 38.651])
ABSREL_B = ([0.03, 0.06, 0.13, 0.35, 0.9], [0.30, 0.215, 0.172, 0.146, 0.137])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("a, b", [(X265_A, X265_B), (X265_HIGH_A, X265_HIGH_B)])
def test_agrees_with_the_independent_bjontegaard_package(method, a, b):
    """Cross-check against FAU-LMS `bjontegaard` (PyPI, Herglotz et al.), on its own x265 examples."""
    bj = pytest.importorskip("bjontegaard")
    assert bd_rate(*a, *b, method=method) == pytest.approx(bj.bd_rate(*a, *b, method=method), rel=1e-8)
    assert bd_metric(*a, *b, method=method) == pytest.approx(bj.bd_psnr(*a, *b, method=method), rel=1e-8)


@pytest.mark.parametrize("method", METHODS)
def test_lower_is_better_agrees_with_the_package_on_the_negated_metric(method):
    # the package knows only higher-is-better (PSNR): AbsRel negated is the same curve, so the same BD-rate
    bj = pytest.importorskip("bjontegaard")
    theirs = bj.bd_rate(
        ABSREL[0],
        [-m for m in ABSREL[1]],
        ABSREL_B[0],
        [-m for m in ABSREL_B[1]],
        method=method,
        require_matching_points=False,
    )
    assert bd_rate(*ABSREL, *ABSREL_B, method=method, higher_is_better=False) == pytest.approx(
        theirs, rel=1e-8
    )
