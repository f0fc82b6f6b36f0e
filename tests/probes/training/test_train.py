"""train_neck: task loss + W·KD, cross-neck, built-in heads, checkpoints and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from codec.batching import batch_indices
from codec.checkpoint import CheckpointError
from probes.encoders import create_encoder, extract_features
from probes.training import NeckDirError, TrainNeckOptions, build_feature_source, train_neck
from probes.training import loop as loop_module
from tests.probes.fixtures import TINY_NECK, save_tiny_heads, write_task_data


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """Fixture datasets in their real formats and tiny heads saved with `save_pretrained`."""
    root = tmp_path_factory.mktemp("probe")
    data = write_task_data(root)
    return {
        "root": root,
        "data": data,
        "caption_images": Path(data["caption"].split(":")[2]),
        "head": {task: f"hf:{path}" for task, path in save_tiny_heads(root).items()},
    }


def _opts(probe, task, **kw) -> TrainNeckOptions:
    base = dict(
        task=task,
        head=probe["head"][task],
        data=probe["data"][task],
        **TINY_NECK,
        steps=12,
        lr=2e-3,
        warmup_steps=0,
        progress=False,
    )
    base.update(kw)
    return TrainNeckOptions(**base)


def _mean(records, key, which):
    part = records[:3] if which == "first" else records[-3:]
    return sum(r[key] for r in part) / len(part)


def test_kd_path_trains_with_both_losses_going_down(probe, tmp_path):
    config = train_neck(_opts(probe, "depth", kd=1.0), tmp_path / "neck")
    losses = config["training"]["losses"]
    assert len(losses) == 12 and {"task", "kd", "loss"} <= set(losses[0])
    assert _mean(losses, "loss", "last") < _mean(losses, "loss", "first")
    assert _mean(losses, "kd", "last") < _mean(losses, "kd", "first")
    saved = json.loads((tmp_path / "neck" / "config.json").read_text())
    assert saved["kd"] == 1.0 and saved["task"] == "depth" and saved["neck"]["name"] == "neck-1L"
    assert saved["encoder"]["name"] == "mini-hiera-random" and saved["encoder"]["weights_id"] == "random-init"
    assert (
        saved["head"]["class"] == "DepthAnythingHead" and saved["head"]["output_kind"] == "relative-disparity"
    )
    assert set(load_file(str(tmp_path / "neck" / "weights.safetensors"))) == set(
        loop_module.Neck.from_config(saved["neck"]).state_dict()
    )


def test_cross_neck_trains_a_second_neck_on_a_frozen_first(probe, tmp_path):
    train_neck(_opts(probe, "depth", steps=3), tmp_path / "depth")
    first = load_file(str(tmp_path / "depth" / "weights.safetensors"))
    config = train_neck(
        _opts(probe, "pose", encoder=None, random_init=False, after=str(tmp_path / "depth")),
        tmp_path / "cross",
    )
    losses = config["training"]["losses"]
    assert _mean(losses, "loss", "last") < _mean(losses, "loss", "first")
    assert config["after"]["task"] == "depth" and config["encoder"]["name"] == "mini-hiera-random"
    assert list(config["neck"]["in_shapes"]) == ["neck"]
    for k, v in load_file(str(tmp_path / "depth" / "weights.safetensors")).items():
        torch.testing.assert_close(v, first[k])  # the first neck stayed frozen


def test_caption_neck_trains_against_the_blip_decoder(probe, tmp_path):
    config = train_neck(_opts(probe, "caption", kd=0.5), tmp_path / "cap")
    losses = config["training"]["losses"]
    assert _mean(losses, "task", "last") < _mean(losses, "task", "first")


def test_new_builtin_head_is_trained_jointly_then_saved_frozen(probe, tmp_path):
    with pytest.raises(ValueError, match="--train-head"):
        train_neck(_opts(probe, "pose", head="builtin-new:pose"), tmp_path / "untrained")
    with pytest.raises(ValueError, match="--kd needs"):
        train_neck(_opts(probe, "pose", head="builtin-new:pose", train_head=True, kd=1.0), tmp_path / "kd")
    config = train_neck(
        _opts(probe, "pose", head="builtin-new:pose", train_head=True, steps=4), tmp_path / "b"
    )
    assert config["head"]["trained_here"] is True and config["head"]["dir"] == "head"
    head_config = json.loads((tmp_path / "b" / "head" / "config.json").read_text())
    assert head_config["trained"] is True and head_config["task"] == "pose"


def test_neck_distils_towards_the_shipped_heads_teacher_and_evaluates(probe, tmp_path):
    from probes.evaluate import evaluate_neck
    from probes.heads import shipped_head_dir
    from probes.training.sources import sha256_dir

    config = train_neck(_opts(probe, "pose", head="builtin:pose", kd=1.0), tmp_path / "neck")
    losses = config["training"]["losses"]
    assert _mean(losses, "kd", "last") < _mean(losses, "kd", "first")
    head = config["head"]
    assert head["spec"] == "builtin:pose" and head["trained"] is True and head["trained_here"] is False
    assert head["dir"] is None and head["source_sha256"] == sha256_dir(shipped_head_dir("pose"))
    result = evaluate_neck(
        tmp_path / "neck", probe["data"]["pose"], progress=False
    )  # reloads the head by spec
    assert "AP" in result["metrics"] and result["head"]["spec"] == "builtin:pose"


def test_head_and_data_must_be_for_the_task(probe, tmp_path):
    with pytest.raises(ValueError, match="not a pose head"):
        train_neck(_opts(probe, "pose", head=probe["head"]["depth"]), tmp_path / "x")
    with pytest.raises(ValueError, match="not a depth dataset"):
        train_neck(_opts(probe, "depth", data=probe["data"]["pose"]), tmp_path / "y")


def test_interrupted_run_resumes_to_the_same_weights(probe, tmp_path, monkeypatch):
    opts = dict(steps=6, checkpoint_every=2, kd=0.5)
    train_neck(_opts(probe, "depth", **opts), tmp_path / "straight")

    real_loss, calls = loop_module.task_loss, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(loop_module, "task_loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_neck(_opts(probe, "depth", **opts), tmp_path / "resumed")
    monkeypatch.setattr(loop_module, "task_loss", real_loss)
    assert not (tmp_path / "resumed" / "weights.safetensors").exists()
    with pytest.raises(NeckDirError, match="--resume"):
        train_neck(_opts(probe, "depth", **opts), tmp_path / "resumed")
    with pytest.raises(CheckpointError, match="lr"):
        train_neck(_opts(probe, "depth", **{**opts, "lr": 1e-2}), tmp_path / "resumed", resume=True)
    config = train_neck(_opts(probe, "depth", **opts), tmp_path / "resumed", resume=True)
    assert [r["step"] for r in config["training"]["losses"]] == list(range(1, 7))
    a = load_file(str(tmp_path / "straight" / "weights.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "weights.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_batches_are_a_function_of_seed_and_step():
    n, b = 5, 3
    first_epoch = [i for step in range(5) for i in batch_indices(step, b, n, seed=1)][:n]
    assert sorted(first_epoch) == list(range(n))
    assert batch_indices(7, b, n, seed=1) == batch_indices(7, b, n, seed=1)
    assert batch_indices(0, b, n, seed=1) != batch_indices(0, b, n, seed=2)


def test_cached_features_match_the_encoder_on_the_same_images(probe, tmp_path):
    from probes.data import open_dataset

    encoder = create_encoder("mini-hiera-random", random_init=True, resolution=64)
    images = sorted(probe["caption_images"].iterdir())
    extract_features(encoder, images, tmp_path / "cache", batch_size=2, progress=False)
    dataset = open_dataset(probe["data"]["caption"])
    samples = [dataset[i] for i in range(len(dataset))]
    cached = build_feature_source(
        encoder=None,
        checkpoint=None,
        random_init=False,
        features=str(tmp_path / "cache"),
        resolution=None,
        levels=["stage3"],
        dataset=dataset,
    ).features(samples)["stage3"]
    live = encoder(torch.stack([encoder.preprocess(s["image"]) for s in samples]))["stage3"]
    torch.testing.assert_close(cached, live)
    config = train_neck(
        _opts(probe, "caption", encoder=None, random_init=False, features=str(tmp_path / "cache"), steps=2),
        tmp_path / "neck",
    )
    assert config["encoder"]["features"] == str((tmp_path / "cache").resolve())
    assert config["levels"] == ["stage1", "stage2", "stage3", "stage4"]


@pytest.fixture(scope="module")
def codec_dir(tmp_path_factory):
    """A real (untrained, entropy models updated) hyperprior codec for mini-hiera stage3+stage4 at 64 px."""
    from codec.codec_dir import save_codec
    from codec.models import create_codec
    from probes.encoders import get_spec

    path = tmp_path_factory.mktemp("codec") / "hyperprior"
    model = create_codec(
        "hyperprior", get_spec("mini-hiera-random"), levels=["stage3", "stage4"], resolution=64, N=16, M=16
    )
    save_codec(model, path, encoder="mini-hiera-random", weights_id="random-init", lmbda=0.01)
    return path


def test_codec_path_feeds_the_neck_decoded_features_and_counts_stream_bits(probe, codec_dir, tmp_path):
    from codec.codec_dir import load_codec
    from codec.pipeline import decode_stream, encode_features
    from probes.data import open_dataset

    dataset = open_dataset(probe["data"]["depth"])
    samples = [dataset[0], dataset[1]]
    source = build_feature_source(
        encoder="mini-hiera-random",
        checkpoint=None,
        random_init=True,
        features=None,
        resolution=64,
        levels=[],
        dataset=dataset,
        codec=codec_dir,
    )
    decoded = source.features(samples)
    assert list(decoded) == ["stage3", "stage4"]
    clean = source.inner.features(samples)
    codec = load_codec(codec_dir)
    streams = encode_features(codec, clean)
    assert source.bits == 8 * sum(len(s) for s in streams) and source.images == 2
    torch.testing.assert_close(decoded["stage3"][1], decode_stream(codec, streams[1]).features["stage3"])
    assert source.bits_per_pixel == source.bits / (2 * 64 * 64)
    split = source.describe_codec()["stream_bytes"]  # a hyperprior: header, z and y.* bytes, all non-empty
    assert sum(split.values()) == source.bits // 8 and min(split.values()) > 0
    assert source.describe_codec()["stream_bytes_per_image"]["hyper"] == split["hyper"] / 2

    config = train_neck(_opts(probe, "depth", codec=str(codec_dir), steps=2), tmp_path / "neck")
    assert config["codec"]["codec_id"] == codec.codec_id and config["codec"]["train_bpp"] > 0
    assert config["levels"] == ["stage3", "stage4"]


def test_codec_must_code_the_neck_levels_of_the_same_encoder(probe, codec_dir, tmp_path):
    with pytest.raises(ValueError, match="not coded"):
        train_neck(_opts(probe, "depth", codec=str(codec_dir), levels=["stage1"]), tmp_path / "a")
    with pytest.raises(ValueError, match="trained for mini-hiera"):
        train_neck(_opts(probe, "depth", encoder="mini-sam2-random", codec=str(codec_dir)), tmp_path / "b")


@pytest.mark.parametrize(("task", "kd"), [("depth", 0.5), ("pose", 0.0), ("caption", 0.0)])
def test_precomputed_features_train_the_same_neck_as_on_the_fly(probe, tmp_path, task, kd):
    """Features (and KD targets) computed once before the first step: the same run as with the encoder
    on the fly, up to the float rounding of another batch composition."""
    fly = train_neck(_opts(probe, task, kd=kd, feature_memory_mb=0), tmp_path / "fly")
    pre = train_neck(_opts(probe, task, kd=kd), tmp_path / "pre")
    assert fly["training_features"] == "on the fly" and pre["training_features"] == "precomputed"
    for a, b in zip(fly["training"]["losses"], pre["training"]["losses"], strict=True):
        for key in ("loss", "task", "kd"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (a["step"], key)


def test_features_are_precomputed_only_when_they_fit_and_repeat(probe, tmp_path, monkeypatch):
    from probes.training import sources

    monkeypatch.setattr(sources, "feature_bytes", lambda source: 2**30)
    big = train_neck(_opts(probe, "depth"), tmp_path / "big")  # 1 GiB a sample: over the 2 GiB default
    assert big["training_features"] == "on the fly"
    monkeypatch.undo()
    once = train_neck(
        _opts(probe, "depth", steps=1, batch_size=1), tmp_path / "once"
    )  # each sample seen ≤ once
    assert once["training_features"] == "on the fly"


def test_init_fine_tunes_from_a_trained_neck(probe, tmp_path):
    train_neck(_opts(probe, "depth"), tmp_path / "a")
    config = train_neck(_opts(probe, "depth", init=str(tmp_path / "a"), lr=1e-12, steps=2), tmp_path / "b")
    assert config["init"]["dir"] == str((tmp_path / "a").resolve())
    a = load_file(str(tmp_path / "a" / "weights.safetensors"))
    b = load_file(str(tmp_path / "b" / "weights.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)  # lr ~0: b is a, not a fresh init
    with pytest.raises(NeckDirError, match="--init"):
        train_neck(_opts(probe, "depth", init=str(tmp_path / "a"), neck_dim=64), tmp_path / "c")
    with pytest.raises(NeckDirError, match="--init"):
        train_neck(_opts(probe, "pose", init=str(tmp_path / "a")), tmp_path / "d")
