"""Neck inputs computed once: a task split's frozen-encoder features at the
resolution the neck consumes, fp16.

    dataset (as the task opens it) ─► frozen encoder ─► each level area-averaged onto the neck's working grid
        (Neck.forward's first operation, resample_map; a level smaller than the grid is kept: the neck grows
        it) ─► fp16 ─► shard-00000.safetensors, shard-00001.safetensors, …  (SHARD_SIZE samples each, atomic)
                   + inputs.json (encoder, level shapes, grid, sample ids per complete shard)

A frozen encoder gives a sample the same features for every neck (any depth, KD weight or seed) and every
clean evaluation, so a study computes them once per (encoder, split, working grid) — the sweep's `features`
step — and
`train_neck(neck_inputs=DIR)` / `evaluate_neck(neck_inputs=DIR)` read them through `NeckInputs` instead of
running the encoder. Reads are memory-mapped row by row (safetensors slices): a split larger than memory
streams from disk. The area averaging is the neck's own, done before instead of after: the numbers differ
from running the encoder in the neck's loop only by the fp16 rounding of the stored values (relative error ≤
2⁻¹¹). An interrupted step resumes after its last complete shard.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from codec.errors import InputError
from codec.files import atomic_write_json, read_json_document, save_tensors

from .names import NECK_INPUTS_FORMAT as FORMAT
from .names import NECK_INPUTS_FORMAT_VERSION as FORMAT_VERSION
from .training.sources import FeatureSource, stored_rows

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack is 3.11+; the project supports 3.10

    from .training.objectives import EncodedSplit

RECORD = "inputs.json"
SHARD_SIZE = 64
STORED_DTYPE = torch.float16


class NeckInputsError(InputError):
    """A neck-inputs directory that cannot be read or does not fit the neck; the message names it."""


def write_neck_inputs(
    out_dir: str | os.PathLike,
    *,
    encoder_weights: dict | None = None,
    grid: Sequence[int] | None = None,
    neck_head: str | None = None,
    batch_size: int = 16,
    shard_size: int = SHARD_SIZE,
    device: str = "cpu",
    progress: bool = False,
    **what: Unpack[EncodedSplit],
) -> dict:
    """Run the encoder once over the task's split (opened as for `head`) and store what a neck for `neck_head`
    (default `head`; a cross-neck's first neck reads another task's data) reads, resumable by shard.
    `grid`, when given (the plan's), must be that neck's working grid: a mismatch is an error."""
    from torch.utils.data import DataLoader, Subset

    from codec.progress import progress as progress_bar
    from probes.data import collate_samples
    from probes.necks import anchor_grid, consumed_shape, resample_map

    from .training.objectives import open_encoded_split, split_record

    out_dir = Path(out_dir)
    head = what["head"]
    head_model, dataset, source = open_encoded_split(what, encoder_weights, device)
    if neck_head and neck_head != head:
        from probes.heads import load_head

        head_model = load_head(neck_head, device=device)
    # what is stored depends on (data, encoder, grid) only, so a planned grid is taken as given (a split
    # shared by necks of several heads on that grid, a cross-neck's first head included); it must be one of
    # the encoder's level grids, and a neck reading the inputs checks that it works on the same grid
    grids = {tuple(shape[1:]) for shape in source.levels.values()}
    if grid is not None and tuple(grid) not in grids:
        raise NeckInputsError(
            f"{out_dir}: planned for a {tuple(grid)} grid, but {what['encoder']}'s levels are {sorted(grids)}"
        )
    tokens = math.prod(head_model.expects().grid)
    working = tuple(grid) if grid is not None else anchor_grid(source.levels, tokens)
    stored = {n: consumed_shape(s, working) for n, s in source.levels.items()}
    plan = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "encoder": source.describe(),
        "levels": {n: list(s) for n, s in source.levels.items()},
        "stored": {n: list(s) for n, s in stored.items()},
        "grid": list(working),
        "dtype": "float16",
        "shard_size": shard_size,
        "samples": len(dataset),
        "data": {**split_record(what), "head": head},
        "neck_head": neck_head or head,
    }
    record = _resume_or_start(out_dir, plan)
    done = len(record["shards"])
    bar = progress_bar(
        total=len(dataset),
        initial=min(len(dataset), done * shard_size),
        desc="neck inputs",
        unit="sample",
        disable=not progress,
    )
    for k, start in enumerate(range(0, len(dataset), shard_size)):
        if k < done:
            continue
        part = Subset(dataset, range(start, min(start + shard_size, len(dataset))))
        ids, rows = [], {n: [] for n in stored}
        for samples in DataLoader(part, batch_size=batch_size, collate_fn=collate_samples):
            with torch.no_grad():
                maps = source.features(samples)
            for n, shape in stored.items():
                rows[n].append(resample_map(maps[n], tuple(shape[1:])).to("cpu", STORED_DTYPE))
            ids += [str(s["id"]) for s in samples]
            bar.update(len(samples))
        tensors = {n: torch.cat(v).contiguous() for n, v in rows.items()}
        overflow = [n for n, t in tensors.items() if not torch.isfinite(t).all()]
        if overflow:
            raise NeckInputsError(f"{out_dir}: level(s) {overflow} overflow float16 (|x| > 65504)")
        file = f"shard-{k:05d}.safetensors"
        save_tensors(out_dir / file, tensors, {"format": FORMAT})
        record["shards"].append({"file": file, "ids": ids})
        atomic_write_json(out_dir / RECORD, record)  # after the shard: a listed shard is complete
    bar.close()
    ids = [i for shard in record["shards"] for i in shard["ids"]]
    if len(set(ids)) != len(ids):
        raise NeckInputsError(f"{what['data']}: sample ids repeat; neck inputs are matched by id")
    record["complete"] = True
    atomic_write_json(out_dir / RECORD, record)
    return record


def _resume_or_start(out_dir: Path, plan: dict) -> dict:
    """The record of an interrupted run with the same plan (its complete shards kept), or a new one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / RECORD).is_file():
        old = _read_record(out_dir)
        changed = [k for k, v in plan.items() if old.get(k) != v]
        if changed:
            raise NeckInputsError(
                f"{out_dir / RECORD}: made with other settings ({', '.join(changed)}); "
                "remove the directory to start over"
            )
        old["shards"] = [s for s in old["shards"] if (out_dir / s["file"]).is_file()]
        return old
    record = {**plan, "shards": [], "complete": False}
    atomic_write_json(out_dir / RECORD, record)
    return record


