"""Entropy coders alone, side by side in one run: featcodec's native rANS vs constriction vs CompressAI.

Workloads, symbols drawn from the model they are coded with:

* `y256`: a 1×256×64×64 latent (SAM2's stride-16 grid at 1024²), as bench/test_bench_entropy.py builds it
  (Gaussian means, log-uniform scales in [0.2, 16], quantize_index → symbols + GaussianConditional rows);
* `sam2`: the latents the default hyperprior (N=128, M=192) of a SAM2.1 1024 px codec codes per image:
  y 192×64×64 drawn as above, and z 128×16×16 with an EntropyBottleneck(128) table (sampled from its CDFs);
* `wide`: 192×64×64 with all 64 scale-table rows equally likely (scales up to 256), a worst case;
* `gauss1m`: 1 M symbols, each from a Gaussian of scale log-uniform in [0.11, 256] coded with the nearest
  scale-table row (issue 21's held-back measurement: one core, native vs constriction in the same run).

Coders: `native` (codec.entropy.native, substream format 1: 8 lanes), `native2` (format 2, the default:
lanes sized to the substream; the same speed on large substreams), `constriction` (codec.entropy's
ConstrictionCoder, the previous default) and `compressai` (`compressai.ans.RansEncoder.encode_with_indexes` /
`RansDecoder.decode_with_indexes` called directly; the `.tolist()` conversions its pybind interface
needs are included, the table lists are prepared once). Threads: native on G = 4 channel-group
and G = 16 substreams with 1 and 2 threads. The summary (printed at the end) gives wall medians, M symbols/s
per core from the CPU time of the calls (process_time: robust against the other jobs on a shared
machine, and summed over threads), and ratios.

    .venv/bin/python -m pytest bench/test_bench_rans.py --benchmark-only --benchmark-columns=median,iqr,rounds
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional

from codec import ops
from codec.entropy import CdfTable, decode_substreams, encode_substreams, get_coder, native, split_channels
from codec.models.hyperprior import get_scale_table

pytestmark = pytest.mark.skipif(not native.native_available(), reason="codec._C not built")

ROWS: dict[tuple[str, str, str], dict] = {}  # (workload, coder/threads, encode|decode) -> figures


def _sample(table: CdfTable, indexes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Symbols drawn from the table's regular bins. The escape bin is left out: an untrained
    EntropyBottleneck gives it about half the mass, which a trained one does not (escapes are in
    the y256 workload and in the tests)."""
    out = np.empty(indexes.size, np.int32)
    for k in np.unique(indexes):
        where = np.flatnonzero(indexes == k)
        row = table.cdf[k, : table.cdf_length[k]]
        u = rng.integers(0, row[-2], where.size)
        out[where] = np.searchsorted(row, u, side="right") - 1 + table.offset[k]
    return out


def _gaussian_latent(shape, g, gc):
    """Latent drawn from the Gaussians it is coded with (scales log-uniform in [0.2, 16])."""
    scales = torch.exp(torch.empty(shape).uniform_(np.log(0.2), np.log(16.0), generator=g))
    means = torch.randn(shape, generator=g) * 2
    y = means + scales * torch.randn(shape, generator=g)
    symbols, indexes = ops.quantize_index(y, means, scales, gc.scale_table)
    return symbols[0].numpy(), indexes[0].numpy()


