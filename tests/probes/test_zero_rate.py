"""Zero-rate points: the training mean depth map, the mean pose layout, the most common caption."""

from __future__ import annotations

import json

import numpy as np
import pytest

from probes.data import open_dataset
from probes.evaluate import ZERO_RATE_FORMAT, evaluate_zero_rate
from probes.heads import load_head
from probes.heads.assess import evaluate_baseline, open_eval_data
from probes.tasks import get_task
from probes.tasks.baselines import mean_depth_map, mean_pose_layout, most_common_caption, zero_rate_pose
from tests.probes.fixtures import (
    CAPTIONS,
    rgbd_frames,
    write_coco_captions,
    write_coco_keypoints,
    write_nyu_mat,
    write_nyu_splits,
)


@pytest.fixture
def nyu(tmp_path):
    path = write_nyu_mat(tmp_path)
    write_nyu_splits(tmp_path, train=[1, 3], test=[2, 4])  # train frames 0, 2; test frames 1, 3
    return f"nyuv2:{path}"


def test_mean_depth_map_is_the_per_pixel_training_mean(nyu):
    _, depth = rgbd_frames()
    train = open_dataset(nyu, split="train")
    mean = mean_depth_map(train, (48, 64))
    np.testing.assert_allclose(mean, (depth[0] + depth[2]) / 2, rtol=1e-6)
    # at another size: each training map resized (nearest) first, then averaged
    assert mean_depth_map(train, (24, 32)).shape == (24, 32)


def test_zero_rate_depth_scores_the_mean_map(nyu):
    _, depth = rgbd_frames()
    r = evaluate_zero_rate(
        "depth", nyu, nyu, train_split="train", split="test", task_options={"output_kind": "metric-depth"}
    )
    assert r["format"] == ZERO_RATE_FORMAT and r["bpp"] == 0.0 and r["task"] == "depth"
    assert r["data"] == {"spec": nyu, "split": "test", "limit": None, "samples": 2}
    assert r["train"]["samples"] == 2 and "mean depth map" in r["predictor"]
    # frames are 1 + 0.5 i + ramp: the mean of frames 0 and 2 is frame 1 exactly, frame 3 is 1 m deeper
    assert r["per_image"]["ids"] == ["0001", "0003"]
    expected = float(np.mean(1.0 / depth[3]))
    assert r["per_image"]["scores"]["abs_rel"] == pytest.approx([0.0, expected], abs=1e-6)
    assert r["metrics"]["abs_rel"] == pytest.approx(expected / 2, abs=1e-6)
    # a relative-disparity head's protocol aligns scale and shift per image: a constant offset is forgiven
    # less
    rel = evaluate_zero_rate("depth", nyu, nyu, train_split="train", split="test")
    assert "disparity" in rel["predictor"] and 0 <= rel["metrics"]["abs_rel"] < expected


class _Persons:
    def __init__(self, samples):
        self.samples = samples


def _person(box, layout, unlabelled=()):
    x0, y0, w, h = box
    k = np.concatenate([layout * [w, h] + [x0, y0], np.full((17, 1), 2.0)], 1)
    k[list(unlabelled)] = 0
    return {
        "box": box,
        "ann": {"keypoints": k.reshape(-1).tolist(), "area": w * h},
        "image_id": 1,
        "ann_id": 7,
    }


def test_mean_pose_layout_is_box_normalised_and_skips_unlabelled_keypoints():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 1, (17, 2)), rng.uniform(0, 1, (17, 2))
    train = _Persons([_person([10, 20, 30, 60], a), _person([0, 0, 5, 8], b, unlabelled=(16,))])
    layout = mean_pose_layout(train)
    np.testing.assert_allclose(layout[:16], (a[:16] + b[:16]) / 2, atol=1e-12)
    np.testing.assert_allclose(layout[16], a[16], atol=1e-12)  # only the first person labels it
    (det,) = zero_rate_pose(get_task("pose"), train, _Persons([_person([100, 50, 20, 40], a)]))[0]
    xy = np.array(det["keypoints"]).reshape(17, 3)[:, :2]
    np.testing.assert_allclose(xy, layout * [20, 40] + [100, 50], atol=1e-9)
    assert det["ann_id"] == 7 and det["score"] == 1.0


