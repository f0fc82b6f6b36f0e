"""Bootstrap CI of BD-rate: the numpy PCHIP equals `bd_rate`, resampling is paired and seeded."""

from __future__ import annotations

import numpy as np
import pytest

from bench.rd import bd_rate
from bench.rd.bootstrap import (
    bootstrap_bd_rate,
    pchip_bd_rate,
    pchip_bd_rates,
    resample_counts,
    resampled_metrics,
)

RATES_A = np.array([0.05, 0.1, 0.2, 0.4, 0.8])
CURVE = np.array([0.30, 0.42, 0.51, 0.56, 0.58])  # δ1-like: higher is better, saturating


def _reference(ra, ma, rb, mb, hib):
    try:
        return bd_rate(ra, ma, rb, mb, method="pchip", higher_is_better=hib)
    except ValueError:
        return float("nan")


@pytest.mark.parametrize("hib", [True, False])
def test_numpy_pchip_equals_bd_rate_including_dominated_points_and_failures(hib):
    rng = np.random.default_rng(3)
    sign = 1 if hib else -1
    # noisy curves: points fall off the hull, some rows have < 2 hull points or do not overlap (NaN)
    ma = sign * CURVE + rng.normal(0, 0.15, (400, 5))
    mb = sign * (CURVE + 0.02) + rng.normal(0, 0.15, (400, 5))
    rb = RATES_A * 1.3
    ref = np.array([_reference(RATES_A, a, rb, b, hib) for a, b in zip(ma, mb, strict=True)])
    assert np.isnan(ref).any() and np.isfinite(ref).sum() > 200  # both kinds of rows occur
    one = np.array([pchip_bd_rate(RATES_A, a, rb, b, hib) for a, b in zip(ma, mb, strict=True)])
    many = pchip_bd_rates(RATES_A, ma, rb, mb, hib)
    for got in (one, many):
        assert np.array_equal(np.isnan(got), np.isnan(ref))
        np.testing.assert_allclose(got[np.isfinite(ref)], ref[np.isfinite(ref)], rtol=1e-9, atol=1e-9)


def test_resample_counts_are_seeded_draws_with_replacement():
    c = resample_counts(50, 200, seed=7)
    assert c.shape == (200, 50) and (c.sum(1) == 50).all() and (c >= 0).all()
    assert np.array_equal(c, resample_counts(50, 200, seed=7)) and not np.array_equal(
        c, resample_counts(50, 200, 8)
    )
    # each image is drawn about once per resample on average
    assert c.mean() == 1.0 and 0.9 < c.var() < 1.1  # Binomial(50, 1/50): variance 0.98


def test_resampled_metrics_are_weighted_means():
    scores = np.array([[1.0, 2.0, 4.0], [0.0, 1.0, 1.0]])
    counts = np.array([[1.0, 1.0, 1.0], [3.0, 0.0, 0.0], [0.0, 2.0, 1.0]])
    got = resampled_metrics(scores, [1.0, 1.0, 2.0], counts)
    np.testing.assert_allclose(got, [[11 / 4, 3 / 4], [1.0, 0.0], [12 / 4, 4 / 4]])


def _per_image(curve, n, rng, noise):
    """points × images: each image is its own offset (hard images are hard at every rate) plus noise."""
    hardness = rng.normal(0, 0.15, n)
    return curve[:, None] + hardness[None, :] + rng.normal(0, noise, (curve.size, n))


def test_paired_resampling_of_identical_scores_gives_a_zero_width_interval():
    # B scores exactly what A scores on every image, at 1.25x the bits: every resample says +25 %
    scores = _per_image(CURVE, 300, np.random.default_rng(0), 0.05)
    ci = bootstrap_bd_rate(RATES_A, scores, RATES_A * 1.25, scores, resamples=200)
    assert ci["estimate"] == pytest.approx(25.0, abs=1e-9)
    assert ci["low"] == pytest.approx(25.0, abs=1e-9) and ci["high"] == pytest.approx(25.0, abs=1e-9)
    assert ci["valid"] == 200 and ci["fraction_positive"] == 1.0 and ci["images"] == 300


def test_interval_covers_the_population_bd_rate_and_shrinks_with_more_images():
    rng = np.random.default_rng(1)
    population = 20000
    a = _per_image(CURVE, population, rng, 0.2)
    b = a + 0.01 + rng.normal(0, 0.2, a.shape)  # B: slightly better, noisily
    truth = bd_rate(RATES_A, a.mean(1), RATES_A, b.mean(1), method="pchip")
    widths = []
    for n in (200, 3200):
        pick = rng.choice(population, n, replace=False)
        ci = bootstrap_bd_rate(RATES_A, a[:, pick], RATES_A, b[:, pick], resamples=1000, seed=2)
        assert ci["low"] <= truth <= ci["high"], (n, truth, ci)
        assert ci["low"] < ci["estimate"] < ci["high"]
        widths.append(ci["high"] - ci["low"])
    assert widths[1] < widths[0] / 2.5  # 16x the images: about a quarter of the width
    again = bootstrap_bd_rate(RATES_A, a[:, pick], RATES_A, b[:, pick], resamples=1000, seed=2)
    assert again == ci  # seeded


def test_weights_make_the_resampled_metric_a_per_item_mean():
    # two "images", one holding three persons: the full-sample metric is the person mean
    scores = np.array([[0.2, 0.6]])
    assert resampled_metrics(scores, [1.0, 3.0], np.ones((1, 2)))[0, 0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="share their images"):
        bootstrap_bd_rate([1.0, 2.0], np.zeros((2, 3)), [1.0, 2.0], np.zeros((2, 4)))
