"""compress normalises each level in the pass that rearranges it onto the grid: the same values, bit for
bit, as normalising first (so the streams do not change), for finer, equal and coarser levels."""

import pytest
import torch

from codec.levels import FeatureLevel, random_features
from codec.models.normalization import FeatureNormalization
from codec.models.transforms import MultiLevelAnalysis, to_grid

LEVELS = [FeatureLevel("fine", 6, 4), FeatureLevel("same", 5, 16), FeatureLevel("coarse", 12, 32)]


@pytest.fixture
def normalization():
    norm = FeatureNormalization(LEVELS)
    g = torch.Generator().manual_seed(0)
    for level in LEVELS:
        getattr(norm, f"{level.name}_mean").copy_(torch.randn(level.channels, generator=g) * 3)
        getattr(norm, f"{level.name}_std").copy_(torch.rand(level.channels, generator=g) * 4 + 1e-3)
    return norm


def _features(batch=2, resolution=128):
    return random_features(LEVELS, resolution, batch=batch, seed=1, scale=7)


def test_fused_grid_pass_is_bit_identical(normalization):
    x = _features()
    normalised = normalization.normalize(x)
    with torch.no_grad():
        for lv in LEVELS:
            fused = to_grid(x[lv.name], lv.stride, 16, normalization.affine(lv.name, torch.float32))
            assert fused.is_contiguous()
            assert torch.equal(fused, to_grid(normalised[lv.name], lv.stride, 16)), lv.name


def test_analysis_with_normalization_matches_normalising_first(normalization):
    torch.manual_seed(0)
    g_a = MultiLevelAnalysis(LEVELS, N=8, M=6, grid_stride=16)
    x = _features()
    with torch.no_grad():
        assert torch.equal(g_a(x, normalization), g_a(normalization.normalize(x)))
    y = g_a(x, normalization)  # with autograd: normalised first, gradients flow
    y.sum().backward()
    assert g_a.adapters["fine"].weight.grad is not None


@pytest.mark.parametrize("layout", ["channels_last", "sliced"])
def test_fused_grid_pass_in_other_layouts(normalization, layout):
    """SAM2's FPN levels come channels-last; a level cut from a larger one is strided. The same values, and
    for g_a the same output as normalising first (the training forward's path), bit for bit."""
    x = _features()
    if layout == "channels_last":
        x = {k: v.contiguous(memory_format=torch.channels_last) for k, v in x.items()}
    else:
        x = {k: torch.cat([v, v], dim=-1)[..., : v.shape[-1]] for k, v in x.items()}
    contiguous = {k: v.contiguous() for k, v in x.items()}
    torch.manual_seed(0)
    g_a = MultiLevelAnalysis(LEVELS, N=8, M=6, grid_stride=16)
    with torch.no_grad():
        for lv in LEVELS:
            affine = normalization.affine(lv.name, torch.float32)
            want = to_grid(contiguous[lv.name], lv.stride, 16, affine)
            assert torch.equal(to_grid(x[lv.name], lv.stride, 16, affine), want), lv.name
        assert torch.equal(g_a(x, normalization), g_a(normalization.normalize(x)))
