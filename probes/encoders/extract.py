"""Feature extraction into the cache: streamed in batches, sharded, resumable.

Peak memory is bounded by one shard of features (plus one batch of images),
whatever the number of images.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from codec.files import atomic_write_json, package_versions, save_tensors
from codec.progress import progress as progress_bar
from probes.names import CACHE_FORMAT, CACHE_FORMAT_VERSION

from .base import RANDOM_INIT, FrozenEncoder
from .cache import MANIFEST, CacheError, FeatureCache
from .preprocess import ImageReadError, load_image

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _plan(
    encoder: FrozenEncoder, images: Sequence[Path], dtype: str, shard_size: int, crop: dict | None
) -> dict:
    """The part of the manifest that must match for a run to resume into a directory."""
    return {
        **({"crop": crop} if crop else {}),
        "format": CACHE_FORMAT,
        "format_version": CACHE_FORMAT_VERSION,
        "encoder": encoder.spec.name,
        "encoder_spec": encoder.spec.to_dict(),
        "weights": {"id": encoder.weights_id},
        "random_init": encoder.weights_id == RANDOM_INIT,
        "resolution": encoder.resolution,
        "dtype": dtype,
        "shard_size": shard_size,
        "levels": [
            {**level.to_dict(), "shape": list(level.shape(encoder.resolution))}
            for level in encoder.spec.levels
        ],
    }


def extract_features(
    encoder: FrozenEncoder,
    images: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    batch_size: int = 8,
    shard_size: int = 64,
    dtype: str = "float32",
    strict: bool = False,
    progress: bool = True,
    force: bool = False,
    crop: int | None = None,
    crops_per_image: int = 1,
    crop_seed: int = 0,
) -> FeatureCache:
    """Run `encoder` over `images` and write (or resume) a feature cache in `out_dir`.

    Unreadable inputs are reported by name and skipped (recorded in the
    manifest), or abort the run with `strict=True`. With `crop` (input pixels), each image keeps
    `crops_per_image` windows of its feature maps instead of the whole maps (`crop_windows`): codec
    training data, one cache row per window, a fraction (crop / resolution)² of the bytes.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} not supported; choose from {sorted(DTYPES)}")
    if batch_size < 1 or shard_size < 1:
        raise ValueError("batch_size and shard_size must be >= 1")
    images = [Path(p) for p in images]
    if not images:
        raise ValueError("no input images")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    windows = None
    if crop is not None:
        windows = {"size": crop, "per_image": crops_per_image, "seed": crop_seed}
        crop_windows(encoder, windows, 0)  # checks the size before any work
    plan = _plan(encoder, images, dtype, shard_size, windows)
    image_list = [str(p) for p in images]
    manifest_path = out_dir / MANIFEST
    manifest = _resume_or_start(manifest_path, plan, image_list, force)

    device = next(encoder.parameters()).device
    torch_dtype = DTYPES[dtype]
    n_shards = len(manifest["shards"])
    todo = [s for s in manifest["shards"] if not (s["complete"] and (out_dir / s["file"]).is_file())]
    if len(todo) < n_shards:
        log.info("resuming: %d of %d shards already complete", n_shards - len(todo), n_shards)
    bar = progress_bar(
        total=len(images), desc=f"extract {encoder.spec.name}", unit="img", disable=not progress
    )
    bar.update(sum(len(s["planned"]) for s in manifest["shards"]) - sum(len(s["planned"]) for s in todo))
    for shard in todo:
        rows: dict[str, list[torch.Tensor]] = {level.name: [] for level in encoder.spec.levels}
        kept: list[int] = []
        for start in range(0, len(shard["planned"]), batch_size):
            batch_idx = shard["planned"][start : start + batch_size]
            pixels, ok = [], []
            for i in batch_idx:
                entry = manifest["images"][i]
                try:
                    data = Path(entry["path"]).read_bytes()
                    image = load_image(entry["path"])
                except (ImageReadError, OSError) as e:
                    if strict:
                        raise ImageReadError(f"{entry['path']}: {e} (--strict)") from e
                    log.warning("skipping %s: %s", entry["path"], e)
                    entry["skipped"] = str(e)
                    continue
                entry["sha256"] = _sha256_bytes(data)
                entry["size"] = list(image.size)  # width, height of the source image
                pixels.append(encoder.preprocess(image))
                ok.append(i)
            if pixels:
                features = encoder(torch.stack(pixels).to(device))
                if windows is None:
                    for name, tensor in features.items():
                        rows[name].append(tensor.to("cpu", torch_dtype).contiguous())
                    kept.extend(ok)
                for b, i in enumerate(ok if windows is not None else ()):
                    for window in crop_windows(encoder, windows, i):
                        for name, tensor in features.items():
                            ys, xs = window[name]
                            rows[name].append(
                                tensor[b : b + 1, :, ys, xs].to("cpu", torch_dtype).contiguous()
                            )
                        kept.append(i)  # one row per window: the image index repeats
            bar.update(len(batch_idx))
        if kept:
            tensors = {name: torch.cat(chunks).contiguous() for name, chunks in rows.items()}
            save_tensors(out_dir / shard["file"], tensors, {"images": ",".join(map(str, kept))})
        shard["images"] = kept
        shard["complete"] = True
        atomic_write_json(manifest_path, manifest)
    bar.close()
    manifest["skipped"] = [
        {"path": e["path"], "reason": e["skipped"]} for e in manifest["images"] if "skipped" in e
    ]
    manifest["complete"] = True
    atomic_write_json(manifest_path, manifest)
    return FeatureCache(out_dir)


