"""The synthetic world: offline datasets in the real sources' formats, scored by the real task metrics."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from probes.data import DATASETS, DEPTH_RANGE, CropTransform, DatasetError, open_dataset
from probes.data.synthetic import datasets as synthetic_datasets
from probes.data.synthetic.rooms import SURFACES
from probes.data.synthetic.shapes import Shape, _candidate_captions
from probes.tasks import get_task
from tests.probes.fixtures import ON_CPU, TINY_NECK, cli_flags, eval_json, run_cli, write_task_data


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The fixture datasets of the real sources, to compare sample formats against."""
    return {
        task: open_dataset(spec) for task, spec in write_task_data(tmp_path_factory.mktemp("real")).items()
    }


def clear_render_caches():
    for name in ("room_render", "people_image", "shapes_image"):
        getattr(synthetic_datasets, name).cache_clear()


def pixels(sample: dict) -> np.ndarray:
    return np.asarray(sample["image"])


def describe(value):
    """What a sample field is: its type and, for arrays, dtype and rank."""
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype, value.ndim)
    if isinstance(value, Image.Image):
        return ("image", value.mode)
    if isinstance(value, list):
        return ("list", tuple(sorted({type(v).__name__ for v in value})))
    return type(value).__name__


# -- specs ----------------------------------------------------------------------------------------


def test_registered_with_its_usage():
    assert "synthetic" in DATASETS.names()
    with pytest.raises(DatasetError, match=r"synthetic:depth\|pose\|caption\[:N\]"):
        open_dataset("nope:x")


@pytest.mark.parametrize(
    "spec, options, message",
    [
        ("synthetic", {}, "expected synthetic:depth|pose|caption"),
        ("synthetic:segmentation", {}, "expected synthetic:depth|pose|caption"),
        ("synthetic:depth:4:5", {}, "expected synthetic:depth|pose|caption"),
        ("synthetic:depth:0", {}, "N must be a positive number"),
        ("synthetic:depth:many", {}, "N must be a positive number"),
        ("synthetic:depth", {"crop_size": (64, 48)}, "unknown option(s) for synthetic:depth: crop_size"),
        ("synthetic:caption", {"image_size": (8, 8)}, "too small"),
    ],
)
def test_bad_specs_and_options_are_named(spec, options, message):
    with pytest.raises(DatasetError, match=re.escape(message)):
        open_dataset(spec, **options)


def test_unknown_split_is_named():
    with pytest.raises(DatasetError, match="unknown split 'dev'; expected one of train, val, test"):
        open_dataset("synthetic:depth", split="dev")


def test_default_sizes_count_and_limit():
    assert len(open_dataset("synthetic:depth")) == 64
    assert len(open_dataset("synthetic:caption", split="test")) == 16
    assert len(open_dataset("synthetic:depth:5", split="val")) == 5
    assert len(open_dataset("synthetic:caption:20", limit=3)) == 3


# -- sample formats -------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["depth", "pose", "caption"])
def test_samples_have_the_real_sources_format(real, task):
    options = {"crop_size": real[task].crop_size} if task == "pose" else {}
    ds = open_dataset(f"synthetic:{task}:2", **options)
    ours, theirs = ds[0], real[task][0]
    assert ds.task == real[task].task == task
    assert sorted(ours) == sorted(theirs)
    assert {k: describe(v) for k, v in ours.items()} == {k: describe(v) for k, v in theirs.items()}
    if task == "pose":
        assert ours["keypoints"].shape == theirs["keypoints"].shape == (17, 3)
        assert ours["image"].size == theirs["image"].size and isinstance(ours["crop"], CropTransform)
    if task == "depth":
        assert ours["depth"].shape == (ours["image"].height, ours["image"].width)


def test_depth_dataset_answers_like_nyuv2(real):
    ds = open_dataset("synthetic:depth:3", split="test")
    assert ds.depth_range == real["depth"].depth_range == DEPTH_RANGE
    assert ds.eval_crop is None  # no Kinect border to crop away
    sample_id, depth = ds.ground_truth(2)
    assert sample_id == ds[2]["id"] == "test-0002" and np.array_equal(depth, ds[2]["depth"])
    assert ds[0]["image"].size == (192, 144)  # W × H: NYUv2's 3:4 at 0.3×


