"""The hyper path: its cost, and how far two decoders' features may differ (docs/bitstream.md, "Conformance").

`entropy_parameters` (h_s → scales and quantised means of y) of the default hyperprior (N=128, M=192) on
SAM2.1 latents at 1024² (z 128×16×16 → y 192×64×64): the float64 path (codecs written before the integer
path: float64, on the CPU, one item at a time, the result copied back to the model's device) against the
integer path (batched float32 on the model's device), batch 1 and 8, on the CPU and, when present, CUDA.
Random weights: the cost does not depend on them.

    .venv/bin/python -m pytest bench/test_bench_hyper.py --benchmark-only --benchmark-columns=median,rounds -s
    .venv/bin/python -m pytest bench/test_bench_hyper.py -k features -s      # CPU vs CUDA decoded features
"""

from __future__ import annotations

import pytest
import torch

from codec.codec_dir import save_codec
from codec.levels import FeatureLevel, random_features
from codec.models import create_codec

LEVELS = [FeatureLevel("fpn0", 256, 4), FeatureLevel("fpn1", 256, 8), FeatureLevel("fpn2", 256, 16)]
RESOLUTION = 1024
CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(scope="module")
def models():
    out = {}
    for path in ("float64", "integer"):
        torch.manual_seed(0)
        model = create_codec("hyperprior", LEVELS, resolution=RESOLUTION, hyper_path=path)
        model.update(force=True)
        out[path] = model.eval()
    return out


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize(
    "path,device",
    [
        ("float64", "cpu"),
        ("integer", "cpu"),
        pytest.param("float64", "cuda", marks=CUDA),
        pytest.param("integer", "cuda", marks=CUDA),
    ],
)
def test_entropy_parameters(benchmark, models, path, device, batch):
    model = models[path].to(device)
    grid = (RESOLUTION // 16, RESOLUTION // 16)
    g = torch.Generator().manual_seed(0)
    z_hat = torch.round(torch.randn(batch, model.N, grid[0] // 4, grid[1] // 4, generator=g) * 3).to(device)

    def run():
        scales, means = model.entropy_parameters(z_hat, grid)
        scales, means = scales.to(device), means.to(device)  # where the quantiser needs them
        if device == "cuda":
            torch.cuda.synchronize()
        return scales, means

    benchmark.pedantic(run, rounds=10 if device == "cuda" else 5, warmup_rounds=2)
    benchmark.extra_info.update(path=path, device=device, batch=batch, threads=torch.get_num_threads())
    models[path].to("cpu")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_decoded_features_cpu_vs_cuda(tmp_path):
    """One stream of the integer codec decoded on the CPU and on CUDA: y_hat identical; how far apart are the
    features, with featcodec's decoder (g_s in IEEE float32) and with g_s's convolutions in TF32?"""
    from codec.codec_dir import load_codec
    from codec.pipeline import decode_stream, encode_features

    torch.manual_seed(0)
    model = create_codec("hyperprior", LEVELS, resolution=512, hyper_path="integer")
    codec = save_codec(model, tmp_path / "c", encoder="e", weights_id="random-init", lmbda=1.0)
    x = random_features(LEVELS, 512)
    (data,) = encode_features(codec, x)
    cpu = decode_stream(codec, data)
    on_gpu = load_codec(codec.path, device="cuda")
    gpu = decode_stream(on_gpu, data, device="cuda")
    assert torch.equal(cpu.y_hat, gpu.y_hat.cpu())
    flag = torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = True
        with torch.no_grad():
            tf32 = on_gpu.model.normalization.denormalize(on_gpu.model.g_s(gpu.y_hat[None]))
    finally:
        torch.backends.cudnn.allow_tf32 = flag
    for name, a in cpu.features.items():
        scale = float(a.abs().max())
        ieee = float((a - gpu.features[name].cpu()).abs().max())
        with_tf32 = float((a - tf32[name][0].cpu()).abs().max())
        print(
            f"\n{name}: max |x| {scale:.3g}; max |cpu - cuda| featcodec decoder (IEEE float32) {ieee:.3g} "
            f"= {ieee / scale:.3g} max|x|; g_s in TF32 {with_tf32:.3g} = {with_tf32 / scale:.3g} max|x|"
        )
