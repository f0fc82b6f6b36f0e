"""featcodec::quantize_index (CPU and CUDA kernels) equals CompressAI and the reference, bit for bit."""

import math

import pytest
import torch

import codec.ops as ops
from codec.ops import reference

from .conftest import DTYPES, compressai_oracle, random_latents

INT32_MAX = 2**31 - 1


def assert_parity(y, means, scales, table, **kw):
    """Native == reference (always) and == CompressAI (when no clamp/saturation is involved)."""
    symbols, indexes = ops.quantize_index(y, means, scales, table, **kw)
    want_symbols, want_indexes = reference.quantize_index(
        y.cpu(), None if means is None else means.cpu(), scales.cpu(), table, **kw
    )
    assert symbols.device == y.device and symbols.shape == y.shape
    assert symbols.dtype == indexes.dtype == torch.int32
    assert torch.equal(symbols.cpu(), want_symbols), "symbols differ from the reference"
    assert torch.equal(indexes.cpu(), want_indexes), "indexes differ from the reference"
    return symbols, indexes


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("means_kind", ["none", "same", "float32", "per-channel"])
def test_matches_compressai_on_random_latents(device, dtype, means_kind, scale_table, seed):
    # Odd sizes on every axis (vector tails); below one parallel chunk, to keep CompressAI's loop fast.
    y, means, scales = random_latents((2, 8, 17, 19), dtype, device, seed)
    means = {
        "none": None,
        "same": means,
        "float32": means.float(),
        "per-channel": means[:1, :, :1, :1],
    }[means_kind]
    symbols, indexes = assert_parity(y, means, scales, scale_table)
    want_symbols, want_indexes = compressai_oracle(y, means, scales, scale_table)
    assert torch.equal(symbols, want_symbols)
    assert torch.equal(indexes, want_indexes)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scales_dtype", [torch.float32, torch.float16, torch.float64])