def test_image_size_option():
    ds = open_dataset("synthetic:depth:1", image_size=(48, 64))
    assert ds[0]["image"].size == (64, 48) and ds[0]["depth"].shape == (48, 64)


def test_datasets_pickle_for_dataloader_workers():
    for task in ("depth", "pose", "caption"):
        ds = open_dataset(f"synthetic:{task}:2")
        clone = pickle.loads(pickle.dumps(ds))
        assert np.array_equal(pixels(clone[0]), pixels(ds[0]))


# -- determinism and splits -----------------------------------------------------------------------


@pytest.mark.parametrize("task", ["depth", "pose", "caption"])
def test_same_spec_renders_identical_pixels(task):
    first = open_dataset(f"synthetic:{task}:3", split="val")
    a = [pixels(first[i]) for i in range(2)]
    clear_render_caches()  # render again from the seeds, not from memory
    second = open_dataset(f"synthetic:{task}:3", split="val")
    assert all(np.array_equal(x, pixels(second[i])) for i, x in enumerate(a))
    if task == "caption":
        assert first.captions == second.captions
    if task == "pose":
        assert first.coco.dataset == second.coco.dataset


def test_n_images_are_a_prefix_of_the_default_split():
    short, full = open_dataset("synthetic:caption:4"), open_dataset("synthetic:caption")
    assert short.image_ids == full.image_ids[:4]
    assert all(np.array_equal(pixels(short[i]), pixels(full[i])) for i in range(4))


@pytest.mark.parametrize("task", ["depth", "pose", "caption"])
def test_splits_share_no_image(task):
    splits = {s: open_dataset(f"synthetic:{task}:6", split=s) for s in ("train", "val", "test")}
    ids = [{ds[i]["id"] for i in range(len(ds))} for ds in splits.values()]
    assert sum(map(len, ids)) == len(set().union(*ids))
    images = [pixels(ds[i]).tobytes() for ds in splits.values() for i in range(min(len(ds), 4))]
    assert len(set(images)) == len(images)


def test_no_split_means_train():
    assert open_dataset("synthetic:depth:2")[1]["id"] == "train-0001"


# -- depth: exact metric ground truth ---------------------------------------------------------------


def test_depth_of_the_room_planes_matches_their_analytic_value():
    ds = open_dataset("synthetic:depth:4")
    checked = 0
    for i in range(len(ds)):
        render = ds.render(i)
        room = render.room
        fx, fy, cx, cy = room.intrinsics
        h, w = room.size
        v, u = np.mgrid[0:h, 0:w].astype(np.float64)
        # the world direction of each pixel's ray scaled to camera-frame z = 1: depth z lies at z·ray
        ray = np.stack([(u - cx) / fx, -(v - cy) / fy, np.ones_like(u)], -1) @ room.rotation.T
        planes = {"floor": room.floor_y / ray[..., 1], "back wall": room.back_z / ray[..., 2]}
        for name, analytic in planes.items():
            on = render.surface == SURFACES.index(name)
            if on.any():
                np.testing.assert_allclose(render.depth[on], analytic[on], rtol=1e-5)
                checked += 1
    assert checked >= 4


def test_depths_lie_in_nyu_range_and_every_pixel_is_valid():
    ds = open_dataset("synthetic:depth:8", split="test")
    for i in range(len(ds)):
        depth = ds.ground_truth(i)[1]
        assert np.isfinite(depth).all() and depth.min() >= 0.5 and depth.max() <= 10.0


def test_perfect_depth_scores_perfectly_and_a_wrong_one_does_not():
    ds = open_dataset("synthetic:depth:3", split="test")
    task = get_task("depth", output_kind="metric-depth")
    gts = [ds.ground_truth(i) for i in range(len(ds))]
    perfect = task.evaluate([{"id": i, "depth": d} for i, d in gts], ds)
    assert perfect["abs_rel"] == 0.0 and perfect["delta1"] == 1.0
    flat = task.evaluate([{"id": i, "depth": np.full_like(d, 3.0)} for i, d in gts], ds)
    assert flat["abs_rel"] > 0.1 and flat["delta1"] < 0.9


# -- pose: a real COCO keypoints object --------------------------------------------------------------


