"""A stream encoded on one device decodes on another: the coder's inputs and the decoded symbols are
bit-identical whatever device encoded or decodes; the reconstruction is bit-identical on the same device.

Every pair of (encoding device, decoding device) among CPU and CUDA, with every entropy coder and the
learned codec kinds. The CPU-only pair runs everywhere (it checks the test itself); pairs with CUDA
run where a GPU is present (`pytest -m cuda`).

What is compared (docs/bitstream.md, "Determinism"):
- y_hat decoded from the stream == the encoding model's own quantised latent (its eval forward on the
  encoding device), bit for bit: the z symbols, the hyper path's outputs (scale indexes, quantised
  means) and the y symbols must agree exactly, or the stream's checksums stop the decode;
- the features decoded on the CPU == g_s of that y_hat evaluated on the CPU, bit for bit (decoding is a
  pure function of the stream, wherever it was written);
- the features decoded on CUDA differ from the CPU's only by float32 synthesis rounding (g_s on another
  device): within RECON_ATOL, measured and printed.
"""

from __future__ import annotations

import pytest
import torch

from codec.codec_dir import load_codec, save_codec
from codec.entropy import CODERS
from codec.models import create_codec
from codec.pipeline import decode_stream, encode_features

from .conftest import FPN_LEVELS, TINY, fpn_features

RECON_ATOL = 1e-4  # |g_s on CUDA - g_s on CPU| for features of magnitude ~10 (measured far below this)


def _device(name: str):
    if name == "cpu":
        return pytest.param("cpu", id="cpu")
    return pytest.param(
        "cuda",
        id="cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
        ],
    )


DEVICES = [_device("cpu"), _device("cuda")]


@pytest.fixture(scope="module", params=["hyperprior", "factorized"])
def codec_path(request, tmp_path_factory):
    torch.manual_seed(0)
    model = create_codec(request.param, FPN_LEVELS, resolution=64, **TINY)
    path = tmp_path_factory.mktemp(request.param)
    save_codec(model, path, encoder="test-fpn", weights_id="random-init", lmbda=1.0)
    return path


@pytest.fixture(autouse=True)
def _exact_float32():
    """TF32 would make the CUDA synthesis a different function, not just a differently rounded one."""
    if not torch.cuda.is_available():
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("coder", CODERS.names())
@pytest.mark.parametrize("decode_on", DEVICES)
@pytest.mark.parametrize("encode_on", DEVICES)
def test_stream_decodes_identically_across_devices(codec_path, coder, encode_on, decode_on):
    encoder_side = load_codec(codec_path, device=encode_on)
    decoder_side = load_codec(codec_path, device=decode_on)
    cpu = load_codec(codec_path, device="cpu")
    x = fpn_features(batch=3, seed=7)
    streams = encode_features(encoder_side, {k: v.to(encode_on) for k, v in x.items()}, coder=coder)

    with torch.no_grad():  # the encoder's own quantised latent, on its device
        own = encoder_side.model.eval()({k: v.to(encode_on) for k, v in x.items()})
    for b, stream in enumerate(streams):
        decoded = decode_stream(decoder_side, stream, device=decode_on)
        assert decoded.y_hat is not None
        assert torch.equal(decoded.y_hat.cpu(), own["y_hat"][b].cpu()), (
            "decoded symbols differ from the encoder's"
        )
        on_cpu = decode_stream(cpu, stream)
        with torch.no_grad():
            reference = cpu.model.normalization.denormalize(cpu.model.g_s(own["y_hat"][b : b + 1].cpu()))
        for name, t in on_cpu.features.items():
            assert torch.equal(t, reference[name][0]), (
                f"CPU decode of level {name} is not g_s(y_hat) bit for bit"
            )
            other = decoded.features[name].cpu()
            if decode_on == "cpu":
                assert torch.equal(other, t)
            else:
                diff = (other - t).abs().max().item()
                print(f"{coder} {encode_on}->{decode_on} {name}: max |cuda - cpu| = {diff:.3g}")
                assert diff <= RECON_ATOL


@pytest.mark.parametrize("encode_on", DEVICES)
def test_streams_written_on_cpu_and_cuda_decode_to_the_same_symbols(codec_path, encode_on):
    """The same features encoded on either device: the streams' symbols agree wherever the analysis
    transform's rounding does; each stream is self-consistent (decodes and passes its checksums)."""
    encoder_side = load_codec(codec_path, device=encode_on)
    cpu = load_codec(codec_path, device="cpu")
    x = fpn_features(batch=2, seed=3)
    mine = encode_features(encoder_side, {k: v.to(encode_on) for k, v in x.items()})
    theirs = encode_features(cpu, x)
    for a, b in zip(mine, theirs, strict=True):
        da, db = decode_stream(cpu, a), decode_stream(cpu, b)
        assert da.y_hat is not None and db.y_hat is not None
        same = (da.y_hat == db.y_hat).float().mean().item()
        print(
            f"{encode_on} vs cpu encode: {100 * same:.4f} % of y symbols equal, streams identical: {a == b}"
        )
        assert same > 0.999
        if encode_on == "cpu":
            assert a == b
