"""Intervals across training seeds and test images (bench/rd/seeds.py): coverage, reductions, exactness."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bench.rd import bd_metric, task_sufficient_rate
from bench.rd import seeds as st
from bench.rd.bootstrap import bootstrap_bd_rate, pchip_bd_metrics, task_sufficient_rates

RATES = np.geomspace(0.05, 0.8, 4)  # the demo's sizes: 4 rates spanning 16x, 48 images, 3 seeds
IMAGES, SEEDS = 48, 3
TRUTH = -30.0  # B needs 30 % fewer bits than A for the same accuracy, on the population of images


def _line(rates, offset=0.0):
    """A Bjøntegaard-model curve: accuracy linear in log-rate; `offset` = log-rate needed beyond A's."""
    return 0.45 + 0.08 * (np.log(rates) - offset)


def _study(rng, seed_shift=0.25, seed_metric=0.01, difficulty=0.1, image_encoder=0.07, point=0.04):
    """One simulated study: curves A and B over SEEDS seeds on the same IMAGES images.

    Per seed and encoder (training noise): the rates the codec lands at, a shift of the curve in
    log-rate (sd `seed_shift`) and in accuracy (sd `seed_metric`). Per image: a difficulty shared by
    every curve, an encoder-specific effect (the same on every seed: what the image bootstrap is for)
    and noise per point. The population BD-rate is TRUTH exactly (every effect has mean 0).
    """
    difficulty = rng.normal(0, difficulty, IMAGES)
    curves = []
    for offset in (0.0, math.log1p(TRUTH / 100)):
        effect = rng.normal(0, image_encoder, IMAGES)
        per_seed = []
        for _ in range(SEEDS):
            rates = RATES * np.exp(rng.normal(0, 0.1, RATES.size))
            mean = _line(rates, offset + rng.normal(0, seed_shift)) + rng.normal(0, seed_metric)
            per_seed.append(
                (rates, mean[:, None] + difficulty + effect + rng.normal(0, point, (RATES.size, IMAGES)))
            )
        curves.append(per_seed)
    return curves


def test_seed_aware_interval_covers_the_true_bd_rate_where_the_image_only_interval_does_not():
    # noise at the demo's size: per-seed BD-rates ~50 points apart, image-only 95 % intervals ~±25 %
    rng = np.random.default_rng(2025)
    studies = 240
    hits_seeds = hits_images = 0
    spread, width_images, share = [], [], []
    for k in range(studies):
        a, b = _study(rng)
        both = st.bd_rate_interval(a, b, resamples=500, seed=k)
        images_only = st.bd_rate_interval(a[:1], b[:1], resamples=500, seed=k)  # today's report: one seed
        hits_seeds += both.low <= TRUTH <= both.high
        hits_images += images_only.low <= TRUTH <= images_only.high
        spread.append(max(both.per_seed.values()) - min(both.per_seed.values()))
        width_images.append(images_only.high - images_only.low)
        share.append(both.share_training)
    seeds_cov, images_cov = hits_seeds / studies, hits_images / studies
    print(
        f"\ncoverage of the 95 % interval over {studies} studies: seed-aware {seeds_cov:.3f}, "
        f"image-only {images_cov:.3f} (per-seed range median {np.median(spread):.0f} points, image-only "
        f"width median {np.median(width_images):.0f} points, training share median {np.median(share):.2f})"
    )
    assert 30 < np.median(spread) < 80 and 30 < np.median(width_images) < 80  # the demo's scale
    assert np.median(share) > 0.5  # seed noise dominates here ...
    assert seeds_cov >= 0.90
    assert images_cov < seeds_cov - 0.2  # ... and the image-only interval misses it


def _seeds(rates, scores):
    return [(rates, scores) for _ in range(SEEDS)]


def test_one_seed_reduces_to_the_percentile_image_bootstrap():
    a, b = _study(np.random.default_rng(1))
    got = st.bd_rate_interval(a[:1], b[:1], resamples=400, seed=9, seeds=["7"])
    ref = bootstrap_bd_rate(*a[0], *b[0], resamples=400, seed=9)
    for key in ("estimate", "low", "high"):
        assert getattr(got, key) == pytest.approx(ref[key], abs=1e-9)
    assert got.valid == ref["valid"] and got.images == IMAGES and list(got.per_seed) == ["7"]
    assert got.covers == st.COVERS_IMAGES and got.method == st.METHOD_ONE_SEED and got.var_training is None
    assert any("test images only" in n for n in got.notes)


