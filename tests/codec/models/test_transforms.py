"""The cheaper analysis (`adapter_rank`, codec.models.transforms): which levels it projects, that compress's
folded normalisation computes what the training forward computes, that a codec with it saves, loads,
encodes and decodes, and that it lowers the encoder's MACs and leaves the decoder's."""

import pytest
import torch

from codec.codec_dir import load_codec, save_codec
from codec.complexity import codec_complexity
from codec.levels import FeatureLevel, random_features
from codec.models import create_codec
from codec.models.normalization import FeatureNormalization
from codec.models.transforms import MultiLevelAnalysis, _project
from codec.pipeline import decode_stream, encode_features

# finer than the grid with many channels (projected), finer with few (kept), at the grid, coarser
LEVELS = [
    FeatureLevel("wide", 24, 4),
    FeatureLevel("narrow", 3, 8),
    FeatureLevel("same", 10, 16),
    FeatureLevel("coarse", 16, 32),
]


def _normalization(levels, seed=0):
    norm = FeatureNormalization(levels)
    g = torch.Generator().manual_seed(seed)
    for level in levels:
        getattr(norm, f"{level.name}_mean").copy_(torch.randn(level.channels, generator=g) * 3)
        getattr(norm, f"{level.name}_std").copy_(torch.rand(level.channels, generator=g) * 4 + 0.1)
    return norm


def test_only_finer_levels_with_more_channels_than_the_rank_are_projected():
    g_a = MultiLevelAnalysis(LEVELS, N=8, M=6, grid_stride=16, adapter_rank=4)
    assert set(g_a.projections) == {"wide"}
    assert g_a.projections["wide"].shape == (4, 24)
    assert g_a.adapters["wide"].in_channels == 4 * 16  # rank · r², r = 16 / 4
    assert g_a.adapters["narrow"].in_channels == 3 * 4  # unchanged: 3 channels ≤ rank
    full = MultiLevelAnalysis(LEVELS, N=8, M=6, grid_stride=16)
    assert not full.projections and full.adapters["wide"].in_channels == 24 * 16


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_folded_normalization_matches_normalising_first(layout):
    """compress folds the normalisation into the projection's weights (one read of the level); the values
    agree with the training forward's normalise-then-project up to float rounding, and gradients reach the
    projection when autograd is on."""
    torch.manual_seed(0)
    g_a = MultiLevelAnalysis(LEVELS, N=8, M=6, grid_stride=16, adapter_rank=4)
    norm = _normalization(LEVELS)
    x = random_features(LEVELS, 128, batch=2, seed=1, scale=7)
    if layout == "channels_last":
        x = {k: v.contiguous(memory_format=torch.channels_last) for k, v in x.items()}
    with torch.no_grad():
        folded = g_a(x, norm)
        first = g_a(norm.normalize(x))
    torch.testing.assert_close(folded, first, rtol=1e-5, atol=1e-5)
    assert folded.abs().max() > 0.1  # not a vacuous comparison
    g_a(x, norm).square().sum().backward()
    assert g_a.projections["wide"].grad is not None and g_a.projections["wide"].grad.abs().sum() > 0


def test_projection_is_a_1x1_convolution_in_both_layouts():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 24, 8, 12, generator=g)
    weight, bias = torch.randn(5, 24, generator=g), torch.randn(5, generator=g)
    expected = torch.nn.functional.conv2d(x, weight[:, :, None, None], bias)
    torch.testing.assert_close(_project(x, weight, bias), expected)
    torch.testing.assert_close(
        _project(x.contiguous(memory_format=torch.channels_last), weight, bias), expected
    )


@pytest.mark.parametrize("kind", ["hyperprior", "factorized"])
def test_codec_with_adapter_rank_saves_loads_and_round_trips(tmp_path, kind):
    torch.manual_seed(0)
    extra = {"hyper_path": "integer"} if kind == "hyperprior" else {}
    model = create_codec(kind, LEVELS, resolution=64, N=8, M=12, adapter_rank=4, **extra)
    x = random_features(LEVELS, 64, batch=2, seed=2, scale=3)
    model.normalization.fit([x])
    codec = save_codec(model, tmp_path / "c", encoder="test", weights_id="random-init", lmbda=1.0)
    loaded = load_codec(tmp_path / "c")
    assert loaded.config["hparams"]["adapter_rank"] == 4
    assert loaded.model.adapter_rank == 4 and set(loaded.model.g_a.projections) == {"wide"}
    streams = encode_features(codec, x)
    assert encode_features(loaded, x) == streams  # the loaded codec writes the same bytes
    decoded = decode_stream(loaded, streams[0])
    assert {k: tuple(v.shape[-3:]) for k, v in decoded.features.items()} == {
        k: tuple(v.shape[-3:]) for k, v in x.items()
    }


def test_codecs_without_adapter_rank_keep_their_config():
    """adapter_rank enters the config only when set, so the ids of earlier codecs do not change."""
    model = create_codec("hyperprior", LEVELS, resolution=64, N=8, M=12)
    assert "adapter_rank" not in model.hparams() and model.adapter_rank is None
    with pytest.raises(ValueError, match="adapter_rank"):
        create_codec("hyperprior", LEVELS, resolution=64, N=8, M=12, adapter_rank=0)


def test_adapter_rank_lowers_the_encoders_macs_not_the_decoders(tmp_path):
    levels = [FeatureLevel("fpn0", 64, 4), FeatureLevel("fpn1", 64, 8), FeatureLevel("fpn2", 64, 16)]
    x = random_features(levels, 128, batch=1, seed=3)
    figures = {}
    for rank in (None, 4):
        torch.manual_seed(0)
        model = create_codec("hyperprior", levels, resolution=128, hyper_path="integer", adapter_rank=rank)
        model.normalization.fit([x])
        codec = save_codec(model, tmp_path / str(rank), encoder="test", weights_id="random-init", lmbda=1.0)
        figures[rank] = codec_complexity(codec, x, pixels=128 * 128)
    # what the factorised adapters save, counted by hand: per level, the full 1×1 adapter on the grid
    # (cells · C·r² · N) against the projection at the level's resolution plus the smaller adapter
    cells, N, rank = 8 * 8, 128, 4
    saved = 0
    for level in levels[:2]:
        r2 = (16 // level.stride) ** 2
        saved += cells * level.channels * r2 * N - (
            cells * r2 * level.channels * rank + cells * rank * r2 * N
        )
    drop = figures[None]["encoder_kmac_per_pixel"] - figures[4]["encoder_kmac_per_pixel"]
    assert drop == pytest.approx(saved / (128 * 128) / 1e3)
    assert figures[4]["decoder_kmac_per_pixel"] == pytest.approx(figures[None]["decoder_kmac_per_pixel"])
