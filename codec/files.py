"""Files a user keeps: atomic writes, hashes, JSON documents and artefact directories.

Shared by every layer that writes something a user keeps (codec, neck and head directories, feature
caches, streams, reports). A file is written to a temp file in its own directory and renamed over the
target, so a crash leaves either the old file or the new one, never half of one.

An artefact directory is `config.json` (a JSON document with "format" and "format_version", plus the
package versions that made it) beside `weights.safetensors`; the weights are written first, the config
last, so a config always names complete weights. This module imports no torch: the tensor helpers
import safetensors' torch API on first use.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
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


CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
_VERSIONED_PACKAGES = ("featcodec", "torch", "timm", "sam2", "compressai", "constriction", "transformers")


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages whose code shapes a result, for every artefact's record."""
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return versions


def save_tensors(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> str:
    """Write `{name: tensor}` as safetensors, atomically; returns the file's sha256.

    The same tensors and metadata always give the same bytes (a codec's id is its weights' sha256):
    safetensors writes a metadata map in hash order, which differs between processes, so several
    entries are stored as one sorted JSON string under the key "featcodec".
    """
    from safetensors.torch import save_file

    if metadata and len(metadata) > 1:
        metadata = {"featcodec": json.dumps(metadata, sort_keys=True, separators=(",", ":"))}
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    digests: list[str] = []

    def write(tmp: str) -> None:
        save_file(tensors, tmp, metadata=metadata)
        digests.append(sha256_file(tmp))

    atomic_write(path, write)
    return digests[0]


def load_tensors(path: str | os.PathLike, *, error: type[Exception], what: str = "weights") -> dict:
    """Read a safetensors file (never pickle); a missing or unreadable file raises `error` naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: missing {what}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise error(f"{path}: unreadable {what} ({e})") from None


def write_artifact(
    directory: str | os.PathLike,
    config: dict,
    tensors: dict | None = None,
    *,
    weights_metadata: dict[str, str] | None = None,
    versions: bool = True,
) -> dict:
    """Write an artefact directory: weights (if any) first, then config.json; returns the config written.

    `config` must carry "format"; the package versions are added under "versions" unless present.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = dict(config)
    if tensors is not None:
        config.setdefault("weights_sha256", save_tensors(directory / WEIGHTS, tensors, weights_metadata))
    if versions:
        config.setdefault("versions", package_versions())
    atomic_write_json(directory / CONFIG, config)
    return config
