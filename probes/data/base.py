"""The dataset interface every probe task reads, and the `--data SPEC` registry.

A spec is `NAME:PATH[:PATH...]` (e.g. `coco-kpts:ANN_JSON:IMG_DIR`); the name
picks a factory registered in `DATASETS` with `@register_dataset(name, usage=..., task=...)`, timm-style,
so a new source (the built-in synthetic world) joins without touching the parser.
POSIX paths only: a `:` inside a path cannot be told apart from the separator.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

from codec.errors import InputError
from codec.registry import Registry

from ..encoders.preprocess import ImageReadError, load_image


class DatasetError(InputError):
    """Bad dataset input (missing file, wrong format, empty split); the message names the file."""


class TaskDataset(Dataset):
    """A torch Dataset of task samples (dicts holding PIL images and numpy targets).

    Samples hold PIL images, so batch them with `collate_fn=collate_samples`
    (a list of dicts): resizing and normalisation belong to the encoder/head.
    """

    task: str = ""
    source: str = ""

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, source={self.source!r}, len={len(self)})"


def collate_samples(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """DataLoader collate_fn: keep samples as a list (PIL images do not stack)."""
    return list(batch)


# -- registry -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    factory: Callable[..., TaskDataset]
    usage: str  # e.g. "coco-kpts:ANN_JSON:IMG_DIR"
    num_paths: int | None  # how many ':'-separated paths follow the name (None: any)
    task: str | None  # the task its samples are for; None: the spec's first field names it (synthetic:TASK)
    files: bool  # whether the fields after the name are paths (synthetic:TASK[:N] names no files)

    def task_of(self, paths: list[str]) -> str | None:
        return self.task if self.task is not None else (paths[0] if paths else None)


DATASETS: Registry[DatasetEntry] = Registry("dataset", error=DatasetError)


def register_dataset(
    name: str,
    *,
    usage: str | None = None,
    num_paths: int | None = None,
    task: str | None = None,
    files: bool = True,
) -> Callable[[Callable[..., TaskDataset]], Callable[..., TaskDataset]]:
    """Decorator registering `factory(paths: list[str], *, source, split, limit,
    **options) -> TaskDataset` under `name`."""

    def add(factory: Callable[..., TaskDataset]) -> Callable[..., TaskDataset]:
        DATASETS.register(name)(DatasetEntry(name, factory, usage or name, num_paths, task, files))
        return factory

    return add


def dataset_usage() -> str:
    """One line per registered source, for --help texts and errors."""
    return ", ".join(DATASETS.get(n).usage for n in DATASETS.names())


def parse_spec(spec: str) -> tuple[DatasetEntry, list[str]]:
    name, _, rest = spec.partition(":")
    if name not in DATASETS:
        raise DatasetError(f"--data {spec!r}: unknown dataset {name!r}; expected one of: {dataset_usage()}")
    entry = DATASETS.get(name)
    paths = rest.split(":") if rest else []
    if entry.num_paths is not None and len(paths) != entry.num_paths:
        raise DatasetError(
            f"--data {spec!r}: expected {entry.usage} ({entry.num_paths} path(s) after the name, got "
            f"{len(paths)}); "
            "paths containing ':' are not supported"
        )
    if any(p == "" for p in paths):
        raise DatasetError(f"--data {spec!r}: empty path in {entry.usage}")
    return entry, paths


def open_dataset(
    spec: str, *, split: str | None = None, limit: int | None = None, **options: Any
) -> TaskDataset:
    """Open `--data SPEC` as a TaskDataset.

    `split` selects a subset where the format has one (NYUv2: train/test, COCO
    captions: a Karpathy split); `limit` keeps the first N images (for pose:
    every person of those images, so evaluation stays exact). Other options go
    to the source (e.g. `crop_size=(256, 192)` for coco-kpts).
    """
    entry, paths = parse_spec(spec)
    if limit is not None and limit < 1:
        raise DatasetError(f"--data {spec!r}: limit must be >= 1, got {limit}")
    ds = entry.factory(paths, source=spec, split=split, limit=limit, **options)
    if len(ds) == 0:
        raise DatasetError(f"{spec}: no samples" + (f" in split {split!r}" if split else ""))
    return ds


# -- helpers shared by the sources ---------------------------------------------------------------


def existing_file(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: {what} not found" if not p.exists() else f"{p}: {what} is not a file")
    return p


def existing_dir(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise DatasetError(f"{p}: {what} not found" if not p.exists() else f"{p}: {what} is not a directory")
    return p


def read_json(path: Path, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not a JSON {what} ({e})") from e
    except OSError as e:
        raise DatasetError(f"{path}: cannot read {what} ({e})") from e


def require_keys(obj: Any, keys: tuple[str, ...], path: Path, what: str) -> None:
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: not a {what} (top level is {type(obj).__name__}, expected an object)")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise DatasetError(f"{path}: not a {what} (missing key(s) {', '.join(map(repr, missing))})")


def read_image(path: str | os.PathLike) -> Image.Image:
    """Open an image as RGB with EXIF orientation applied (probes.encoders' `load_image`, the one image
    reader); errors name the file."""
    if not Path(path).exists():
        raise DatasetError(f"{path}: image not found")
    try:
        return load_image(path)
    except ImageReadError as e:
        raise DatasetError(str(e)) from e


def split_with_name(
    split: str, default_file: Path, names: tuple[str, ...], default_name: str
) -> tuple[Path, str]:
    """Parse `split` = NAME | FILE | FILE#NAME into (split file, split name)."""
    if split in names:
        return default_file, split
    file, _, name = split.partition("#")
    name = name or default_name
    if name not in names:
        raise DatasetError(
            f"split {split!r}: unknown split name {name!r}; expected one of {', '.join(names)}"
        )
    return Path(file), name
