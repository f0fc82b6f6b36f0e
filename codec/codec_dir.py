"""Codec directories (what `featcodec train-codec -o DIR` writes): `weights.safetensors` + `config.json`.

Written with the shared artefact writer (codec.files), loaded safely (safetensors only).

config.json records what the codec was trained for (encoder, its weights id, resolution, levels,
λ), the model kind and hyper-parameters, and the sha256 of the weights; `codec_id` (the first 16
hex digits of that sha256) and `config_hash` are written into every stream so that a stream is
never decoded with another codec.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import InputError
from .files import (
    CONFIG,
    WEIGHTS,
    load_tensors,
    read_json_document,
    save_tensors,
    sha256_file,
    write_artifact,
)
from .levels import FeatureLevel
from .models import FeatureCodec, create_codec
from .names import CODEC_FORMAT, CODEC_FORMAT_VERSION

_HASHED = ("kind", "levels", "hparams", "encoder", "weights_id", "resolution", "lambda")


class CodecLoadError(InputError):
    """A codec directory that cannot be loaded; the message names the file and field."""


def config_hash(config: dict) -> str:
    canonical = json.dumps({k: config.get(k) for k in _HASHED}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass
class LoadedCodec:
    model: FeatureCodec
    config: dict
    path: Path | None = None

    @property
    def codec_id(self) -> str:
        return self.config["codec_id"]

    @property
    def config_hash(self) -> str:
        return self.config["config_hash"]

    @property
    def encoder(self) -> str:
        return self.config["encoder"]


def save_codec(
    model: FeatureCodec,
    out_dir: str | os.PathLike,
    *,
    encoder: str,
    weights_id: str,
    lmbda: float | None,
    extra: dict | None = None,
) -> LoadedCodec:
    """Update the entropy models (always), then write weights + config atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.update(force=True)
    digest = save_tensors(out_dir / WEIGHTS, model.state_dict(), {"format": CODEC_FORMAT, "kind": model.kind})
    config = {
        "format": CODEC_FORMAT,
        "format_version": CODEC_FORMAT_VERSION,
        **model.config(),
        "encoder": encoder,
        "weights_id": weights_id,
        "lambda": None
        if lmbda is None
        else float(lmbda),  # None: a packed anchor (its rate point is hparams.qp)
        "weights_sha256": digest,
        "codec_id": digest[:16],
        **(extra or {}),
    }
    config["config_hash"] = config_hash(config)
    config = write_artifact(out_dir, config)
    return LoadedCodec(model.eval(), config, out_dir)


def read_codec_config(path: str | os.PathLike) -> dict:
    path = Path(path)
    file = path / CONFIG
    config = read_json_document(
        file,
        format=CODEC_FORMAT,
        format_version=CODEC_FORMAT_VERSION,
        required=(
            "kind",
            "levels",
            "hparams",
            "encoder",
            "weights_id",
            "lambda",
            "weights_sha256",
            "codec_id",
        ),
        error=CodecLoadError,
        missing_hint=f"no codec config; is {path} a codec directory (featcodec train-codec -o)?",
    )
    if config.get("config_hash") != config_hash(config):
        raise CodecLoadError(f"{file}: field 'config_hash' does not match the config (edited by hand?)")
    return config


def load_codec(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedCodec:
    """Load a codec directory (safetensors only); the weights must match the config's sha256."""
    path = Path(path)
    config = read_codec_config(path)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise CodecLoadError(f"{weights}: missing")
    if sha256_file(weights) != config["weights_sha256"]:
        raise CodecLoadError(f"{weights}: sha256 differs from config.json 'weights_sha256' (mixed-up files?)")
    try:
        levels = [FeatureLevel.from_dict(d) for d in config["levels"]]
        model = create_codec(config["kind"], levels, resolution=config.get("resolution"), **config["hparams"])
    except (KeyError, TypeError, ValueError) as e:
        raise CodecLoadError(f"{path / CONFIG}: cannot build the codec ({e})") from None
    state = load_tensors(weights, error=CodecLoadError, what="codec weights")
    try:
        model.load_state_dict(state)
    except Exception as e:  # noqa: BLE001 - safetensors / torch raise several types
        raise CodecLoadError(f"{weights}: does not load into a {config['kind']} codec ({e})") from None
    return LoadedCodec(model.to(device).eval(), config, path)
