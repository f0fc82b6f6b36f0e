"""torch.compile traces through the custom ops (fake kernels in codec/ops/_fake.py)."""

import torch

import codec.ops as ops


def _encode_decode(y, means, scales, table):
    symbols, indexes = ops.quantize_index(y, means, scales, table, clamp=1000, check=False)
    return symbols, indexes, ops.dequantize(symbols, means)


def test_compile_fullgraph_calls_the_native_ops_on_cpu(scale_table):
    assert ops.backend("cpu") == "native"
    torch._dynamo.reset()
    compiled = torch.compile(_encode_decode, fullgraph=True, backend="inductor")
    y = torch.randn(2, 8, 6, 5) * 10
    means = torch.randn(2, 8, 6, 5)
    scales = torch.rand(2, 8, 6, 5) * 50
    table = scale_table.clone()
    got = compiled(y, means, scales, table)
    want = _encode_decode(y, means, scales, table)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and torch.equal(g, w)


def test_fake_kernels_give_shapes_and_dtypes(scale_table):
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        y = torch.empty(3, 4, 5, dtype=torch.float16)
        symbols, indexes, status = torch.ops.featcodec.quantize_index(y, None, y, torch.empty(64), 0.11, None)
        out = torch.ops.featcodec.dequantize(symbols, None, torch.bfloat16)
    assert symbols.shape == indexes.shape == (3, 4, 5) and symbols.dtype == indexes.dtype == torch.int32
    assert status.shape == () and out.dtype == torch.bfloat16 and out.shape == (3, 4, 5)


def test_compile_fullgraph_with_out_buffers(scale_table):
    def encode_into(y, scales, table, symbols, indexes):
        return ops.quantize_index(y, None, scales, table, check=False, out=(symbols, indexes))

    torch._dynamo.reset()
    compiled = torch.compile(encode_into, fullgraph=True)
    y, scales = torch.randn(4, 9) * 10, torch.rand(4, 9) * 20
    symbols, indexes = torch.empty(4, 9, dtype=torch.int32), torch.empty(4, 9, dtype=torch.int32)
    compiled(y, scales, scale_table.clone(), symbols, indexes)
    want = ops.quantize_index(y, None, scales, scale_table)
    assert torch.equal(symbols, want[0]) and torch.equal(indexes, want[1])