def test_scales_in_another_dtype_index_like_compressai(device, dtype, scales_dtype, scale_table, seed):
    y, _, scales = random_latents((3, 4, 50), dtype, device, seed)
    scales = scales.to(scales_dtype)
    _, indexes = assert_parity(y, None, scales, scale_table)
    assert torch.equal(indexes, compressai_oracle(y, None, scales, scale_table)[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_exact_half_ties_round_to_even(device, dtype):
    k = torch.arange(-40, 40, dtype=torch.float64)
    y = (k + 0.5).to(device, dtype)
    scales = torch.ones_like(y)
    symbols, _ = assert_parity(y, None, scales, [0.5, 1.0])
    assert torch.equal(symbols.cpu(), torch.round(k + 0.5).int())
    # Ties that appear only after subtracting the means: 2.75 - 0.25 = 2.5 -> 2.
    means = torch.full_like(y, 0.25)
    symbols, _ = assert_parity(y + 0.25, means, scales, [0.5, 1.0])
    want = compressai_oracle(y + 0.25, means, scales, [0.5, 1.0])[0]
    assert torch.equal(symbols, want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_huge_and_tiny_magnitudes(device, dtype):
    finfo = torch.finfo(dtype)
    values = [0.0, -0.0, finfo.tiny, -finfo.tiny, finfo.tiny / 4, 0.49999997, 0.5, 1.5, -2.5, 1e3, -65504.0]
    if dtype in (torch.float32, torch.float64):
        values += [1e9, -1e9, 2147483520.0, -2147483520.0, 8388607.5, 8388609.0, 16777217.0]
    y = torch.tensor(values, dtype=torch.float64).to(device, dtype)
    scales = torch.ones_like(y)
    symbols, _ = assert_parity(y, None, scales, [1.0, 2.0])
    assert torch.equal(symbols, compressai_oracle(y, None, scales, [1.0, 2.0])[0])


def test_scales_on_between_and_beyond_table_entries(device, scale_table):
    t = scale_table
    between = (t[1:] + t[:-1]) / 2
    specials = torch.tensor(
        [0.0, -0.0, -5.0, 0.05, 0.11, 0.1099, 0.1101, 1e4, 1e30, float("inf"), -float("inf")]
    )
    scales = torch.cat(
        [
            t,
            between,
            torch.nextafter(t, torch.zeros_like(t)),
            torch.nextafter(t, torch.full_like(t, 1e9)),
            specials,
        ]
    ).to(device)
    y = torch.zeros_like(scales)
    _, indexes = assert_parity(y, None, scales, t)
    assert torch.equal(indexes, compressai_oracle(y, None, scales, t)[1])
    assert indexes[-2].item() == len(t) - 1 and indexes[-1].item() == 0  # +inf -> last, -inf -> bound -> 0


@pytest.mark.parametrize("bound", [0.11, 0.2, 1.0, 1e-3])
def test_scale_bound_is_applied_like_lower_bound(device, scale_table, bound, seed):
    _, _, scales = random_latents((4000,), torch.float32, device, seed, scale_high=2.0)
    y = torch.zeros_like(scales)
    _, indexes = assert_parity(y, None, scales, scale_table, scale_bound=bound)
    assert torch.equal(indexes, compressai_oracle(y, None, scales, scale_table, scale_bound=bound)[1])


@pytest.mark.parametrize(
    "table",
    [
        [1.0],  # one entry: every index is 0
        [0.5, 0.5, 0.5, 2.0, 2.0, 8.0],  # duplicates: binary-search path
        [1e-30, 1e-10, 1.0, 1e10, 1e30],  # huge dynamic range
        [1.0, float(torch.nextafter(torch.tensor(1.0), torch.tensor(2.0))), 3.0],  # adjacent floats
        list(torch.linspace(0.11, 50.0, 1000).tolist()),  # long table
        list(torch.logspace(-1, 3, 5000).tolist()),  # longer than the CUDA shared-memory table
    ],
    ids=["one", "duplicates", "dynamic-range", "adjacent", "long", "very-long"],
)
def test_unusual_tables(device, table, seed):
    g = torch.Generator().manual_seed(seed)
    base = torch.tensor(table, dtype=torch.float32)
    scales = torch.cat(
        [base, torch.nextafter(base, base * 2), torch.rand(3000, generator=g) * base.max() * 1.5]
    )
    scales = scales.to(device)
    y = torch.zeros_like(scales)
    _, indexes = assert_parity(y, None, scales, table, scale_bound=1e-35)
    assert torch.equal(indexes, compressai_oracle(y, None, scales, table, scale_bound=1e-35)[1])


def test_non_contiguous_inputs(device, scale_table, seed):
    y, means, scales = random_latents((4, 6, 10, 12), torch.float32, device, seed)
    y_t, means_t, scales_t = (t.transpose(1, 3) for t in (y, means, scales))
    assert not y_t.is_contiguous()
    symbols, indexes = assert_parity(y_t, means_t, scales_t, scale_table)
    want = compressai_oracle(y_t, means_t, scales_t, scale_table)
    assert torch.equal(symbols, want[0]) and torch.equal(indexes, want[1])
    # strided slices, including a storage offset that breaks vector alignment
    sl = (slice(None), slice(1, None, 2), slice(None), slice(1, None))
    assert_parity(y[sl], means[sl], scales[sl], scale_table)


@pytest.mark.parametrize("shape", [(0,), (2, 0, 3), (1, 256, 0, 0)])
def test_empty_tensors(device, scale_table, shape):
    y = torch.empty(shape, device=device)
    symbols, indexes = ops.quantize_index(y, y, y, scale_table)
    assert symbols.shape == indexes.shape == y.shape
    assert symbols.dtype == indexes.dtype == torch.int32


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("y", lambda y, m, s: (y.index_fill(0, torch.tensor([7], device=y.device), float("nan")), m, s)),
        (
            "y",
            lambda y, m, s: (
                y.index_fill(0, torch.tensor([y.numel() - 1], device=y.device), float("inf")),
                m,
                s,
            ),
        ),
        ("means", lambda y, m, s: (y, m.index_fill(0, torch.tensor([3], device=y.device), -float("inf")), s)),
        (
            "scales",
            lambda y, m, s: (y, m, s.index_fill(0, torch.tensor([100], device=y.device), float("nan"))),
        ),
    ],
)
def test_non_finite_inputs_raise_naming_the_tensor(device, dtype, name, make, scale_table):
    y, means, scales = random_latents((1001,), dtype, device, 0)
    y, means, scales = make(y, means, scales)
    with pytest.raises(ValueError, match=rf"\b{name}\b contains"):
        ops.quantize_index(y, means, scales, scale_table)
    with pytest.raises(ValueError, match=rf"\b{name}\b contains"):
        reference.quantize_index(y.cpu(), means.cpu(), scales.cpu(), scale_table)


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_finite_inputs_saturate_as_documented_without_check(device, dtype, scale_table):
    y = torch.tensor([float("nan"), float("inf"), -float("inf"), 1.0, 2.0, 3.0] * 3, dtype=torch.float64)
    scales = torch.tensor([1.0, 1.0, 1.0, float("nan"), float("inf"), -float("inf")] * 3, dtype=torch.float64)
    y, scales = y.to(device, dtype), scales.to(device, dtype)
    symbols, indexes = assert_parity(y, None, scales, scale_table, check=False)
    L = len(scale_table)
    assert symbols[:3].tolist() == [0, INT32_MAX, -INT32_MAX]
    assert indexes[3:6].tolist() == [L - 1, L - 1, 0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_symbols_beyond_int32_raise_or_saturate(device, dtype):
    y = torch.tensor([2147483520.0, 2147483648.0, -3e9, 1.0], dtype=dtype, device=device)
    scales = torch.ones_like(y)
    with pytest.raises(ValueError, match="does not fit in int32"):
        ops.quantize_index(y, None, scales, [1.0])
    symbols, _ = assert_parity(y, None, scales, [1.0], check=False)
    assert symbols.tolist() == [2147483520, INT32_MAX, -INT32_MAX, 1]
    # y - means overflowing float32 although both are finite is an overflow, not a bad input
    if dtype == torch.float32:
        big = torch.tensor([3e38], device=device)
        with pytest.raises(ValueError, match="does not fit in int32"):
            ops.quantize_index(big, -big, torch.ones_like(big), [1.0])


@pytest.mark.parametrize("clamp", [0, 5, 2**24 + 1, INT32_MAX])
def test_clamp_limits_symbols(device, clamp, scale_table, seed):
    y, means, scales = random_latents((3000,), torch.float32, device, seed)
    y = torch.cat([y * 1e3, torch.tensor([3e9, -3e9, 2.0**24 + 2, 1e30], device=device)])
    means = torch.cat([means, torch.zeros(4, device=device)])
    scales = torch.cat([scales, torch.ones(4, device=device)])
    symbols, _ = assert_parity(y, means, scales, scale_table, clamp=clamp)
    rounded = torch.round(y - means).double().clamp(-clamp, clamp)  # y - means in float32, as CompressAI
    assert torch.equal(symbols.cpu().double(), rounded.cpu())
    assert symbols.abs().max().item() <= clamp


def test_broadcast_means_must_fit_y(device, scale_table):
    y = torch.zeros(2, 3, 4, device=device)
    with pytest.raises(ValueError, match="does not broadcast"):
        ops.quantize_index(y, torch.zeros(2, 5, 4, device=device), y, scale_table)
    with pytest.raises(ValueError, match="scales must have y's shape"):
        ops.quantize_index(y, None, y[:1], scale_table)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"scale_table": []}, ValueError, "non-empty"),
        ({"scale_table": [2.0, 1.0]}, ValueError, "sorted"),
        ({"scale_table": [0.0, 1.0]}, ValueError, "positive"),
        ({"scale_bound": 0.0}, ValueError, "scale_bound"),
        ({"clamp": -1}, ValueError, "clamp"),
    ],
)
def test_bad_arguments_raise_clear_errors(device, kwargs, error, match):
    y = torch.zeros(4, device=device)
    args = {"scale_table": [1.0, 2.0], **kwargs}
    table = args.pop("scale_table")
    with pytest.raises(error, match=match):
        ops.quantize_index(y, None, y, table, **args)


