"""Seeded batching: which items batch `step` of a run holds, as a function of (seed, step) alone.

Used by every training loop (codecs, necks), so that a run resumed at step k draws exactly the batches
an uninterrupted run would have, with no sampler state to save.
"""

from __future__ import annotations

import math

import torch


def batch_indices(
    step: int, batch_size: int, n: int, seed: int, block: int | None = None, window: int = 1
) -> list[int]:
    """Indices of batch `step`: consecutive slices of epoch-wise permutations seeded by (seed, epoch); with
    `block`, of `buffered_order` (items stored in blocks, e.g. the rows of one
    shard, read a window at a time)."""
    if n <= 0:
        raise ValueError("cannot draw batches from an empty set")
    out: list[int] = []
    perms: dict[int, torch.Tensor] = {}
    for pos in range(step * batch_size, (step + 1) * batch_size):
        epoch, k = divmod(pos, n)
        if epoch not in perms:
            generator = torch.Generator().manual_seed(seed * 100003 + epoch)
            perms[epoch] = (
                torch.randperm(n, generator=generator)
                if block is None
                else buffered_order(n, block, window, generator)
            )
        out.append(int(perms[epoch][k]))
    return out


def buffered_order(n: int, block: int, window: int, generator: torch.Generator) -> torch.Tensor:
    """One epoch's order of `n` items stored in blocks of `block` consecutive ones: the blocks in random
    order, taken `window` at a time into a shuffle buffer whose items are drawn in random order — so a reader
    goes
    through whole blocks (shards) sequentially, each once per epoch, holding at most `window` of them."""
    blocks = torch.randperm(math.ceil(n / block), generator=generator).tolist()
    out = []
    for w in range(0, len(blocks), window):
        items = torch.cat([torch.arange(b * block, min((b + 1) * block, n)) for b in blocks[w : w + window]])
        out.append(items[torch.randperm(len(items), generator=generator)])
    return torch.cat(out)
