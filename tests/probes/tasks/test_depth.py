"""Depth: Eigen metrics against hand-computed values, scale-shift alignment, losses, decode/evaluate."""

import numpy as np
import pytest
import torch

from probes.data import open_dataset
from probes.tasks import depth_metrics, fit_scale_shift, get_task, silog_loss, ssi_loss
from probes.tasks.depth import eval_crop_mask
from tests.probes.fixtures import write_nyu_folder, write_nyu_mat


@pytest.fixture
def gt():
    yy, xx = np.mgrid[0:24, 0:32]
    return 1.0 + 4.0 * yy / 24 + 2.0 * xx / 32  # 1..7 m


def test_perfect_prediction_scores_perfectly(gt):
    m = depth_metrics(gt, gt)
    assert m["abs_rel"] == 0 and m["rmse"] == 0 and m["log10"] == 0
    assert m["delta1"] == m["delta2"] == m["delta3"] == 1


def test_ten_percent_too_far_scores_what_the_formulas_say(gt):
    m = depth_metrics(1.1 * gt, gt, align="none")
    assert m["abs_rel"] == pytest.approx(0.1)
    assert m["sq_rel"] == pytest.approx(0.01 * gt.mean())
    assert m["rmse"] == pytest.approx(0.1 * np.sqrt((gt**2).mean()))
    assert m["rmse_log"] == pytest.approx(np.log(1.1))
    assert m["log10"] == pytest.approx(np.log10(1.1))
    assert m["delta1"] == 1.0


def test_thirty_percent_too_far_fails_delta1_but_passes_delta2(gt):
    m = depth_metrics(1.3 * gt, gt)
    assert m["delta1"] == 0.0 and m["delta2"] == 1.0


def test_scale_shift_alignment_recovers_affine_distorted_disparity(gt):
    disparity = 2.5 / gt + 0.3  # what a relative-depth head may output
    m = depth_metrics(disparity, gt, align="scale-shift")
    assert m["abs_rel"] < 1e-9 and m["rmse"] < 1e-9 and m["delta1"] == 1
    assert depth_metrics(disparity, gt, align="none")["abs_rel"] > 0.5


def test_fit_scale_shift_is_the_least_squares_solution():
    rng = np.random.default_rng(0)
    p, y = rng.random(50), rng.random(50)
    mask = rng.random(50) > 0.3
    s, t = fit_scale_shift(p, y, mask)
    ref, *_ = np.linalg.lstsq(np.stack([p[mask], np.ones(mask.sum())], 1), y[mask], rcond=None)
    assert np.allclose([s, t], ref)


def test_median_alignment_removes_a_global_scale(gt):
    assert depth_metrics(7.0 * gt, gt, align="median")["abs_rel"] == pytest.approx(0, abs=1e-12)


def test_predictions_are_clipped_to_the_depth_range(gt):
    pred = np.full_like(gt, 100.0)
    assert depth_metrics(pred, gt, depth_range=(1e-3, 10.0))["rmse"] == pytest.approx(
        np.sqrt(((10.0 - gt) ** 2).mean())
    )


def test_invalid_and_masked_pixels_are_ignored(gt):
    g = gt.copy()
    g[:4] = 0.0  # invalid ground truth
    pred = gt.copy()
    pred[:4] = 50.0
    mask = np.ones_like(gt, bool)
    mask[-2:] = False
    pred[-2:] = 0.5
    assert depth_metrics(pred, g, mask)["abs_rel"] == 0


def test_eigen_crop_applies_to_480x640_only():
    assert eval_crop_mask((480, 640), (45, 471, 41, 601)).sum() == 426 * 560
    assert eval_crop_mask((48, 64), (45, 471, 41, 601)).all()


def test_unknown_alignment_is_rejected(gt):
    with pytest.raises(ValueError, match="unknown depth alignment 'affine'"):
        depth_metrics(gt, gt, align="affine")


def test_ssi_loss_is_zero_on_any_affine_copy_of_the_target():
    target = torch.rand(2, 16, 20) + 0.1
    mask = torch.rand(2, 16, 20) > 0.2
    assert ssi_loss(3.0 * target - 0.05, target, mask) == pytest.approx(0, abs=1e-6)
    assert ssi_loss(torch.rand(2, 16, 20), target, mask) > 1e-3


