"""The entropy coders over one `CdfTable`, and their registry `CODERS` (`codec.registry.Registry`).

Here: constriction's ANS and CompressAI's rANS; `native.py` adds featcodec's own interleaved rANS in
two substream formats (`native`, `native2`). Every coder is lossless for every int32 symbol: values
outside a row's bins take the escape bin and are carried separately (CompressAI and native: its bypass
coding; constriction: a raw int32 list, see docs/bitstream.md), so the coder never constrains what the
model quantises. `zstd` (the uniform codec's) is no `EntropyCoder`: it codes bytes, not table rows.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from bisect import bisect_right

import numpy as np
import torch

from codec.bitstream import BitstreamError
from codec.registry import Registry

from .tables import CdfTable

RANS_SYMBOL_LIMIT = 1 << 27


def _check_inputs(symbols: np.ndarray | None, indexes: np.ndarray, table: CdfTable) -> None:
    if indexes.ndim != 1 or indexes.dtype != np.int32:
        raise ValueError(f"indexes must be a 1-D int32 array, got {indexes.dtype} {indexes.shape}")
    if symbols is not None and (symbols.shape != indexes.shape or symbols.dtype != np.int32):
        raise ValueError(f"symbols must be int32 of indexes' shape, got {symbols.dtype} {symbols.shape}")
    if indexes.size and (int(indexes.min()) < 0 or int(indexes.max()) >= table.size):
        raise ValueError(f"indexes outside the CDF table's {table.size} rows")


class EntropyCoder(ABC):
    """Codes int32 symbols, each with the CDF-table row given by its index."""

    name: str

    @abstractmethod
    def encode(self, symbols: np.ndarray, indexes: np.ndarray, table: CdfTable) -> bytes: ...

    @abstractmethod
    def decode(self, data: bytes, indexes: np.ndarray, table: CdfTable) -> np.ndarray:
        """Inverse of encode; raises BitstreamError where the data cannot be what encode wrote."""


CODERS: Registry[type[EntropyCoder]] = Registry("entropy coder", attribute="name")
register_coder = CODERS.register  # @register_coder("constriction") on the class; sets its `name`


@register_coder("constriction")
class ConstrictionCoder(EntropyCoder):
    """constriction's ANS stack (Bamler 2022), one fixed Categorical per table row.

    Symbols are visited grouped by table row (a stable sort of the indexes, which the decoder
    knows too), so each row is one vectorised `encode_reverse` / `decode` call over a contiguous
    array: no per-symbol Python, and a table lookup per symbol instead of a Gaussian CDF.
    Escaped symbols follow the regular ones in decode order (in row-grouped order), each as two
    uniform 16-bit halves of its zigzag code. The substream is the coder's u32 words, little-endian; nothing
    else.
    """

    def __init__(self) -> None:
        self._models: dict[tuple[int, int], object] = {}
        self._lock = threading.Lock()

    def _model(self, table: CdfTable, digest: int, k: int):
        key = (digest, k)
        model = self._models.get(key)
        if model is None:
            import constriction

            # The table's probabilities are exact dyadics, so constriction's (deterministic)
            # requantisation gives the same model on every machine.
            model = constriction.stream.model.Categorical(table.probabilities(k), perfect=False)
            with self._lock:
                self._models[key] = model
        return model

    @staticmethod
    def _order(indexes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Stable sort of positions by table row (torch's radix-style sort of small ints is ~2× numpy's)."""
        key = torch.from_numpy(indexes).to(torch.int16 if size < (1 << 15) else torch.int32)
        return torch.sort(key, stable=True).indices.numpy(), np.bincount(indexes, minlength=size)

    def encode(self, symbols: np.ndarray, indexes: np.ndarray, table: CdfTable) -> bytes:
        import constriction

        _check_inputs(symbols, indexes, table)
        order, counts = self._order(indexes, table.size)
        grouped = symbols[order]
        ends = np.cumsum(counts)
        rows = np.flatnonzero(counts)
        digest = table.digest()
        segments, escaped = [], []
        for k in rows:  # per row: scalar bounds, no per-element table gathers
            seg = grouped[ends[k] - counts[k] : ends[k]]
            low, escape = int(table.offset[k]), int(table.escape[k])
            mask = (seg < low) | (seg > low + escape - 1)  # compare before subtracting: no int32 overflow
            values = seg - np.int32(low)
            if mask.any():
                escaped.append(seg[mask])
                values[mask] = escape
            segments.append(values)
        coder = constriction.stream.stack.AnsCoder()
        if escaped:  # a stack: what is decoded last is encoded first
            coder.encode_reverse(_zigzag_halves(np.concatenate(escaped)), _UNIFORM16)
        for k, values in zip(rows[::-1], segments[::-1], strict=True):
            coder.encode_reverse(values, self._model(table, digest, int(k)))
        return coder.get_compressed().astype("<u4", copy=False).tobytes()

    def decode(self, data: bytes, indexes: np.ndarray, table: CdfTable) -> np.ndarray:
        import constriction

        _check_inputs(None, indexes, table)
        if len(data) % 4:
            raise BitstreamError("constriction substream is not a whole number of 32-bit words")
        words = np.frombuffer(data, "<u4").astype(np.uint32)
        order, counts = self._order(indexes, table.size)
        ends = np.cumsum(counts)
        digest = table.digest()
        grouped = np.empty(indexes.size, np.int32)
        masks = []
        try:
            coder = constriction.stream.stack.AnsCoder(words)
            for k in np.flatnonzero(counts):
                seg = grouped[ends[k] - counts[k] : ends[k]]
                seg[:] = coder.decode(self._model(table, digest, int(k)), int(counts[k]))
                mask = seg == table.escape[k]
                seg += table.offset[k]
                if mask.any():
                    masks.append((seg, mask))
            n_escaped = sum(int(m.sum()) for _, m in masks)
            halves = coder.decode(_UNIFORM16, 2 * n_escaped) if n_escaped else None
            leftover = not coder.is_empty()
        except (ValueError, RuntimeError, AssertionError, OverflowError) as e:
            raise BitstreamError(f"constriction substream does not decode ({e})") from None
        if leftover:
            raise BitstreamError("constriction substream: data left over after the last symbol")
        if halves is not None:
            values, start = _from_zigzag_halves(halves), 0
            for seg, mask in masks:
                n = int(mask.sum())
                seg[mask] = values[start : start + n]
                start += n
        symbols = np.empty_like(grouped)
        symbols[order] = grouped
        return symbols


