"""Atomic writes and file hashes, shared by every layer that writes what a user keeps.

A file is written to a temp file in its own directory and renamed over the target, so a crash leaves
either the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)` and rename the result onto `path`; the temp file never outlives a failure."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def atomic_write_json(path: str | os.PathLike, obj: object) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def read_json_document(
    path: str | os.PathLike,
    *,
    format: str,
    format_version: int,
    required: tuple[str, ...],
    error: type[Exception],
    missing_hint: str,
) -> dict:
    """Read a featcodec JSON document (manifest, codec or neck config), checking format, version and fields.

    Every failure raises `error` with a message that starts with the file's path.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {missing_hint}")
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid JSON ({e})") from None
    found = document.get("format") if isinstance(document, dict) else None
    if found != format:
        raise error(f"{path}: field 'format' is {found!r}, expected {format!r}")
    if document.get("format_version") != format_version:
        raise error(f"{path}: unsupported format_version {document.get('format_version')!r}")
    for key in required:
        if key not in document:
            raise error(f"{path}: missing field {key!r}")
    return document
