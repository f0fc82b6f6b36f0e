"""Tiny datasets written in the exact formats users have (shared by the probes tests).

- COCO keypoints: `person_keypoints_val2017.json` layout (info, licenses, images,
  annotations with segmentation / num_keypoints / area / iscrowd / keypoints /
  bbox / category_id, the person category with its 17 keypoint names + skeleton).
- COCO captions: `captions_val2014.json` layout, plus a Karpathy `dataset_coco.json`.
- NYUv2: the labeled `.mat` as MATLAB v7.3 writes it (512-byte MATLAB header
  userblock, HDF5 datasets `images` N×3×W×H uint8 / `depths` N×W×H, transposed
  column-major, `MATLAB_class` attributes) and NYU's `splits.mat` (MATLAB v5);
  folders of `rgb_ID.jpg` + `depth_ID.png|npy` or BTS's `sync_depth_ID.png`.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import scipy.io
from PIL import Image

from probes.data.synthetic.people import COCO_KEYPOINT_NAMES, COCO_SKELETON

# A standing person in a unit box (x right, y down): the 17 COCO keypoints.
_PERSON = np.array(
    [
        [0.50, 0.08],
        [0.55, 0.05],
        [0.45, 0.05],
        [0.60, 0.07],
        [0.40, 0.07],
        [0.70, 0.22],
        [0.30, 0.22],
        [0.80, 0.40],
        [0.20, 0.40],
        [0.85, 0.55],
        [0.15, 0.55],
        [0.62, 0.55],
        [0.38, 0.55],
        [0.64, 0.75],
        [0.36, 0.75],
        [0.65, 0.95],
        [0.35, 0.95],
    ]
)

IMAGE_SIZES = [(48, 64), (60, 80), (72, 96)]  # H × W of the three COCO fixture images


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 3 + 20, yy * 3 + 10, (xx + yy) * 2], -1) + rng.integers(0, 30, (h, w, 3))
    return rgb.clip(0, 255).astype(np.uint8)


def _write_images(img_dir: Path, names: list[str]) -> list[tuple[int, int]]:
    img_dir.mkdir(parents=True, exist_ok=True)
    for i, (name, (h, w)) in enumerate(zip(names, IMAGE_SIZES, strict=True)):
        Image.fromarray(_photo(h, w, i)).save(img_dir / name, quality=95)
    return IMAGE_SIZES


def _image_entry(image_id: int, name: str, h: int, w: int) -> dict:
    return {
        "license": 1,
        "file_name": name,
        "coco_url": f"http://images.cocodataset.org/val2017/{name}",
        "height": h,
        "width": w,
        "date_captured": "2013-11-14 17:02:52",
        "flickr_url": "http://farm7.staticflickr.com/fixture.jpg",
        "id": image_id,
    }


def person_keypoints(
    box: list[float], hidden: tuple[int, ...] = (), unlabelled: tuple[int, ...] = ()
) -> list[float]:
    """COCO `keypoints` (51 values) of the fixture person inside `box`; v = 2
    visible, 1 hidden, 0 unlabelled."""
    x, y, w, h = box
    out = []
    for k, (u, v) in enumerate(_PERSON):
        if k in unlabelled:
            out += [0, 0, 0]
        else:
            out += [round(x + u * w, 2), round(y + v * h, 2), 1 if k in hidden else 2]
    return out


def _person(ann_id: int, image_id: int, box: list[float], **kw) -> dict:
    kpts = person_keypoints(box, **kw)
    x, y, w, h = box
    return {
        "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
        "num_keypoints": sum(1 for v in kpts[2::3] if v > 0),
        "area": float(w * h * 0.6),
        "iscrowd": 0,
        "keypoints": kpts,
        "image_id": image_id,
        "bbox": box,
        "category_id": 1,
        "id": ann_id,
    }


def write_coco_keypoints(folder: str | Path) -> tuple[Path, Path]:
    """3 images, 4 usable persons, 1 crowd region and 1 person with no labelled keypoint.

    Returns (ann_json, img_dir). Images 1/2/3 are 64×48, 80×60, 96×72 (W×H) JPEGs.
    """
    folder = Path(folder)
    img_dir = folder / "val2017"
    names = [f"{i:012d}.jpg" for i in (1, 2, 3)]
    sizes = _write_images(img_dir, names)
    anns = [
        _person(101, 1, [4.0, 6.0, 20.0, 36.0]),
        _person(102, 1, [34.0, 4.0, 22.0, 40.0], hidden=(3, 4), unlabelled=(15, 16)),
        _person(201, 2, [20.0, 8.0, 30.0, 48.0]),
        {  # a crowd region (uncompressed RLE), skipped by the reader and ignored by COCOeval
            "segmentation": {"counts": [300, 200, 4300], "size": [60, 80]},
            "num_keypoints": 0,
            "area": 200.0,
            "iscrowd": 1,
            "keypoints": [0] * 51,
            "image_id": 2,
            "bbox": [50.0, 5.0, 25.0, 40.0],
            "category_id": 1,
            "id": 202,
        },
        _person(301, 3, [30.0, 10.0, 36.0, 56.0], hidden=(0,)),
        {  # a person box without any labelled keypoint: skipped too
            **_person(302, 3, [2.0, 2.0, 10.0, 12.0]),
            "keypoints": [0] * 51,
            "num_keypoints": 0,
        },
    ]
    data = {
        "info": {
            "description": "featcodec test fixture (COCO 2017 keypoints layout)",
            "version": "1.0",
            "year": 2017,
        },
        "licenses": [
            {"url": "http://creativecommons.org/licenses/by/2.0/", "id": 1, "name": "Attribution License"}
        ],
        "images": [
            _image_entry(i + 1, n, h, w) for i, (n, (h, w)) in enumerate(zip(names, sizes, strict=True))
        ],
        "annotations": anns,
        "categories": [
            {
                "supercategory": "person",
                "id": 1,
                "name": "person",
                "keypoints": COCO_KEYPOINT_NAMES,
                "skeleton": COCO_SKELETON,
            }
        ],
    }
    ann_json = folder / "annotations" / "person_keypoints_val2017.json"
    ann_json.parent.mkdir(parents=True, exist_ok=True)
    ann_json.write_text(json.dumps(data))
    return ann_json, img_dir


CAPTIONS = {
    1: ["A man riding a wave on top of a surfboard.", "A surfer rides a large wave in the ocean."],
    2: ["Two dogs play with a red frisbee on the grass.", "A pair of dogs chasing a frisbee in a park."],
    3: ["A kitchen with white cabinets and a stove.", "An empty kitchen has a stove, an oven and cabinets."],
}


def write_coco_captions(folder: str | Path) -> tuple[Path, Path]:
    """3 images × 2 captions in the `captions_val2014.json` layout. Returns (ann_json, img_dir)."""
    folder = Path(folder)
    img_dir = folder / "val2014"
    names = [f"COCO_val2014_{i:012d}.jpg" for i in CAPTIONS]
    sizes = _write_images(img_dir, names)
    anns, ann_id = [], 1000
    for image_id, caps in CAPTIONS.items():
        for cap in caps:
            anns.append({"image_id": image_id, "id": ann_id, "caption": cap})
            ann_id += 1
    data = {
        "info": {"description": "featcodec test fixture (COCO 2014 captions layout)", "year": 2014},
        "licenses": [
            {"url": "http://creativecommons.org/licenses/by/2.0/", "id": 1, "name": "Attribution License"}
        ],
        "images": [_image_entry(i, n, h, w) for i, n, (h, w) in zip(CAPTIONS, names, sizes, strict=True)],
        "annotations": anns,
    }
    ann_json = folder / "annotations" / "captions_val2014.json"
    ann_json.parent.mkdir(parents=True, exist_ok=True)
    ann_json.write_text(json.dumps(data))
    return ann_json, img_dir


def write_karpathy_split(path: str | Path, splits: dict[int, str]) -> Path:
    """A Karpathy `dataset_coco.json` giving each COCO id its split (train/val/test/restval)."""
    images = []
    for k, (cocoid, split) in enumerate(sorted(splits.items())):
        caps = CAPTIONS.get(cocoid, ["a photo"])
        images.append(
            {
                "filepath": "val2014",
                "sentids": list(range(10 * k, 10 * k + len(caps))),
                "filename": f"COCO_val2014_{cocoid:012d}.jpg",
                "imgid": k,
                "split": split,
                "sentences": [
                    {"tokens": c.lower().strip(".").split(), "raw": c, "imgid": k, "sentid": 10 * k + j}
                    for j, c in enumerate(caps)
                ],
                "cocoid": cocoid,
            }
        )
    path = Path(path)
    path.write_text(json.dumps({"images": images, "dataset": "coco"}))
    return path


def rgbd_frames(n: int = 4, h: int = 48, w: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic RGB (N×H×W×3 uint8) and depth (N×H×W float32 metres, whole millimetres) frames."""
    rgb = np.stack([_photo(h, w, 10 + i) for i in range(n)])
    yy, xx = np.mgrid[0:h, 0:w]
    depth = np.stack([1.0 + 0.5 * i + 3.0 * yy / h + 2.0 * xx / w for i in range(n)])
    return rgb, (np.round(depth * 1000) / 1000).astype(np.float32)


