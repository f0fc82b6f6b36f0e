"""NYU Depth v2 (Silberman et al. 2012): the labeled `.mat` file, or a folder of RGB/depth pairs.

The labeled file `nyu_depth_v2_labeled.mat` is MATLAB v7.3, i.e. HDF5; h5py
sees MATLAB's column-major arrays transposed: `images` N×3×W×H uint8,
`depths` N×W×H metres (in-painted, so every pixel is valid). Split
train/test (795/654) uses NYU's `splits.mat` (`trainNdxs`/`testNdxs`,
1-based) beside the labeled file, or `split="PATH/splits.mat#test"`.

A folder holds pairs, searched recursively, in the same directory:

    rgb_ID.jpg|png  +  depth_ID.png (uint16 millimetres, 0 = invalid) | depth_ID.npy (float metres)
    rgb_ID.jpg      +  sync_depth_ID.png (uint16 millimetres; the BTS / Eigen split layout)

With `split=NAME`, PATH/NAME is read (e.g. BTS's `official_splits/test`).
Evaluation follows the field (Eigen et al. 2014; BTS, AdaBins, Depth Anything):
depths in (1e-3, 10] m and, on 480×640 images, the Eigen crop.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io
from PIL import Image

from .base import (
    DatasetError,
    TaskDataset,
    existing_dir,
    existing_file,
    read_image,
    register_dataset,
    split_with_name,
)

DEPTH_RANGE = (1e-3, 10.0)  # metres, NYUv2 evaluation range
EIGEN_CROP = (45, 471, 41, 601)  # top, bottom, left, right on 480×640 (Eigen et al. 2014)
_RGB = re.compile(r"^rgb_(.+)\.(jpg|jpeg|png)$", re.IGNORECASE)


class NYUv2Dataset(TaskDataset):
    task = "depth"
    depth_range = DEPTH_RANGE
    eval_crop = EIGEN_CROP

    def ground_truth(self, index: int) -> tuple[str, np.ndarray]:
        """(id, depth) of a sample without decoding its image: what evaluation needs."""
        s = self[index]
        return s["id"], s["depth"]


class NYUv2MatDataset(NYUv2Dataset):
    """The labeled .mat, read lazily (one HDF5 handle per worker process)."""

    def __init__(
        self, path: str | Path, *, source: str = "", split: str | None = None, limit: int | None = None
    ):
        self.path = existing_file(path, "NYUv2 labeled .mat file")
        self.source = source or f"nyuv2:{path}"
        if not h5py.is_hdf5(self.path):
            with open(self.path, "rb") as f:
                head = f.read(20)
            kind = "a MATLAB v5/v7 .mat" if head.startswith(b"MATLAB") else "not an HDF5 file"
            raise DatasetError(
                f"{self.path}: {kind}; expected the labeled NYUv2 file nyu_depth_v2_labeled.mat (MATLAB "
                "v7.3 = HDF5)"
            )
        with h5py.File(self.path, "r") as f:
            missing = [k for k in ("images", "depths") if k not in f or not isinstance(f[k], h5py.Dataset)]
            if missing:
                raise DatasetError(
                    f"{self.path}: no dataset(s) {', '.join(missing)}: not the labeled NYUv2 .mat file"
                )
            ims, deps = f["images"].shape, f["depths"].shape
        if len(ims) != 4 or ims[1] != 3 or len(deps) != 3 or deps != (ims[0], ims[2], ims[3]):
            raise DatasetError(f"{self.path}: 'images' {ims} / 'depths' {deps}: expected N×3×W×H and N×W×H")
        indices = list(range(ims[0]))
        self.split = split
        if split is not None:
            file, name = split_with_name(split, self.path.parent / "splits.mat", ("train", "test"), "test")
            indices = read_nyu_split(file, name, len(indices))
        if limit is not None:
            indices = indices[:limit]
        self.indices = indices
        self._file: h5py.File | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"] = None  # h5py handles do not cross processes
        return state

    def _h5(self) -> h5py.File:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file

    def ground_truth(self, index: int) -> tuple[str, np.ndarray]:
        i = self.indices[index]
        depth = np.ascontiguousarray(self._h5()["depths"][i].T, dtype=np.float32)  # W×H → H×W
        depth[~np.isfinite(depth)] = 0.0
        return f"{i:04d}", depth

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample_id, depth = self.ground_truth(index)
        rgb = np.ascontiguousarray(
            self._h5()["images"][self.indices[index]].transpose(2, 1, 0)
        )  # 3×W×H → H×W×3
        return {"id": sample_id, "image": Image.fromarray(rgb.astype(np.uint8), "RGB"), "depth": depth}


def read_nyu_split(path: Path, name: str, num_images: int) -> list[int]:
    """0-based indices of NYU's official split (`splits.mat`: trainNdxs / testNdxs, 1-based)."""
    existing_file(path, "NYUv2 split file (splits.mat)")
    key = f"{name}Ndxs"
    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as f:
                if key not in f:
                    raise DatasetError(f"{path}: no {key!r}: not NYU's splits.mat")
                raw = np.asarray(f[key])
        else:
            mat = scipy.io.loadmat(path)
            if key not in mat:
                raise DatasetError(f"{path}: no {key!r}: not NYU's splits.mat")
            raw = mat[key]
    except (OSError, ValueError, TypeError) as e:
        if isinstance(e, DatasetError):
            raise
        raise DatasetError(f"{path}: not a readable .mat split file ({e})") from e
    idx = [int(v) - 1 for v in np.asarray(raw).ravel()]
    if not idx:
        raise DatasetError(f"{path}: split {name!r} is empty")
    bad = [v + 1 for v in idx if not 0 <= v < num_images]
    if bad:
        raise DatasetError(f"{path}: {key} index {bad[0]} outside 1..{num_images}")
    return sorted(idx)


