"""Independent substreams: channel groups coded separately, optionally on threads.

Each group is its own coder state, so a stream decodes with any thread count; the group count is
recorded in the stream (as the substream names).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

from codec.bitstream import BitstreamError

from .coders import EntropyCoder
from .tables import CdfTable

# Streams of container minor version 0 (1.0, 2.0) were split with float bounds; the decoder of such a
# stream sets this (codec.pipeline) so the codec's decompress splits as their encoder did.
_LEGACY_BOUNDS: ContextVar[bool] = ContextVar("legacy_group_bounds", default=False)


@contextmanager
def legacy_group_bounds(enabled: bool = True) -> Iterator[None]:
    token = _LEGACY_BOUNDS.set(enabled)
    try:
        yield
    finally:
        _LEGACY_BOUNDS.reset(token)


# groups=None ("auto"): one substream per this many latent symbols. 2^18 symbols take ~1 ms of native
# coding on one core, far above a thread's start-up, while each extra substream costs its final rANS
# states and a length in the header (a SAM2 1024 px y of 192×64×64 gets 3 groups: +~70 bytes).
SYMBOLS_PER_GROUP = 1 << 18
MAX_AUTO_GROUPS = 16


def auto_groups(channels: int, symbols: int) -> int:
    """The channel-group count `groups=None` means: ceil(symbols / SYMBOLS_PER_GROUP), at most 16 and at
    most `channels`. It depends on the latent's size only, never on the machine, so a stream's bytes do
    not depend on where it was encoded; the threads then code the groups in parallel."""
    return max(1, min(channels, MAX_AUTO_GROUPS, -(-symbols // SYMBOLS_PER_GROUP)))


def split_channels(channels: int, groups: int | None, symbols: int = 0) -> list[tuple[int, int]]:
    """Contiguous channel ranges [b_g, b_{g+1}) of `groups` near-equal groups (docs/bitstream.md, section 3):
    b_g = floor((2·g·M + G) / (2·G)), g·M/G rounded half up in exact integers. Inside
    `legacy_group_bounds()`: numpy's `linspace(0, M, G+1).round()`, what version x.0 streams used.
    groups=None: `auto_groups(channels, symbols)` (symbols: the latent's symbol count per item)."""
    if groups is None:
        groups = auto_groups(channels, symbols)
    groups = max(1, min(groups, channels))
    if _LEGACY_BOUNDS.get():
        bounds = np.linspace(0, channels, groups + 1).round().astype(int).tolist()
    else:
        bounds = [(2 * g * channels + groups) // (2 * groups) for g in range(groups + 1)]
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _map(fn, items, threads: int | None):
    if threads is None or threads <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(fn, items))


def encode_substreams(
    coder: EntropyCoder,
    symbols: np.ndarray,
    indexes: np.ndarray,
    table: CdfTable,
    groups: Sequence[tuple[int, int]],
    threads: int | None = None,
) -> list[bytes]:
    """symbols / indexes: int32 [C, ...]; one substream per channel group."""
    if hasattr(coder, "encode_many"):  # the native coder runs the groups on its own threads, GIL released
        return coder.encode_many([(symbols[a:b], indexes[a:b]) for a, b in groups], table, threads)

    def one(group):
        a, b = group
        return coder.encode(symbols[a:b].reshape(-1), indexes[a:b].reshape(-1), table)

    return _map(one, list(groups), threads)


def decode_substreams(
    coder: EntropyCoder,
    strings: Sequence[bytes],
    indexes: np.ndarray,
    table: CdfTable,
    groups: Sequence[tuple[int, int]],
    threads: int | None = None,
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
