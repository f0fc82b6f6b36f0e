"""Many `.fcb` files at once (what `featcodec decode STREAM|DIR|GLOB...` does): streams decoded on a
thread pool, in input order, a malformed one named without stopping the others.

    paths, targets = decode_targets(["streams/"], Path("features/"), force=False)
    for result in decode_stream_files(codec, paths):  # .decoded, or .error naming the file
        ...

At most 2 × workers decoded streams wait for the consumer, so memory stays bounded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import torch

from .bitstream import BitstreamError
from .codec_dir import LoadedCodec
from .devices import default_workers, worker_pool
from .errors import InputError
from .inputs import STREAM_SUFFIX, check_targets, find_files, output_targets
from .pipeline import Decoded, decode_stream
from .progress import progress


def decode_targets(streams: Sequence, output: Path, *, force: bool) -> tuple[list[Path], list[Path]]:
    """The streams to decode and the features file each goes to: one stream and an output that is not a
    directory → that file; otherwise `output` is a directory that mirrors the inputs' (`output_targets`),
    one STEM.safetensors per stream."""
    found = find_files(streams, (STREAM_SUFFIX,))
    if not found:
        raise InputError(f"no .fcb streams found in {', '.join(map(str, streams))}")
    paths = [f.path for f in found]
    output = Path(output)
    if len(paths) == 1 and output.suffix and not output.is_dir():
        return paths, check_targets([output], force=force)
    if output.exists() and not output.is_dir():
        raise InputError(
            f"{output}: exists and is not a directory ({len(paths)} streams write one file each)"
        )
    return paths, output_targets(found, output, ".safetensors", force=force)


@dataclass
class DecodedFile:
    path: Path
    decoded: Decoded | None
    error: str | None = None


def _decode_file(codec, path: Path, threads, device, max_pixels) -> DecodedFile:
    try:
        data = path.read_bytes()
        return DecodedFile(
            path, decode_stream(codec, data, threads=threads, device=device, max_pixels=max_pixels)
        )
    except OSError as e:
        return DecodedFile(path, None, f"{path}: cannot read ({e.strerror})")
    except (
        BitstreamError,
        InputError,
        ValueError,
    ) as e:  # BitstreamError is an InputError; ValueError: shapes
        return DecodedFile(path, None, f"{path}: {e}")


def decode_stream_files(
    codec: LoadedCodec,
    paths: Sequence[Path],
    *,
    threads: int | None = None,
    workers: int | None = None,
    device: str | torch.device = "cpu",
    max_pixels: int | None = None,
    show_progress: bool = True,
) -> Iterator[DecodedFile]:
    """A DecodedFile per path, in order; streams decode on `workers` threads (default:
    codec.devices.default_workers of the codec's device: the CPUs for a GPU, 0 = in the caller's thread for
    a CPU), the native coder with the GIL released."""
    if workers is None:
        workers = default_workers(next(iter(codec.model.buffers())).device)
    workers = max(0, int(workers))
    pending: deque[Future] = deque()
    with (
        worker_pool(workers, "featcodec-decode") as pool,
        progress(total=len(paths), unit="stream", desc="decode", disable=not show_progress) as bar,
    ):
        for path in paths:
            pending.append(pool.submit(_decode_file, codec, Path(path), threads, device, max_pixels))
            while len(pending) > 2 * max(workers, 1) or (pending and pending[0].done()):
                bar.update(1)
                yield pending.popleft().result()
        while pending:
            bar.update(1)
            yield pending.popleft().result()