def _depth_for(rgb: Path, stem: str) -> Path | None:
    for name in (f"depth_{stem}.png", f"depth_{stem}.npy", f"sync_depth_{stem}.png"):
        if (rgb.parent / name).is_file():
            return rgb.parent / name
    return None


def read_depth_file(path: Path) -> np.ndarray:
    """uint16 PNG in millimetres or .npy in metres → float32 metres (0 = invalid)."""
    if path.suffix == ".npy":
        try:
            depth = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DatasetError(f"{path}: not a readable .npy depth map ({e})") from e
        if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
            raise DatasetError(
                f"{path}: expected a 2-D float array of metres, got {depth.dtype} {depth.shape}"
            )
        depth = depth.astype(np.float32)
    else:
        try:
            with Image.open(path) as im:
                im.load()
                if im.mode not in ("I;16", "I;16B", "I"):
                    raise DatasetError(f"{path}: depth PNG must be 16-bit millimetres, got mode {im.mode}")
                depth = np.asarray(im, dtype=np.float32) / 1000.0
        except DatasetError:
            raise
        except (OSError, ValueError, SyntaxError) as e:
            raise DatasetError(f"{path}: not a readable depth PNG ({e})") from e
    depth = depth.copy()
    depth[~np.isfinite(depth)] = 0.0
    return depth


class NYUv2FolderDataset(NYUv2Dataset):
    def __init__(
        self, path: str | Path, *, source: str = "", split: str | None = None, limit: int | None = None
    ):
        root = existing_dir(path, "NYUv2 folder")
        self.source = source or f"nyuv2:{path}"
        if split is not None:
            root = existing_dir(root / split, f"split folder {split!r} of {path}")
        self.root = root
        self.split = split
        pairs: list[tuple[str, Path, Path]] = []
        for rgb in sorted(p for p in root.rglob("rgb_*") if p.is_file()):
            m = _RGB.match(rgb.name)
            if not m:
                continue
            depth = _depth_for(rgb, m.group(1))
            if depth is None:
                raise DatasetError(
                    f"{rgb}: no depth beside it (expected depth_{m.group(1)}.png|.npy or "
                    f"sync_depth_{m.group(1)}.png)"
                )
            rel = rgb.parent.relative_to(root)
            sample_id = m.group(1) if rel == Path(".") else f"{rel.as_posix()}/{m.group(1)}"
            pairs.append((sample_id, rgb, depth))
        if not pairs:
            raise DatasetError(
                f"{root}: no rgb_*.jpg|png with a depth_* / sync_depth_* partner (NYUv2 folder layout)"
            )
        if limit is not None:
            pairs = pairs[:limit]
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample_id, rgb_path, depth_path = self.pairs[index]
        image = read_image(rgb_path)
        depth = read_depth_file(depth_path)
        if depth.shape != (image.height, image.width):
            raise DatasetError(
                f"{depth_path}: depth {depth.shape} does not match {rgb_path.name} "
                f"{image.height}×{image.width}"
            )
        return {"id": sample_id, "image": image, "depth": depth}

    def ground_truth(self, index: int) -> tuple[str, np.ndarray]:
        sample_id, _, depth_path = self.pairs[index]
        return sample_id, read_depth_file(depth_path)


@register_dataset("nyuv2", usage="nyuv2:PATH", num_paths=1, task="depth")
def open_nyuv2(paths: list[str], *, source: str, split: str | None, limit: int | None, **options):
    if options:
        raise DatasetError(f"{source}: unknown option(s) for nyuv2: {', '.join(sorted(options))}")
    path = Path(paths[0])
    if path.is_dir():
        return NYUv2FolderDataset(path, source=source, split=split, limit=limit)
    return NYUv2MatDataset(path, source=source, split=split, limit=limit)
