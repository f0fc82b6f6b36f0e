"""Property-based parity: for any floats (NaN, Inf, ties, subnormals) and any
sorted table, native == reference."""

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import codec.ops as ops
from codec.ops import reference

_floats = st.one_of(
    st.floats(width=32, allow_nan=True, allow_infinity=True),
    st.integers(-(2**20), 2**20).map(lambda k: k / 2),  # exact ties and integers
    st.floats(-300, 300, width=32),
)
_arrays = hnp.arrays(np.float32, st.integers(0, 300), elements=_floats)
_tables = st.lists(st.floats(2.0**-10, 2.0**13, width=32), min_size=1, max_size=80).map(sorted)
_settings = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(
    data=st.data(),
    table=_tables,
    dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64]),
    with_means=st.booleans(),
    clamp=st.one_of(st.none(), st.integers(0, 2**31 - 1)),
    bound=st.floats(1e-4, 10.0),
)
def test_native_equals_reference_for_any_input(data, table, dtype, with_means, clamp, bound):
    y_np = data.draw(_arrays)
    n = y_np.shape[0]
    m_np = data.draw(hnp.arrays(np.float32, n, elements=_floats))
    s_np = data.draw(hnp.arrays(np.float32, n, elements=_floats))
    y, means, scales = (torch.from_numpy(a).to(dtype) for a in (y_np, m_np, s_np))
    means = means if with_means else None
    kw = {"scale_bound": bound, "clamp": clamp, "check": False}
    symbols, indexes = ops.quantize_index(y, means, scales, table, **kw)
    want_symbols, want_indexes = reference.quantize_index(y, means, scales, table, **kw)
    assert torch.equal(symbols, want_symbols)
    assert torch.equal(indexes, want_indexes)


@_settings
@given(y=_arrays, dtype=st.sampled_from([torch.float32, torch.float16, torch.float64]))
def test_checked_call_raises_exactly_when_the_reference_does(y, dtype):
    y = torch.from_numpy(y).to(dtype)
    scales = torch.ones_like(y)
    outcomes = []
    for impl in (ops.quantize_index, reference.quantize_index):
        try:
            outcomes.append(impl(y, None, scales, [1.0, 2.0]))
        except ValueError as e:
            outcomes.append(str(e))
    if isinstance(outcomes[1], str):
        assert outcomes[0] == outcomes[1]
    else:
        assert all(torch.equal(a, b) for a, b in zip(outcomes[0], outcomes[1], strict=True))


@_settings
@given(
    symbols=hnp.arrays(np.int32, st.integers(0, 200)),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64]),
    data=st.data(),
)
def test_dequantize_equals_reference_for_any_symbols(symbols, dtype, data):
    means_np = data.draw(hnp.arrays(np.float32, symbols.shape, elements=_floats))
    symbols, means = torch.from_numpy(symbols), torch.from_numpy(means_np).to(dtype)
    got, want = ops.dequantize(symbols, means), reference.dequantize(symbols, means)
    torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)