def test_noise_free_data_gives_the_exact_value_with_a_zero_width_interval():
    images = np.tile(_line(RATES)[:, None], (1, IMAGES))
    a, b = _seeds(RATES, images), _seeds(RATES * 0.8, images)  # B: the same accuracy at 0.8x the bits
    bd = st.bd_rate_interval(a, b, resamples=100)
    assert (bd.estimate, bd.low, bd.high) == pytest.approx((-20.0, -20.0, -20.0), abs=1e-9)
    assert bd.var_training == pytest.approx(0, abs=1e-24) and bd.var_images == pytest.approx(0, abs=1e-24)
    assert bd.covers == st.COVERS_BOTH and bd.seeds == bd.defined == SEEDS and bd.valid == 100
    shifted = st.bd_metric_interval(a, _seeds(RATES, images + 0.03), resamples=100)  # B: +0.03 at every rate
    assert (shifted.estimate, shifted.low, shifted.high) == pytest.approx((0.03, 0.03, 0.03), abs=1e-12)
    clean = [np.full(IMAGES, 0.4)] * SEEDS
    acc = st.mean_interval(clean, resamples=100)
    assert (acc.estimate, acc.low, acc.high) == pytest.approx((0.4, 0.4, 0.4), abs=1e-12)
    tsr = st.task_sufficient_rate_interval(a, clean, fraction=0.95, resamples=100)
    target = math.exp((0.95 * 0.4 - 0.45) / 0.08)  # where the line reaches 95 % of 0.4
    assert (tsr.estimate, tsr.low, tsr.high) == pytest.approx((target, target, target), rel=1e-9)


def test_swapping_the_curves_inverts_the_bd_rate_and_its_interval():
    a, b = _study(np.random.default_rng(3))
    ab, ba = (
        st.bd_rate_interval(a, b, resamples=300, seed=4),
        st.bd_rate_interval(b, a, resamples=300, seed=4),
    )
    assert (1 + ab.estimate / 100) * (1 + ba.estimate / 100) == pytest.approx(1, abs=1e-9)
    assert (1 + ab.low / 100) * (1 + ba.high / 100) == pytest.approx(1, abs=1e-9)
    assert (1 + ab.high / 100) * (1 + ba.low / 100) == pytest.approx(1, abs=1e-9)
    for s in ab.per_seed:
        assert (1 + ab.per_seed[s] / 100) * (1 + ba.per_seed[s] / 100) == pytest.approx(1, abs=1e-9)
    assert ab.var_training == pytest.approx(ba.var_training) and ab.var_images == pytest.approx(ba.var_images)


def test_the_interval_is_the_t_interval_of_the_seed_mean_with_welch_satterthwaite_df():
    a, b = _study(np.random.default_rng(4))
    got = st.bd_rate_interval(a, b, resamples=300, seed=1)
    g = np.log1p(np.array(list(got.per_seed.values())) / 100)
    assert got.var_training == pytest.approx(np.var(g, ddof=1) / SEEDS)
    v = got.var_training + got.var_images
    assert got.df == pytest.approx(v**2 / (got.var_training**2 / (SEEDS - 1)))
    half = stats.t.ppf(0.975, got.df) * math.sqrt(v)
    assert np.log1p(np.array([got.low, got.high]) / 100) == pytest.approx([g.mean() - half, g.mean() + half])
    assert got.share_training == pytest.approx(got.var_training / v)
    # the same seeds, images held fixed: only training varies (share 1, S - 1 degrees of freedom)
    images = np.tile(_line(RATES)[:, None], (1, IMAGES))
    b_moving = [(RATES * f, images) for f in (0.7, 0.8, 0.9)]
    fixed = st.bd_rate_interval(_seeds(RATES, images), b_moving, resamples=100)
    assert fixed.share_training == pytest.approx(1) and fixed.df == pytest.approx(SEEDS - 1)