def _zigzag_halves(values: np.ndarray) -> np.ndarray:
    """int32 → zigzag u32 → [hi16, lo16] pairs as int32 symbols of a 16-bit uniform model."""
    v = values.astype(np.int64)
    u = ((v << 1) ^ (v >> 63)) & 0xFFFFFFFF
    return np.stack([u >> 16, u & 0xFFFF], axis=1).reshape(-1).astype(np.int32)


def _from_zigzag_halves(halves: np.ndarray) -> np.ndarray:
    pairs = halves.astype(np.int64).reshape(-1, 2)
    u = (pairs[:, 0] << 16) | pairs[:, 1]
    return ((u >> 1) ^ -(u & 1)).astype(np.int32)


def _uniform16():
    import constriction

    return constriction.stream.model.Uniform(1 << 16)


@register_coder("compressai")
class CompressAICoder(EntropyCoder):
    """CompressAI's rANS (`compressai.ans`, Giesen's rans64, 32-bit words) with the same tables.

    Encoding calls the library where its fixed output buffer (one u32 word per symbol) provably holds
    the message, and `rans64_encode` (the same bytes) where it might not: the library's buffer overflows
    on tiny or escape-heavy substreams. Decoding always uses `rans64_decode`, a bounded reader of the
    same format: the library's decoder has no bounds checks, so a crafted substream makes it read past
    its end (docs/bitstream.md, "coder = compressai").
    """

    def __init__(self) -> None:
        self._tables: dict[int, tuple[list, list, list]] = {}

    def _lists(self, table: CdfTable) -> tuple[list, list, list]:
        digest = table.digest()
        lists = self._tables.get(digest)
        if lists is None:
            rows = [row[: int(n)] for row, n in zip(table.cdf.tolist(), table.cdf_length, strict=True)]
            lists = (rows, table.cdf_length.tolist(), table.offset.tolist())
            self._tables[digest] = lists
        return lists

    def encode(self, symbols: np.ndarray, indexes: np.ndarray, table: CdfTable) -> bytes:
        from compressai import ans

        _check_inputs(symbols, indexes, table)
        if symbols.size == 0:  # rans64 crashes on an empty message
            return b""
        if int(np.abs(symbols.astype(np.int64)).max()) >= RANS_SYMBOL_LIMIT:
            # rans64's bypass coder loops forever on such values (measured with compressai 1.2.8).
            raise ValueError(
                f"compressai rANS cannot code symbols with |s| >= 2**27; got {int(np.abs(symbols).max())}"
            )
        if not _fits_rans64_buffer(symbols, indexes, table):
            return rans64_encode(symbols.tolist(), indexes.tolist(), *self._lists(table))
        return ans.RansEncoder().encode_with_indexes(symbols.tolist(), indexes.tolist(), *self._lists(table))

    def decode(self, data: bytes, indexes: np.ndarray, table: CdfTable) -> np.ndarray:
        _check_inputs(None, indexes, table)
        if indexes.size == 0:
            if data:
                raise BitstreamError("compressai rANS substream: data for an empty message")
            return np.zeros(0, np.int32)
        return np.asarray(rans64_decode(data, indexes.tolist(), *self._lists(table)), dtype=np.int32)


RANS64_L = 1 << 31  # rans64's lower state bound; states live in [L, 2**63)
_BYPASS_BITS = 4


def _bypass_chunks(raw: int) -> int:
    return (raw.bit_length() + _BYPASS_BITS - 1) // _BYPASS_BITS


