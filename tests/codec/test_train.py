"""train-codec: saved codec directories, safe loading, checkpoints and resume."""

import json

import pytest
import torch
from safetensors.torch import load_file

from codec.checkpoint import CheckpointError
from codec.codec_dir import CodecLoadError, load_codec
from codec.models import create_codec
from codec.train import TrainingError, train_codec

from .conftest import TINY, TINY_TRAINING


def test_saved_codec_records_what_it_was_trained_for(trained_codecs, feature_cache):
    codec = trained_codecs[("hyperprior", 10.0)]
    config = json.loads((codec.path / "config.json").read_text())
    assert config["encoder"] == "mini-hiera-random" and config["weights_id"] == feature_cache.weights_id
    assert config["resolution"] == 64 and config["lambda"] == 10.0 and config["kind"] == "hyperprior"
    assert [lv["name"] for lv in config["levels"]] == feature_cache.level_names
    assert {"torch", "compressai", "constriction"} <= set(config["versions"])
    state = load_file(str(codec.path / "weights.safetensors"))
    assert state["gaussian_conditional._quantized_cdf"].numel() > 0  # update() was run
    assert state["entropy_bottleneck._quantized_cdf"].numel() > 0


def test_load_codec_restores_identical_model(trained_codecs, feature_cache):
    codec = trained_codecs[("hyperprior", 10.0)]
    loaded = load_codec(codec.path)
    x = {k: v[None].float() for k, v in feature_cache[0].items()}
    assert torch.equal(loaded.model(x)["y_hat"], codec.model(x)["y_hat"])


def test_tampered_weights_refused(trained_codecs, tmp_path):
    import shutil

    src = trained_codecs[("factorized", 10.0)].path
    dst = tmp_path / "codec"
    shutil.copytree(src, dst)
    data = bytearray((dst / "weights.safetensors").read_bytes())
    data[-1] ^= 1
    (dst / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(CodecLoadError, match="sha256"):
        load_codec(dst)


def test_resume_continues_the_same_trajectory(feature_cache, tmp_path):
    common = dict(lmbda=5.0, batch_size=2, lr=3e-3, hparams=TINY, progress=False, checkpoint_every=3)
    straight = train_codec(feature_cache, tmp_path / "a", steps=8, **common)
    train_codec(feature_cache, tmp_path / "b", steps=5, **common)  # "interrupted" after 5 steps
    resumed = train_codec(feature_cache, tmp_path / "b", steps=8, resume=True, **common)
    assert resumed.config["training"]["steps"] == 8
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_existing_codec_not_overwritten_and_resume_plan_checked(feature_cache, tmp_path):
    common = dict(batch_size=2, hparams=TINY, progress=False)
    train_codec(feature_cache, tmp_path / "c", lmbda=1.0, steps=2, **common)
    with pytest.raises(FileExistsError):
        train_codec(feature_cache, tmp_path / "c", lmbda=1.0, steps=2, **common)
    with pytest.raises(CheckpointError, match="lambda"):
        train_codec(feature_cache, tmp_path / "c", lmbda=2.0, steps=4, resume=True, **common)


def test_single_level_codec(feature_cache, tmp_path):
    codec = train_codec(
        feature_cache,
        tmp_path / "s",
        lmbda=1.0,
        steps=2,
        levels=["stage3"],
        batch_size=2,
        hparams=TINY,
        progress=False,
    )
    assert codec.model.level_names == ["stage3"]


def test_codec_weights_are_byte_identical_across_processes(tmp_path):
    """A codec's id is its weights' sha256: the same model must give the same bytes in any process."""
    import subprocess
    import sys

    code = (
        "import sys, torch; from codec.models import create_codec; from codec.levels import FeatureLevel; "
        "from codec.codec_dir import save_codec; torch.manual_seed(0); "
        "m = create_codec('hyperprior', [FeatureLevel('a', 4, 16)], resolution=32, N=4, M=4); "
        "print(save_codec(m, sys.argv[1], encoder='e', weights_id='w', lmbda=1.0).codec_id)"
    )
    ids = {
        subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / f"c{i}")],
            capture_output=True,
            text=True,
            check=True,
            env={**__import__("os").environ, "PYTHONHASHSEED": str(i)},
        ).stdout
        for i in range(3)
    }
    assert len(ids) == 1