def test_seeds_where_the_statistic_is_undefined_are_left_out_and_counted():
    a, b = _study(np.random.default_rng(5))
    b[1] = (b[1][0], b[1][1] + 5.0)  # seed 2 of B: far above A, the curves no longer overlap
    got = st.bd_rate_interval(a, b, resamples=200, seeds=["0", "1", "2"])
    assert got.seeds == 3 and got.defined == 2 and got.per_seed["1"] is None and got.covers == st.COVERS_BOTH
    assert got.estimate == pytest.approx(
        100 * np.expm1(np.mean(np.log1p([got.per_seed[s] / 100 for s in "02"])))
    )
    assert any("defined on 2 of 3 seeds" in n for n in got.notes)
    # the task-sufficient rate: a seed whose curve never reaches 95 % of its clean accuracy
    images = np.tile(_line(RATES)[:, None], (1, IMAGES))
    clean = [np.full(IMAGES, 0.4), np.full(IMAGES, 0.9), np.full(IMAGES, 0.42)]
    tsr = st.task_sufficient_rate_interval(_seeds(RATES, images), clean, resamples=100)
    assert tsr.defined == 2 and tsr.per_seed["2"] is None and tsr.notes[0] == "target reached on 2 of 3 seeds"
    one = st.task_sufficient_rate_interval(
        _seeds(RATES, images), [np.full(IMAGES, 0.9)] * 2 + clean[:1], resamples=100
    )
    assert one.defined == 1 and one.covers == st.COVERS_IMAGES  # one seed left: images only, and it says so
    never = st.task_sufficient_rate_interval(_seeds(RATES, images), [np.full(IMAGES, 0.9)] * 3, resamples=100)
    assert never.estimate is None and never.low is None and never.defined == 0


def test_resamples_undefined_on_some_seed_are_dropped_and_counted():
    rng = np.random.default_rng(6)
    # B barely overlaps A: on some resamples of the images, some seed's curves stop overlapping
    a = [(RATES, _line(RATES)[:, None] + rng.normal(0, 0.3, (4, IMAGES))) for _ in range(SEEDS)]
    b = [(RATES, _line(RATES)[:, None] + 0.21 + rng.normal(0, 0.3, (4, IMAGES))) for _ in range(SEEDS)]
    got = st.bd_rate_interval(a, b, resamples=300)
    assert 0 < got.valid < 300 and any(f"{300 - got.valid} of 300 image resamples" in n for n in got.notes)


def test_difference_of_two_bd_rates_is_the_ratio_of_their_rate_factors():
    images = np.tile(_line(RATES)[:, None], (1, IMAGES))
    off = _seeds(RATES, images)
    kd_gain = st.bd_rate_difference_interval(
        off, _seeds(RATES * 0.7, images), off, _seeds(RATES * 0.9, images), resamples=100
    )
    assert kd_gain.estimate == pytest.approx(100 * (0.7 / 0.9 - 1)) and kd_gain.low == pytest.approx(
        kd_gain.high
    )
    a, b = _study(np.random.default_rng(7))
    noisy = st.bd_rate_difference_interval(a, b, b, a, resamples=200)  # BD(B vs A) against BD(A vs B)
    single = st.bd_rate_interval(a, b, resamples=200)
    assert noisy.estimate == pytest.approx(100 * ((1 + single.estimate / 100) ** 2 - 1))


def test_clean_accuracy_and_its_difference_are_weighted_means_seed_by_seed():
    rng = np.random.default_rng(8)
    on = [rng.uniform(0, 1, IMAGES) for _ in range(SEEDS)]
    off = [x - 0.1 + rng.normal(0, 0.01, IMAGES) for x in on]
    w = rng.integers(1, 4, IMAGES).astype(float)  # pose: persons per image
    acc = st.mean_interval(on, weights=w, resamples=200, seeds=["a", "b", "c"])
    assert acc.per_seed["a"] == pytest.approx(np.average(on[0], weights=w))
    assert acc.estimate == pytest.approx(np.mean([np.average(x, weights=w) for x in on]))
    diff = st.mean_difference_interval(on, off, weights=w, resamples=200)
    assert diff.estimate == pytest.approx(
        np.mean([np.average(x - y, weights=w) for x, y in zip(on, off, strict=True)])
    )
    # paired: what the two evaluations share cancels, so the difference is known far better than either
    assert diff.low < 0.1 < diff.high and diff.high - diff.low < acc.high - acc.low


def test_seeds_only_interval_is_the_t_interval_of_the_per_seed_values():
    got = st.seeds_only_interval({"0": -10.0, "1": -30.0, "2": -20.0}, scale=st.LOG_RATIO)
    g = np.log1p(np.array([-0.1, -0.3, -0.2]))
    half = stats.t.ppf(0.975, 2) * np.std(g, ddof=1) / math.sqrt(3)
    assert np.log1p(np.array([got.low, got.high]) / 100) == pytest.approx([g.mean() - half, g.mean() + half])
    assert got.covers == st.COVERS_SEEDS and got.df == 2


