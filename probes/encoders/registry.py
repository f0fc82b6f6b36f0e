"""One place that knows every encoder: `ENCODERS`, `@register_encoder(spec)`, `get_spec`, `create_encoder`.

Modelled on timm's registry: a family module decorates a builder with the encoder's spec; users find an
encoder by name. The family modules are imported on the first lookup (they import timm / sam2).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from codec.devices import resolve_device
from codec.registry import Registry

from .base import RANDOM_INIT, FrozenEncoder
from .spec import EncoderSpec

log = logging.getLogger(__name__)

RANDOM_INIT_SEED = 0  # the seed of every random-init encoder (see create_encoder)

# builder(spec, resolution, state_dict_or_None, pretrained: bool) -> (FrozenEncoder, weights_id)
Builder = Callable[..., FrozenEncoder]


@dataclass(frozen=True)
class EncoderEntry:
    spec: EncoderSpec
    builder: Builder
    bundled: Path | None = None  # weights shipped inside the package: the default weights source


ENCODERS: Registry[EncoderEntry] = Registry(
    "encoder", modules=("probes.encoders.timm_trunks", "probes.encoders.sam2_official")
)


def register_encoder(
    spec: EncoderSpec, *, bundled: str | os.PathLike | None = None
) -> Callable[[Builder], Builder]:
    """Decorator registering a builder under `spec.name`; `bundled`: a weights file shipped in the package,
    used when no weights source is given."""

    def add(builder: Builder) -> Builder:
        entry = EncoderEntry(spec, builder, Path(bundled) if bundled is not None else None)
        ENCODERS.register(spec.name)(entry)
        return builder

    return add


def bundled_weights(name: str) -> Path | None:
    """The weights file shipped with encoder `name`, or None (then a weights source must be given)."""
    return ENCODERS.get(name).bundled


def get_spec(name: str) -> EncoderSpec:
    return ENCODERS.get(name).spec


def create_encoder(
    name: str,
    *,
    checkpoint: str | os.PathLike | None = None,
    pretrained: bool = False,
    random_init: bool = False,
    resolution: int | None = None,
    device: str | torch.device = "cpu",
) -> FrozenEncoder:
    """Build a frozen encoder from exactly one weights source.

    checkpoint: a local file (official SAM2 / Hiera-MAE / timm layouts);
    pretrained: download through timm / the hub (needs a network);
    random_init: random weights, only when asked for (outputs are marked).
    Encoders with bundled weights (`mini-hiera`, `mini-sam2`) use them when none of the three is given.
    """
    entry = ENCODERS.get(name)
    spec, bundled = entry.spec, entry.bundled
    if bundled is not None and checkpoint is None and not pretrained and not random_init:
        if not bundled.is_file():
            raise ValueError(
                f"encoder {name!r}: its bundled weights {bundled} are missing from this install "
                "(`featcodec pretrain-mini -o DIR --install` reproduces them)"
            )
        checkpoint = bundled
    sources = [checkpoint is not None, pretrained, random_init]
    if sum(sources) != 1:
        raise ValueError(
            f"encoder {name!r}: give exactly one of a checkpoint, --pretrained or --random-init "
            f"(got {sum(sources)})"
        )
    resolution = spec.check_resolution(resolution or spec.default_resolution)
    # Parameters are initialised from a fixed seed, so "random-init" names one reproducible network in every
    # process: a neck trained on its features in one process is evaluated on the same features in another.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        encoder = entry.builder(spec, resolution, checkpoint=checkpoint, pretrained=pretrained)
    if encoder.weights_id == RANDOM_INIT:
        log.warning("encoder %s uses RANDOM weights (--random-init): outputs are marked random-init", name)
    return encoder.to(resolve_device(device))
