"""codec.devices.to_host: every tensor on the host, with one synchronisation, values and dtypes unchanged."""

import numpy as np
import pytest
import torch

from codec.devices import CudaGraphs, to_host

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


@pytest.mark.parametrize("device", DEVICES)
def test_to_host_keeps_values_and_dtypes(device):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    g = torch.Generator().manual_seed(0)
    tensors = {
        "symbols": torch.randint(-(1 << 20), 1 << 20, (2, 8, 5, 7), generator=g, dtype=torch.int32),
        "indexes": torch.randint(0, 64, (2, 8, 5, 7), generator=g, dtype=torch.int32),
        "bits": torch.rand(2, generator=g),
    }
    host = to_host({k: v.to(device) for k, v in tensors.items()})
    for name, t in tensors.items():
        assert host[name].dtype == t.numpy().dtype
        np.testing.assert_array_equal(host[name], t.numpy())


def test_cuda_graphs_run_eagerly_on_the_cpu():
    calls = []

    def fn(inputs):
        calls.append(1)
        return {"twice": inputs["x"] * 2}

    graphs = CudaGraphs(fn)
    out = graphs({"x": torch.arange(3.0)})
    assert torch.equal(out["twice"], torch.tensor([0.0, 2.0, 4.0])) and calls == [1]
    assert not graphs._graphs


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_encode_writes_the_eager_bytes(tmp_path, monkeypatch):
    """The hyperprior's device part replayed from a captured graph: the same streams as eager, per batch size
    and from several threads at once (the directory encoder's pattern)."""
    from concurrent.futures import ThreadPoolExecutor

    from codec.codec_dir import load_codec, save_codec
    from codec.models import create_codec
    from codec.pipeline import encode_features

    from .conftest import FPN_LEVELS, TINY, fpn_features

    torch.manual_seed(0)
    model = create_codec("hyperprior", FPN_LEVELS, resolution=64, hyper_path="integer", **TINY)
    save_codec(model, tmp_path / "c", encoder="test-fpn", weights_id="random-init", lmbda=1.0)
    codec = load_codec(tmp_path / "c", device="cuda")
    features = {k: v.cuda() for k, v in fpn_features(batch=3).items()}
    one = {k: v[:1] for k, v in features.items()}
    monkeypatch.setenv("FEATCODEC_CUDA_GRAPHS", "0")
    eager, eager_one = encode_features(codec, features), encode_features(codec, one)
    monkeypatch.setenv("FEATCODEC_CUDA_GRAPHS", "1")
    graphs = codec.model._device_encoder()
    assert encode_features(codec, features) == eager and encode_features(codec, one) == eager_one
    assert encode_features(codec, features) == eager  # a replay, not only the capture
    assert len(graphs._graphs) == 2 and not graphs._failed
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda _: encode_features(codec, one), range(8))) == [eager_one] * 8


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_capture_that_synchronises_falls_back_to_eager(caplog):
    def fn(inputs):
        x = inputs["x"]
        return {"y": x * float(x.sum())}  # reads a value back: not capturable

    graphs = CudaGraphs(fn)
    x = torch.arange(4.0, device="cuda")
    assert torch.equal(graphs({"x": x}).get("y"), x * 6) and graphs._failed and not graphs._graphs
    assert "CUDA graph capture failed" in caplog.text
    assert torch.equal(graphs({"x": x + 1})["y"], (x + 1) * 10)
