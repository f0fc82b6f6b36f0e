"""The integer hyper path (Ballé, Johnston & Minnen 2019): h_s gives the same integers everywhere.

Batched float32 on any device and thread count == one item at a time == a float64 evaluation by
plain convolutions, bit for bit; partial sums stay below 2^24; integer codecs round-trip exactly with
every coder; codecs written before the integer path still decode their streams.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from codec.codec_dir import config_hash, load_codec, save_codec
from codec.levels import FeatureLevel, random_features
from codec.models import create_codec
from codec.models.integer import (
    ACTIVATION_MAX,
    ACTIVATION_MIN,
    EXACT_LIMIT,
    INPUT_CLAMP,
    IntegerBoundError,
    IntegerHyperSynthesis,
    IntegerLayer,
)
from codec.pipeline import decode_stream, decode_streams, encode_features, round_trip
from tests.codec.conftest import FPN_LEVELS, TINY, cache_batch, fpn_features

OLD_STREAMS = Path(__file__).parents[1] / "data" / "float64-streams"
# Decoded features (float32 g_s) of two conforming decoders differ by at most this times the level's largest
# magnitude (docs/bitstream.md, "Conformance"; measured ≤ 9e-7 between thread counts and between CPU and CUDA)
FEATURE_TOLERANCE = 1e-5


def assert_within_feature_tolerance(a: torch.Tensor, b: torch.Tensor, name: str) -> None:
    diff, scale = float((a - b).abs().max()), float(b.abs().max())
    assert diff <= FEATURE_TOLERANCE * scale, (
        f"{name}: max |diff| {diff:g} > {FEATURE_TOLERANCE:g} × {scale:g}"
    )


CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def assert_bit_exact(a, b, what: str = "") -> None:
    """Two evaluations gave the same numbers, bit for bit (same dtype and shape, identical values)."""
    for x, y in zip(a, b, strict=True):
        x, y = x.detach().cpu(), y.detach().cpu()
        assert x.shape == y.shape, f"{what}: shapes {tuple(x.shape)} != {tuple(y.shape)}"
        x64, y64 = x.to(torch.float64), y.to(torch.float64)
        differ = int((x64 != y64).sum())
        assert differ == 0, f"{what}: {differ} values differ (max |diff| {float((x64 - y64).abs().max()):g})"


@pytest.fixture(scope="module")
def wide_h_s():
    """The default size (N=128, M=192) with random weights, frozen: large enough
    that threads split its products."""
    torch.manual_seed(0)
    h_s = IntegerHyperSynthesis(128, 192, scale_levels=64, mean_grid=16)
    with torch.no_grad():
        for layer in h_s.layers:
            layer.bias.normal_(0, 4)
    h_s.freeze()
    return h_s


def z_symbols(batch=3, channels=128, size=(9, 7), seed=0, spread=40.0):
    g = torch.Generator().manual_seed(seed)
    z = torch.round(torch.randn(batch, channels, *size, generator=g) * spread)
    z[0, :, 0, 0] = INPUT_CLAMP  # extremes inside the clamp, and beyond it
    z[0, :, 0, 1] = -INPUT_CLAMP
    z[-1, :, -1, -1] = 1 << 20
    return z


def _evaluations(h_s, z, device, threads):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        on = h_s.to(device)
        batched = on.integer_forward(z.to(device))
        alone = [on.integer_forward(z[i : i + 1].to(device)) for i in range(z.shape[0])]
        alone = tuple(torch.cat([a[k] for a in alone]) for k in range(2))
    finally:
        torch.set_num_threads(before)
        h_s.to("cpu")
    return batched, alone, h_s.reference_forward(z)


@pytest.mark.parametrize("device,threads", [("cpu", 1), ("cpu", 2), pytest.param("cuda", 2, marks=CUDA)])
def test_batched_float32_equals_per_item_and_float64_reference(wide_h_s, device, threads):
    z = z_symbols()
    batched, alone, reference = _evaluations(wide_h_s, z, device, threads)
    assert batched[0].dtype == torch.float32 and batched[0].device.type == device
    assert_bit_exact(batched, reference, "batched float32 vs float64 reference")
    assert_bit_exact(alone, reference, "one item at a time vs float64 reference")
    assert float(batched[0].min()) >= 0 and float(batched[0].max()) <= 63
    assert torch.equal(batched[1], torch.round(batched[1]))  # integers: means·16


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_trained_integer_codec_is_bit_exact(trained_codecs, device):
    h_s = trained_codecs[("hyperprior", 10.0)].model.h_s
    z = z_symbols(channels=h_s.layers[0].in_channels, spread=6.0)
    batched, alone, reference = _evaluations(h_s, z, device, 2)
    assert_bit_exact(batched, reference, "trained h_s")
    assert_bit_exact(alone, reference, "trained h_s, one item at a time")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_exact_on_cuda_even_with_tf32(wide_h_s):
    """8-bit operands are exact in TF32 too: allowing it changes nothing."""
    z = z_symbols()
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        batched = wide_h_s.to("cuda").integer_forward(z.cuda())
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
        wide_h_s.to("cpu")
    assert_bit_exact(batched, wide_h_s.reference_forward(z), "cuda, TF32 allowed")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_rounding_division_is_exact_in_float32(device):
    """⌊n / c⌋ by torch.div(rounding_mode="floor") on float32 integers below 2^24 equals integer division."""
    g = torch.Generator().manual_seed(0)
    n = torch.randint(-EXACT_LIMIT + 1, EXACT_LIMIT, (1 << 20,), generator=g)
    c = torch.randint(1, 1 << 22, (1 << 20,), generator=g)
    c[: 1 << 16] = torch.randint(
        1, 64, (1 << 16,), generator=g
    )  # small divisors: many exact multiples and ties
    n[: 1 << 10] = c[: 1 << 10] * torch.randint(-64, 64, (1 << 10,), generator=g)
    as_float = n.to(device, torch.float32).div_(c.to(device, torch.float32), rounding_mode="floor")
    assert torch.equal(as_float.cpu().to(torch.int64), torch.div(n, c, rounding_mode="floor"))


def _largest_partial_sums(layer: IntegerLayer, u: torch.Tensor) -> torch.Tensor:
    """Per output: Σ|H||u| + |b + ⌊c/2⌋|, which bounds every partial sum of it (float64, exact)."""
    h = layer.int_weight.to(torch.float64).abs()
    return layer._linear(u.to(torch.float64).abs(), h) + layer.int_bias.to(torch.float64).abs().view(
        1, -1, 1, 1
    )


def _adversarial_z(h_s, size=(4, 4)) -> torch.Tensor:
    """z symbols at the clamp: all +, all −, and per output channel of layer 1 the signs of its weights."""
    first = h_s.layers[0]
    n = first.in_channels
    signs = torch.sign(first.int_weight[:, :, 1, 1].to(torch.float64)).T  # out × in, centre tap
    z = [torch.full((n, *size), float(INPUT_CLAMP)), torch.full((n, *size), -float(INPUT_CLAMP))]
    z += [(s * INPUT_CLAMP).view(n, 1, 1).expand(n, *size) for s in signs[:4]]
    g = torch.Generator().manual_seed(0)
    z += [torch.where(torch.rand(n, *size, generator=g) < 0.5, 1.0, -1.0) * (1 << 20)]  # beyond the clamp
    return torch.stack(z).float()


@pytest.mark.parametrize("model", ["trained", "wide"])
def test_partial_sums_stay_below_2_24(trained_codecs, wide_h_s, model):
    h_s = trained_codecs[("hyperprior", 300.0)].model.h_s if model == "trained" else wide_h_s
    bounds = h_s.partial_sum_bounds()
    assert all(b < EXACT_LIMIT for b in bounds), bounds
    z = _adversarial_z(h_s)
    x = z.to(torch.float64).clamp(-INPUT_CLAMP, INPUT_CLAMP)
    for layer, bound in zip(h_s.layers, bounds, strict=True):
        largest = _largest_partial_sums(layer, x)
        assert float(largest.max()) <= bound < EXACT_LIMIT
        x = layer.reference_forward(x)
        assert float(x.abs().max()) <= (ACTIVATION_MAX if layer.activation else bound)
        assert float(x.min()) >= (ACTIVATION_MIN if layer.activation else -bound)
    assert_bit_exact(h_s.integer_forward(z), h_s.reference_forward(z), "adversarial z")


def test_bound_is_enforced():
    with pytest.raises(IntegerBoundError, match="fewer channels"):  # no weight precision left
        IntegerLayer(
            1 << 16,
            4,
            transposed=True,
            input_max=ACTIVATION_MAX,
            input_step=1,
            output_step=1,
            activation=True,
        )
    layer = IntegerLayer(
        8, 4, transposed=False, input_max=ACTIVATION_MAX, input_step=1, output_step=1, activation=True
    )
    layer.freeze()
    assert layer.check_bound() < EXACT_LIMIT
    layer.int_bias[0] = EXACT_LIMIT
    with pytest.raises(IntegerBoundError, match="2\\^24"):
        layer.check_bound()
    with pytest.raises(IntegerBoundError):  # a codec file holding such integers is refused when loaded
        IntegerLayer(
            8, 4, transposed=False, input_max=ACTIVATION_MAX, input_step=1, output_step=1, activation=True
        ).load_state_dict(layer.state_dict())


def test_the_bit_exact_check_catches_non_integer_nets(wide_h_s, trained_codecs):
    """The helper fails for what is not exact: a float h_s, and an integer one past the 2^24 bound."""
    torch.manual_seed(0)
    float_model = create_codec("hyperprior", FPN_LEVELS, resolution=64, N=128, M=192, hyper_path="float64")
    z = z_symbols(spread=3.0)
    with torch.no_grad():
        as_float32, as_float64 = float_model.h_s(z), float_model.h_s.double()(z.double())
    with pytest.raises(AssertionError, match="values differ"):
        assert_bit_exact([as_float32], [as_float64], "float h_s")

    layer = IntegerLayer(
        128, 128, transposed=True, input_max=INPUT_CLAMP, input_step=1, output_step=1 / 16, activation=False
    )
    layer.freeze()
    with torch.no_grad():  # integers, but partial sums ~2^31: float32 rounds them
        layer.int_weight.mul_(1 << 10)
        layer._gemm_weight.mul_(1 << 10)
    u = z_symbols(spread=60.0).clamp(-INPUT_CLAMP, INPUT_CLAMP)
    with pytest.raises(AssertionError, match="values differ"):
        assert_bit_exact([layer.integer_forward(u)], [layer.reference_forward(u)], "integer net past 2^24")


def test_scale_indexes_map_back_to_themselves(trained_codecs):
    """The scale of index k is table entry k, and quantize_index maps it to k
    again (coder inputs unchanged)."""
    from codec import ops

    table = trained_codecs[("hyperprior", 10.0)].model.gaussian_conditional.scale_table
    _, indexes = ops.quantize_index(table, table, table, table)
    assert indexes.tolist() == list(range(len(table)))


@pytest.mark.parametrize("coder", ["native", "constriction", "compressai"])
def test_integer_codec_round_trip_is_exact_with_every_coder(trained_codecs, feature_cache, coder):
    codec = trained_codecs[("hyperprior", 10.0)]
    assert codec.config["hparams"]["hyper_path"] == "integer"  # train-codec's default
    trip = round_trip(codec, cache_batch(feature_cache), coder=coder, groups=2, check=True)
    assert trip.exact


def test_integer_codec_decodes_alone_and_in_batches_across_thread_counts(tmp_path):
    torch.manual_seed(0)
    model = create_codec("hyperprior", FPN_LEVELS, resolution=64, hyper_path="integer", **TINY)
    codec = save_codec(model, tmp_path / "int", encoder="test-fpn", weights_id="random-init", lmbda=1.0)
    x = fpn_features(batch=3, seed=1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        streams = encode_features(codec, x, groups=2)
        torch.set_num_threads(1)
        alone = [decode_stream(codec, s) for s in streams]
        torch.set_num_threads(2)
        batch = decode_streams(codec, streams)
    finally:
        torch.set_num_threads(before)
    reference = codec.model(x)["y_hat"]
    for b in range(3):
        assert torch.equal(alone[b].y_hat, reference[b]) and torch.equal(batch[b].y_hat, reference[b])


def test_hyper_path_is_part_of_the_config_hash(tmp_path):
    hashes = set()
    for path in ("float64", "integer"):
        torch.manual_seed(0)
        model = create_codec("hyperprior", FPN_LEVELS, resolution=64, hyper_path=path, **TINY)
        codec = save_codec(model, tmp_path / path, encoder="e", weights_id="w", lmbda=1.0)
        assert (
            codec.config["hparams"]["hyper_path"] == path and load_codec(codec.path).model.hyper_path == path
        )
        hashes.add(codec.config_hash)
    assert len(hashes) == 2
    with pytest.raises(ValueError, match="hyper_path"):
        create_codec("hyperprior", FPN_LEVELS, hyper_path="float16")


def old_float64_codec(tmp_path) -> Path:
    """The codec directory featcodec wrote before the integer path (main at 194afb4), rebuilt: the same seeded
    weights, and a config.json without `hyper_path` (written by tests/codec/data's generator as
    `torch.manual_seed(0); create_codec("hyperprior", [fpn0 8@4, fpn2 16@16], resolution=64, N=8, M=8)`)."""
    torch.manual_seed(0)
    levels = [FeatureLevel("fpn0", 8, 4), FeatureLevel("fpn2", 16, 16)]
    model = create_codec("hyperprior", levels, resolution=64, N=8, M=8)
    codec = save_codec(model, tmp_path / "old", encoder="test-fpn", weights_id="random-init", lmbda=1.0)
    config = json.loads((codec.path / "config.json").read_text())
    del config["hparams"]["hyper_path"]
    config["config_hash"] = config_hash(config)
    (codec.path / "config.json").write_text(json.dumps(config))
    assert (config["codec_id"], config["config_hash"]) == ("31190f72f113df0f", "e94bbae8b0b2d13a"), (
        "the rebuilt codec is not the one the stored streams were written with"
    )
    return codec.path


@pytest.mark.parametrize("coder", ["native", "constriction", "compressai"])
def test_old_float64_codec_still_decodes_its_streams(tmp_path, coder):
    codec = load_codec(old_float64_codec(tmp_path))
    assert codec.model.hyper_path == "float64" and "hyper_path" not in codec.config["hparams"]
    decoded = decode_stream(codec, (OLD_STREAMS / f"stream-{coder}.fcb").read_bytes())
    expected = load_file(str(OLD_STREAMS / "decoded.safetensors"))
    assert torch.equal(decoded.y_hat, expected["y_hat"])
    for name, features in decoded.features.items():
        assert_within_feature_tolerance(features, expected[name], name)


def test_a_stream_of_another_hyper_path_is_refused_naming_the_codec(tmp_path):
    old = load_codec(old_float64_codec(tmp_path))
    torch.manual_seed(0)
    model = create_codec("hyperprior", old.model.levels, resolution=64, N=8, M=8, hyper_path="integer")
    new = save_codec(model, tmp_path / "new", encoder="test-fpn", weights_id="random-init", lmbda=1.0)
    from codec.bitstream import BitstreamError

    with pytest.raises(BitstreamError, match=f"codec mismatch.*{old.codec_id}"):
        decode_stream(new, (OLD_STREAMS / "stream-native.fcb").read_bytes())


def test_decoded_features_agree_across_thread_counts_within_tolerance(tmp_path):
    """Conformance: y symbols exact; features (float32 g_s) within FEATURE_TOLERANCE between thread counts.

    SAM2's FPN levels (256 channels at strides 4/8/16) and the default codec size at 256 px: large enough
    that the convolutions split differently over 2 threads (most features then differ in the last bits)."""
    torch.manual_seed(0)
    levels = [FeatureLevel("fpn0", 256, 4), FeatureLevel("fpn1", 256, 8), FeatureLevel("fpn2", 256, 16)]
    model = create_codec("hyperprior", levels, resolution=256, hyper_path="integer")
    codec = save_codec(model, tmp_path / "c", encoder="test-fpn", weights_id="random-init", lmbda=1.0)
    x = random_features(levels, 256)
    (data,) = encode_features(codec, x)
    before = torch.get_num_threads()
    decoded = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            decoded[threads] = decode_stream(codec, data)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(decoded[1].y_hat, decoded[2].y_hat)
    for name in decoded[1].features:
        assert_within_feature_tolerance(decoded[2].features[name], decoded[1].features[name], name)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_encode_on_cuda_decode_on_cpu(trained_codecs, feature_cache):
    """The hyper path runs on the model's device (no CPU hop), and a CPU decoder
    rebuilds the same coder inputs."""
    codec = trained_codecs[("hyperprior", 10.0)]
    on_gpu = load_codec(codec.path, device="cuda")
    x = cache_batch(feature_cache)
    z_hat = torch.round(torch.randn(2, on_gpu.model.N, 1, 1, device="cuda") * 4)
    scales, means = on_gpu.model.entropy_parameters(z_hat, (4, 4))
    assert scales.device.type == "cuda" and means.device.type == "cuda" and scales.dtype == torch.float32
    streams = encode_features(on_gpu, x)
    cpu = decode_streams(codec, streams)  # checks the probability-model checksum before decoding y
    gpu = decode_streams(on_gpu, streams, device="cuda")
    reference = codec.model(x)["y_hat"]
    for b in range(len(streams)):
        assert torch.equal(cpu[b].y_hat, reference[b]) and torch.equal(gpu[b].y_hat.cpu(), reference[b])
        for name, features in cpu[b].features.items():  # g_s in IEEE float32 on CUDA too (no TF32)
            assert_within_feature_tolerance(gpu[b].features[name].cpu(), features, name)
