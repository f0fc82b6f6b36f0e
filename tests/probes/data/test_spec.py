"""`--data SPEC` parsing and the dataset registry."""

import pytest

from probes.data import DATASETS, DatasetError, TaskDataset, open_dataset, parse_spec, register_dataset
from probes.data import base as data_base


def test_builtin_sources_are_registered():
    assert {"nyuv2", "coco-kpts", "coco-caps"} <= set(DATASETS.names())


def test_unknown_source_lists_the_known_forms():
    with pytest.raises(DatasetError, match=r"unknown dataset 'kitti'.*coco-kpts:ANN_JSON:IMG_DIR"):
        open_dataset("kitti:/data/kitti")


def test_wrong_number_of_paths_says_colons_in_paths_are_unsupported():
    with pytest.raises(DatasetError, match=r"coco-kpts:ANN_JSON:IMG_DIR.*got 3.*':' are not supported"):
        parse_spec("coco-kpts:/a/b.json:/c:d")
    with pytest.raises(DatasetError, match="got 1"):
        parse_spec("coco-caps:/a/captions.json")


def test_empty_path_is_rejected():
    with pytest.raises(DatasetError, match="empty path"):
        parse_spec("coco-kpts::/images")


def test_a_new_source_joins_through_the_registry(monkeypatch):
    monkeypatch.setattr(data_base.DATASETS, "_entries", dict(data_base.DATASETS._entries))

    class Tiny(TaskDataset):
        task = "depth"

        def __init__(self, n, source):
            self.n, self.source = n, source

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return {"id": str(i)}

    register_dataset("toy")(lambda paths, *, source, split, limit, **kw: Tiny(limit or 5, source))
    ds = open_dataset("toy", limit=3)
    assert len(ds) == 3 and ds.source == "toy" and ds.task == "depth"
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("toy")(lambda *a, **k: None)
    register_dataset("empty")(lambda paths, **kw: Tiny(0, "empty"))
    with pytest.raises(DatasetError, match="empty: no samples"):
        open_dataset("empty")