def crop_windows(
    encoder: FrozenEncoder, crop: dict, image_index: int
) -> list[dict[str, tuple[slice, slice]]]:
    """The feature windows image `image_index` keeps: `crop["per_image"]` squares of `crop["size"]` input
    pixels at random positions on the coarsest level's grid (so every level cuts at whole cells), drawn from
    (seed, image index) alone — the same windows whether an extraction starts or resumes."""
    size, resolution = crop["size"], encoder.resolution
    coarsest = max(level.stride for level in encoder.spec.levels)
    if not 0 < size <= resolution or size % coarsest:
        raise ValueError(
            f"crop {size} px: must be a multiple of {encoder.spec.name}'s coarsest stride {coarsest} "
            f"and at most its resolution {resolution}"
        )
    positions = (resolution - size) // coarsest + 1
    generator = torch.Generator().manual_seed(crop["seed"] * 1_000_003 + image_index)
    out = []
    for _ in range(crop["per_image"]):
        y, x = (int(v) * coarsest for v in torch.randint(positions, (2,), generator=generator))
        out.append(
            {
                level.name: (
                    slice(y // level.stride, (y + size) // level.stride),
                    slice(x // level.stride, (x + size) // level.stride),
                )
                for level in encoder.spec.levels
            }
        )
    return out


def _resume_or_start(manifest_path: Path, plan: dict, image_list: list[str], force: bool) -> dict:
    if manifest_path.is_file() and not force:
        try:
            old = FeatureCache(manifest_path.parent).manifest
        except CacheError:
            old = None
        if old is not None:
            same_plan = (
                all(old.get(k) == v for k, v in plan.items())
                and [e["path"] for e in old["images"]] == image_list
            )
            if not same_plan:
                diff = [k for k, v in plan.items() if old.get(k) != v]
                if [e["path"] for e in old["images"]] != image_list:
                    diff.append("images")
                raise CacheError(
                    f"{manifest_path}: this directory holds a cache made with different settings "
                    f"({', '.join(diff)}); choose another -o or pass --force to start over"
                )
            return old
        raise CacheError(f"{manifest_path}: unreadable manifest; pass --force to start over")
    if force:
        for stale in manifest_path.parent.glob("shard-*.safetensors"):
            stale.unlink()
    shard_size = plan["shard_size"]
    shards = [
        {
            "file": f"shard-{k:05d}.safetensors",
            "planned": list(range(start, min(start + shard_size, len(image_list)))),
            "images": [],
            "complete": False,
        }
        for k, start in enumerate(range(0, len(image_list), shard_size))
    ]
    manifest = {
        **plan,
        "images": [{"path": p} for p in image_list],
        "shards": shards,
        "complete": False,
        "versions": package_versions(),
    }
    atomic_write_json(manifest_path, manifest)
    return manifest