def test_integer_inputs_are_rejected(device):
    y = torch.zeros(4, dtype=torch.int32, device=device)
    with pytest.raises(TypeError, match="y must be a floating-point tensor"):
        ops.quantize_index(y, None, y.float(), [1.0])


def test_inputs_requiring_grad_are_accepted(device, scale_table):
    y = torch.randn(50, device=device, requires_grad=True)
    symbols, _ = ops.quantize_index(y, None, torch.ones(50, device=device), scale_table)
    assert not symbols.requires_grad


def test_large_tensor_spans_many_parallel_chunks(device, scale_table, seed):
    # > 4 CPU chunks of 32768 elements plus a 5-element tail; a NaN far into the tensor is still caught.
    y, means, scales = random_latents((4 * 32768 + 5,), torch.float32, device, seed)
    assert_parity(y, means, scales, scale_table)
    y[-3] = math.nan
    with pytest.raises(ValueError, match="y contains"):
        ops.quantize_index(y, means, scales, scale_table)


def test_scale_table_edits_are_seen_by_the_next_call(device):
    # validated tables are cached; an in-place edit or a new tensor must never hit a stale entry
    table = torch.tensor([1.0, 2.0, 4.0])
    y = torch.zeros(3, device=device)
    scales = torch.tensor([1.5, 3.0, 5.0], device=device)
    assert ops.quantize_index(y, None, scales, table)[1].tolist() == [1, 2, 2]
    table[0] = 1.6
    assert ops.quantize_index(y, None, scales, table)[1].tolist() == [0, 2, 2]
    for first in (0.5, 1.0, 3.5):
        fresh = torch.tensor([first, 4.0, 8.0])
        assert (
            ops.quantize_index(y, None, scales, fresh)[1].tolist()
            == compressai_oracle(y, None, scales, fresh.tolist())[1].tolist()
        )
    table[1] = 0.5  # now unsorted
    with pytest.raises(ValueError, match="sorted"):
        ops.quantize_index(y, None, scales, table)


