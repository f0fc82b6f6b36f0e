"""codec.models.hyperprior: compress's device part computes what CompressAI's modules compute, bit for bit."""

import torch

from codec.models import create_codec

from ..conftest import FPN_LEVELS, TINY, fpn_features


def _model(hyper_path="integer"):
    torch.manual_seed(0)
    model = create_codec("hyperprior", FPN_LEVELS, resolution=64, hyper_path=hyper_path, **TINY).eval()
    model.update(force=True)
    return model


def test_z_likelihoods_are_entropy_bottlenecks():
    """Without EntropyBottleneck.forward's permutation tensor (a host wait on a GPU): the same floats."""
    model = _model()
    with torch.no_grad():
        y = model.g_a(fpn_features(batch=3), model.normalization)
        _, z_hat = model._quantize_z(model.h_a(y))
        _, want = model.entropy_bottleneck(z_hat, training=False)
        assert torch.equal(model._z_likelihoods(z_hat), want)


def test_device_part_matches_the_eval_forward():
    """_encode_tensors (what a CUDA graph replays) gives the eval forward's y_hat and estimate, status 0."""
    model = _model()
    x = fpn_features(batch=2)
    with torch.no_grad():
        out = model._encode_tensors(x)
        forward = model(x)
    assert int(out["status"]) == 0 and out["symbols"].dtype == torch.int32
    y_hat = out["symbols"].float() + out["means"].float() / 16
    assert torch.equal(y_hat, forward["y_hat"])
    bits = -(
        torch.log2(forward["likelihoods"]["y"]).sum((1, 2, 3))
        + torch.log2(forward["likelihoods"]["z"]).sum((1, 2, 3))
    )
    torch.testing.assert_close(out["bits"], bits, rtol=1e-5, atol=0)


def test_a_non_finite_feature_is_reported_after_the_copy_to_the_host():
    model = _model()
    x = fpn_features(batch=1)
    x["fpn0"][0, 0, 0, 0] = float("nan")
    try:
        model.compress(x)
    except ValueError as e:
        assert "contains NaN or Inf" in str(e)
    else:
        raise AssertionError("a NaN feature was coded")
