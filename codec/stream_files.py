"""Many `.fcb` files at once (what `featcodec decode STREAM|DIR|GLOB...` does): streams decoded on a
thread pool, in input order, a malformed one named without stopping the others.

    paths, targets = decode_targets(["streams/"], Path("features/"), force=False)
    for result in decode_stream_files(codec, paths):  # .decoded, or .error naming the file
        ...

At most 2 × workers decoded streams wait for the consumer, so memory stays bounded.
"""

from __future__ import annotations

import glob
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from .bitstream import BitstreamError
from .codec_dir import LoadedCodec
from .entropy.native import default_threads
from .errors import InputError
from .pipeline import Decoded, decode_stream
from .progress import progress

GLOB_CHARS = frozenset("*?[")
STREAM_SUFFIX = ".fcb"


def expand_patterns(items: Sequence) -> list[str]:
    """Each item as given, or, when no such path exists and it holds *, ? or [, the paths its glob matches
    (sorted; `**` recurses). Patterns are quoted past the shell so that directories of any size work."""
    out: list[str] = []
    for item in items:
        text = str(item)
        if not Path(text).exists() and GLOB_CHARS & set(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise InputError(f"{text}: no file matches this pattern")
            out.extend(matches)
        else:
            out.append(text)
    return out


def stream_paths(items: Sequence) -> list[Path]:
    """Files, directories (their *.fcb, recursively, sorted) and glob patterns → stream paths."""
    found: list[Path] = []
    for text in expand_patterns(items):
        p = Path(text)
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob(f"*{STREAM_SUFFIX}") if q.is_file()))
        elif p.exists():
            found.append(p)
        else:
            raise InputError(f"{p}: no such file or directory")
    return found


def decode_targets(streams: Sequence, output: Path, *, force: bool) -> tuple[list[Path], list[Path]]:
    """The streams to decode and the features file each goes to: one stream and an output that is not a
    directory → that file; otherwise `output` is a directory of STEM.safetensors."""
    paths = stream_paths(streams)
    if not paths:
        raise InputError(f"no .fcb streams found in {', '.join(map(str, streams))}")
    output = Path(output)
    if len(paths) == 1 and output.suffix and not output.is_dir():
        targets = [output]
    else:
        if output.exists() and not output.is_dir():
            raise InputError(
                f"{output}: exists and is not a directory ({len(paths)} streams write one file each)"
            )
        targets = [output / f"{p.stem}.safetensors" for p in paths]
    return paths, check_targets(targets, force=force)


def check_targets(targets: list[Path], *, force: bool) -> list[Path]:
    """One output per input, none of them already there (unless `force`): else InputError."""
    if len(set(targets)) != len(targets):
        raise InputError("two inputs share a file name stem; their outputs would collide")
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise InputError(f"{existing[0]}: exists; pass --force to overwrite")
    return targets


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
    """A DecodedFile per path, in order; streams decode on `workers` threads (default: the CPUs), the
    native coder with the GIL released."""
    workers = default_threads() if workers is None else max(1, int(workers))
    pending: deque[Future] = deque()
    with (
        ThreadPoolExecutor(workers, thread_name_prefix="featcodec-decode") as pool,
        progress(total=len(paths), unit="stream", desc="decode", disable=not show_progress) as bar,
    ):
        for path in paths:
            pending.append(pool.submit(_decode_file, codec, Path(path), threads, device, max_pixels))
            while len(pending) > 2 * workers or (pending and pending[0].done()):
                bar.update(1)
                yield pending.popleft().result()
        while pending:
            bar.update(1)
            yield pending.popleft().result()
