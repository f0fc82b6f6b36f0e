"""Independent substreams: channel groups coded separately, optionally on threads.

Each group is its own coder state, so a stream decodes with any thread count; the group count is
recorded in the stream (as the substream names).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from codec.bitstream import BitstreamError

from .coders import EntropyCoder
from .tables import CdfTable


def split_channels(channels: int, groups: int) -> list[tuple[int, int]]:
    """Contiguous channel ranges [start, end) of `groups` near-equal groups."""
    groups = max(1, min(groups, channels))
    bounds = np.linspace(0, channels, groups + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _map(fn, items, threads: int | None):
    if threads is None or threads <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(fn, items))


def encode_substreams(
    coder: EntropyCoder, symbols: np.ndarray, indexes: np.ndarray, table: CdfTable,
    groups: Sequence[tuple[int, int]], threads: int | None = None,
) -> list[bytes]:
    """symbols / indexes: int32 [C, ...]; one substream per channel group."""
    if hasattr(coder, "encode_many"):  # the native coder runs the groups on its own threads, GIL released
        return coder.encode_many([(symbols[a:b], indexes[a:b]) for a, b in groups], table, threads)

    def one(group):
        a, b = group
        return coder.encode(symbols[a:b].reshape(-1), indexes[a:b].reshape(-1), table)

    return _map(one, list(groups), threads)


def decode_substreams(
    coder: EntropyCoder, strings: Sequence[bytes], indexes: np.ndarray, table: CdfTable,
    groups: Sequence[tuple[int, int]], threads: int | None = None,
) -> np.ndarray:
    if len(strings) != len(groups):
        raise BitstreamError(f"expected {len(groups)} substreams, found {len(strings)}")
    if hasattr(coder, "decode_many"):
        parts = coder.decode_many(strings, [indexes[a:b] for a, b in groups], table, threads)
        parts = [p.reshape(indexes[a:b].shape) for p, (a, b) in zip(parts, groups, strict=True)]
        return np.concatenate(parts, axis=0) if parts else np.empty_like(indexes)

    def one(args):
        data, (a, b) = args
        flat = np.ascontiguousarray(indexes[a:b]).reshape(-1)
        return coder.decode(data, flat, table).reshape(indexes[a:b].shape)

    parts = _map(one, list(zip(strings, groups, strict=True)), threads)
    return np.concatenate(parts, axis=0) if parts else np.empty_like(indexes)