def _read_record(path: Path) -> dict:
    return read_json_document(
        path / RECORD,
        format=FORMAT,
        format_version=FORMAT_VERSION,
        required=("encoder", "levels", "stored", "grid", "shards"),
        error=NeckInputsError,
        missing_hint="run the sweep's features step (write_neck_inputs)",
    )


class NeckInputs(FeatureSource):
    """Stored neck inputs served by sample id. `levels` are the encoder's own shapes (what a neck is built
    for); the tensors served are the stored ones, already on the neck's working grid `grid`."""

    def __init__(
        self, path: str | os.PathLike, levels: Sequence[str] | None = None, device: str | torch.device = "cpu"
    ):
        self.path = Path(path)
        self.record = _read_record(self.path)
        if not self.record.get("complete"):
            raise NeckInputsError(f"{self.path / RECORD}: incomplete (the features step did not finish)")
        levels = list(levels or self.record["levels"])
        missing = [n for n in levels if n not in self.record["levels"]]
        if missing:
            raise NeckInputsError(
                f"{self.path / RECORD}: no level(s) {missing}; it holds {list(self.record['levels'])}"
            )
        self.levels = {n: tuple(self.record["levels"][n]) for n in levels}
        self.resolution = self.record["encoder"]["resolution"]
        self.grid = tuple(self.record["grid"])
        self.device = torch.device(device)
        self._rows = {
            i: (k, row) for k, shard in enumerate(self.record["shards"]) for row, i in enumerate(shard["ids"])
        }
        self._handles: dict[int, object] = {}

    def _shard(self, k: int):
        from safetensors import safe_open

        if k not in self._handles:
            file = self.path / self.record["shards"][k]["file"]
            try:
                self._handles[k] = safe_open(str(file), framework="pt", device="cpu")
            except Exception as e:  # noqa: BLE001 - safetensors raises several types
                raise NeckInputsError(f"{file}: unreadable shard ({e})") from None
        return self._handles[k]

    def features(self, samples: Sequence[dict]) -> dict[str, torch.Tensor]:
        def missing(i: str) -> NeckInputsError:
            return NeckInputsError(
                f"{self.path}: sample {i} is not in these neck inputs (other data or split?)"
            )

        where = stored_rows(self._rows, samples, missing)
        out = {}
        for n in self.levels:  # memory-mapped rows: only the batch is read
            out[n] = torch.cat([self._shard(k).get_slice(n)[row : row + 1] for k, row in where])
        return {n: t.float().to(self.device) for n, t in out.items()}

    def describe(self) -> dict:
        return self.record["encoder"]

    def check_neck(self, neck) -> None:
        """The neck (the first of a cross-neck) must work on the grid these inputs were averaged onto."""
        first = getattr(neck, "first", neck)
        if tuple(first.grid) != self.grid:
            raise NeckInputsError(
                f"{self.path}: stored on a {self.grid} grid, but the neck works on {tuple(first.grid)}"
            )
