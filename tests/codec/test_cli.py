"""featcodec train-codec / encode / decode / info through click."""

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from bench.cli import main
from codec.pipeline import decode_stream


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture(scope="module")
def cli_codec(tmp_path_factory, feature_cache):
    out = tmp_path_factory.mktemp("cli") / "codec"
    result = CliRunner().invoke(
        main,
        [
            "train-codec",
            "--features",
            str(feature_cache.path),
            "--lambda",
            "10",
            "--steps",
            "3",
            "--batch-size",
            "2",
            "--channels",
            "8",
            "--latent-channels",
            "12",
            "-o",
            str(out),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return out


def test_images_round_trip(run, cli_codec, image_paths, tmp_path):
    result = run(
        "encode", *image_paths[:2], "--codec", cli_codec, "--random-init", "-o", tmp_path / "fcb", "--json"
    )
    assert result.exit_code == 0, result.output
    summaries = json.loads(result.stdout)
    assert len(summaries) == 2 and summaries[0]["bpp_source"] > 0 and "encoder_s" in summaries[0]["seconds"]
    stream = tmp_path / "fcb" / f"{image_paths[0].stem}.fcb"
    info = json.loads(run("info", stream, "--codec", cli_codec, "--json").stdout)  # compact: codec fields
    from PIL import Image

    assert (
        info["source"]["width"] == Image.open(image_paths[0]).width
        and info["encoder"]["name"] == "mini-hiera-random"
    )
    assert run("info", stream).exit_code == 0
    result = run("decode", stream, "--codec", cli_codec, "-o", tmp_path / "f.safetensors", "--json")
    assert result.exit_code == 0, result.output
    decoded = load_file(str(tmp_path / "f.safetensors"))
    assert decoded["stage1"].shape == (16, 16, 16)


def test_features_file_round_trip(run, cli_codec, feature_cache, tmp_path):
    from codec.codec_dir import load_codec

    save_file({k: v.contiguous() for k, v in feature_cache[1].items()}, tmp_path / "in.safetensors")
    result = run(
        "encode",
        "--features",
        tmp_path / "in.safetensors",
        "--codec",
        cli_codec,
        "--coder",
        "compressai",
        "-o",
        tmp_path / "x.fcb",
    )
    assert result.exit_code == 0, result.output
    assert (
        run("decode", tmp_path / "x.fcb", "--codec", cli_codec, "-o", tmp_path / "out.safetensors").exit_code
        == 0
    )
    expected = decode_stream(load_codec(cli_codec), (tmp_path / "x.fcb").read_bytes()).features
    got = load_file(str(tmp_path / "out.safetensors"))
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_refuses_to_overwrite_without_force(run, cli_codec, feature_cache, tmp_path):
    save_file({k: v.contiguous() for k, v in feature_cache[0].items()}, tmp_path / "in.safetensors")
    args = (
        "encode",
        "--features",
        tmp_path / "in.safetensors",
        "--codec",
        cli_codec,
        "-o",
        tmp_path / "x.fcb",
    )
    assert run(*args).exit_code == 0
    before = (tmp_path / "x.fcb").read_bytes()
    result = run(*args)
    assert result.exit_code == 3 and "--force" in result.output
    assert (tmp_path / "x.fcb").read_bytes() == before
    assert run(*args, "--force").exit_code == 0
    (tmp_path / "d.safetensors").write_bytes(b"keep")
    assert (
        run("decode", tmp_path / "x.fcb", "--codec", cli_codec, "-o", tmp_path / "d.safetensors").exit_code
        == 3
    )
    assert (tmp_path / "d.safetensors").read_bytes() == b"keep"


def test_bad_inputs_exit_3(run, cli_codec, feature_cache, tmp_path):
    (tmp_path / "junk.fcb").write_bytes(b"\x89FCB garbage")
    result = run("decode", tmp_path / "junk.fcb", "--codec", cli_codec, "-o", tmp_path / "o.safetensors")
    assert result.exit_code == 3 and "junk.fcb" in result.output
    assert run("info", tmp_path / "junk.fcb").exit_code == 3
    assert run("info", tmp_path / "missing.fcb").exit_code == 3
    save_file({"nope": torch.zeros(2, 2, 2)}, tmp_path / "bad.safetensors")
    result = run(
        "encode", "--features", tmp_path / "bad.safetensors", "--codec", cli_codec, "-o", tmp_path / "b.fcb"
    )
    assert result.exit_code == 3 and "stage1" in result.output
    result = run(
        "encode", "--features", tmp_path / "bad.safetensors", "--codec", tmp_path, "-o", tmp_path / "b.fcb"
    )
    assert result.exit_code == 3 and "config.json" in result.output
    result = run("train-codec", "--features", tmp_path, "--lambda", "1", "-o", tmp_path / "c")
    assert result.exit_code == 3 and "manifest" in result.output


def test_usage_errors_exit_2(run, cli_codec, tmp_path):
    assert run("encode", "--codec", cli_codec, "-o", tmp_path / "x").exit_code == 2
    assert run("train-codec", "--features", tmp_path, "--lambda", "0", "-o", tmp_path / "c").exit_code == 2


def test_one_image_to_a_fcb_path_writes_that_file(run, cli_codec, image_paths, tmp_path):
    target = tmp_path / "photo.fcb"
    result = run("encode", image_paths[0], "--codec", cli_codec, "--random-init", "-o", target)
    assert result.exit_code == 0, result.output
    assert target.is_file() and target.read_bytes()[:4] == b"\x89FCB"
    assert run("info", target).exit_code == 0
    # several images cannot go into one .fcb file: a clear error, nothing written
    result = run(
        "encode", *image_paths[:2], "--codec", cli_codec, "--random-init", "-o", tmp_path / "two.fcb"
    )
    assert result.exit_code == 3 and "directory" in result.output and not (tmp_path / "two.fcb").exists()


def test_train_codec_adapter_rank(run, feature_cache, tmp_path):
    """--adapter-rank reaches the codec's config; it is refused for a codec without the learned analysis."""
    out = tmp_path / "ranked"
    args = ["--features", feature_cache.path, "--lambda", "10", "--steps", "1", "--batch-size", "2"]
    result = run(
        "train-codec", *args, "--channels", "8", "--latent-channels", "12", "--adapter-rank", "4", "-o", out
    )
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["hparams"]["adapter_rank"] == 4
    result = run("train-codec", *args, "--model", "uniform", "--adapter-rank", "4", "-o", tmp_path / "u")
    assert result.exit_code == 2 and "--adapter-rank" in result.output
