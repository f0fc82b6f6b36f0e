"""The pretrained built-in heads: the recipe at toy size, and the shipped heads with their teachers."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from bench.cli import main
from probes.heads import BuiltinHead, HeadError, load_head, shipped_head_dir
from probes.heads import pretrain as pretrain_module
from probes.heads.assess import evaluate_baseline, evaluate_with_teacher, open_eval_data
from probes.heads.pretrain import RECIPES, pretrain_head, pretrain_heads

TASKS = ("depth", "pose", "caption")
TOY = dict(train_images=8, steps=24, batch_size=4, warmup_steps=2, eval_images=2, checkpoint_every=8)


@pytest.fixture(scope="module")
def toy_heads(tmp_path_factory):
    """All three recipes at toy size, through the orchestrator the command uses."""
    root = tmp_path_factory.mktemp("toy-heads")
    return root, pretrain_heads(root, TASKS, progress=False, overrides=TOY)


@pytest.mark.parametrize("task", TASKS)
def test_toy_recipe_loss_falls_and_its_output_loads_as_a_head(toy_heads, task):
    root, configs = toy_heads
    record = configs[task]["pretraining"]
    assert record["training"]["final_loss"] < record["training"]["first_loss"]
    assert (
        record["recipe"]["steps"] == 24
        and record["data"]["split"] == "train"
        and record["test"]["split"] == "test"
    )
    assert sorted(p.name for p in (root / task).iterdir()) == ["config.json", "weights.safetensors"]
    head = load_head(str(root / task))
    assert isinstance(head, BuiltinHead) and head.trained and head.has_teacher and head.task == task
    assert all(v.dtype == torch.float16 for v in load_file(str(root / task / "weights.safetensors")).values())


def test_finished_tasks_are_skipped_on_resume_and_kept_otherwise(toy_heads):
    root, configs = toy_heads
    with pytest.raises(HeadError, match="--resume"):
        pretrain_heads(root, ["pose"], progress=False, overrides=TOY)
    again = pretrain_heads(root, ["pose"], resume=True, progress=False, overrides=TOY)
    assert again["pose"] == configs["pose"]


def test_interrupted_recipe_resumes_to_the_same_weights(tmp_path, monkeypatch):
    recipe = replace(
        RECIPES["pose"], train_images=4, steps=6, batch_size=2, checkpoint_every=2, eval_images=1
    )
    pretrain_head(recipe, tmp_path / "straight", progress=False)
    real, calls = pretrain_module.step_loss, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pretrain_module, "step_loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pretrain_head(recipe, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(pretrain_module, "step_loss", real)
    assert (tmp_path / "resumed" / pretrain_module.STATE).is_file()
    with pytest.raises(HeadError, match="another recipe"):
        pretrain_head(replace(recipe, lr=1.0), tmp_path / "resumed", resume=True, progress=False)
    pretrain_head(recipe, tmp_path / "resumed", resume=True, progress=False)
    straight = load_file(str(tmp_path / "straight" / "weights.safetensors"))
    resumed = load_file(str(tmp_path / "resumed" / "weights.safetensors"))
    assert straight.keys() == resumed.keys()
    for k, v in straight.items():
        torch.testing.assert_close(resumed[k], v, rtol=0, atol=0)


# -- the shipped heads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_shipped_head_is_frozen_pretrained_and_exposes_its_teacher(task):
    head = load_head(f"builtin:{task}")
    assert (
        isinstance(head, BuiltinHead) and head.spec == f"builtin:{task}" and head.trained and head.has_teacher
    )
    assert not head.training and all(not p.requires_grad for p in head.parameters())
    head.train()
    assert not head.training  # frozen heads stay in eval mode
    pixels = torch.randn(2, 3, *head.input_size)
    tokens = head.teacher(pixels)
    assert tuple(tokens.shape) == head.expects().shape(2) and not tokens.requires_grad
    config = json.loads((shipped_head_dir(task) / "config.json").read_text())
    assert (
        config["pretraining"]["data"]["split"] == "train" and config["pretraining"]["test"]["split"] == "test"
    )


def test_shipped_heads_are_small():
    sizes = {t: (shipped_head_dir(t) / "weights.safetensors").stat().st_size for t in TASKS}
    assert all(s < 0.7e6 for s in sizes.values()) and sum(sizes.values()) <= 2e6, sizes


def test_a_fine_tuned_shipped_head_keeps_its_teacher_fixed():
    head = load_head("builtin:depth").unfreeze()
    assert all(not p.requires_grad for p in head.encoder.parameters())
    assert any(p.requires_grad for n, p in head.named_parameters() if not n.startswith("encoder."))


# Held-out images (the world's test split) against the trivial predictor from training-split labels.
# Everything here is deterministic (rendered images, shipped weights), so the margins do not flicker.
@pytest.mark.parametrize(
    "task, data, baseline_data",
    [
        ("depth", "synthetic:depth:6", "synthetic:depth:24"),
        ("pose", "synthetic:pose:6", "synthetic:pose:64"),
        ("caption", "synthetic:caption:16", "synthetic:caption:64"),
    ],
)
def test_shipped_head_beats_the_trivial_baseline_on_held_out_images(task, data, baseline_data):
    head = load_head(f"builtin:{task}")
    dataset = open_eval_data(head, data, "test", None)
    ours = evaluate_with_teacher(head, dataset)
    base = evaluate_baseline(head, dataset, baseline_data)["metrics"]
    if task == "depth":
        assert ours["abs_rel"] < 0.8 * base["abs_rel"] and ours["delta1"] > base["delta1"], (ours, base)
    elif task == "pose":
        assert ours["AP"] > max(0.1, base["AP"]), (ours, base)
    else:
        assert ours["CIDEr-D"] > base["CIDEr-D"] + 0.1, (ours, base)


def test_eval_head_command_reports_the_head_and_its_baseline():
    r = CliRunner().invoke(
        main,
        [
            "eval-head",
            "--head",
            "builtin:caption",
            "--data",
            "synthetic:caption:4",
            "--baseline-data",
            "synthetic:caption:16",
            "--json",
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["data"] == {"spec": "synthetic:caption:4", "split": "test", "samples": 4}
    assert "CIDEr-D" in result["metrics"] and "CIDEr-D" in result["baseline"]["metrics"]
    assert result["baseline"]["data"] == "synthetic:caption:16" and result["baseline"]["split"] == "train"
    assert result["baseline"]["name"].startswith("most common training caption")
    r = CliRunner().invoke(main, ["eval-head", "--head", "builtin-new:depth"], catch_exceptions=False)
    assert r.exit_code == 3 and "no teacher" in r.output


def test_pretrain_heads_command_writes_resumes_and_refuses_to_overwrite(tmp_path):
    args = [
        "pretrain-heads",
        "-o",
        tmp_path,
        "--task",
        "pose",
        "--steps",
        3,
        "--train-images",
        2,
        "--eval-images",
        1,
    ]
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "pose: AP" in r.output and "keypoint layout" in r.output
    assert json.loads((tmp_path / "pose" / "config.json").read_text())["pretraining"]["recipe"]["steps"] == 3
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 3 and "--resume" in r.output
    r = CliRunner().invoke(main, [str(a) for a in [*args, "--resume"]], catch_exceptions=False)
    assert r.exit_code == 0 and "pose: AP" in r.output
