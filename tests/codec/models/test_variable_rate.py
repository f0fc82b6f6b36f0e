"""The variable-rate codec (gain units, codec/variable_rate.py): exact folding, one training for every λ."""

import pytest
import torch

from codec.codec_dir import load_codec
from codec.models import create_codec
from codec.pipeline import round_trip
from codec.train import TrainingError
from codec.variable_rate import GainUnits, fold_gain, train_variable_rate_codec
from tests.codec.conftest import TINY, TINY_TRAINING, cache_batch


def test_a_gain_folds_exactly_into_the_first_and_last_convolutions(feature_cache):
    torch.manual_seed(0)
    model = create_codec(
        "hyperprior",
        feature_cache.levels,
        resolution=feature_cache.resolution,
        **{**TINY, "hyper_path": "float64"},
    ).eval()
    gain = torch.rand(model.M) * 4 + 0.1
    folded = fold_gain(model, gain).eval()
    x = model.normalization.normalize(cache_batch(feature_cache))
    with torch.no_grad():
        y = model.g_a(x)
        torch.testing.assert_close(folded.g_a(x), y * gain.view(1, -1, 1, 1), rtol=1e-5, atol=1e-5)
        y_hat = torch.round(y * gain.view(1, -1, 1, 1))
        for name, value in model.g_s(y_hat / gain.view(1, -1, 1, 1)).items():
            torch.testing.assert_close(folded.g_s(y_hat)[name], value, rtol=1e-4, atol=1e-4)
    assert all(
        torch.equal(a, b) for a, b in zip(model.h_s.parameters(), folded.h_s.parameters(), strict=True)
    )


def test_gains_start_at_the_quantiser_step_of_each_lambda():
    gains = GainUnits([0.01, 1.0, 100.0], channels=4)
    g = gains(torch.tensor([0, 1, 2]))[:, 0, 0, 0]
    torch.testing.assert_close(g, torch.tensor([0.1, 1.0, 10.0]))  # √(λ / geometric mean)


def test_one_training_exports_an_ordinary_codec_per_lambda(feature_cache, tmp_path):
    dirs = [tmp_path / "low", tmp_path / "high"]
    codecs = train_variable_rate_codec(
        feature_cache,
        dirs,
        lambdas=[0.1, 100.0],
        steps=4,
        **TINY_TRAINING,
        hyper_distill_steps=2,
    )
    x = cache_batch(feature_cache)
    bits = []
    assert [c.config["lambda"] for c in codecs] == [0.1, 100.0]
    for lmbda, directory in zip([0.1, 100.0], dirs, strict=True):
        loaded = load_codec(directory)  # a plain hyperprior directory: every consumer reads it as before
        assert loaded.config["kind"] == "hyperprior" and loaded.config["lambda"] == lmbda
        assert loaded.config["hparams"]["hyper_path"] == "integer"
        vr = loaded.config["training"]["variable_rate"]
        assert vr["method"] == "gain-units" and vr["lambdas"] == [0.1, 100.0]
        trip = round_trip(loaded, x, check=True)
        assert trip.exact  # the decoder reproduces the folded model's own reconstruction
        bits.append(trip.bits)
    assert bits[0] < bits[1]  # the higher λ spends more bits
    with pytest.raises(FileExistsError):
        train_variable_rate_codec(
            feature_cache, dirs, lambdas=[0.1, 100.0], steps=1, batch_size=2, hparams=TINY, progress=False
        )


@pytest.mark.parametrize(
    "lambdas, batch", [([1.0], 2), ([1.0, 1.0], 2), ([1.0, -2.0], 2), ([1.0, 2.0, 3.0], 2)]
)
def test_bad_lambda_sets_are_refused(feature_cache, tmp_path, lambdas, batch):
    with pytest.raises(TrainingError):
        train_variable_rate_codec(
            feature_cache,
            [tmp_path / str(i) for i in range(len(lambdas))],
            lambdas=lambdas,
            steps=1,
            batch_size=batch,
            hparams=TINY,
            progress=False,
        )


def test_an_interrupted_variable_rate_training_resumes_to_the_same_codecs(feature_cache, tmp_path):
    common = dict(
        lambdas=[0.1, 100.0], batch_size=2, lr=3e-3, hparams=TINY, progress=False, checkpoint_every=2
    )
    straight = train_variable_rate_codec(feature_cache, [tmp_path / "a0", tmp_path / "a1"], steps=5, **common)
    train_variable_rate_codec(
        feature_cache, [tmp_path / "b0", tmp_path / "b1"], steps=3, **common
    )  # "killed" at 3
    resumed = train_variable_rate_codec(
        feature_cache, [tmp_path / "b0", tmp_path / "b1"], steps=5, resume=True, **common
    )
    for a, b in zip(straight, resumed, strict=True):
        assert a.codec_id == b.codec_id  # the weights' sha256


def test_a_kill_during_the_per_rate_distillations_redoes_only_the_unfinished_rate(
    feature_cache, tmp_path, monkeypatch
):
    import codec.variable_rate as vr

    common = dict(lambdas=[0.1, 100.0], **TINY_TRAINING, steps=3, hyper_distill_steps=2)
    straight = train_variable_rate_codec(feature_cache, [tmp_path / "a0", tmp_path / "a1"], **common)
    real, calls = vr.distill_integer_hyper, []

    def dies_on_the_second_rate(*args, **kwargs):
        calls.append(kwargs["seed"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # a kill while distilling the second rate
        return real(*args, **kwargs)

    monkeypatch.setattr(vr, "distill_integer_hyper", dies_on_the_second_rate)
    with pytest.raises(KeyboardInterrupt):
        train_variable_rate_codec(feature_cache, [tmp_path / "b0", tmp_path / "b1"], **common)
    calls.clear()
    monkeypatch.setattr(vr, "distill_integer_hyper", lambda *a, **k: calls.append(k["seed"]) or real(*a, **k))
    resumed = train_variable_rate_codec(
        feature_cache, [tmp_path / "b0", tmp_path / "b1"], resume=True, **common
    )
    assert len(calls) == 1  # the first rate's export was kept
    assert [c.codec_id for c in resumed] == [c.codec_id for c in straight]
