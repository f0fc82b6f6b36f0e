"""Necks: every encoder's levels map onto exactly the tokens every head expects."""

from __future__ import annotations

import pytest
import torch

from probes.encoders import ENCODERS, get_spec
from probes.heads import BuiltinDepthHead, BuiltinPoseHead, TokenSpec
from probes.necks import CrossNeck, Neck, tokens_to_features

# token specs of the official checkpoints (hub config.json: image_size / patch_size / hidden_size)
HEAD_SPECS = {
    "depth-anything/Depth-Anything-V2-Small-hf": TokenSpec((37, 37), 384, maps=4, cls_token=True),
    "depth-anything/Depth-Anything-V2-Base-hf": TokenSpec((37, 37), 768, maps=4, cls_token=True),
    "usyd-community/vitpose-base-simple": TokenSpec((16, 12), 768, maps=1, cls_token=False),
    "Salesforce/blip-image-captioning-base": TokenSpec((24, 24), 768, maps=1, cls_token=True),
    "builtin:depth": BuiltinDepthHead().expects(),
    "builtin:pose": BuiltinPoseHead().expects(),
}
RESOLUTION = 128  # a multiple of every encoder's resolution_multiple, small enough for CPU


def _features(shapes: dict, batch: int = 1) -> dict[str, torch.Tensor]:
    return {name: torch.randn(batch, *shape) for name, shape in shapes.items()}


@pytest.mark.parametrize("encoder", ENCODERS.names())
def test_neck_output_is_exactly_what_every_head_expects(encoder):
    shapes = get_spec(encoder).shapes(RESOLUTION)
    features = _features(shapes)
    for head, spec in HEAD_SPECS.items():
        neck = Neck(shapes, spec, layers=1, dim=16, heads=2)
        with torch.no_grad():
            out = neck(features)
        assert tuple(out.shape) == spec.shape(1), head


@pytest.mark.parametrize("encoder", ["mini-hiera-random", "mini-sam2-random"])
def test_single_level_neck_reads_only_its_level(encoder):
    shapes = get_spec(encoder).shapes(64)
    level = get_spec(encoder).level_names[-1]
    spec = HEAD_SPECS["usyd-community/vitpose-base-simple"]
    neck = Neck({level: shapes[level]}, spec, layers=2, dim=32, heads=4)
    out = neck({level: torch.randn(2, *shapes[level])})
    assert tuple(out.shape) == spec.shape(2)
    with pytest.raises(KeyError, match="lacks level"):
        neck({"nope": torch.randn(2, 8, 2, 2)})


def test_anchor_grid_is_the_level_closest_to_the_head_grid():
    shapes = get_spec("mini-hiera-random").shapes(256)  # grids 64, 32, 16, 8
    neck = Neck(shapes, TokenSpec((16, 12), 32), layers=1, dim=32, heads=4)
    assert neck.grid == (16, 16)


def test_positions_are_interpolated_when_the_input_resolution_changes():
    spec = TokenSpec((4, 4), 24, maps=2, cls_token=True)
    neck = Neck(get_spec("mini-hiera-random").shapes(64), spec, layers=1, dim=32, heads=4)
    out = neck(_features(get_spec("mini-hiera-random").shapes(128), batch=2))
    assert tuple(out.shape) == spec.shape(2)


def test_neck_round_trips_its_config():
    spec = TokenSpec((3, 5), 16, maps=4, cls_token=True)
    neck = Neck(get_spec("mini-sam2-random").shapes(64), spec, layers=2, dim=32, heads=4)
    again = Neck.from_config(neck.config())
    again.load_state_dict(neck.state_dict())
    x = _features(get_spec("mini-sam2-random").shapes(64))
    torch.testing.assert_close(neck(x), again(x))


def test_neck_rejects_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match="divisible"):
        Neck({"a": (8, 4, 4)}, TokenSpec((4, 4), 8), dim=30, heads=4)


def test_cross_neck_trains_only_the_second_neck():
    shapes = get_spec("mini-hiera-random").shapes(64)
    first = Neck(shapes, TokenSpec((4, 4), 24, maps=4, cls_token=True), layers=1, dim=32, heads=4)
    second = Neck(CrossNeck.second_in_shapes(first), TokenSpec((4, 3), 16), layers=1, dim=32, heads=4)
    cross = CrossNeck(first, second).train()
    assert not first.training and all(not p.requires_grad for p in first.parameters())
    out = cross(_features(shapes, batch=2))
    assert tuple(out.shape) == (2, 1, 12, 16)
    out.square().mean().backward()
    assert all(p.grad is None for p in first.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in second.parameters())


def test_tokens_to_features_drops_cls_and_takes_the_last_map():
    spec = TokenSpec((2, 3), 5, maps=2, cls_token=True)
    tokens = torch.randn(1, 2, 7, 5)
    fmap = tokens_to_features(tokens, spec)["neck"]
    assert fmap.shape == (1, 5, 2, 3)
    torch.testing.assert_close(fmap[0, :, 1, 2], tokens[0, 1, 1 + 5])
