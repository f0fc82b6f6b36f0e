"""Neck inputs computed once (probes/neck_inputs.py): what a neck reads,
stored fp16 on its grid, resumable."""

from __future__ import annotations

import json
import types

import pytest
import torch

from probes.neck_inputs import RECORD, NeckInputs, NeckInputsError, write_neck_inputs
from probes.training import TrainNeckOptions, train_neck
from tests.probes.fixtures import TINY_NECK

SPLIT = dict(task="depth", head="builtin:depth", data="synthetic:depth", split="train", limit=5)
ENCODER = dict(encoder="mini-hiera", resolution=64, encoder_weights={"random_init": True})


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    out = tmp_path_factory.mktemp("inputs") / "inputs"
    write_neck_inputs(out, **SPLIT, **ENCODER, shard_size=2, batch_size=2)
    return out


def _opts(**kw) -> TrainNeckOptions:
    return TrainNeckOptions(
        task="depth",
        head="builtin:depth",
        data="synthetic:depth",
        split="train",
        limit=5,
        **{**TINY_NECK, "encoder": "mini-hiera"},
        steps=3,
        lr=2e-3,
        warmup_steps=0,
        progress=False,
        feature_memory_mb=0,
        **kw,
    )


def test_stored_inputs_are_the_encoder_features_on_the_necks_grid_in_fp16(stored):
    from probes.data import open_dataset
    from probes.encoders import create_encoder
    from probes.necks import resample_map
    from probes.training.sources import EncoderFeatures

    inputs = NeckInputs(stored)
    samples = [open_dataset("synthetic:depth", split="train", limit=5)[i] for i in (4, 0)]
    encoder = create_encoder("mini-hiera", resolution=64, random_init=True)
    clean = EncoderFeatures(encoder, encoder.spec.level_names).features(samples)
    got = inputs.features(samples)
    for name, (c, h, w) in inputs.levels.items():  # the encoder's own shapes: what a neck is built for
        assert tuple(clean[name].shape[1:]) == (c, h, w)
        want = resample_map(clean[name], inputs.grid) if h >= inputs.grid[0] else clean[name]
        assert got[name].shape == want.shape
        torch.testing.assert_close(got[name], want, rtol=2**-10, atol=1e-6)  # fp16 rounding only


def test_a_neck_on_stored_inputs_trains_as_one_running_the_encoder(stored, tmp_path):
    fly = train_neck(_opts(), tmp_path / "fly")
    once = train_neck(_opts(neck_inputs=str(stored)), tmp_path / "once")
    assert (
        once["encoder"] == fly["encoder"]
    )  # the same record: evaluations rebuild or reread the same features
    for a, b in zip(fly["training"]["losses"], once["training"]["losses"], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=2e-3)


def test_an_interrupted_write_resumes_after_its_last_complete_shard(stored, tmp_path):
    out = tmp_path / "inputs"
    write_neck_inputs(out, **SPLIT, **ENCODER, shard_size=2, batch_size=2)
    record = json.loads((out / RECORD).read_text())
    assert [len(s["ids"]) for s in record["shards"]] == [2, 2, 1]
    first = (out / "shard-00000.safetensors").stat().st_mtime_ns
    (out / "shard-00002.safetensors").unlink()  # killed while writing the last shard
    record["shards"], record["complete"] = record["shards"][:2], False
    (out / RECORD).write_text(json.dumps(record))
    with pytest.raises(NeckInputsError, match="incomplete"):
        NeckInputs(out)
    write_neck_inputs(out, **SPLIT, **ENCODER, shard_size=2, batch_size=2)
    assert (out / "shard-00000.safetensors").stat().st_mtime_ns == first  # kept, not recomputed
    for name in NeckInputs(out).levels:
        sample = {"id": record["shards"][0]["ids"][0]}
        assert torch.equal(
            NeckInputs(out).features([sample])[name], NeckInputs(stored).features([sample])[name]
        )
    with pytest.raises(NeckInputsError, match="other settings"):
        write_neck_inputs(out, **{**SPLIT, "limit": 4}, **ENCODER, shard_size=2)


def test_inputs_for_another_grid_or_split_are_refused(stored):
    inputs = NeckInputs(stored)
    with pytest.raises(NeckInputsError, match="grid"):
        inputs.check_neck(types.SimpleNamespace(grid=(99, 99)))
    with pytest.raises(NeckInputsError, match="not in these neck inputs"):
        inputs.features([{"id": "no-such-sample"}])
