"""train-neck under torchrun: 2 gloo processes on CPU train the same neck as one process."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from probes.training import torchrun_command
from tests.probes.fixtures import ON_CPU, TINY_NECK, cli_flags

ARGS = [
    "train-neck",
    *"--task depth --head builtin:depth --data synthetic:depth --split train --limit 8".split(),
    *cli_flags({**TINY_NECK, "neck_dim": 16, "neck_heads": 2, "batch_size": 4}),
    *"--steps 3 --lr 1e-3".split(),
    *ON_CPU,
]
# Each rank scores half of every batch; DDP averages the two half-batch gradients, which equals the
# full batch's gradient up to float summation order: a few ulps per step, amplified a little by Adam.
TOLERANCE = 1e-4


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}


def test_two_process_gloo_run_matches_one_process(tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    subprocess.run(
        [sys.executable, "-m", "bench", *ARGS, "-o", str(single)], check=True, env=_env(), capture_output=True
    )
    launched = subprocess.run(
        torchrun_command(2, "bench", *ARGS, "-o", str(ddp)),
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    a, b = load_file(str(single / "weights.safetensors")), load_file(str(ddp / "weights.safetensors"))
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < TOLERANCE, worst
    # and the two runs did not just both stay at the initial weights
    import json

    losses = json.loads((ddp / "config.json").read_text())["training"]["losses"]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(r["loss"])) for r in losses)