def test_integer_hyper_is_distilled_from_the_float_run_of_the_same_seed(feature_cache, tmp_path):
    """Default integer recipe: the float hyperprior of the same seed, then its h_s distilled into the integer
    h_s;
    every other weight is the float run's, and the integer h_s is frozen, within 2^24 and bit-exact."""
    from codec.train import distill_integer_hyper

    common = dict(lmbda=5.0, steps=6, batch_size=2, lr=3e-3, progress=False)
    floating = train_codec(feature_cache, tmp_path / "f", hparams={**TINY, "hyper_path": "float64"}, **common)
    integer = train_codec(feature_cache, tmp_path / "i", hparams=TINY, **common)
    assert integer.config["hparams"]["hyper_path"] == "integer"
    assert integer.config["training"]["hyper_distillation"]["steps"] == 6
    a, b = floating.model.state_dict(), integer.model.state_dict()
    shared = [k for k in a if not k.startswith("h_s.")]
    assert shared and all(torch.equal(a[k], b[k]) for k in shared)
    h_s = integer.model.h_s
    assert h_s.frozen and all(bound < 1 << 24 for bound in h_s.partial_sum_bounds())
    z = torch.randint(-20, 21, (2, TINY["N"], 3, 4)).float()
    assert all(
        torch.equal(u, v.float())
        for u, v in zip(h_s.integer_forward(z), h_s.reference_forward(z), strict=True)
    )
    # more distillation steps bring the integer h_s closer to the float one (KL in bits per element)
    student = create_codec(
        "hyperprior", feature_cache.levels, resolution=feature_cache.resolution, **TINY, hyper_path="integer"
    )
    kl = [
        distill_integer_hyper(floating.model, student, feature_cache, steps=n, batch_size=4, seed=0)
        for n in (1, 60)
    ]
    assert 0 <= kl[1] < kl[0]
    # a float h_s can be distilled the same way (bench.hyper_path_rate --float-student, the control)
    control = create_codec(
        "hyperprior", feature_cache.levels, resolution=feature_cache.resolution, **TINY, hyper_path="float64"
    )
    assert (
        0
        <= distill_integer_hyper(floating.model, control, feature_cache, steps=5, batch_size=4, seed=0)
        < 1e3
    )


def test_joint_integer_training_is_kept_and_distillation_steps_are_part_of_the_plan(feature_cache, tmp_path):
    common = dict(lmbda=5.0, batch_size=2, lr=3e-3, hparams=TINY, progress=False)
    joint = train_codec(feature_cache, tmp_path / "j", steps=2, hyper_distill_steps=0, **common)
    assert "hyper_distillation" not in joint.config["training"]
    assert joint.config["hparams"]["hyper_path"] == "integer" and joint.model.h_s.frozen
    with pytest.raises(
        CheckpointError, match="hyper_distill_steps"
    ):  # a joint run is not resumed as a distilled one
        train_codec(feature_cache, tmp_path / "j", steps=4, resume=True, **common)
    with pytest.raises(TrainingError, match="hyper_distill_steps"):
        train_codec(feature_cache, tmp_path / "n", steps=2, hyper_distill_steps=-1, **common)


def test_a_distillation_killed_midway_resumes_from_its_checkpoint(feature_cache, tmp_path, monkeypatch):
    import codec.train as train_module

    common = dict(lmbda=5.0, **TINY_TRAINING, checkpoint_every=2, steps=3, hyper_distill_steps=6)
    straight = train_codec(feature_cache, tmp_path / "a", **common)
    real, calls = train_module._gaussian_kl_bits, {"n": 0}

    def killed(*args):
        calls["n"] += 1
        if calls["n"] == 5:  # the 5th distillation step: its checkpoint at step 4 is written
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(train_module, "_gaussian_kl_bits", killed)
    with pytest.raises(KeyboardInterrupt):
        train_codec(feature_cache, tmp_path / "b", **common)
    monkeypatch.setattr(train_module, "_gaussian_kl_bits", real)
    assert json.loads((tmp_path / "b" / "checkpoint" / "distill" / "state.json").read_text())["step"] == 4
    resumed = train_codec(feature_cache, tmp_path / "b", resume=True, **common)
    assert resumed.codec_id == straight.codec_id
