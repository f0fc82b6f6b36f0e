"""Images → frozen encoder → codec → `.fcb` streams (what `featcodec encode IMAGE...` does).

The encoder is the one the codec was trained for (its name and weights id are in the codec directory);
a different checkpoint is refused unless the caller says otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from codec.codec_dir import LoadedCodec
from codec.entropy import DEFAULT_CODER
from codec.errors import InputError
from codec.pipeline import encode_features

from .encoders import collect_images, create_encoder, load_image


def image_targets(images: Sequence, output: Path, *, force: bool) -> tuple[list[Path], list[Path]]:
    """The images to encode and the stream each one goes to.

    One image and an output ending in `.fcb`: that file. Otherwise `output` is a directory of STEM.fcb.
    """
    try:
        paths = collect_images(images)
    except FileNotFoundError as e:
        raise InputError(str(e)) from e
    if not paths:
        raise InputError(f"no images found in {', '.join(map(str, images))}")
    output = Path(output)
    if len(paths) == 1 and output.suffix == ".fcb" and not output.is_dir():
        targets = [output]
    else:
        if output.suffix == ".fcb" and not output.exists():
            raise InputError(f"{output}: {len(paths)} images need an output directory, not one .fcb file")
        if output.exists() and not output.is_dir():
            raise InputError(f"{output}: exists and is not a directory (image inputs write one .fcb each into -o DIR)")
        targets = [output / f"{p.stem}.fcb" for p in paths]
    if len(set(targets)) != len(targets):
        raise InputError("two inputs share a file name stem; their .fcb outputs would collide")
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise InputError(f"{existing[0]}: exists; pass --force to overwrite")
    return paths, targets


def encode_images(
    codec: LoadedCodec, paths: Sequence[Path], targets: Sequence[Path], *, checkpoint=None, random_init=False,
    ignore_weights_mismatch=False, coder: str | None = None, groups: int | None = None, threads: int | None = None,
    device: str = "cpu",
) -> Iterator[tuple[Path, bytes, dict]]:
    """Yield (target, stream, timings) per image; the caller writes the streams. groups=None: one channel
    group per 2^18 latent symbols (codec.entropy.auto_groups), coded on `threads` (default: the CPUs)."""
    try:
        encoder = create_encoder(codec.encoder, checkpoint=checkpoint, random_init=random_init,
                                 resolution=codec.config.get("resolution"), device=device)
    except (KeyError, ValueError, RuntimeError) as e:
        raise InputError(str(e).strip('"')) from e
    if encoder.weights_id != codec.config["weights_id"] and not ignore_weights_mismatch:
        raise InputError(
            f"encoder weights {encoder.weights_id} differ from the codec's ({codec.config['weights_id']}); "
            "pass --ignore-weights-mismatch to encode anyway"
        )
    for folder in {t.parent for t in targets}:
        folder.mkdir(parents=True, exist_ok=True)
    encoder_device = next(encoder.parameters()).device
    for path, target in zip(paths, targets, strict=True):
        timings: dict = {}
        start = time.perf_counter()
        image = load_image(path)  # ImageReadError (an InputError) names the file
        pixels = encoder.preprocess(image).unsqueeze(0).to(encoder_device)
        timings["read_s"] = time.perf_counter() - start
        start = time.perf_counter()
        with torch.inference_mode():
            features = {k: v.clone() for k, v in encoder(pixels).items()}
        timings["encoder_s"] = time.perf_counter() - start
        source = {"name": path.name, "width": image.size[0], "height": image.size[1]}
        (data,) = encode_features(codec, features, coder=coder or DEFAULT_CODER, groups=groups, threads=threads, sources=[source],
                                  timings=timings)
        yield target, data, timings
