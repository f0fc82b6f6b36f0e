"""featcodec's own coder: interleaved 32-bit rANS in C++ (csrc/rans_coder.cpp), `coder = "native2"` (new
streams: 1, 2, 4 or 8 lanes chosen from the substream's coded size, in a lane byte) and `coder = "native"`
(substream format 1: always 8 lanes; what streams written before format 2 say, still decoded).

Written by hand because neither library coder can use several cores: constriction holds the GIL for
the whole call, and CompressAI's rans64 converts every symbol through Python lists. This one reads
the numpy int32 buffers directly, releases the GIL, codes the substreams of one call on std::threads
and checks every byte it reads (a malformed stream raises BitstreamError, never reads out of bounds).
Same CdfTable, escape bin and bypass idea as CompressAI; the exact format is in docs/bitstream.md.

    coder = get_coder("native2")
    strings = coder.encode_many([(symbols, indexes), ...], table, threads=2)
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence

import numpy as np

from codec.bitstream import BitstreamError

from .coders import EntropyCoder, register_coder
from .tables import CdfTable

THREADS_ENV = "FEATCODEC_RANS_THREADS"
STATES = 8  # interleaved rANS states (csrc/rans.h kWays); a substream starts with min(n, 8) u32 states
BYTES_PER_LANE = 800  # format 2 keeps W lanes when the payload after the states is >= 800·W bytes (rans.h)


def _load():
    try:
        import torch  # noqa: F401  (codec._C links against libtorch)

        from codec import _C
    except ImportError as e:
        return None, f"codec._C could not be imported ({e})"
    if not hasattr(_C, "rans_encode"):
        return (
            None,
            "codec._C was built without the rANS coder (rebuild: python setup.py build_ext --inplace)",
        )
    return _C, None


_C, _LOAD_ERROR = _load()


def native_available() -> bool:
    return _C is not None


def default_coder() -> str:
    """The coder new streams use: native2 where the extension is built, else constriction."""
    return "native2" if native_available() else "constriction"


def default_threads() -> int:
    """$FEATCODEC_RANS_THREADS, else the CPUs this process may use."""
    value = os.environ.get(THREADS_ENV)
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise ValueError(f"{THREADS_ENV}={value!r} is not an integer") from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _int32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int32).reshape(-1)


@register_coder("native")
class NativeCoder(EntropyCoder):
    """Substream format 1: 8 lanes always (docs/bitstream.md, `coder = "native"`)."""

    format = 1

    def __init__(self) -> None:
        if _C is None:
            raise RuntimeError(
                f"the native entropy coder is unavailable: {_LOAD_ERROR}; use --coder constriction "
                "(the default when the extension is not built)"
            )
        self._by_id: dict[int, tuple[weakref.ref, object]] = {}
        self._by_digest: dict[int, object] = {}
        self._lock = threading.Lock()

    def _table(self, table: CdfTable):
        """The prepared C++ table: by object identity first (no hashing), else by content digest."""
        hit = self._by_id.get(id(table))
        if hit is not None and hit[0]() is table:
            return hit[1]
        digest = table.digest()
        prepared = self._by_digest.get((digest, table.precision))
        if prepared is None:
            prepared = _C.rans_table(
                np.ascontiguousarray(table.cdf, dtype=np.int32),
                _int32(table.cdf_length),
                _int32(table.offset),
                int(table.precision),
            )
        with self._lock:
            self._by_digest[(digest, table.precision)] = prepared
            key = id(table)
            self._by_id[key] = (weakref.ref(table, lambda _, key=key: self._by_id.pop(key, None)), prepared)
        return prepared

    def encode(self, symbols: np.ndarray, indexes: np.ndarray, table: CdfTable) -> bytes:
        return self.encode_many([(symbols, indexes)], table, threads=1)[0]

    def decode(self, data: bytes, indexes: np.ndarray, table: CdfTable) -> np.ndarray:
        return self.decode_many([data], [indexes], table, threads=1)[0]

    def encode_many(
        self, items: Sequence[tuple[np.ndarray, np.ndarray]], table: CdfTable, threads: int | None = None
    ) -> list[bytes]:
        """One substream per (symbols, indexes) pair, coded on up to `threads` threads (bytes do not
        depend on the thread count). Index bounds are checked in C++ (ValueError)."""
        for symbols, indexes in items:
            if symbols.shape != indexes.shape:
                raise ValueError(f"symbols {symbols.shape} and indexes {indexes.shape} differ in shape")
        return _C.rans_encode(
            self._table(table),
            [_int32(s) for s, _ in items],
            [_int32(i) for _, i in items],
            default_threads() if threads is None else int(threads),
            self.format,
        )

    def decode_many(
        self,
        strings: Sequence[bytes],
        indexes: Sequence[np.ndarray],
        table: CdfTable,
        threads: int | None = None,
    ) -> list[np.ndarray]:
        """Inverse of encode_many (flat int32 arrays); BitstreamError for any malformed substream."""
        flat = [_int32(i) for i in indexes]
        out = [np.empty(i.size, np.int32) for i in flat]
        error = _C.rans_decode(
            self._table(table),
            [bytes(s) for s in strings],
            flat,
            out,
            default_threads() if threads is None else int(threads),
            self.format,
        )
        if error is not None:
            raise BitstreamError(f"native rANS {error}")
        return out


@register_coder("native2")
class SizedNativeCoder(NativeCoder):
    """Substream format 2 (docs/bitstream.md, `coder = "native2"`): a lane byte, then 1, 2, 4 or 8 lanes
    chosen from the coded size, so a near-empty substream costs 5 bytes instead of 32 and the final states
    stay ≤ 0.5 % of larger ones."""

    format = 2