def test_silog_is_zero_on_the_target():
    target = torch.rand(2, 8, 8) + 0.5
    mask = torch.ones(2, 8, 8, dtype=torch.bool)
    assert silog_loss(target, target, mask) == pytest.approx(0, abs=1e-4)
    assert silog_loss(2 * target, target, mask) == pytest.approx(10 * np.sqrt(0.15) * np.log(2), rel=1e-4)


@pytest.fixture
def nyu(tmp_path):
    return open_dataset(f"nyuv2:{write_nyu_folder(tmp_path / 'nyu')}")


def test_targets_live_on_the_output_grid_with_a_validity_mask():
    depth = np.full((48, 64), 3.0, np.float32)
    depth[:8] = 0.0  # invalid
    depth[8:16] = 12.0  # beyond the range
    task = get_task("depth", depth_range=(1e-3, 10.0))
    t = task.make_targets([{"depth": depth}, {"depth": depth[:, :32]}], (24, 32))
    assert t["depth"].shape == (2, 24, 32) and t["mask"].dtype == torch.bool
    assert not t["mask"][:, :8].any() and t["mask"][:, 8:].all()
    assert set(t["depth"].unique().tolist()) == {0.0, 3.0, 12.0}  # nearest: no blended values


@pytest.mark.parametrize(
    ("kind", "make_output"),
    [("relative-disparity", lambda d: 0.5 / d.clamp_min(1e-3) + 2.0), ("metric-depth", lambda d: d)],
)
def test_losses_vanish_on_targets_and_train(nyu, kind, make_output):
    task = get_task("depth", output_kind=kind)
    t = task.make_targets([nyu[0], nyu[1]], (24, 32))
    assert task.loss(make_output(t["depth"]), t) == pytest.approx(0, abs=2e-4)
    out = torch.rand(2, 24, 32, requires_grad=True)
    loss = task.loss(out + 0.5, t)
    loss.backward()
    assert loss > 0.01 and out.grad.abs().sum() > 0


def test_l1_metric_loss():
    task = get_task("depth", output_kind="metric-depth", metric_loss="l1")
    t = {"depth": torch.full((1, 4, 4), 2.0), "mask": torch.ones(1, 4, 4, dtype=torch.bool)}
    assert task.loss(torch.full((1, 4, 4), 2.5), t) == pytest.approx(0.5)


def test_decode_resizes_to_ground_truth_and_evaluate_scores_it(tmp_path):
    ds = open_dataset(f"nyuv2:{write_nyu_mat(tmp_path)}")
    task = get_task("depth")  # relative disparity, scale-shift alignment
    samples = [ds[i] for i in range(len(ds))]
    disparity = torch.stack([torch.as_tensor(4.0 / s["depth"] + 0.5) for s in samples])
    preds = task.decode(disparity, samples)
    assert preds[0]["id"] == "0000" and preds[0]["depth"].shape == (48, 64)
    m = task.evaluate(preds, ds)
    assert m["abs_rel"] < 1e-5 and m["delta1"] == 1 and m["num_images"] == 4
    with pytest.raises(ValueError, match="no prediction for sample '0003'"):
        task.evaluate(preds[:3], ds)
    metric = get_task("depth", output_kind="metric-depth")
    scaled = [{"id": s["id"], "depth": 1.1 * s["depth"]} for s in samples]
    assert metric.evaluate(scaled, ds)["abs_rel"] == pytest.approx(0.1, rel=1e-5)


def test_bad_output_kind():
    with pytest.raises(ValueError, match="output_kind 'disparity'"):
        get_task("depth", output_kind="disparity")


def test_per_image_scores_are_what_the_metrics_average(tmp_path):
    ds = open_dataset(f"nyuv2:{write_nyu_mat(tmp_path)}")
    task = get_task("depth", output_kind="metric-depth")
    samples = [ds[i] for i in range(len(ds))]
    scaled = [{"id": s["id"], "depth": (1.1 if k == 2 else 1.0) * s["depth"]} for k, s in enumerate(samples)]
    metrics, per = task.evaluate_per_image(scaled, ds)
    assert per["ids"] == ["0000", "0001", "0002", "0003"]
    assert per["scores"]["abs_rel"] == pytest.approx([0, 0, 0.1, 0], abs=1e-6)
    for name in ("abs_rel", "delta1", "rmse"):
        assert sum(per["scores"][name]) / 4 == pytest.approx(metrics[name], abs=1e-12)
