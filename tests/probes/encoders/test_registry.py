import pytest
import torch

from codec.registry import UnknownNameError
from probes.encoders import ENCODERS, RANDOM_INIT, create_encoder, get_spec


@pytest.mark.parametrize("name", ENCODERS.names())
def test_declared_levels_match_what_the_encoder_returns(name):
    encoder = create_encoder(name, random_init=True, resolution=64)
    features = encoder(torch.randn(1, 3, 64, 64))
    assert list(features) == encoder.spec.level_names
    assert {k: tuple(v.shape[1:]) for k, v in features.items()} == encoder.spec.shapes(64)


def test_registry_names_the_study_encoders():
    names = set(ENCODERS.names())
    for size in ("tiny", "small", "base", "base-plus", "large"):
        assert f"hiera-{size}" in names
    for size in ("tiny", "small", "base-plus", "large"):
        assert {f"sam2-trunk-{size}", f"sam2.1-hiera-{size}", f"sam2-hiera-{size}"} <= names


def test_official_sam2_encoder_gives_fpn_levels_at_strides_4_8_16():
    spec = get_spec("sam2.1-hiera-tiny")
    assert [(lv.name, lv.channels, lv.stride) for lv in spec.levels] == [
        ("fpn0", 256, 4),
        ("fpn1", 256, 8),
        ("fpn2", 256, 16),
    ]


def test_encoder_is_frozen_and_stays_in_eval_mode():
    encoder = create_encoder("mini-hiera-random", random_init=True)
    encoder.train()
    assert not encoder.training and not encoder.model.training
    assert not any(p.requires_grad for p in encoder.parameters())
    assert encoder.weights_id == RANDOM_INIT


def test_exactly_one_weights_source_is_required():
    with pytest.raises(ValueError, match="exactly one"):
        create_encoder("mini-hiera-random")
    with pytest.raises(ValueError, match="exactly one"):
        create_encoder("mini-hiera-random", random_init=True, pretrained=True)


def test_unknown_encoder_and_bad_resolution_are_named():
    with pytest.raises(UnknownNameError, match="unknown encoder 'nope'"):
        get_spec("nope")
    with pytest.raises(ValueError, match="multiple of 32"):
        create_encoder("mini-hiera-random", random_init=True, resolution=50)


def test_hiera_runs_at_resolutions_other_than_224():
    encoder = create_encoder("hiera-tiny", random_init=True, resolution=96)
    features = encoder(torch.randn(1, 3, 96, 96))
    assert features["stage1"].shape == (1, 96, 24, 24)