def test_zero_rate_pose_on_coco_fixture(tmp_path):
    ann, img = write_coco_keypoints(tmp_path)
    spec = f"coco-kpts:{ann}:{img}"
    r = evaluate_zero_rate("pose", spec, spec)
    # every fixture person is the same template in its box: the mean layout places it almost exactly
    assert r["metrics"]["AP"] > 0.9 and r["metrics"]["oks"] > 0.95
    assert r["per_image"]["ids"] == ["1", "2", "3"] and r["per_image"]["weights"] == [2.0, 1.0, 1.0]


def test_zero_rate_caption_is_the_most_common_training_caption(tmp_path):
    ann, img = write_coco_captions(tmp_path)
    spec = f"coco-caps:{ann}:{img}"
    ds = open_dataset(spec)
    # every caption occurs once: the tie goes to the lexicographically first tokenised caption
    assert most_common_caption(ds) == "a kitchen with white cabinets and a stove"
    ds.captions = {**ds.captions, 1: ds.captions[1] + [CAPTIONS[2][0]]}
    assert most_common_caption(ds) == "two dogs play with a red frisbee on the grass"
    r = evaluate_zero_rate("caption", spec, spec)
    cider = r["per_image"]["scores"]["CIDEr-D"]
    assert r["per_image"]["ids"] == ["1", "2", "3"] and cider[2] == max(cider) > 0
    assert r["metrics"]["CIDEr-D"] == pytest.approx(np.mean(cider))


def test_zero_rate_command_writes_the_record_the_report_reads(nyu, tmp_path):
    from click.testing import CliRunner

    from bench.cli import main
    from bench.rd import load_results

    out = tmp_path / "zero.json"
    r = CliRunner().invoke(
        main,
        [
            "zero-rate",
            "--task",
            "depth",
            "--train-data",
            nyu,
            "--train-split",
            "train",
            "--data",
            nyu,
            "--split",
            "test",
            "--depth-output",
            "metric-depth",
            "-o",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "depth at 0 bits" in r.output and "abs_rel" in r.output
    (point,) = load_results([out])
    assert point.zero_rate and point.task == "depth" and point.data == f"{nyu} (split=test)"
    assert point.per_image["ids"] == ["0001", "0003"]
    r = CliRunner().invoke(
        main, ["zero-rate", "--task", "depth", "--train-data", nyu, "--data", nyu, "-o", str(out)]
    )
    assert r.exit_code == 3 and "--force" in r.output


@pytest.mark.parametrize(
    "task, train_images, test_images", [("depth", 6, 3), ("pose", 8, 3), ("caption", 16, 6)]
)
def test_a_heads_trivial_baseline_is_the_sweeps_zero_rate_point(task, train_images, test_images, tmp_path):
    """`featcodec eval-head` / `pretrain-heads` record the numbers the sweep's zero-rate step writes."""
    from bench.sweep.steps import run_step

    train, test = f"synthetic:{task}:{train_images}", f"synthetic:{task}:{test_images}"
    head = load_head(f"builtin:{task}")
    baseline = evaluate_baseline(head, open_eval_data(head, test, "test", None), train)
    run_step(
        {
            "id": "zero",
            "kind": "zero-rate",
            "inputs": {},
            "settings": {
                "task": task,
                "head": f"builtin:{task}",
                "train": {"data": train, "split": "train", "limit": None},
                "test": {"data": test, "split": "test", "limit": None},
            },
        },
        tmp_path,
    )
    point = json.loads((tmp_path / "steps" / "zero" / "result.json").read_text())
    assert baseline["metrics"] == point["metrics"]
    assert baseline["name"] == point["predictor"] and baseline["samples"] == point["train"]["samples"]