def test_out_buffers_are_filled_and_returned(device, scale_table, seed):
    y, means, scales = random_latents((3, 40, 41), torch.float32, device, seed)
    want = ops.quantize_index(y, means, scales, scale_table)
    out = (
        torch.empty(y.shape, dtype=torch.int32, device=device),
        torch.empty(y.shape, dtype=torch.int32, device=device),
    )
    for _ in range(2):  # reused
        got = ops.quantize_index(y, means, scales, scale_table, out=out)
        assert got[0] is out[0] and got[1] is out[1]
        assert torch.equal(out[0], want[0]) and torch.equal(out[1], want[1])
    with pytest.raises(ValueError, match="out indexes must be a contiguous int32"):
        ops.quantize_index(y, means, scales, scale_table, out=(out[0], out[1].long()))
    with pytest.raises(ValueError, match="out symbols must be a contiguous int32"):
        ops.quantize_index(y, means, scales, scale_table, out=(out[0].transpose(1, 2), out[1]))


def test_out_buffers_with_the_reference(monkeypatch, scale_table):
    monkeypatch.setenv("FEATCODEC_OPS", "reference")
    y = torch.randn(5, 6) * 9
    out = (torch.empty(5, 6, dtype=torch.int32), torch.empty(5, 6, dtype=torch.int32))
    ops.quantize_index(y, None, y.abs(), scale_table, out=out)
    want = compressai_oracle(y, None, y.abs(), scale_table)
    assert torch.equal(out[0], want[0]) and torch.equal(out[1], want[1])


@pytest.mark.parametrize("ops_backend", ["native", "reference"])
@pytest.mark.parametrize(
    ("name", "where"),
    [("y", 0), ("means", 1), ("scales", 2), ("int32", 0), (None, 0)],
)
def test_deferred_status_raises_what_check_raises(device, monkeypatch, ops_backend, name, where, scale_table):
    """with_status=True, check=False: the same error, read later from one 0-d tensor (what compress does)."""
    if ops_backend == "reference":
        monkeypatch.setenv("FEATCODEC_OPS", "reference")
    args = [torch.tensor(v, device=device) for v in ([0.4, -2.6, 7.0], [0.0, 0.5, -1.0], [0.2, 1.0, 3.0])]
    if name == "int32":
        args[0][2] = 3e9
    elif name is not None:
        args[where][1] = float("nan")
    symbols, indexes, status = ops.quantize_index(*args, scale_table, check=False, with_status=True)
    assert status.shape == () and status.dtype == torch.int32 and status.device == args[0].device
    want = ops.quantize_index(*args, scale_table, check=False)
    assert torch.equal(symbols, want[0]) and torch.equal(indexes, want[1])
    if name is None:
        assert int(status) == 0
        return
    match = "does not fit in int32" if name == "int32" else rf"\b{name}\b contains"
    with pytest.raises(ValueError, match=match):
        reference.raise_for_status(int(status))
    with pytest.raises(ValueError, match=match):
        ops.quantize_index(*args, scale_table)
