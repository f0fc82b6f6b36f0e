"""Device selection shared by every command that runs a model (`--device cpu|cuda|cuda:N|auto`)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA without a device is an error, not a silent CPU run."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA device is available (use --device cpu or auto)")
    return device


def to_host(tensors: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Tensors as host numpy arrays, with one synchronisation for all of them.

    From a GPU, every tensor is copied asynchronously into pinned memory and the stream is synchronised once
    (instead of one blocking copy, and one synchronisation, per tensor). The arrays keep their dtypes: sending
    int16 symbols and uint8 scale indexes and widening them on the host was measured slower on an H200 for a
    SAM2 1024 px latent (bench/RESULTS.md, issue 21). CPU tensors are returned as views, uncopied."""
    if all(t.device.type == "cpu" for t in tensors.values()):
        return {k: t.detach().numpy() for k, t in tensors.items()}
    staged = {}
    for name, t in tensors.items():
        t = t.detach()
        staged[name] = torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True)
    torch.cuda.current_stream(next(iter(tensors.values())).device).synchronize()
    return {name: buf.numpy() for name, buf in staged.items()}
