"""The feature cache: sharded safetensors + `manifest.json`, read by memory map.

Layout of CACHE_DIR:
  manifest.json           what made the features (encoder, weights, resolution,
                          levels, dtype, images with sha256, versions) and which
                          shards are complete
  shard-00000.safetensors one tensor per level, N×C×H×W, rows in manifest order

Shards are written to a temp file and renamed, and the manifest is rewritten
atomically after each shard, so an interrupted extraction resumes where it
stopped and a reader never sees half a shard.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from safetensors import safe_open

from codec.errors import InputError
from codec.files import atomic_write_bytes, atomic_write_json, read_json_document  # noqa: F401  (re-exported)
from probes.names import CACHE_FORMAT, CACHE_FORMAT_VERSION

from .spec import FeatureLevel

MANIFEST = "manifest.json"
SHUFFLE_WINDOW = 8  # shards in codec training's shuffle buffer (read_order): 8 × 128 crops at full scale


class CacheError(InputError):
    """A cache directory that cannot be read; the message names the file."""


def read_manifest(cache_dir: str | os.PathLike) -> dict:
    return read_json_document(
        Path(cache_dir) / MANIFEST,
        format=CACHE_FORMAT,
        format_version=CACHE_FORMAT_VERSION,
        required=("encoder", "resolution", "levels", "shards", "images", "dtype"),
        error=CacheError,
        missing_hint=f"no manifest; is {cache_dir} a featcodec feature cache (featcodec extract -o)?",
    )


class FeatureCache:
    """Read-only view of a feature cache; item i is {level: C×H×W}, memory-mapped."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self.levels = [FeatureLevel(d["name"], d["channels"], d["stride"]) for d in self.manifest["levels"]]
        # (shard file, row) for every cached image, in manifest order
        self._rows: list[tuple[str, int]] = []
        self.image_paths: list[str] = []
        for shard in self.manifest["shards"]:
            if not shard.get("complete"):
                continue
            file = self.path / shard["file"]
            if not file.is_file():
                raise CacheError(f"{file}: shard listed as complete in the manifest is missing")
            for row, image_index in enumerate(shard["images"]):
                self._rows.append((shard["file"], row))
                self.image_paths.append(self.manifest["images"][image_index]["path"])
        self._handles: dict[str, object] = {}

    @property
    def encoder(self) -> str:
        return self.manifest["encoder"]

    @property
    def resolution(self) -> int:
        return int(self.manifest["resolution"])

    @property
    def weights_id(self) -> str:
        return self.manifest["weights"]["id"]

    @property
    def random_init(self) -> bool:
        return bool(self.manifest.get("random_init"))

    @property
    def read_order(self) -> dict | None:
        """How codec training should read a cache of crops (codec.batching.buffered_order): whole shards in
        random order, `window` at a time in a shuffle buffer — sequential reads of the shard files. A cache of
        whole maps keeps the item-wise order (the batches of the studies made before crops)."""
        if not self.manifest.get("crop") or not self._rows:
            return None
        rows = self.manifest["shard_size"] * self.manifest["crop"]["per_image"]
        return {"block": rows, "window": SHUFFLE_WINDOW}

    @property
    def level_names(self) -> list[str]:
        return [level.name for level in self.levels]

    def __len__(self) -> int:
        return len(self._rows)

    def _open(self, file: str):
        handle = self._handles.get(file)
        if handle is None:
            try:
                handle = safe_open(str(self.path / file), framework="pt", device="cpu")
            except Exception as e:  # noqa: BLE001 - safetensors raises several types
                raise CacheError(f"{self.path / file}: unreadable shard ({e})") from e
            self._handles[file] = handle
        return handle

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.get(index)

    def get(self, index: int, levels: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"feature cache {self.path}: index {index} out of range ({len(self)} items)")
        file, row = self._rows[index]
        handle = self._open(file)
        return {name: handle.get_slice(name)[row : row + 1][0] for name in (levels or self.level_names)}

    def iter_batches(
        self, batch_size: int, levels: Sequence[str] | None = None, shuffle: bool = False, seed: int = 0
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Batches of {level: B×C×H×W}; one pass over the cache."""
        order = (
            torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
            if shuffle
            else range(len(self))
        )
        order = [int(i) for i in order]
        for start in range(0, len(order), batch_size):
            items = [self.get(i, levels) for i in order[start : start + batch_size]]
            yield {name: torch.stack([item[name] for item in items]) for name in items[0]}

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.path)!r}, encoder={self.encoder!r}, items={len(self)})"