def test_pose_dataset_is_a_coco_keypoints_file_in_memory():
    ds = open_dataset("synthetic:pose", split="test")
    assert isinstance(ds.coco, COCO) and sorted(ds.coco.getImgIds()) == ds.image_ids
    assert ds.coco.loadCats(1)[0]["keypoints"][5] == "left_shoulder"
    anns = list(ds.coco.anns.values())
    per_image = [len(ds.coco.imgToAnns[i]) for i in ds.image_ids]
    assert set(per_image) <= {0, 1, 2} and 2 in per_image
    flags = np.concatenate([np.array(a["keypoints"]).reshape(17, 3)[:, 2] for a in anns])
    assert {0, 1, 2} <= set(flags.tolist())  # out of image, hidden and visible all occur
    for a in anns:
        k = np.array(a["keypoints"]).reshape(17, 3)
        assert (k[k[:, 2] == 0] == 0).all() and a["num_keypoints"] == int((k[:, 2] > 0).sum())
        assert a["area"] == pytest.approx(float(ds.coco.annToMask(a).sum()))  # the visible silhouette
        x, y, bw, bh = a["bbox"]
        assert 0 <= x and 0 <= y and x + bw <= 192 and y + bh <= 144
    assert len(ds) == len(anns)  # one crop per person


def test_gt_keypoints_score_ap_1_through_the_pose_task():
    ds = open_dataset("synthetic:pose", split="val")
    predictions = []
    for i in range(len(ds)):
        s = ds[i]
        xy = s["crop"].to_image(s["keypoints"][:, :2])  # crop → image, as the task's decode does
        kpts = np.concatenate([xy, np.ones((17, 1))], 1).ravel().tolist()
        predictions.append({"image_id": s["image_id"], "category_id": 1, "keypoints": kpts, "score": 1.0})
    metrics = get_task("pose").evaluate(predictions, ds)
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AR"] == pytest.approx(1.0)
    offset = np.tile([6.0, 6.0, 0.0], 17)  # 6 pixels off on x and y
    shifted = [{**p, "keypoints": (np.array(p["keypoints"]) + offset).tolist()} for p in predictions]
    assert get_task("pose").evaluate(shifted, ds)["AP"] < 0.9


# -- captions -------------------------------------------------------------------------------------


def test_captions_are_varied_references_scored_by_the_caption_task():
    ds = open_dataset("synthetic:caption", split="test")
    assert all(len(ds.captions[i]) >= 3 for i in ds.image_ids)
    assert len({c for i in ds.image_ids for c in ds.captions[i]}) > 3 * len(ds)
    task = get_task("caption")
    perfect = task.evaluate([{"image_id": i, "caption": ds.captions[i][0]} for i in ds.image_ids], ds)
    assert perfect["BLEU-4"] == pytest.approx(1.0)
    wrong = task.evaluate([{"image_id": i, "caption": "a photo of a cat"} for i in ds.image_ids], ds)
    assert wrong["BLEU-4"] < 0.1


def test_relation_captions_say_what_the_layout_shows():
    red = Shape("circle", "red", x=20.0, y=70.0, r=10.0, large=False)
    blue = Shape("square", "blue", x=150.0, y=75.0, r=25.0, large=True)
    captions = _candidate_captions([red, blue], "white", (144, 192))
    assert "a red circle to the left of a blue square" in captions
    assert "a blue square is right of a red circle" in captions
    assert "a blue square that is bigger than the red circle" in captions
    assert "a red circle and a blue square from left to right" in captions
    assert "two shapes on a white background" in captions
    assert not any("above" in c or "below" in c or "blue square to the left" in c for c in captions)


# -- end to end through the CLI ---------------------------------------------------------------------


def test_train_neck_then_eval_on_synthetic_depth(tmp_path):
    neck = tmp_path / "neck"
    r = run_cli(
        "train-neck",
        *cli_flags(TINY_NECK),
        *ON_CPU,
        "--task",
        "depth",
        "--head",
        "builtin:depth",
        "--train-head",
        "--data",
        "synthetic:depth:4",
        "--steps",
        3,
        "-o",
        neck,
    )
    assert r.exit_code == 0, r.output
    result = eval_json(neck, "synthetic:depth", "--split", "test", "--limit", 2)
    assert result["data"] == {"spec": "synthetic:depth", "split": "test", "limit": 2, "samples": 2}
    assert result["metrics"]["num_images"] == 2.0 and 0 < result["metrics"]["abs_rel"] < float("inf")
