"""Images → frozen encoder → codec → `.fcb` streams (what `featcodec encode IMAGE|DIR|GLOB...` does).

The encoder is the one the codec was trained for (its name and weights id are in the codec directory);
a different checkpoint is refused unless the caller says otherwise.

Two paths that write the same bytes:

    encode_images(codec, paths, targets, ...)      # the one-image loop: read, forward, code, one at a time
    encode_image_files(codec, paths, targets, ...) # whole directories: batched forward, coding on a thread
                                                   # pool pipelined with the next batch, a failing file named

The pipeline follows DCVC-RT's (Jia et al., CVPR 2025) "coder off the critical path": while the pool
entropy-codes batch k (the native coder releases the GIL), the caller's thread runs batch k+1's forward.
At most `batch_size + workers` coded images wait for the consumer, so memory stays bounded. Without a
pool (`workers=0`, a CPU's default: `default_schedule`, measured there) everything runs in the caller's
thread and a batch is coded by one compress call.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import torch

from codec.codec_dir import LoadedCodec
from codec.devices import default_workers, worker_pool
from codec.entropy import DEFAULT_CODER
from codec.errors import InputError
from codec.inputs import STREAM_SUFFIX, check_targets, find_files, output_targets
from codec.pipeline import encode_features
from codec.progress import progress

from .encoders import IMAGE_SUFFIXES, create_encoder, load_image

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack is 3.11+; the project supports 3.10

ENCODE_ERRORS = (
    InputError,
    ValueError,
    RuntimeError,
    OSError,
)  # what one image may fail with; others still run


def image_targets(images: Sequence, output: Path, *, force: bool) -> tuple[list[Path], list[Path]]:
    """The images to encode (files, directories searched recursively, quoted globs) and the stream each
    one goes to.

    One image and an output ending in `.fcb`: that file. Otherwise `output` is a directory that mirrors
    the inputs': `photos/a/1.jpg` given as `photos` → `OUT/a/1.fcb`; a file or glob match → `OUT/1.fcb`.
    """
    found = find_files(images, IMAGE_SUFFIXES)
    if not found:
        raise InputError(f"no images found in {', '.join(map(str, images))}")
    paths = [f.path for f in found]
    output = Path(output)
    if len(paths) == 1 and output.suffix == STREAM_SUFFIX and not output.is_dir():
        return paths, check_targets([output], force=force)
    if output.suffix == STREAM_SUFFIX and not output.exists():
        raise InputError(f"{output}: {len(paths)} images need an output directory, not one .fcb file")
    if output.exists() and not output.is_dir():
        raise InputError(
            f"{output}: exists and is not a directory (image inputs write one .fcb each into -o DIR)"
        )
    return paths, output_targets(found, output, STREAM_SUFFIX, force=force)


def frozen_encoder(
    codec: LoadedCodec,
    *,
    checkpoint=None,
    random_init=False,
    ignore_weights_mismatch=False,
    device: str = "cpu",
):
    """The encoder `codec` was trained for; a different weights id is refused
    unless the caller says otherwise."""
    try:
        encoder = create_encoder(
            codec.encoder,
            checkpoint=checkpoint,
            random_init=random_init,
            resolution=codec.config.get("resolution"),
            device=device,
        )
    except (KeyError, ValueError, RuntimeError) as e:
        raise InputError(str(e).strip('"')) from e
    if encoder.weights_id != codec.config["weights_id"] and not ignore_weights_mismatch:
        raise InputError(
            f"encoder weights {encoder.weights_id} differ from the codec's ({codec.config['weights_id']}); "
            "pass --ignore-weights-mismatch to encode anyway"
        )
    return encoder


def _read(encoder, path: Path) -> tuple[torch.Tensor, dict, float]:
    """3×R×R pixels, the stream's `source` record and the seconds it took; ImageReadError names the file."""
    start = time.perf_counter()
    image = load_image(path)
    pixels = encoder.preprocess(image)
    return (
        pixels,
        {"name": path.name, "width": image.size[0], "height": image.size[1]},
        time.perf_counter() - start,
    )


