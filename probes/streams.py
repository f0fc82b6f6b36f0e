"""The streams of a split under one codec, computed once and read by every
neck and evaluation through that codec.

    dataset (as the task opens it) ─► frozen encoder ─► codec ─► .fcb streams  (STREAMS_DIR/000000.fcb, …)
                                                               + bits, byte split, complexity (decoded.json)

An encoder and a codec are deterministic, so the features a neck reads through a codec on a split are the same
for every neck, seed and evaluation: a study codes them once per (encoder, codec, split) (the sweep's
`streams` step) and `evaluate_neck(..., decoded=DIR)` / `train_neck(streams=DIR)` read them through
`DecodedFeatures`, which decodes the stored streams (never encoding again). Only the streams are kept, not
the decoded features: at 1024 px a stream is ~0.3 MB against ~30–45 MB of fp16 features
(docs/architecture.md, "Step kinds"). The numbers are those of `CodecRoundTrip`
(same streams, same decoder, same bits).

Remote inference (`image_codec=`, probes.anchors) writes the same record with its features kept
(decoded.safetensors, float32: there are no feature streams to decode; the bits are the pictures'), and the
record's `codec` is `RemoteInference.describe_codec()` — so evaluations read it exactly as they read a
codec's split.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from codec.errors import InputError
from codec.files import atomic_write_bytes, atomic_write_json, load_tensors, read_json_document, save_tensors
from probes.names import DECODED_SPLIT_FORMAT as FORMAT
from probes.names import DECODED_SPLIT_FORMAT_VERSION as FORMAT_VERSION

from .training.sources import FeatureSource, stored_rows

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack is 3.11+; the project supports 3.10

    from .training.objectives import EncodedSplit

STREAMS_DIR = "streams"
FEATURES = "decoded.safetensors"
RECORD = "decoded.json"


class DecodedSplitError(InputError):
    """A decoded-split directory that cannot be read; the message names the file."""


def write_decoded_split(
    out_dir: str | os.PathLike,
    *,
    codec: str | os.PathLike | None = None,
    coder: str | None = None,
    encoder_weights: dict | None = None,
    batch_size: int = 16,
    device: str = "cpu",
    progress: bool = False,
    image_codec: str | None = None,
    image_quality: float | None = None,
    keep_decoded: bool = False,
    **what: Unpack[EncodedSplit],
) -> dict:
    """Code every sample of the task's split once: write its `.fcb` streams and their bits (and, with
    `keep_decoded`, the decoded features, float32 as decoded, so readers skip decoding); or, with
    `image_codec` at `image_quality` instead of `codec`, the features of its remote-inference pictures."""
    if (codec is None) == (image_codec is None) or (image_codec is not None and image_quality is None):
        raise ValueError("give a feature codec, or an image codec with its quality (remote inference)")
    from torch.utils.data import DataLoader

    from codec.pipeline import round_trip
    from codec.progress import progress as progress_bar
    from probes.data import collate_samples

    from .training.objectives import open_encoded_split, split_record
    from .training.sources import CodecRoundTrip, load_codec_dir

    out_dir = Path(out_dir)
    _, dataset, clean = open_encoded_split(what, encoder_weights, device)
    if image_codec is not None:
        from .anchors import RemoteInference

        return _write_remote(
            out_dir,
            RemoteInference(clean, image_codec, image_quality),
            dataset,
            batch_size,
            progress,
            split_record(what),
        )
    loaded = load_codec_dir(codec, clean)
    source = CodecRoundTrip(clean, loaded, coder=coder)
    (out_dir / STREAMS_DIR).mkdir(parents=True, exist_ok=True)
    ids = []
    rows = {n: [] for n in source.levels} if keep_decoded else None
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_samples)
    for samples in progress_bar(loader, desc="streams", unit="batch", disable=not progress):
        with torch.no_grad():
            trip = round_trip(loaded, clean.features(samples), coder=source.coder)
        if rows is not None:
            for n in rows:
                rows[n].append(trip.features[n].to("cpu", torch.float32))
        for j, sample in enumerate(samples):
            atomic_write_bytes(out_dir / STREAMS_DIR / f"{len(ids):06d}.fcb", trip.streams[j])
            ids.append(str(sample["id"]))
        source.bits += trip.bits
        source.payload_bits += trip.payload_bits
        source.images += len(samples)
        for part, count in trip.stream_bytes.items():
            source.stream_bytes[part] += count
    from .anchors import coding_complexity

    complexity = coding_complexity(source, collate_samples([dataset[0]]))
    return _finish(
        out_dir,
        source,
        ids,
        rows,
        complexity,
        split_record(what),
        streams=True,
    )


def _write_remote(out_dir: Path, source, dataset, batch_size: int, progress: bool, data: dict) -> dict:
    """A remote-inference split: each picture coded once (probes.anchors.RemoteInference), features kept."""
    from torch.utils.data import DataLoader

    from codec.progress import progress as progress_bar
    from probes.data import collate_samples

    ids, rows = [], {n: [] for n in source.levels}
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_samples)
    for samples in progress_bar(loader, desc="remote", unit="batch", disable=not progress):
        with torch.no_grad():
            features = source.features(samples)
        ids += [str(sample["id"]) for sample in samples]
        for n in rows:
            rows[n].append(features[n].cpu())
    return _finish(out_dir, source, ids, rows, source.complexity(), data)


def _finish(
    out_dir: Path,
    source,
    ids: list[str],
    rows: dict | None,
    complexity: dict | None,
    data: dict,
    streams: bool = False,
) -> dict:
    """The record (written last: it names a complete split): `stored` names what a reader finds — "streams",
    "features" (remote inference: no feature streams) or "streams+features"
    (streams and their decoded features)."""
    if len(set(ids)) != len(ids):
        raise ValueError(f"{data['spec']}: sample ids repeat; a decoded split is matched by id")
    out_dir.mkdir(parents=True, exist_ok=True)
    if rows is not None:
        save_tensors(
            out_dir / FEATURES, {n: torch.cat(v).contiguous() for n, v in rows.items()}, {"format": FORMAT}
        )
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ids": ids,
        "encoder": source.describe(),
        "codec": source.describe_codec(),
        "complexity": complexity,
        "levels": {n: list(v) for n, v in source.inner.levels.items()},
        "data": data,
        "stored": "+".join(k for k, on in (("streams", streams), ("features", rows is not None)) if on),
    }
    atomic_write_json(out_dir / RECORD, record)
    return record


class DecodedFeatures(FeatureSource):
    """A split coded once by `write_decoded_split`, served by sample id with the bits of its streams: each
    batch decoded from its `.fcb` files by `codec` (default: the directory the record names), or, for a
    remote-inference split, read from its stored features."""

    def __init__(
        self,
        path: str | os.PathLike,
        levels: Sequence[str] | None = None,
        device: str | torch.device = "cpu",
        codec: str | os.PathLike | None = None,
    ):
        path = Path(path)
        self.path = path
        self.record = read_json_document(
            path / RECORD,
            format=FORMAT,
            format_version=FORMAT_VERSION,
            required=("ids", "encoder", "codec", "levels"),
            error=DecodedSplitError,
            missing_hint="run the sweep's streams step (write_decoded_split)",
        )
        levels = list(levels or self.record["codec"].get("levels") or self.record["levels"])
        missing = [n for n in levels if n not in self.record["levels"]]
        if missing:
            raise DecodedSplitError(
                f"{path / RECORD}: no level(s) {missing}; it holds {list(self.record['levels'])}"
            )
        self.device = torch.device(device)
        self.tensors = self.codec = None
        if "features" in self.record.get("stored", "features").split("+"):  # read, never decoded again
            self.tensors = load_tensors(path / FEATURES, error=DecodedSplitError, what="decoded features")
        else:
            from codec.codec_dir import load_codec

            # decoded on the reader's device (tests/codec/test_cross_device.py: the symbols are
            # bit-identical on any device, the reconstruction within float rounding of another device's)
            self.codec = load_codec(codec or self.record["codec"]["dir"], device=self.device)
            if self.codec.config.get("codec_id") != self.record["codec"].get("codec_id"):
                raise DecodedSplitError(
                    f"{path / RECORD}: coded by codec {self.record['codec'].get('codec_id')}, "
                    f"not by {codec} ({self.codec.config.get('codec_id')})"
                )
        self.levels = {n: tuple(self.record["levels"][n]) for n in levels}
        self.resolution = self.record["encoder"]["resolution"]
        self._rows = {i: k for k, i in enumerate(self.record["ids"])}
        self.served: set[str] = set()

    def features(self, samples: Sequence[dict]) -> dict[str, torch.Tensor]:
        rows = stored_rows(
            self._rows,
            samples,
            lambda i: DecodedSplitError(f"sample {i} is not in the decoded split (other data or split?)"),
        )
        self.served.update(str(s["id"]) for s in samples)
        if self.codec is None:
            index = torch.tensor(rows)
            return {n: self.tensors[n][index].to(self.device) for n in self.levels}
        from codec.pipeline import decode_streams

        streams = [(self.path / STREAMS_DIR / f"{row:06d}.fcb").read_bytes() for row in rows]
        decoded = decode_streams(self.codec, streams, device=self.device)  # as round_trip decodes them
        return {n: torch.stack([d.features[n] for d in decoded]).float().to(self.device) for n in self.levels}

    @property
    def bits_per_pixel(self) -> float | None:
        return self.record["codec"]["bpp"]

    def describe(self) -> dict:
        return self.record["encoder"]

    def describe_codec(self) -> dict:
        return self.record["codec"]

    def complexity(self) -> dict | None:
        return self.record.get("complexity")
