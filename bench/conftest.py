"""Shared benchmark options and the kernel summary (speed-ups and fractions of copy bandwidth).

`--bench-size`: `sam2` (default: the SAM2 FPN shapes 1×256×64×64 and 1×256×256×256, plus a
GPU-filling 8×256×256×256 on CUDA), `small` (1×256×64×64 only) or `tiny` (1×8×16×16, a smoke run).
`--bench-threads N`: CPU threads for the kernel benchmarks (default: torch's default).
"""

from __future__ import annotations

import pytest

BENCH_SIZES = ("sam2", "small", "tiny")

# (device, shape name, implementation) -> median seconds, filled by bench/test_bench_ops.py
KERNEL_MEDIANS: dict[tuple[str, str, str], float] = {}
# (step, device) -> median seconds (or seconds per training step), filled by bench/test_bench_gpu_steps.py
STEP_MEDIANS: dict[tuple[str, str], float] = {}


def pytest_addoption(parser):
    parser.addoption(
        "--bench-size",
        choices=BENCH_SIZES,
        default="sam2",
        help="tensor sizes for the kernel benchmarks (sam2: the SAM2 FPN levels; tiny: smoke run)",
    )
    parser.addoption("--bench-threads", type=int, default=0, help="CPU threads for the kernel benchmarks")
    parser.addoption(
        "--bench-device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="device of bench/test_bench_encode.py (cuda: SAM2.1-tiny at 1024 px, as the issue's GPU target)",
    )


@pytest.fixture
def bench_threads(request):
    """Sets torch's CPU thread count for one benchmark (OpenMP scaling; noisy machines)."""
    import torch

    wanted = request.config.getoption("--bench-threads")
    before = torch.get_num_threads()
    if wanted:
        torch.set_num_threads(wanted)
    yield torch.get_num_threads()
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def bench_size(request) -> str:
    return request.config.getoption("--bench-size")


def kernel_summary_lines(medians: dict[tuple[str, str, str], float]) -> list[str]:
    """Markdown rows: median per implementation, speed-up over CompressAI, fraction of copy bandwidth."""
    from bench.test_bench_ops import bytes_moved

    lines = []
    for device, shape_name in sorted({(d, s) for d, s, _ in medians}):
        row = {impl: t for (d, s, impl), t in medians.items() if (d, s) == (device, shape_name)}
        copy = row.get("copy")
        for impl, t in sorted(row.items(), key=lambda kv: kv[1]):
            speedup = row["compressai"] / t if "compressai" in row else float("nan")
            gbps = bytes_moved(shape_name, impl) / t / 1e9
            of_copy = copy / t if copy else float("nan")
            lines.append(
                f"| {device} | {shape_name} | {impl} | {t * 1e3:.3f} | {speedup:.1f}× | {gbps:.1f} | "
                f"{of_copy:.0%} |"
            )
    return lines


def step_summary_lines(rows: dict[tuple[str, str], float]) -> list[str]:
    """Markdown rows for bench/RESULTS.md: each step's median on CUDA and CPU, and their ratio."""
    lines = ["| step | CUDA | CPU | CPU / CUDA |", "|---|---|---|---|"]
    for what in dict.fromkeys(w for w, _ in rows):
        gpu, cpu = rows.get((what, "cuda")), rows.get((what, "cpu"))
        fmt = lambda t: "–" if t is None else f"{t * 1e3:.1f} ms"  # noqa: E731
        ratio = f"{cpu / gpu:.1f}×" if gpu and cpu else "–"
        lines.append(f"| {what} | {fmt(gpu)} | {fmt(cpu)} | {ratio} |")
    for device in ("cuda", "cpu"):
        enc = next(
            (
                t
                for (w, d), t in rows.items()
                if d == device and w.startswith("encoder forward sam2.1-hiera-tiny")
            ),
            None,
        )
        for (what, d), t in rows.items():
            if what.startswith("codec encode") and d == device and enc:
                lines.append(
                    f"codec share of `featcodec encode` on {device}, {what.removeprefix('codec encode ')}: "
                    f"{t * 1e3:.1f} ms = {100 * t / enc:.0f} % of the SAM2.1-tiny forward ({enc * 1e3:.1f} "
                    "ms)"
                )
    return lines


def pytest_terminal_summary(terminalreporter):
    if STEP_MEDIANS:
        terminalreporter.section("featcodec study steps (median; CUDA and CPU side by side in this run)")
        for line in step_summary_lines(STEP_MEDIANS):
            terminalreporter.line(line)
    if not KERNEL_MEDIANS:
        return
    tr = terminalreporter
    tr.section("featcodec kernels (median; copy fraction = copy time / op time for the same bytes)")
    tr.line("| device | shape | impl | median ms | vs CompressAI | GB/s moved | of copy bw |")
    tr.line("|---|---|---|---|---|---|---|")
    for line in kernel_summary_lines(KERNEL_MEDIANS):
        tr.line(line)
