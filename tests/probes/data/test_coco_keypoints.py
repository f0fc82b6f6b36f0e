"""COCO keypoints: GT-box top-down crops, sample selection, and errors naming the file."""

import json

import numpy as np
import pytest
from PIL import Image

from probes.data import CropTransform, DatasetError, collate_samples, open_dataset
from tests.probes.fixtures import write_coco_captions, write_coco_keypoints


@pytest.fixture
def coco(tmp_path):
    return write_coco_keypoints(tmp_path)


def test_one_sample_per_person_skipping_crowd_and_unlabelled(coco):
    ann, img = coco
    ds = open_dataset(f"coco-kpts:{ann}:{img}")
    assert ds.task == "pose" and ds.source == f"coco-kpts:{ann}:{img}"
    assert [ds[i]["id"] for i in range(len(ds))] == [101, 102, 201, 301]
    assert ds.image_ids == [1, 2, 3] and len(ds.coco.anns) == 6


def test_sample_holds_crop_keypoints_box_and_transform(coco):
    ds = open_dataset("coco-kpts:{}:{}".format(*coco), crop_size=(64, 48))
    s = ds[1]
    assert s["image_id"] == 1 and s["image"].size == (48, 64) and s["image"].mode == "RGB"
    assert s["keypoints"].shape == (17, 3) and s["keypoints"].dtype == np.float32
    assert isinstance(s["crop"], CropTransform) and s["crop"].crop_size == (64, 48)
    assert s["box"] == [34.0, 4.0, 21.0, 39.0]  # clipped as HRNet's clean_bbox: w - 1, h - 1
    raw = np.array(ds.coco.anns[102]["keypoints"], dtype=float).reshape(17, 3)
    assert np.allclose(s["crop"].to_image(s["keypoints"][:15, :2]), raw[:15, :2], atol=1e-3)
    assert s["keypoints"][15:].tolist() == [[0, 0, 0], [0, 0, 0]]  # unlabelled stay (0, 0, 0)
    assert s["keypoints"][3, 2] == 1 and s["keypoints"][0, 2] == 2


def test_crop_box_is_padded_and_fits_the_head_aspect_ratio():
    crop = CropTransform.from_box([10, 20, 30, 80], crop_size=(256, 192))
    assert crop.center == (25.0, 60.0)
    assert crop.size == pytest.approx((60 * 1.25, 80 * 1.25))  # w expanded to 0.75·h, then ×1.25
    assert crop.to_crop([[25.0, 60.0]]) == pytest.approx(np.array([[95.5, 127.5]]))  # centre → centre pixel
    xy = np.array([[3.0, 7.5], [40.0, 99.0]])
    assert np.allclose(crop.to_image(crop.to_crop(xy)), xy)


def test_crop_pixels_come_from_where_the_transform_says():
    # Ramps (red = 3x, green = 4y) are linear, so bilinear sampling reproduces them exactly.
    yy, xx = np.mgrid[0:60, 0:80]
    rgb = np.stack([3 * xx, 4 * yy, np.zeros_like(xx)], -1).astype(np.uint8)
    crop = CropTransform.from_box([20, 10, 24, 32], crop_size=(64, 48))
    out = np.asarray(crop.warp(Image.fromarray(rgb))).astype(float)
    v, u = np.mgrid[0:64, 0:48]
    xy = crop.to_image(np.stack([u, v], -1))
    assert np.abs(out[..., 0] - 3 * xy[..., 0]).max() <= 0.5 + 1e-6
    assert np.abs(out[..., 1] - 4 * xy[..., 1]).max() <= 0.5 + 1e-6


def test_limit_keeps_whole_images(coco):
    ds = open_dataset("coco-kpts:{}:{}".format(*coco), limit=1)
    assert ds.image_ids == [1] and [ds[i]["id"] for i in range(len(ds))] == [101, 102]


def test_samples_batch_as_lists(coco):
    ds = open_dataset("coco-kpts:{}:{}".format(*coco))
    batch = collate_samples([ds[0], ds[1]])
    assert isinstance(batch, list) and len(batch) == 2


def test_missing_annotation_file_is_named(tmp_path):
    (tmp_path / "img").mkdir()
    with pytest.raises(DatasetError, match=r"nope\.json: COCO keypoints annotation file not found"):
        open_dataset(f"coco-kpts:{tmp_path}/nope.json:{tmp_path}/img")


def test_missing_image_dir_is_named(coco, tmp_path):
    with pytest.raises(DatasetError, match="missing_dir: COCO image directory not found"):
        open_dataset(f"coco-kpts:{coco[0]}:{tmp_path}/missing_dir")


def test_captions_file_is_not_a_keypoints_file(tmp_path):
    ann, img = write_coco_captions(tmp_path)
    with pytest.raises(DatasetError, match=r"captions_val2014\.json: not a COCO keypoints annotation file"):
        open_dataset(f"coco-kpts:{ann}:{img}")


def test_invalid_json_is_named(tmp_path, coco):
    bad = tmp_path / "person_keypoints_bad.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match=r"person_keypoints_bad\.json: not a JSON"):
        open_dataset(f"coco-kpts:{bad}:{coco[1]}")


def test_wrong_keypoint_count_is_named(coco):
    ann, img = coco
    data = json.loads(ann.read_text())
    data["annotations"][0]["keypoints"] = data["annotations"][0]["keypoints"][:-3]
    ann.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="annotation id 101 has 48 keypoint values"):
        open_dataset(f"coco-kpts:{ann}:{img}")


def test_unreadable_image_is_named_when_read(coco):
    ann, img = coco
    (img / "000000000002.jpg").write_bytes(b"not a jpeg")
    ds = open_dataset(f"coco-kpts:{ann}:{img}")
    with pytest.raises(DatasetError, match=r"000000000002\.jpg: not a readable image"):
        ds[2]
    (img / "000000000003.jpg").unlink()
    with pytest.raises(DatasetError, match=r"000000000003\.jpg: image not found"):
        ds[3]


def test_split_is_rejected(coco):
    with pytest.raises(DatasetError, match="takes no split"):
        open_dataset("coco-kpts:{}:{}".format(*coco), split="val")


def test_wrong_image_dir_fails_at_open(coco, tmp_path):
    (tmp_path / "train2017").mkdir()
    with pytest.raises(
        DatasetError, match=r"train2017/000000000001\.jpg: image of person_keypoints_val2017\.json"
    ):
        open_dataset(f"coco-kpts:{coco[0]}:{tmp_path / 'train2017'}")


def test_annotation_without_area_is_named(coco):
    ann, img = coco
    data = json.loads(ann.read_text())
    del data["annotations"][2]["area"]
    ann.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="annotation id 201 lacks 'area'"):
        open_dataset(f"coco-kpts:{ann}:{img}")
