"""A neck step on several devices: the step's process launches torchrun, whose ranks run this module.

    steps._neck (resources.neck.gpus = G > 1) ─► python -m torch.distributed.run --standalone
    --nproc_per_node G
                                                  -m bench.sweep.distributed OPTIONS.json NECK_DIR
                                               ─► each rank: train_neck(options, NECK_DIR, resume=True) under
                                               DDP
                                                  (probes.training.loop: interleaved shards of every seeded
                                                  global batch; rank 0 writes
                                                  the checkpoint and the neck directory)

On CUDA each rank takes the GPU of its LOCAL_RANK among those the step was given (Ray sets
CUDA_VISIBLE_DEVICES for a task asking for G GPUs); on the CPU the ranks are G gloo processes.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    from probes.training import TrainNeckOptions, train_neck

    options_file, out_dir = argv if argv is not None else sys.argv[1:]
    options = json.loads(Path(options_file).read_text())
    if options["device"].startswith("cuda"):
        options["device"] = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    train_neck(TrainNeckOptions(**options), out_dir, resume=True)


if __name__ == "__main__":
    main()