def _fits_rans64_buffer(symbols: np.ndarray, indexes: np.ndarray, table: CdfTable) -> bool:
    """Whether compressai's encoder, whose output buffer is one u32 word per symbol, cannot overflow it.

    Each emitted word takes 32 bits of the state, which grows by at most log2(2**16 / freq) + 2**-15 bits
    per coded symbol and 4 bits per bypass chunk; the flush adds 2 words (docs/bitstream.md)."""
    escapes = int(
        ((symbols < table.offset[indexes]) | (symbols >= table.offset[indexes] + table.escape[indexes])).sum()
    )
    steps = symbols.size + 9 * escapes  # puts: one per symbol, at most 1 + 8 more per escape
    bits = table.ideal_bits(symbols, indexes)
    return (bits + steps * 1e-4) / 32 + 3 <= symbols.size


def rans64_encode(symbols: list, indexes: list, cdfs: list, lengths: list, offsets: list) -> bytes:
    """compressai's `RansEncoder.encode_with_indexes`, byte for byte, without its fixed-size buffer.

    Written by hand because the library's buffer overflows on short messages (docs/bitstream.md)."""
    words: list[int] = []  # emitted backwards; reversed at the end
    x = RANS64_L

    def put(x: int, start: int, freq: int, bits: int) -> int:
        if x >= ((RANS64_L >> bits) << 32) * freq:
            words.append(x & 0xFFFFFFFF)
            x >>= 32
        return ((x // freq) << bits) + x % freq + start

    for i in range(len(symbols) - 1, -1, -1):
        k = indexes[i]
        cdf, top = cdfs[k], lengths[k] - 2
        value = symbols[i] - offsets[k]
        if value < 0 or value >= top:
            raw = -2 * value - 1 if value < 0 else 2 * (value - top)
            n = _bypass_chunks(raw)
            for j in range(n - 1, -1, -1):
                x = put(x, (raw >> (j * _BYPASS_BITS)) & 15, 1, _BYPASS_BITS)
            while n >= 15:
                x, n = put(x, 15, 1, _BYPASS_BITS), n - 15
            x = put(x, n, 1, _BYPASS_BITS)
            value = top
        x = put(x, cdf[value], cdf[value + 1] - cdf[value], 16)
    words += [x >> 32, x & 0xFFFFFFFF]
    return np.asarray(words[::-1], dtype="<u4").tobytes()


def rans64_decode(data: bytes, indexes: list, cdfs: list, lengths: list, offsets: list) -> list[int]:
    """Decode a compressai rANS substream with every read bounded; BitstreamError where it cannot be
    what the encoder wrote (too short, reads past the end, bytes or state left over, bad escape).

    Written by hand because compressai's decoder reads past the end of a crafted substream."""
    if len(data) % 4 or len(data) < 8:
        raise BitstreamError(f"compressai rANS substream of {len(data)} bytes is not 2 or more 32-bit words")
    words = np.frombuffer(data, "<u4").tolist()
    end, pos = len(words), 2
    x = words[0] | words[1] << 32
    out = []
    append, search = out.append, bisect_right
    try:
        for k in indexes:
            cdf = cdfs[k]
            slot = x & 0xFFFF
            s = search(cdf, slot) - 1
            start = cdf[s]
            x = (cdf[s + 1] - start) * (x >> 16) + slot - start
            if x < RANS64_L:
                x = x << 32 | words[pos]
                pos += 1
            top = lengths[k] - 2
            if s == top:  # escape: a count, then that many 4-bit chunks, least significant first
                n = x & 15
                x >>= 4
                if x < RANS64_L:
                    x = x << 32 | words[pos]
                    pos += 1
                if n > 8:  # an int32 needs at most 8 chunks; compressai's encoder never writes more
                    raise BitstreamError(f"compressai rANS substream: escape with {n} bypass chunks")
                raw = 0
                for j in range(n):
                    raw |= (x & 15) << (4 * j)
                    x >>= 4
                    if x < RANS64_L:
                        x = x << 32 | words[pos]
                        pos += 1
                s = -(raw >> 1) - 1 if raw & 1 else (raw >> 1) + top
            append(s + offsets[k])
    except IndexError:
        raise BitstreamError("compressai rANS substream is truncated (read past its end)") from None
    if pos != end or x != RANS64_L:
        raise BitstreamError(
            "compressai rANS substream is corrupted or has bytes left over after its last symbol"
        )
    if out and not -(1 << 31) <= min(out) <= max(out) < 1 << 31:
        raise BitstreamError("compressai rANS substream decodes to a value outside int32")
    return out


_UNIFORM16 = _uniform16()

_INSTANCES: dict[str, EntropyCoder] = {}


def get_coder(name: str) -> EntropyCoder:
    """A shared coder instance (it caches per-table models) by name."""
    if name not in _INSTANCES:
        _INSTANCES[name] = CODERS.get(name)()
    return _INSTANCES[name]
