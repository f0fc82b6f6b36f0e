"""Device selection shared by every command that runs a model (`--device cpu|cuda|cuda:N|auto`)."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA without a device is an error, not a silent CPU run."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA device is available (use --device cpu or auto)")
    return device
