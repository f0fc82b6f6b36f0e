"""encode → decode reproduces the codec's own quantised reconstruction, bit for bit."""

import pytest
import torch

from codec.bitstream import stream_info
from codec.pipeline import decode_stream, decode_streams, encode_features

from .conftest import cache_batch, fpn_features


@pytest.mark.parametrize("coder", ["native", "constriction", "compressai"])
@pytest.mark.parametrize(
    "key", [("hyperprior", 0.3), ("hyperprior", 10.0), ("hyperprior", 300.0), ("factorized", 10.0)]
)
def test_decode_equals_model_quantised_reconstruction(trained_codecs, feature_cache, key, coder):
    codec = trained_codecs[key]
    x = cache_batch(feature_cache)
    with torch.no_grad():
        reference = codec.model.eval()(x)
    streams = encode_features(codec, x, coder=coder)
    batch = decode_streams(codec, streams)  # same batch composition as the reference: exact x_hat too
    for b, data in enumerate(streams):
        assert torch.equal(batch[b].y_hat, reference["y_hat"][b])
        for name in x:
            assert torch.equal(batch[b].features[name], reference["x_hat"][name][b])
        alone = decode_stream(codec, data)  # batch of one: y_hat is exact, g_s may round differently
        assert torch.equal(alone.y_hat, reference["y_hat"][b])
        for name in x:
            torch.testing.assert_close(alone.features[name], reference["x_hat"][name][b])


def test_uniform_baseline_roundtrip(trained_codecs, feature_cache):
    codec = trained_codecs[("uniform", 10.0)]
    x = cache_batch(feature_cache, (0, 1))
    reference = codec.model.eval()(x)["x_hat"]
    streams = encode_features(codec, x)
    assert stream_info(streams[0])["coder"] == "zstd"
    for b, data in enumerate(streams):
        decoded = decode_stream(codec, data)
        for name in x:
            assert torch.equal(decoded.features[name], reference[name][b])


def test_streams_grow_with_lambda(trained_codecs, feature_cache):
    x = cache_batch(feature_cache)
    sizes = [
        sum(
            stream_info(s)["payload_bytes"] for s in encode_features(trained_codecs[("hyperprior", lmbda)], x)
        )
        for lmbda in (0.3, 10.0, 300.0)
    ]
    assert sizes[0] < sizes[1] < sizes[2], sizes


def test_multilevel_fpn_codec_roundtrip_with_substreams(fpn_codec):
    x = fpn_features(batch=2)
    reference = fpn_codec.model(x)
    for coder in ("native", "constriction", "compressai"):
        streams = encode_features(fpn_codec, x, coder=coder, groups=3, threads=2)
        assert stream_info(streams[0])["coder"] == coder
        assert [s["name"] for s in stream_info(streams[0])["substreams"]] == ["z", "y.0", "y.1", "y.2"]
        decoded = decode_streams(fpn_codec, streams, threads=1)
        for b in range(2):
            assert torch.equal(decoded[b].y_hat, reference["y_hat"][b])
            assert decoded[b].features["fpn0"].shape == (8, 16, 16)


def test_info_reports_model_estimate_and_overhead(fpn_codec):
    (data,) = encode_features(fpn_codec, fpn_features(batch=1, resolution=128))
    info = stream_info(data)
    assert info["estimated_bits"] > 0 and info["payload_bytes"] > 0
    assert info["coding_overhead"] == (8 * info["payload_bytes"] - info["estimated_bits"]) / (
        8 * info["payload_bytes"]
    )
