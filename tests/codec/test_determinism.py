"""The decoder rebuilds the encoder's probability model exactly, or fails loudly."""

import pytest
import torch

from codec.bitstream import BitstreamError
from codec.pipeline import decode_stream, decode_streams, encode_features

from .conftest import fpn_features


def test_decode_with_other_thread_count_and_batch_size(fpn_codec):
    x = fpn_features(batch=3, seed=1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        streams = encode_features(fpn_codec, x, groups=2, threads=2)
        torch.set_num_threads(1)
        alone = [decode_stream(fpn_codec, s, threads=1) for s in streams]
        torch.set_num_threads(2)
        pair = decode_streams(fpn_codec, streams[1:], threads=2)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(alone[1:], pair, strict=True):
        assert torch.equal(a.y_hat, b.y_hat)


def test_entropy_parameters_do_not_depend_on_batch(fpn_codec):
    model = fpn_codec.model
    z_hat = torch.round(torch.randn(4, model.N, 2, 2) * 3)
    scales, means = model.entropy_parameters(z_hat, (4, 4))
    for i in range(4):
        s, m = model.entropy_parameters(z_hat[i : i + 1], (4, 4))
        assert torch.equal(s, scales[i : i + 1]) and torch.equal(m, means[i : i + 1])
    assert torch.equal(means * 16, torch.round(means * 16))  # on the 1/16 grid


def test_desynchronised_probability_model_raises(fpn_codec, monkeypatch):
    (data,) = encode_features(fpn_codec, fpn_features(batch=1))
    original = fpn_codec.model.entropy_parameters

    def drifted(z_hat, grid):  # a decoder whose hyper-synthesis disagrees by one mean-grid step
        scales, means = original(z_hat, grid)
        means = means.clone()
        means[0, 0, 0, 0] += 1 / 16
        return scales, means

    monkeypatch.setattr(fpn_codec.model, "entropy_parameters", drifted)
    with pytest.raises(BitstreamError, match="probability-model checksum"):
        decode_stream(fpn_codec, data)


def test_wrong_symbols_checksum_raises(fpn_codec):
    from codec.bitstream import pack, unpack

    (data,) = encode_features(fpn_codec, fpn_features(batch=1), compact=False)  # a JSON header to edit
    container = unpack(data)
    header = {k: v for k, v in container.header.items() if k != "substreams"}
    header["checksums"] = {**header["checksums"], "symbols": header["checksums"]["symbols"] ^ 1}
    with pytest.raises(BitstreamError, match="symbols checksum"):
        decode_stream(fpn_codec, pack(header, container.substreams))