def _forward(encoder, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
    """{level: B×C×H×W} for B×3×R×R pixels, on the encoder's device, as ordinary (not inference) tensors."""
    with torch.inference_mode():
        return {k: v.clone() for k, v in encoder(pixels.to(next(encoder.parameters()).device)).items()}


class EncodeOptions(TypedDict, total=False):
    """What both encode paths take: the encoder (`frozen_encoder`'s keywords: checkpoint, random_init,
    ignore_weights_mismatch, device) and the coding (coder, default DEFAULT_CODER; groups; threads)."""

    checkpoint: str | Path | None
    random_init: bool
    ignore_weights_mismatch: bool
    device: str
    coder: str | None
    groups: int | None
    threads: int | None


def _start(codec: LoadedCodec, targets: Sequence[Path], options: EncodeOptions) -> tuple[object, dict]:
    """The frozen encoder and encode_features' coding keywords of one run; the targets' folders made."""
    load = dict(options)
    coding = {"coder": load.pop("coder", None) or DEFAULT_CODER}
    coding.update(groups=load.pop("groups", None), threads=load.pop("threads", None))
    encoder = frozen_encoder(codec, **load)
    for folder in {t.parent for t in targets}:
        folder.mkdir(parents=True, exist_ok=True)
    return encoder, coding


def encode_images(
    codec: LoadedCodec,
    paths: Sequence[Path],
    targets: Sequence[Path],
    **options: Unpack[EncodeOptions],
) -> Iterator[tuple[Path, bytes, dict]]:
    """Yield (target, stream, timings) per image, one image at a time; the caller writes the streams.
    groups=None: one channel group per 2^18 latent symbols (codec.entropy.auto_groups), coded on `threads`."""
    encoder, coding = _start(codec, targets, options)
    for path, target in zip(paths, targets, strict=True):
        pixels, source, read_s = _read(encoder, path)
        timings: dict = {"read_s": read_s}
        start = time.perf_counter()
        features = _forward(encoder, pixels.unsqueeze(0))
        timings["encoder_s"] = time.perf_counter() - start
        (data,) = encode_features(codec, features, **coding, sources=[source], timings=timings)
        yield target, data, timings


@dataclass
class EncodedImage:
    """One image's outcome in encode_image_files: its stream, or the error that names the file."""

    path: Path
    target: Path
    data: bytes | None
    timings: dict = field(default_factory=dict)
    error: str | None = None


def _code(codec, path, target, features, source, timings, coding: dict) -> EncodedImage:
    try:
        (data,) = encode_features(codec, features, **coding, sources=[source], timings=timings)
    except ENCODE_ERRORS as e:
        return EncodedImage(path, target, None, timings, f"{path}: {e}")
    return EncodedImage(path, target, data, timings)


def _code_batch(codec, group: list, features: dict, coding: dict) -> list[EncodedImage]:
    """The group's streams from one compress of the whole batch, for the schedule without a pool (nothing
    codes in parallel there, so one call's fixed work is shared by the batch: mini-sam2 at 128 px, 1.2× →
    1.7× the one-image loop). The bytes are a one-image encode's as long as the codec's convolutions give
    each item the same floats at any batch size, as the batched encoder forward must too; tests assert it
    (tests/codec/test_encode_files.py). A failing batch is coded item by item, naming the failing file."""
    timings: dict = {}
    try:
        streams = encode_features(codec, features, **coding, sources=[g[4] for g in group], timings=timings)
    except ENCODE_ERRORS:
        return [
            _code(
                codec, path, target, {k: v[b : b + 1].clone() for k, v in features.items()}, source, t, coding
            )
            for b, (_, path, target, _, source, t) in enumerate(group)
        ]
    share = timings["codec_s"] / len(group)
    return [
        EncodedImage(path, target, data, {**t, "codec_s": share})
        for (_, path, target, _, source, t), data in zip(group, streams, strict=True)
    ]


def _done(result: EncodedImage) -> Future:
    future: Future = Future()
    future.set_result(result)
    return future


SMALL_INPUT = 256  # px: on a CPU, inputs up to this size go through the encoder 4 at a time


def default_schedule(device: torch.device, resolution: int | None = None) -> tuple[int, int]:
    """(batch_size, workers) when the caller gives none. On an accelerator: batches of 4 and a pool of the
    CPUs that reads and codes beside the forward. On a CPU: no pool (torch's threads already run on every core
    and slow down beside one: codec.devices.default_workers), and batches of 4 only for inputs up to
    SMALL_INPUT px, one image per forward above (a batch enlarges a large encoder's working set). Measured on
    2 cores (bench/RESULTS.md, "Whole directories"), a batch of 4 without a pool against the one-image loop:
    mini-sam2 128 px 1.71×, SAM2.1-tiny 256 px 1.13×, SAM2.1-tiny 512 px 0.90×; a pool cost 3–54 %."""
    if device.type != "cpu":
        return 4, default_workers(device)
    return (4 if resolution is not None and resolution <= SMALL_INPUT else 1), 0


def encode_image_files(
    codec: LoadedCodec,
    paths: Sequence[Path],
    targets: Sequence[Path],
    *,
    batch_size: int | None = None,
    workers: int | None = None,
    show_progress: bool = True,
    **options: Unpack[EncodeOptions],
) -> Iterator[EncodedImage]:
    """Yield an EncodedImage per path, in order: the same bytes encode_images writes, at more images/s.

    Images are read on `workers` threads (0: in the caller's thread) one batch ahead, run through the
    encoder `batch_size` at a time, and entropy-coded one stream per image on the same pool while the next
    batch's forward runs (batch_size or workers None: `default_schedule` of the encoder's device and input
    size). A file that fails (unreadable, wrong size for the codec) is yielded with its `error` and the
    others go on. A progress bar on stderr shows images/s.
    """
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    encoder, coding = _start(codec, targets, options)
    auto_batch, auto_workers = default_schedule(next(encoder.parameters()).device, encoder.resolution)
    batch_size = auto_batch if batch_size is None else batch_size
    workers = auto_workers if workers is None else max(0, int(workers))
    jobs = list(zip(paths, targets, strict=True))
    pending: deque[Future] = deque()
    with (
        worker_pool(workers, "featcodec-encode") as pool,
        progress(total=len(jobs), unit="img", desc="encode", disable=not show_progress) as bar,
    ):
        batches = [jobs[first : first + batch_size] for first in range(0, len(jobs), batch_size)]
        next_reads = [pool.submit(_read, encoder, path) for path, _ in batches[0]] if batches else []
        for number, batch in enumerate(batches):
            reads = next_reads
            if number + 1 < len(batches):  # the next batch is read while this one runs through the encoder
                next_reads = [pool.submit(_read, encoder, path) for path, _ in batches[number + 1]]
            slots: list[Future | None] = [None] * len(batch)  # the batch's results in input order
            ready = []  # (slot, path, target, pixels, source, timings)
            for slot, ((path, target), read) in enumerate(zip(batch, reads, strict=True)):
                try:
                    pixels, source, read_s = read.result()
                except ENCODE_ERRORS as e:
                    slots[slot] = _done(EncodedImage(path, target, None, {}, str(e)))
                    continue
                ready.append((slot, path, target, pixels, source, {"read_s": read_s}))
            for shape in dict.fromkeys(item[3].shape for item in ready):  # one forward per pixel shape
                group = [item for item in ready if item[3].shape == shape]
                start = time.perf_counter()
                try:
                    features = _forward(encoder, torch.stack([item[3] for item in group]))
                except ENCODE_ERRORS as e:
                    for slot, path, target, *_ in group:
                        slots[slot] = _done(
                            EncodedImage(path, target, None, {}, f"{path}: encoder failed ({e})")
                        )
                    continue
                per_image = (time.perf_counter() - start) / len(group)
                for *_, timings in group:
                    timings["encoder_s"] = per_image
                if not workers and len(group) > 1:  # no pool to code images in parallel: one compress
                    for item, result in zip(group, _code_batch(codec, group, features, coding), strict=True):
                        slots[item[0]] = _done(result)
                else:
                    for b, (slot, path, target, _, source, timings) in enumerate(group):
                        # a clone per image: the stream must not depend on the batch it was computed in
                        item = {k: v[b : b + 1].clone() for k, v in features.items()}
                        slots[slot] = pool.submit(_code, codec, path, target, item, source, timings, coding)
                del features
            pending.extend(slots)
            while len(pending) > workers + batch_size or (pending and pending[0].done()):
                result = pending.popleft().result()
                bar.update(1)
                yield result
        while pending:
            result = pending.popleft().result()
            bar.update(1)
            yield result