@pytest.fixture(scope="module")
def workloads():
    g = torch.Generator().manual_seed(0)
    gc = GaussianConditional(get_scale_table())
    gc.update()
    gc_table = CdfTable.from_entropy_model(gc)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    eb = EntropyBottleneck(128)
    eb.update(force=True)
    eb_table = CdfTable.from_entropy_model(eb)
    z_idx = np.repeat(np.arange(128, dtype=np.int32), 16 * 16).reshape(128, 16, 16)
    wide_idx = rng.integers(0, gc_table.size, (192, 64, 64)).astype(np.int32)
    scales = np.exp(rng.uniform(np.log(0.11), np.log(256), 1_000_000))
    rows = np.searchsorted(np.asarray(get_scale_table()), scales).clip(0, gc_table.size - 1).astype(np.int32)
    gauss1m = np.round(rng.normal(0, scales)).astype(np.int32)
    return {
        "gauss1m": [(gauss1m.reshape(250, 4000), rows.reshape(250, 4000), gc_table)],  # 250 "channels"
        "y256": [(*_gaussian_latent((1, 256, 64, 64), g, gc), gc_table)],
        "sam2": [
            (*_gaussian_latent((1, 192, 64, 64), g, gc), gc_table),
            (_sample(eb_table, z_idx.ravel(), rng).reshape(z_idx.shape), z_idx, eb_table),
        ],
        # every scale-table row equally often, up to scale 256: ~8 bits/symbol, and the rows' hot bins
        # no longer fit in L2 (the slowest case for a table-driven coder)
        "wide": [(_sample(gc_table, wide_idx.ravel(), rng).reshape(wide_idx.shape), wide_idx, gc_table)],
    }


class CompressAIDirect:
    """compressai.ans used as GaussianConditional.compress uses it, table lists built once."""

    def __init__(self):
        self._lists = {}

    def lists(self, table):
        key = id(table)
        if key not in self._lists:
            self._lists[key] = (table.cdf.tolist(), table.cdf_length.tolist(), table.offset.tolist())
        return self._lists[key]

    def encode(self, symbols, indexes, table):
        from compressai import ans

        return ans.RansEncoder().encode_with_indexes(
            symbols.ravel().tolist(), indexes.ravel().tolist(), *self.lists(table)
        )

    def decode(self, data, indexes, table):
        from compressai import ans

        return ans.RansDecoder().decode_with_indexes(data, indexes.ravel().tolist(), *self.lists(table))


COMPRESSAI = CompressAIDirect()
WORKLOADS = ["gauss1m", "y256", "sam2", "wide"]
# name -> (coder, groups, threads)
VARIANTS = {
    "native": ("native", 1, 1),
    "native2": ("native2", 1, 1),
    "native G=4, 1 thread": ("native", 4, 1),
    "native G=4, 2 threads": ("native", 4, 2),
    # finer work units: the threads take substreams dynamically, so with 16 a thread that the hypervisor
    # pauses for a while leaves its remaining substreams to the other one (with 4, the slower thread sets
    # the time); 12 more substreams cost ~12 × 36 bytes of final states and lengths per latent
    "native G=16, 1 thread": ("native", 16, 1),
    "native G=16, 2 threads": ("native", 16, 2),
    "constriction": ("constriction", 1, None),
    "compressai": ("compressai-direct", 1, None),
}


def _encode(parts, coder, groups, threads):
    if coder == "compressai-direct":
        return [COMPRESSAI.encode(s, i, t) for s, i, t in parts]
    c = get_coder(coder)
    return [
        encode_substreams(
            c, s, i, t, split_channels(s.shape[0], groups) if s.ndim > 1 else [(0, s.shape[0])], threads
        )
        for s, i, t in parts
    ]


def _decode(streams, parts, coder, groups, threads):
    if coder == "compressai-direct":
        return [
            np.asarray(COMPRESSAI.decode(d, i, t), np.int32).reshape(s.shape)
            for d, (s, i, t) in zip(streams, parts, strict=True)
        ]
    c = get_coder(coder)
    return [
        decode_substreams(c, d, i, t, split_channels(s.shape[0], groups), threads)
        for d, (s, i, t) in zip(streams, parts, strict=True)
    ]


def _cpu_timed(fn, cpu: list):
    def run(*args):
        start = time.process_time()
        out = fn(*args)
        cpu.append(time.process_time() - start)
        return out

    return run


def _record(benchmark, workload, name, op, parts, cpu, nbytes):
    n = sum(s.size for s, _, _ in parts)
    median = benchmark.stats.stats.median
    cpu_median = float(np.median(cpu))
    ROWS[(workload, name, op)] = {"n": n, "wall": median, "cpu": cpu_median, "bytes": nbytes}
    benchmark.extra_info.update(
        symbols=n,
        bytes=nbytes,
        cpu_median_s=cpu_median,
        msym_per_s_per_core=n / cpu_median / 1e6,
        msym_per_s_wall=n / median / 1e6,
    )


