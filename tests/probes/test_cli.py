"""`featcodec train-neck` → `featcodec eval` round trips on fixture data, with JSON results."""

from __future__ import annotations

import json

import pytest

from tests.probes.fixtures import ON_CPU, TINY_NECK, cli_flags, save_tiny_heads, write_task_data
from tests.probes.fixtures import eval_json as evaluate
from tests.probes.fixtures import run_cli as run

FAST = [*cli_flags(TINY_NECK), "--lr", "1e-3", *ON_CPU]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return {
        "root": root,
        **write_task_data(root),
        "heads": {t: str(path) for t, path in save_tiny_heads(root).items()},
    }


def task_args(files, task: str) -> list:
    """train-neck's flags for `task` on its fixture data with its tiny head."""
    return ["--task", task, "--head", files["heads"][task], "--data", files[task]]


def train(files, task: str, neck, *extra) -> None:
    """`train-neck` of the tiny neck on `task`'s fixture data and tiny head; it must succeed."""
    r = run("train-neck", *FAST, *task_args(files, task), *extra, "-o", neck)
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("task", ["depth", "pose", "caption"])
def test_train_neck_then_eval_round_trip_with_json(files, tmp_path, task):
    neck = tmp_path / "neck"
    train(files, task, neck, "--steps", 3, "--kd", 0.5)
    result = evaluate(neck, files[task], "--max-new-tokens", 5, "-o", tmp_path / "result.json")
    assert result == json.loads((tmp_path / "result.json").read_text())
    assert result["task"] == task and result["random_init"] is True
    assert result["encoder"]["name"] == "mini-hiera-random" and result["encoder"]["resolution"] == 64
    assert (
        result["neck"]["layers"] == 1
        and result["neck"]["kd"] == 0.5
        and len(result["neck"]["config_sha256"]) == 64
    )
    assert result["head"]["source"] == files["heads"][task]
    assert result["data"]["spec"] == files[task] and result["codec"] is None and result["bpp"] is None
    assert {"torch", "transformers", "python"} <= set(result["versions"])
    expected = {"depth": "abs_rel", "pose": "AP", "caption": "CIDEr-D"}[task]
    assert expected in result["metrics"]


def test_builtin_head_round_trip_and_human_output(files, tmp_path):
    neck = tmp_path / "neck"
    r = run(
        "train-neck",
        *FAST,
        "--task",
        "depth",
        "--head",
        "builtin-new:depth",
        "--train-head",
        "--data",
        files["depth"],
        "--steps",
        2,
        "--level",
        "stage3",
        "-o",
        neck,
    )
    assert r.exit_code == 0, r.output
    assert (neck / "head" / "weights.safetensors").is_file()
    r = run("eval", "--neck", neck, "--data", files["depth"], "--limit", 2, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "abs_rel" in r.stdout and "builtin-new:depth" in r.stdout


def test_train_neck_resume_continues_and_refuses_to_overwrite(files, tmp_path):
    neck = tmp_path / "neck"
    args = ["train-neck", *FAST, *task_args(files, "pose"), "-o", neck]
    assert run(*args, "--steps", 2).exit_code == 0
    r = run(*args, "--steps", 2)
    assert r.exit_code == 3 and "--resume" in r.output
    r = run(*args, "--steps", 2, "--resume", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["train"]["steps"] == 2
    assert run(*args, "--steps", 3, "--force").exit_code == 0


def test_cross_neck_from_the_cli(files, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    train(files, "depth", first, "--steps", 2)
    r = run(
        "train-neck",
        *task_args(files, "pose"),
        "--after",
        first,
        "--neck-layers",
        1,
        "--neck-dim",
        32,
        "--neck-heads",
        4,
        "--steps",
        2,
        *ON_CPU,
        "-o",
        second,
    )
    assert r.exit_code == 0, r.output
    assert evaluate(second, files["pose"])["neck"]["after"]["task"] == "depth"


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--task", "depth", "--head", "hf:/nonexistent/head", "--data", "nyuv2:/nonexistent"],
            "/nonexistent",
        ),
        (["--task", "depth", "--head", "builtin:depth", "--data", "nyuv2:/nonexistent"], "nonexistent"),
        (
            ["--task", "depth", "--head", "builtin:depth", "--data", "nope:x", "--train-head"],
            "unknown dataset",
        ),
        (
            [
                "--task",
                "depth",
                "--head",
                "builtin:depth",
                "--data",
                "DEPTH",
                "--train-head",
                "--level",
                "fpn9",
            ],
            "fpn9",
        ),
    ],
)
def test_bad_input_exits_3_naming_it(files, tmp_path, args, message):
    args = [files["depth"] if a == "DEPTH" else a for a in args]
    r = run("train-neck", *FAST, *args, "--steps", 1, "-o", tmp_path / "n")
    assert r.exit_code == 3, r.output
    assert message in r.output


def test_eval_of_a_directory_that_is_not_a_neck_exits_3(files, tmp_path):
    r = run("eval", "--neck", tmp_path, "--data", files["depth"])
    assert r.exit_code == 3 and "config.json" in r.output


def test_train_neck_needs_a_weights_source(files, tmp_path):
    depth = ["--task", "depth", "--head", "builtin:depth", "--data", files["depth"]]
    r = run("train-neck", "--encoder", "mini-hiera-random", *depth, "-o", tmp_path / "n")
    assert r.exit_code == 2 and "--random-init" in r.output


def test_eval_through_a_codec_records_bits_per_pixel(files, tmp_path):
    from codec.codec_dir import save_codec
    from codec.models import create_codec
    from probes.encoders import get_spec

    codec = tmp_path / "codec"
    save_codec(
        create_codec("uniform", get_spec("mini-hiera-random"), levels=["stage4"], resolution=64),
        codec,
        encoder="mini-hiera-random",
        weights_id="random-init",
        lmbda=0.0,
    )
    neck = tmp_path / "neck"
    train(files, "pose", neck, "--codec", codec, "--steps", 2)
    result = evaluate(neck, files["pose"], "--codec", codec)
    assert result["bpp"] > 0 and result["codec"]["kind"] == "uniform" and result["codec"]["images"] == 4
    assert result["neck"]["trained_codec"]["dir"] == str(codec.resolve())
