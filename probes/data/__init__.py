"""Datasets for the probe tasks, opened from `--data SPEC` strings.

    nyuv2:PATH                    depth   (labeled .mat or folder of RGB/depth pairs)
    coco-kpts:ANN_JSON:IMG_DIR    pose    (person_keypoints_*.json, top-down GT-box crops)
    coco-caps:ANN_JSON:IMG_DIR    caption (captions_*.json, optional Karpathy split)
    synthetic:TASK[:N]            any task, rendered offline (see probes.data.synthetic)

New sources join with `@register_dataset(name, usage=..., task=...)` on their factory.
"""

from .base import (
    DATASETS,
    DatasetError,
    TaskDataset,
    collate_samples,
    dataset_usage,
    open_dataset,
    parse_spec,
    read_image,
    register_dataset,
)
from .coco_captions import CocoCaptionsDataset, open_coco_captions
from .coco_keypoints import NUM_KEYPOINTS, CocoKeypointsDataset, open_coco_keypoints
from .crop import CropTransform
from .nyuv2 import DEPTH_RANGE, EIGEN_CROP, NYUv2Dataset, NYUv2FolderDataset, NYUv2MatDataset, open_nyuv2
from .synthetic import open_synthetic  # each source module registers itself (@register_dataset)

__all__ = [
    "DEPTH_RANGE",
    "EIGEN_CROP",
    "NUM_KEYPOINTS",
    "DATASETS",
    "CocoCaptionsDataset",
    "CocoKeypointsDataset",
    "CropTransform",
    "DatasetError",
    "NYUv2Dataset",
    "NYUv2FolderDataset",
    "NYUv2MatDataset",
    "TaskDataset",
    "collate_samples",
    "dataset_usage",
    "open_coco_captions",
    "open_coco_keypoints",
    "open_dataset",
    "open_nyuv2",
    "open_synthetic",
    "parse_spec",
    "read_image",
    "register_dataset",
]