def _reference(fn, *args, **kw) -> float:
    try:
        value = fn(*args, **kw)
    except ValueError:
        return np.nan
    value = getattr(value, "rate", value)
    return np.nan if value is None else value


@pytest.mark.parametrize("hib", [True, False])
def test_vectorised_bd_metric_and_task_sufficient_rate_equal_the_reference(hib):
    rng = np.random.default_rng(9)
    # accuracy (δ1-like) or error (AbsRel-like): noisy enough that points fall off the hull
    curve = _line(RATES) if hib else 1.0 - _line(RATES)
    ma, mb = curve + rng.normal(0, 0.12, (300, 4)), curve + rng.normal(0, 0.12, (300, 4))
    ref = [
        _reference(bd_metric, RATES, x, RATES * 1.2, y, method="pchip", higher_is_better=hib)
        for x, y in zip(ma, mb, strict=True)
    ]
    got = pchip_bd_metrics(RATES, ma, RATES * 1.2, mb, hib)
    assert np.array_equal(np.isnan(got), np.isnan(ref)) and np.isnan(ref).any()
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    clean = rng.uniform(0.45, 0.7, 300) if hib else rng.uniform(0.3, 0.5, 300)
    ref = [_reference(task_sufficient_rate, RATES, x, c, 0.9, hib) for x, c in zip(ma, clean, strict=True)]
    got = task_sufficient_rates(RATES, ma, clean, 0.9, hib)
    assert np.array_equal(np.isnan(got), np.isnan(ref)) and 0 < np.isnan(ref).sum() < 300
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    tied = np.array([0.05, 0.05, 0.2, 0.8])  # ties in rate: the row-by-row path
    ref = [
        _reference(task_sufficient_rate, tied, x, c, 0.9, hib)
        for x, c in zip(ma[:40], clean[:40], strict=True)
    ]
    np.testing.assert_allclose(task_sufficient_rates(tied, ma[:40], clean[:40], 0.9, hib), ref, rtol=1e-12)
    ref = [
        _reference(bd_metric, tied, x, RATES, y, method="pchip", higher_is_better=hib)
        for x, y in zip(ma[:40], mb[:40], strict=True)
    ]
    np.testing.assert_allclose(
        pchip_bd_metrics(tied, ma[:40], RATES, mb[:40], hib), ref, rtol=1e-9, atol=1e-12
    )


def test_verdict_reads_the_whole_interval_against_the_finding_side():
    def iv(low, high):
        return {"low": low, "high": high}

    assert st.verdict(iv(-40, -5), "negative") == "reproduced"
    assert st.verdict(iv(5, 40), "negative") == "contradicted"
    assert st.verdict(iv(-40, 5), "negative") == "inconclusive"
    assert st.verdict(iv(0.0, 10), "positive") == "inconclusive"  # touching 0 is not wholly on a side
    assert (
        st.verdict(iv(2, 10), "positive") == "reproduced"
        and st.verdict(iv(-9, -1), "positive") == "contradicted"
    )
    assert (
        st.verdict(iv(None, None), "positive") == "inconclusive"
        and st.verdict(None, "negative") == "inconclusive"
    )
    a, b = _study(np.random.default_rng(10))
    assert st.verdict(st.bd_rate_interval(a, b, resamples=100), "negative") in st.VERDICTS
    with pytest.raises(ValueError, match="direction"):
        st.verdict(iv(1, 2), "up")


def test_bonferroni_level_splits_alpha_over_the_comparisons():
    assert st.bonferroni_level(1) == pytest.approx(0.95) and st.bonferroni_level(5) == pytest.approx(0.99)
    assert st.bonferroni_level(4, alpha=0.1) == pytest.approx(0.975)
    with pytest.raises(ValueError, match="comparisons"):
        st.bonferroni_level(0)


def test_bad_shapes_and_levels_are_refused_naming_what_is_wrong():
    a, b = _study(np.random.default_rng(11))
    with pytest.raises(ValueError, match="one entry per training seed"):
        st.bd_rate_interval(a, b[:2])
    with pytest.raises(ValueError, match="share their n images"):
        st.bd_rate_interval(a, [(r, s[:, :10]) for r, s in b])
    with pytest.raises(ValueError, match="weights must be 48"):
        st.bd_rate_interval(a, b, weights=np.ones(5))
    with pytest.raises(ValueError, match="confidence level"):
        st.bd_rate_interval(a, b, level=1.0, resamples=10)
    assert st.bd_rate_interval(a, b, resamples=50).to_dict()["covers"] == st.COVERS_BOTH
