"""Seeded batching: which items batch `step` of a run holds, as a function of (seed, step) alone.

Used by every training loop (codecs, necks), so that a run resumed at step k draws exactly the batches
an uninterrupted run would have, with no sampler state to save.
"""

from __future__ import annotations

import torch


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> list[int]:
    """Indices of batch `step`: consecutive slices of epoch-wise permutations seeded by (seed, epoch)."""
    if n <= 0:
        raise ValueError("cannot draw batches from an empty set")
    out: list[int] = []
    perms: dict[int, torch.Tensor] = {}
    for pos in range(step * batch_size, (step + 1) * batch_size):
        epoch, k = divmod(pos, n)
        if epoch not in perms:
            perms[epoch] = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        out.append(int(perms[epoch][k]))
    return out
