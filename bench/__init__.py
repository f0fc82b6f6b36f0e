"""featcodec's orchestration layer: benchmarks (pytest-benchmark), the demo, sweeps and reports."""
