"""`python -m bench` = `featcodec` (e.g. under torchrun: `torchrun
--nproc_per_node 2 -m bench train-neck ...`)."""

from bench.cli import main

main(prog_name="featcodec")
