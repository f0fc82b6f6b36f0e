"""The remote-inference anchor (pictures through a standard image codec) and the complexity record."""

import numpy as np
import pytest
import torch
from PIL import Image

from probes.anchors import RemoteInference, code_picture, coding_complexity
from probes.encoders import create_encoder
from probes.training.sources import EncoderFeatures


def _pictures(n=2):
    yy, xx = np.mgrid[0:80, 0:96]
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(
            (np.stack([xx * 2, yy * 3, xx + yy], -1) + rng.integers(0, 40, (80, 96, 3)) + 9 * i)
            .clip(0, 255)
            .astype(np.uint8)
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def encoder_source():
    torch.manual_seed(0)
    return EncoderFeatures(
        create_encoder("mini-hiera-random", random_init=True, resolution=64), ["stage3", "stage4"]
    )


def test_the_coded_picture_is_the_encoders_input_size_and_the_ladder_trades_bits_for_fidelity():
    picture = _pictures(1)[0]
    records = {}
    for quality in (22, 47):
        decoded, records[quality] = code_picture(picture, 64, "vvc", quality)
        assert decoded.size == (64, 64) and records[quality]["encode_s"] > 0
    assert records[47]["bits"] < records[22]["bits"]
    assert code_picture(picture, 64, "jxl", 4.0)[1]["bits"] < code_picture(picture, 64, "jxl", 0.5)[1]["bits"]


@pytest.mark.parametrize("image_codec,quality", [("vvc", 32), ("jpeg", 5)])
def test_remote_inference_runs_the_encoder_on_decoded_pictures_and_counts_their_bits(
    encoder_source, image_codec, quality
):
    samples = [{"image": p} for p in _pictures()]
    remote = RemoteInference(encoder_source, image_codec, quality)
    features = remote.features(samples)
    clean = encoder_source.features(samples)
    assert features["stage3"].shape == clean["stage3"].shape and not torch.equal(
        features["stage3"], clean["stage3"]
    )
    assert (
        torch.nn.functional.cosine_similarity(features["stage3"].flatten(), clean["stage3"].flatten(), 0)
        > 0.9
    )
    record = remote.describe_codec()
    assert record["anchor"] == f"remote-{image_codec}" and remote.bits_per_pixel == remote.bits / (
        2 * 64 * 64
    )
    complexity = coding_complexity(remote, samples)
    assert complexity["encoder_kmac_per_pixel"] == 0 and complexity["decode_ms"] > 0


def test_remote_inference_refuses_a_feature_cache_and_unknown_formats(encoder_source):
    with pytest.raises(ValueError, match="image format"):
        RemoteInference(encoder_source, "webp", 50)
    with pytest.raises(ValueError, match="encoder"):
        RemoteInference(object(), "vvc", 32)


def test_complexity_counts_learned_macs_and_none_for_a_packed_anchor(encoder_source, tmp_path):
    from codec.codec_dir import save_codec
    from codec.models import create_codec
    from probes.training.sources import CodecRoundTrip

    samples = [{"image": p} for p in _pictures(1)]
    records = {}
    for kind, hparams in (("hyperprior", {"N": 16, "M": 16}), ("vvc", {"qp": 37})):
        model = create_codec(
            kind, encoder_source.encoder.spec, levels=["stage3", "stage4"], resolution=64, **hparams
        )
        codec = save_codec(
            model,
            tmp_path / kind,
            encoder="mini-hiera-random",
            weights_id="random-init",
            lmbda=1.0 if kind == "hyperprior" else None,
        )
        records[kind] = coding_complexity(CodecRoundTrip(encoder_source, codec), samples)
    assert (
        records["hyperprior"]["encoder_kmac_per_pixel"] > records["hyperprior"]["decoder_kmac_per_pixel"] > 0
    )
    assert records["vvc"]["encoder_kmac_per_pixel"] == records["vvc"]["decoder_kmac_per_pixel"] == 0
    assert records["vvc"]["anchor"] == "packed-vvc" and records["vvc"]["encode_ms"] > 0


def test_evaluation_records_the_remote_and_packed_anchors_with_their_complexity(tmp_path):
    from codec.codec_dir import save_codec
    from codec.models import create_codec
    from probes.encoders import get_spec
    from probes.evaluate import evaluate_neck
    from probes.heads.tiny import save_tiny_head
    from probes.training import TrainNeckOptions, train_neck
    from tests.probes.fixtures import TINY_NECK, write_nyu_folder

    data = f"nyuv2:{write_nyu_folder(tmp_path / 'nyu')}"
    head = f"hf:{save_tiny_head('depth', tmp_path / 'head')}"
    train_neck(
        TrainNeckOptions(
            task="depth",
            head=head,
            data=data,
            **TINY_NECK,
            steps=1,
            warmup_steps=0,
            progress=False,
        ),
        tmp_path / "neck",
    )
    remote = evaluate_neck(
        tmp_path / "neck", data, image_codec="jpeg", image_quality=8, limit=2, progress=False
    )
    assert (
        remote["codec"]["anchor"] == "remote-jpeg"
        and remote["bpp"] > 0
        and remote["complexity"]["encode_ms"] > 0
    )
    model = create_codec("vvc", get_spec("mini-hiera-random"), resolution=64, qp=40)
    save_codec(model, tmp_path / "vvc", encoder="mini-hiera-random", weights_id="random-init", lmbda=None)
    packed = evaluate_neck(tmp_path / "neck", data, codec=str(tmp_path / "vvc"), limit=2, progress=False)
    assert (
        packed["codec"]["kind"] == "vvc"
        and packed["complexity"]["anchor"] == "packed-vvc"
        and packed["bpp"] > 0
    )
    with pytest.raises(ValueError, match="image_quality"):
        evaluate_neck(tmp_path / "neck", data, image_codec="vvc", limit=2, progress=False)
