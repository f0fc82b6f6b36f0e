"""COCO captions (`captions_*.json` + images), optionally restricted to a Karpathy split.

`split` may be a Karpathy split file (`dataset_coco.json` of Karpathy & Fei-Fei
2015, as shipped with neuraltalk2 / BLIP: {"images": [{"cocoid", "split", ...}]}),
`FILE#NAME`, or just NAME with `dataset_coco.json` beside the annotation file.
NAME ∈ train, val, test, restval (default test); "train" includes "restval",
the 113,287-image training set every captioning paper since uses. References
for evaluation always come from the annotation file (5 per image on COCO).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from .base import (
    DatasetError,
    TaskDataset,
    existing_file,
    read_image,
    read_json,
    register_dataset,
    require_keys,
    split_with_name,
)
from .coco_keypoints import check_first_image, open_coco_files

KARPATHY_SPLITS = ("train", "val", "test", "restval")


def karpathy_image_ids(path: Path, name: str) -> set[int]:
    existing_file(path, "Karpathy split file")
    data = read_json(path, "Karpathy split file")
    require_keys(data, ("images",), path, "Karpathy split file (dataset_coco.json)")
    wanted = {"train", "restval"} if name == "train" else {name}
    ids = set()
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "split" not in img or "cocoid" not in img:
            raise DatasetError(f"{path}: image #{i} lacks 'split'/'cocoid': not a Karpathy split file")
        if img["split"] in wanted:
            ids.add(int(img["cocoid"]))
    return ids


class CocoCaptionsDataset(TaskDataset):
    task = "caption"

    def __init__(
        self,
        ann_json: str | Path,
        img_dir: str | Path,
        *,
        source: str = "",
        split: str | None = None,
        limit: int | None = None,
    ):
        self.ann_json, self.img_dir, data, what = open_coco_files(
            ann_json, img_dir, "captions", "captions_*.json", ("images", "annotations")
        )
        self.source = source or f"coco-caps:{ann_json}:{img_dir}"
        captions: dict[int, list[str]] = defaultdict(list)
        for i, ann in enumerate(data["annotations"]):
            if not isinstance(ann, dict) or "caption" not in ann or "image_id" not in ann:
                raise DatasetError(
                    f"{self.ann_json}: annotation #{i} lacks 'caption'/'image_id': not a {what}"
                )
            captions[ann["image_id"]].append(str(ann["caption"]))
        self.images: dict[int, dict] = {}
        for i, img in enumerate(data["images"]):
            if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
                raise DatasetError(f"{self.ann_json}: image #{i} lacks 'id'/'file_name'")
            self.images[img["id"]] = img
        ids = sorted(i for i in self.images if captions.get(i))
        self.split = split
        if split is not None:
            file, name = split_with_name(
                split, self.ann_json.parent / "dataset_coco.json", KARPATHY_SPLITS, "test"
            )
            wanted = karpathy_image_ids(file, name)
            ids = [i for i in ids if i in wanted]
            if not ids:
                raise DatasetError(
                    f"{file}: Karpathy split {name!r} has no image of {self.ann_json} "
                    "(Karpathy val/test come from val2014, train/restval from both)"
                )
        if limit is not None:
            ids = ids[:limit]
        self.image_ids = ids
        check_first_image(self.img_dir, [self.images[i] for i in ids], self.ann_json)
        self.captions = {i: captions[i] for i in ids}

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_path(self, image_id: int) -> Path:
        return self.img_dir / self.images[image_id]["file_name"]

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_id = self.image_ids[index]
        return {
            "id": image_id,
            "image": read_image(self.image_path(image_id)),
            "captions": list(self.captions[image_id]),
        }


@register_dataset("coco-caps", usage="coco-caps:ANN_JSON:IMG_DIR", num_paths=2, task="caption")
def open_coco_captions(paths: list[str], *, source: str, split: str | None, limit: int | None, **options):
    if options:
        raise DatasetError(f"{source}: unknown option(s) for coco-caps: {', '.join(sorted(options))}")
    return CocoCaptionsDataset(paths[0], paths[1], source=source, split=split, limit=limit)
