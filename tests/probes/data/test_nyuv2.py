"""NYU Depth v2: the labeled .mat (v7.3/HDF5, transposed arrays), official splits, RGB/depth folders."""

import pickle

import h5py
import numpy as np
import pytest
from PIL import Image

from probes.data import DEPTH_RANGE, DatasetError, NYUv2FolderDataset, NYUv2MatDataset, open_dataset
from tests.probes.fixtures import rgbd_frames, write_nyu_folder, write_nyu_mat, write_nyu_splits


def test_mat_file_reads_untransposed_rgb_and_depth(tmp_path):
    path = write_nyu_mat(tmp_path)
    assert open(path, "rb").read(19) == b"MATLAB 7.3 MAT-file" and h5py.is_hdf5(path)
    ds = open_dataset(f"nyuv2:{path}")
    assert isinstance(ds, NYUv2MatDataset) and ds.task == "depth" and len(ds) == 4
    assert ds.depth_range == DEPTH_RANGE
    rgb, depth = rgbd_frames()
    s = ds[2]
    assert s["id"] == "0002" and s["image"].size == (64, 48)
    assert np.array_equal(np.asarray(s["image"]), rgb[2])
    assert s["depth"].dtype == np.float32 and np.array_equal(s["depth"], depth[2])


def test_mat_dataset_pickles_for_dataloader_workers(tmp_path):
    ds = open_dataset(f"nyuv2:{write_nyu_mat(tmp_path)}")
    ds[0]  # opens the HDF5 handle
    clone = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(clone[1]["depth"], ds[1]["depth"])


def test_official_split_from_splits_mat_beside_the_file(tmp_path):
    path = write_nyu_mat(tmp_path)
    write_nyu_splits(tmp_path, train=[1, 3], test=[4, 2])
    assert open_dataset(f"nyuv2:{path}", split="test").indices == [1, 3]
    assert [s["id"] for s in open_dataset(f"nyuv2:{path}", split="train")] == ["0000", "0002"]
    (tmp_path / "elsewhere").mkdir()
    other = write_nyu_splits(tmp_path / "elsewhere", train=[1], test=[2])
    assert open_dataset(f"nyuv2:{path}", split=f"{other}#train").indices == [0]


def test_missing_splits_file_is_named(tmp_path):
    path = write_nyu_mat(tmp_path)
    with pytest.raises(DatasetError, match=r"splits\.mat: NYUv2 split file \(splits\.mat\) not found"):
        open_dataset(f"nyuv2:{path}", split="test")


def test_split_index_out_of_range_is_named(tmp_path):
    path = write_nyu_mat(tmp_path)
    write_nyu_splits(tmp_path, train=[1], test=[9])
    with pytest.raises(DatasetError, match=r"splits\.mat: testNdxs index 9 outside 1\.\.4"):
        open_dataset(f"nyuv2:{path}", split="test")


def test_mat_without_depths_is_named(tmp_path):
    path = tmp_path / "other.mat"
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros((1, 3, 8, 6), np.uint8)
    with pytest.raises(DatasetError, match=r"other\.mat: no dataset\(s\) depths"):
        open_dataset(f"nyuv2:{path}")


def test_v5_mat_is_named(tmp_path):
    import scipy.io

    path = tmp_path / "old.mat"
    scipy.io.savemat(path, {"images": np.zeros((2, 2))})
    with pytest.raises(DatasetError, match=r"old\.mat: a MATLAB v5/v7 \.mat; expected .*v7\.3"):
        open_dataset(f"nyuv2:{path}")


def test_missing_path_is_named(tmp_path):
    with pytest.raises(DatasetError, match=r"nyu\.mat: NYUv2 labeled \.mat file not found"):
        open_dataset(f"nyuv2:{tmp_path}/nyu.mat")


@pytest.mark.parametrize("depth_format", ["png", "npy"])
def test_folder_of_pairs(tmp_path, depth_format):
    root = write_nyu_folder(tmp_path / "nyu", depth_format=depth_format)
    ds = open_dataset(f"nyuv2:{root}")
    assert isinstance(ds, NYUv2FolderDataset) and len(ds) == 4
    rgb, depth = rgbd_frames()
    s = ds[3]
    assert s["id"] == "0003" and np.array_equal(np.asarray(s["image"]), rgb[3])
    assert s["depth"].dtype == np.float32 and np.all(s["depth"][0] == 0)  # invalid row
    assert np.allclose(s["depth"][1:], depth[3][1:], atol=1e-6)


def test_bts_layout_with_split_subfolders(tmp_path):
    root = write_nyu_folder(tmp_path / "official_splits", layout="bts")
    ds = open_dataset(f"nyuv2:{root}", split="test")
    assert [s["id"] for s in ds] == ["scene_0000/00002", "scene_0001/00003"]
    assert len(open_dataset(f"nyuv2:{root}")) == 4
    with pytest.raises(DatasetError, match="split folder 'val'"):
        open_dataset(f"nyuv2:{root}", split="val")


def test_rgb_without_depth_is_named(tmp_path):
    root = write_nyu_folder(tmp_path / "nyu")
    (root / "depth_0002.png").unlink()
    with pytest.raises(DatasetError, match=r"rgb_0002\.png: no depth beside it"):
        open_dataset(f"nyuv2:{root}")


def test_8bit_depth_png_is_named(tmp_path):
    root = write_nyu_folder(tmp_path / "nyu")
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(root / "depth_0001.png")
    ds = open_dataset(f"nyuv2:{root}")
    with pytest.raises(DatasetError, match=r"depth_0001\.png: depth PNG must be 16-bit millimetres"):
        ds[1]


def test_empty_folder_is_named(tmp_path):
    with pytest.raises(DatasetError, match="no rgb_"):
        open_dataset(f"nyuv2:{tmp_path}")


@pytest.mark.parametrize("kind", ["mat", "folder"])
def test_ground_truth_reads_depth_without_the_image(tmp_path, kind):
    path = write_nyu_mat(tmp_path) if kind == "mat" else write_nyu_folder(tmp_path / "nyu")
    ds = open_dataset(f"nyuv2:{path}")
    sample_id, depth = ds.ground_truth(2)
    assert sample_id == ds[2]["id"] and np.array_equal(depth, ds[2]["depth"])
