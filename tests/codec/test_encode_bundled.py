"""`featcodec encode` finds a mini-* encoder's bundled weights as `extract` does (issue 22, item 5)."""

import torch
from click.testing import CliRunner

from bench.cli import main
from codec.codec_dir import save_codec
from codec.models import create_codec
from probes.encoders import create_encoder, get_spec

from .conftest import TINY


def _codec_for(name, tmp_path, weights_id):
    torch.manual_seed(0)
    model = create_codec("factorized", get_spec(name), resolution=64, **TINY)
    return save_codec(model, tmp_path / name, encoder=name, weights_id=weights_id, lmbda=1.0)


def test_encode_uses_bundled_weights_without_a_weights_option(image_paths, tmp_path):
    weights_id = create_encoder("mini-hiera", resolution=64).weights_id  # the bundled file's sha256
    codec = _codec_for("mini-hiera", tmp_path, weights_id)
    run = CliRunner().invoke
    result = run(
        main, ["encode", str(image_paths[0]), "--codec", str(codec.path), "-o", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    stream = tmp_path / "out" / f"{image_paths[0].stem}.fcb"
    result = run(
        main, ["decode", str(stream), "--codec", str(codec.path), "-o", str(tmp_path / "f.safetensors")]
    )
    assert result.exit_code == 0, result.output


def test_encode_without_bundled_weights_still_needs_a_weights_option(image_paths, tmp_path):
    codec = _codec_for("mini-hiera-random", tmp_path, "random-init")
    result = CliRunner().invoke(
        main, ["encode", str(image_paths[0]), "--codec", str(codec.path), "-o", str(tmp_path / "out")]
    )
    assert result.exit_code == 2 and "--checkpoint PATH or --random-init" in result.output
