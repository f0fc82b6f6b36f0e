"""Monotone hull, metric directions and the task-sufficient rate, against hand-computed values."""

from __future__ import annotations

import math

import pytest

from bench.rd import metric_direction, monotone_hull, task_sufficient_rate

RATES = [0.1, 0.2, 0.4, 0.8]
AP = [0.30, 0.50, 0.60, 0.64]
ABS_REL = [0.30, 0.20, 0.15, 0.12]


def test_monotone_hull_keeps_points_that_improve_on_every_cheaper_one():
    # (0.3, 0.45) costs more than (0.2, 0.5) for less: dominated; duplicated rate 0.4 keeps the better
    rates = [0.4, 0.1, 0.3, 0.2, 0.4, 0.8]
    ap = [0.55, 0.30, 0.45, 0.50, 0.60, 0.60]
    assert monotone_hull(rates, ap).tolist() == [1, 3, 4]
    # lower is better: the same rule with the order reversed
    assert monotone_hull([0.1, 0.2, 0.3], [0.3, 0.35, 0.2], higher_is_better=False).tolist() == [0, 2]


def test_task_sufficient_rate_interpolates_in_log_rate_higher_is_better():
    # target 0.95 · 0.66 = 0.627 lies between 0.60 (0.4 bpp) and 0.64 (0.8 bpp): t = 0.027 / 0.04 = 0.675,
    # log r = log 0.4 + 0.675 · log 2
    result = task_sufficient_rate(RATES, AP, clean_metric=0.66, fraction=0.95)
    assert result.target == pytest.approx(0.627)
    assert result.rate == pytest.approx(0.4 * 2**0.675, rel=1e-12)
    assert not result.upper_bound and result.reason is None


def test_task_sufficient_rate_lower_is_better_divides_the_clean_value():
    # target 0.133 / 0.95 = 0.14 lies between 0.15 (0.4 bpp) and 0.12 (0.8 bpp): t = 1/3
    result = task_sufficient_rate(RATES, ABS_REL, clean_metric=0.133, fraction=0.95, higher_is_better=False)
    assert result.target == pytest.approx(0.14)
    assert result.rate == pytest.approx(0.4 * 2 ** (1 / 3), rel=1e-9)


def test_task_sufficient_rate_exactly_on_a_point():
    result = task_sufficient_rate(RATES, AP, clean_metric=0.5, fraction=1.0)
    assert result.rate == pytest.approx(0.2)


def test_task_sufficient_rate_never_reached_says_why():
    result = task_sufficient_rate(RATES, AP, clean_metric=0.9, fraction=0.95)
    assert result.rate is None
    assert "never reached" in result.reason and "0.855" in result.reason and "0.64" in result.reason


def test_task_sufficient_rate_met_at_the_lowest_rate_is_an_upper_bound():
    result = task_sufficient_rate(RATES, AP, clean_metric=0.3, fraction=0.95)
    assert result.rate == pytest.approx(0.1) and result.upper_bound


def test_task_sufficient_rate_ignores_dominated_points():
    # (0.5 bpp, 0.58) costs more than (0.4 bpp, 0.60) for less AP: off the hull, no effect
    rates, ap = RATES + [0.5], AP + [0.58]
    assert task_sufficient_rate(rates, ap, 0.66).rate == pytest.approx(0.4 * 2**0.675, rel=1e-12)


def test_task_sufficient_rate_uses_the_cheapest_crossing():
    # (0.3 bpp, 0.63) makes (0.4 bpp, 0.60) dominated; the hull 0.1, 0.2, 0.3, 0.8 crosses 0.627
    # between 0.2 bpp (0.50) and 0.3 bpp (0.63): t = 0.127 / 0.13
    rates, ap = RATES + [0.3], AP + [0.63]
    t = (0.627 - 0.50) / (0.63 - 0.50)
    expected = math.exp(math.log(0.2) + t * (math.log(0.3) - math.log(0.2)))
    assert task_sufficient_rate(rates, ap, 0.66).rate == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "clean, fraction, higher, message",
    [
        (0.5, 0.0, True, "fraction"),
        (0.5, 1.5, True, "fraction"),
        (0.0, 0.95, True, "non-positive"),
        (-0.1, 0.95, False, "non-negative"),
        (float("nan"), 0.95, True, "finite"),
    ],
)
def test_task_sufficient_rate_rejects_meaningless_targets(clean, fraction, higher, message):
    with pytest.raises(ValueError, match=message):
        task_sufficient_rate(RATES, AP, clean, fraction, higher)


def test_metric_directions():
    assert metric_direction("AP") and metric_direction("CIDEr-D") and metric_direction("delta1")
    assert not metric_direction("abs_rel") and not metric_direction("rmse")
    assert metric_direction("abs_rel", {"abs_rel": True})
    with pytest.raises(ValueError, match="'PSNR-HVS'.*--direction"):
        metric_direction("PSNR-HVS")