_MATLAB_HEADER = (
    b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Tue Oct 30 10:00:00 2012 HDF5 schema 1.00 ."
)


def write_nyu_mat(
    folder: str | Path, n: int = 4, h: int = 48, w: int = 64, name: str = "nyu_depth_v2_labeled.mat"
) -> Path:
    """The labeled NYUv2 file's layout: MATLAB v7.3 (HDF5 with a 512-byte MATLAB
    userblock), arrays transposed."""
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb, depth = rgbd_frames(n, h, w)
    with h5py.File(path, "w", userblock_size=512) as f:
        images = f.create_dataset("images", data=rgb.transpose(0, 3, 2, 1))  # N×3×W×H
        images.attrs["MATLAB_class"] = np.bytes_("uint8")
        depths = f.create_dataset("depths", data=depth.transpose(0, 2, 1))  # N×W×H
        depths.attrs["MATLAB_class"] = np.bytes_("single")
        labels = f.create_dataset("labels", data=np.zeros((n, w, h), np.uint16))
        labels.attrs["MATLAB_class"] = np.bytes_("uint16")
    with open(path, "r+b") as f:
        f.write(_MATLAB_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")
    return path


def write_nyu_splits(folder: str | Path, train: list[int], test: list[int]) -> Path:
    """NYU's `splits.mat` (MATLAB v5): trainNdxs / testNdxs as 1-based column vectors."""
    path = Path(folder) / "splits.mat"
    scipy.io.savemat(
        path, {"trainNdxs": np.array(train, float)[:, None], "testNdxs": np.array(test, float)[:, None]}
    )
    return path


def write_nyu_folder(
    folder: str | Path, layout: str = "pairs", depth_format: str = "png", n: int = 4
) -> Path:
    """RGB/depth pairs. layout "pairs": rgb_0000.jpg + depth_0000.png|npy in one folder;
    "bts": BTS's official_splits/{train,test}/<scene>/rgb_00000.jpg + sync_depth_00000.png
    (2 frames per split). One pixel row of depth is 0 (invalid)."""
    if layout == "bts" and depth_format != "png":
        raise ValueError("the BTS layout stores sync_depth_*.png only")
    root = Path(folder)
    rgb, depth = rgbd_frames(n)
    depth = depth.copy()
    depth[:, 0, :] = 0.0
    for i in range(n):
        if layout == "pairs":
            d, stem, depth_name = root, f"{i:04d}", f"depth_{i:04d}"
        elif layout == "bts":
            d = root / ("train" if i < n // 2 else "test") / f"scene_{i % 2:04d}"
            stem, depth_name = f"{i:05d}", f"sync_depth_{i:05d}"
        else:
            raise ValueError(layout)
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb[i]).save(d / f"rgb_{stem}.{'jpg' if layout == 'bts' else 'png'}")
        if depth_format == "npy":
            np.save(d / f"{depth_name}.npy", depth[i])
        else:
            Image.fromarray(np.round(depth[i] * 1000).astype(np.uint16)).save(d / f"{depth_name}.png")
    return root


def write_task_data(root: str | Path) -> dict[str, str]:
    """The three fixture datasets above under `root`, as the data spec of each task."""
    root = Path(root)
    ann, img = write_coco_keypoints(root / "kpts")
    cann, cimg = write_coco_captions(root / "caps")
    return {
        "depth": f"nyuv2:{write_nyu_folder(root / 'nyu')}",
        "pose": f"coco-kpts:{ann}:{img}",
        "caption": f"coco-caps:{cann}:{cimg}",
    }


def save_tiny_heads(root: str | Path) -> dict[str, Path]:
    """A tiny head per task saved with `save_pretrained` under root/head-TASK."""
    from probes.heads.tiny import save_tiny_head

    return {task: save_tiny_head(task, Path(root) / f"head-{task}") for task in ("depth", "pose", "caption")}


# The smallest neck that trains in seconds on CPU: TrainNeckOptions fields, and as train-neck flags.
TINY_NECK = {
    "encoder": "mini-hiera-random",
    "random_init": True,
    "resolution": 64,
    "neck_layers": 1,
    "neck_dim": 32,
    "neck_heads": 4,
    "batch_size": 2,
}
ON_CPU = ["--device", "cpu", "--workers", "0"]  # the CLI flags of a test run: no GPU, no worker processes


def cli_flags(options: dict) -> list[str]:
    """TrainNeckOptions fields as command-line flags (a True bool: the bare flag)."""
    flags: list[str] = []
    for name, value in options.items():
        flags += [f"--{name.replace('_', '-')}", *([] if value is True else [str(value)])]
    return flags


def run_cli(*args):
    """`featcodec ARGS...` in process (every argument str()-ed); exceptions propagate."""
    from click.testing import CliRunner

    from bench.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def eval_json(neck, data: str, *extra) -> dict:
    """`featcodec eval --json` of a trained neck on CPU, which must succeed: the result it prints."""
    r = run_cli("eval", "--neck", neck, "--data", data, "--json", *ON_CPU, *extra)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)