def _rounds(coder):
    return 9 if coder.startswith("native") else 3


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("workload", WORKLOADS)
def test_encode(benchmark, workloads, workload, name):
    coder, groups, threads = VARIANTS[name]
    parts, cpu = workloads[workload], []
    streams = benchmark.pedantic(
        _cpu_timed(_encode, cpu), args=(parts, coder, groups, threads), rounds=_rounds(coder), warmup_rounds=1
    )
    flat = [b for s in streams for b in (s if isinstance(s, list) else [s])]
    _record(benchmark, workload, name, "encode", parts, cpu, sum(map(len, flat)))


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("workload", WORKLOADS)
def test_decode(benchmark, workloads, workload, name):
    coder, groups, threads = VARIANTS[name]
    parts, cpu = workloads[workload], []
    streams = _encode(parts, coder, groups, threads)
    decoded = benchmark.pedantic(
        _cpu_timed(_decode, cpu),
        args=(streams, parts, coder, groups, threads),
        rounds=_rounds(coder),
        warmup_rounds=1,
    )
    for got, (s, _, _) in zip(decoded, parts, strict=True):
        assert np.array_equal(got, s)
    flat = [b for s in streams for b in (s if isinstance(s, list) else [s])]
    _record(benchmark, workload, name, "decode", parts, cpu, sum(map(len, flat)))


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    # One torch thread: ConstrictionCoder's torch.sort would otherwise run OpenMP on both cores, which
    # on a shared machine mostly waits for the busy one (measured: 164 ms instead of ~15 ms), and
    # every other figure here is per core.
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(torch_threads)
    if not ROWS:
        return
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():  # module teardown output is captured otherwise
        for line in summary_lines():
            print(line)


def summary_lines() -> list[str]:
    out = [
        "",
        "| workload | coder | op | wall median ms | M sym/s (wall) | M sym/s per core (CPU) | "
        "bytes | native speed-up (wall) |",
    ]
    out.append("|---|---|---|---|---|---|---|---|")
    for (workload, name, op), r in ROWS.items():
        ref = ROWS.get((workload, "native", op))
        speedup = f"{r['wall'] / ref['wall']:.1f}×" if ref else ""
        out.append(
            f"| {workload} | {name} | {op} | {r['wall'] * 1e3:.2f} | {r['n'] / r['wall'] / 1e6:.1f} | "
            f"{r['n'] / r['cpu'] / 1e6:.1f} | {r['bytes']} | {speedup} |"
        )
    for workload in WORKLOADS:
        ratios = []
        for op in ("encode", "decode"):
            native_row, reference = (
                ROWS.get((workload, "native", op)),
                ROWS.get((workload, "constriction", op)),
            )
            if native_row and reference:
                ratios.append(
                    f"{op} {reference['wall'] / native_row['wall']:.1f}× (wall), "
                    f"{reference['cpu'] / native_row['cpu']:.1f}× (CPU)"
                )
        if ratios:
            out.append(f"{workload}: native vs constriction: " + "; ".join(ratios))
        encode, decode = ROWS.get((workload, "native", "encode")), ROWS.get((workload, "native", "decode"))
        if encode and decode:
            out.append(
                f"{workload}: native encode / decode speed = {decode['cpu'] / encode['cpu']:.2f}× (CPU)"
            )
        for op in ("encode", "decode"):
            for groups in (4, 16):
                one = ROWS.get((workload, f"native G={groups}, 1 thread", op))
                two = ROWS.get((workload, f"native G={groups}, 2 threads", op))
                if one and two:
                    out.append(
                        f"{workload} {op}: 2 threads vs 1 on {groups} substreams = "
                        f"{one['wall'] / two['wall']:.2f}× (wall)"
                    )
    return out
