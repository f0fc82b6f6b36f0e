"""COCO captions with and without a Karpathy split file."""

import json

import pytest

from probes.data import DatasetError, open_dataset
from tests.probes.fixtures import CAPTIONS, write_coco_captions, write_coco_keypoints, write_karpathy_split


@pytest.fixture
def caps(tmp_path):
    return write_coco_captions(tmp_path)


def test_one_sample_per_image_with_all_its_captions(caps):
    ds = open_dataset("coco-caps:{}:{}".format(*caps))
    assert ds.task == "caption" and len(ds) == 3 and ds.image_ids == [1, 2, 3]
    s = ds[1]
    assert s["id"] == 2 and s["captions"] == CAPTIONS[2]
    assert s["image"].mode == "RGB" and s["image"].size == (80, 60)


def test_karpathy_split_file_selects_images(caps, tmp_path):
    ann, img = caps
    karpathy = write_karpathy_split(tmp_path / "dataset_coco.json", {1: "test", 2: "restval", 3: "val"})
    assert open_dataset(f"coco-caps:{ann}:{img}", split=str(karpathy)).image_ids == [1]  # default: test
    assert open_dataset(f"coco-caps:{ann}:{img}", split=f"{karpathy}#val").image_ids == [3]
    assert open_dataset(f"coco-caps:{ann}:{img}", split=f"{karpathy}#train").image_ids == [2]  # + restval


def test_split_name_finds_dataset_coco_json_beside_the_annotations(caps):
    ann, img = caps
    write_karpathy_split(ann.parent / "dataset_coco.json", {1: "train", 2: "test", 3: "test"})
    ds = open_dataset(f"coco-caps:{ann}:{img}", split="test", limit=1)
    assert ds.image_ids == [2]


def test_missing_split_file_is_named(caps):
    ann, img = caps
    with pytest.raises(DatasetError, match=r"annotations/dataset_coco\.json: Karpathy split file not found"):
        open_dataset(f"coco-caps:{ann}:{img}", split="test")


def test_empty_split_is_an_error_naming_the_file(caps, tmp_path):
    ann, img = caps
    karpathy = write_karpathy_split(tmp_path / "k.json", {1: "train", 2: "train", 3: "train"})
    with pytest.raises(
        DatasetError, match=r"k\.json: Karpathy split 'test' has no image of .*captions_val2014"
    ):
        open_dataset(f"coco-caps:{ann}:{img}", split=str(karpathy))


def test_unknown_split_name(caps, tmp_path):
    with pytest.raises(DatasetError, match="unknown split name 'dev'"):
        open_dataset("coco-caps:{}:{}".format(*caps), split=f"{tmp_path}/k.json#dev")


def test_keypoints_file_is_not_a_captions_file(tmp_path):
    ann, img = write_coco_keypoints(tmp_path)
    with pytest.raises(DatasetError, match=r"person_keypoints_val2017\.json: annotation #0 lacks 'caption'"):
        open_dataset(f"coco-caps:{ann}:{img}")


def test_json_without_annotations_is_named(caps):
    ann, img = caps
    ann.write_text(json.dumps({"images": []}))
    with pytest.raises(DatasetError, match=r"captions_val2014\.json: not a COCO captions .*'annotations'"):
        open_dataset(f"coco-caps:{ann}:{img}")
