"""A second `.fcb` reader written from docs/bitstream.md alone: it imports no featcodec module.

It parses both container versions, reads the CDF tables and the integer hyper-synthesis from a codec
directory (`config.json`, `weights.safetensors`), entropy-decodes every substream with each coder as the
document describes it (no coder library: native, compressai's rans64 and constriction's ANS by hand), and
returns the symbols with the three checksums recomputed — the conformance test
(test_conformance.py) compares them with the stream's own.

    symbols = read_symbols(stream_bytes, codec_dir)   # {"z": N×h×w, "y": M×gh×gw, "crc": {...}}
"""

from __future__ import annotations

import json
import struct
import zlib
from bisect import bisect_right
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file


class ReadError(Exception):
    pass


def _crc(*arrays) -> int:
    crc = 0
    for a in arrays:
        crc = zlib.crc32(np.ascontiguousarray(a, dtype="<i4").tobytes(), crc)
    return crc


# -- section 1 and 6: the two containers ---------------------------------------------------------------
def parse(data: bytes) -> dict:
    magic, major, minor = data[:4], data[4], data[5]
    if magic != b"\x89FCB":
        raise ReadError("magic")
    if major == 1:
        (size,) = struct.unpack_from("<I", data, 8)
        end = 12 + size
        if struct.unpack_from("<I", data, end)[0] != zlib.crc32(data[:end]):
            raise ReadError("header crc")
        header = json.loads(data[12:end])
        names = [s["name"] for s in header["substreams"]]
        lengths = [s["length"] for s in header["substreams"]]
        start = end + 4
        kind, coder, grid = header["codec"]["kind"], header["coder"], tuple(header["grid"])
        checksums = header["checksums"]
    elif major == 2:
        fields = struct.unpack_from("<BBBB8s8sHHIIIf", data, 6)
        flags, kind_code, coder_code, count, _, _, gh, gw, symbols, model, hyper, _ = fields
        kind = {1: "hyperprior", 2: "factorized"}[kind_code]
        coder = {1: "native", 2: "constriction", 3: "compressai", 4: "native2"}[coder_code]
        grid, pos, lengths = (gh, gw), 46, []
        for _ in range(count):
            value = shift = 0
            while True:
                byte = data[pos]
                pos += 1
                value |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            lengths.append(value)
        if flags & 1:
            pos += 2 + struct.unpack_from("<H", data, pos)[0]
        if struct.unpack_from("<I", data, pos)[0] != zlib.crc32(data[:pos]):
            raise ReadError("header crc")
        start = pos + 4
        names = (["z"] if kind == "hyperprior" else []) + [
            f"y.{g}" for g in range(count - (kind == "hyperprior"))
        ]
        checksums = {"symbols": symbols}
        if kind == "hyperprior":
            checksums.update(probability_model=model, hyper=hyper)
    else:
        raise ReadError("version")
    payload = data[start : start + sum(lengths)]
    if start + sum(lengths) + 4 != len(data) or struct.unpack_from("<I", data, len(data) - 4)[
        0
    ] != zlib.crc32(payload):
        raise ReadError("payload")
    offsets = np.cumsum([0, *lengths])
    subs = {n: payload[a:b] for n, a, b in zip(names, offsets[:-1], offsets[1:], strict=True)}
    return {
        "version": (major, minor),
        "kind": kind,
        "coder": coder,
        "grid": grid,
        "checksums": checksums,
        "substreams": subs,
    }


def group_bounds(m: int, g: int, minor: int) -> list[int]:
    """Section 3: channel-group bounds; minor 0 streams use numpy's float linspace rounded half to even."""
    if minor == 0:
        return [int(round(i * (m / g))) for i in range(g)] + [m]
    return [(2 * i * m + g) // (2 * g) for i in range(g + 1)]


# -- section 3: CDF tables and the three coders ----------------------------------------------------------
class Table:
    def __init__(self, weights: dict, prefix: str):
        self.cdf = weights[f"{prefix}._quantized_cdf"].astype(np.int64)
        self.length = weights[f"{prefix}._cdf_length"].reshape(-1).astype(np.int64)
        self.offset = weights[f"{prefix}._offset"].reshape(-1).astype(np.int64)

    def row(self, k: int) -> list[int]:
        return self.cdf[k, : self.length[k]].tolist()


def _unescape(raw: int, top: int) -> int:
    return -(raw + 1) // 2 if raw & 1 else raw // 2 + top


def decode_native(data: bytes, rows: np.ndarray, table: Table, ways: int = 8) -> np.ndarray:
    n = rows.size
    if n == 0:
        if data:
            raise ReadError("native: bytes for no symbols")
        return np.zeros(0, np.int64)
    lanes = min(n, ways)
    states = list(struct.unpack_from(f"<{lanes}I", data, 0))
    pos, out = 4 * lanes, np.empty(n, np.int64)

    def refill(x):
        nonlocal pos
        while x < 1 << 23:
            x = (x << 8) | data[pos]
            pos += 1
        return x

    for i in range(n):
        k, x = int(rows[i]), states[i % ways]
        cdf, top = table.row(k), int(table.length[k]) - 2
        slot = x & 0xFFFF
        v = bisect_right(cdf, slot) - 1
        x = refill((cdf[v + 1] - cdf[v]) * (x >> 16) + slot - cdf[v])
        if v == top:
            count, x = x & 15, refill(x >> 4)
            raw = 0
            for j in range(count):
                raw |= (x & 15) << (4 * j)
                x = refill(x >> 4)
            v = _unescape(raw, top)
        states[i % ways] = x
        out[i] = v + table.offset[k]
    if pos != len(data) or any(s != 1 << 23 for s in states):
        raise ReadError("native: state or bytes left")
    return out


def decode_native2(data: bytes, rows: np.ndarray, table: Table) -> np.ndarray:
    """'coder = native2': a lane byte log2(W), W in {1, 2, 4, 8}, then the native layout on W lanes."""
    if rows.size == 0:
        return decode_native(data, rows, table)
    if not data or data[0] > 3:
        raise ReadError("native2: lane byte")
    return decode_native(data[1:], rows, table, ways=1 << data[0])


def decode_compressai(data: bytes, rows: np.ndarray, table: Table) -> np.ndarray:
    """rans64 (docs: 'coder = compressai'): 64-bit state, u32 words, L = 2^31, escapes in 4-bit chunks."""
    words = struct.unpack(f"<{len(data) // 4}I", data)
    x, pos, out = words[0] | words[1] << 32, 2, np.empty(rows.size, np.int64)

    def take(x, bits):
        nonlocal pos
        value, x = x & ((1 << bits) - 1), x >> bits
        if x < 1 << 31:
            x = x << 32 | words[pos]
            pos += 1
        return value, x

    for i, k in enumerate(rows.tolist()):
        cdf, top = table.row(k), int(table.length[k]) - 2
        slot = x & 0xFFFF
        v = bisect_right(cdf, slot) - 1
        x = (cdf[v + 1] - cdf[v]) * (x >> 16) + slot - cdf[v]
        if x < 1 << 31:
            x = x << 32 | words[pos]
            pos += 1
        if v == top:
            count, x = take(x, 4)
            raw = 0
            for j in range(count):
                chunk, x = take(x, 4)
                raw |= chunk << (4 * j)
            v = _unescape(raw, top)
        out[i] = v + table.offset[k]
    if pos != len(words) or x != 1 << 31:
        raise ReadError("compressai: state or words left")
    return out


def _leaky_cdf(cdf16: list[int]) -> list[int]:
    """constriction's `Categorical(p, perfect=False)` of a 16-bit table row, as the doc states it: 24-bit left
    cumulatives floor(scale · Σ_{i<j} p_i) + j with scale = (2^24 − n) / Σp, all in float64, then 2^24."""
    probabilities = [(b - a) / 65536 for a, b in zip(cdf16[:-1], cdf16[1:], strict=True)]
    n, total = len(probabilities), 0.0
    for p in probabilities:
        total += p
    scale, cumulative, left = float((1 << 24) - n) / total, 0.0, []
    for j, p in enumerate(probabilities):
        left.append(int(cumulative * scale) + j)
        cumulative += p
    return left + [1 << 24]


def decode_constriction(data: bytes, rows: np.ndarray, table: Table) -> np.ndarray:
    """constriction's AnsCoder (u32 words, u64 state, 24-bit precision), read as the doc describes it."""
    words = list(struct.unpack(f"<{len(data) // 4}I", data))
    state = 0
    if words:  # the last word is the state's most significant one; it must not be 0
        if words[-1] == 0:
            raise ReadError("constriction: trailing zero word")
        state = words.pop()
        while words and state < 1 << 32:
            state = state << 32 | words.pop()

    def pop(left: list[int]) -> int:
        nonlocal state
        quantile = state & ((1 << 24) - 1)
        v = bisect_right(left, quantile) - 1
        state = (state >> 24) * (left[v + 1] - left[v]) + quantile - left[v]
        if state < 1 << 32 and words:
            state = state << 32 | words.pop()
        return v

    order = np.argsort(rows, kind="stable")
    grouped_rows = rows[order]
    values = np.empty(rows.size, np.int64)
    for i, k in enumerate(grouped_rows.tolist()):
        if i == 0 or grouped_rows[i - 1] != k:
            left = _leaky_cdf(table.row(k))
        values[i] = pop(left)
    escaped = values == table.length[grouped_rows] - 2
    uniform = [256 * j for j in range(65537)]  # Uniform(65536): 2^24 / 65536 = 256 per value
    halves = [pop(uniform) for _ in range(2 * int(escaped.sum()))]
    u = np.asarray(halves[0::2], np.int64) * 65536 + np.asarray(halves[1::2], np.int64)
    values = values + table.offset[grouped_rows]
    values[escaped] = (u >> 1) ^ -(u & 1)
    if state or words:
        raise ReadError("constriction: data left")
    out = np.empty_like(values)
    out[order] = values
    return out


DECODERS = {
    "native": decode_native,
    "native2": decode_native2,
    "compressai": decode_compressai,
    "constriction": decode_constriction,
}


# -- section 7: the integer hyper-synthesis ---------------------------------------------------------------
def _layer(weights: dict, layer: int, u: np.ndarray) -> np.ndarray:
    h = weights[f"h_s.layers.{layer}.int_weight"].astype(np.int64)
    b = weights[f"h_s.layers.{layer}.int_bias"].astype(np.int64)
    c = weights[f"h_s.layers.{layer}.divisor"].astype(np.int64)
    if (
        layer < 2
    ):  # transposed 3×3, stride 2, padding 1, output padding 1: output 2r+p ← input r+d, tap p+1−2d
        n_out, (rows, cols) = h.shape[1], u.shape[1:]
        full = np.zeros((n_out, 2 * rows + 1, 2 * cols + 1), np.int64)
        for ky in range(3):
            for kx in range(3):
                full[:, ky : ky + 2 * rows : 2, kx : kx + 2 * cols : 2] += np.einsum(
                    "io,ihw->ohw", h[:, :, ky, kx], u
                )
        a = full[:, 1 : 1 + 2 * rows, 1 : 1 + 2 * cols]
    else:
        a = np.einsum("oi,ihw->ohw", h[:, :, 0, 0], u)
    v = (a + b[:, None, None]) // c[:, None, None]
    return np.clip(np.where(v >= 0, v, v // 8), -32, 255) if layer < 2 else v


def hyper_synthesis(
    weights: dict, z: np.ndarray, grid: tuple[int, int], m: int
) -> tuple[np.ndarray, np.ndarray]:
    u = np.clip(z, -127, 127)
    for layer in range(3):
        u = _layer(weights, layer, u)
    u = u[:, : grid[0], : grid[1]]
    return np.clip(u[:m], 0, 63), u[m:]


# -- the whole stream --------------------------------------------------------------------------------------
def read_symbols(data: bytes, codec_dir: Path) -> dict:
    stream = parse(data)
    config = json.loads((Path(codec_dir) / "config.json").read_text())
    weights = load_file(str(Path(codec_dir) / "weights.safetensors"))
    m, grid, decode = config["hparams"]["M"], stream["grid"], DECODERS[stream["coder"]]
    subs = stream["substreams"]
    out: dict = {"crc": {}}
    if stream["kind"] == "hyperprior":
        n = config["hparams"]["N"]
        z_shape = (n, -(-grid[0] // 4), -(-grid[1] // 4))
        z_rows = np.repeat(np.arange(n), z_shape[1] * z_shape[2])
        out["z"] = decode(subs["z"], z_rows, Table(weights, "entropy_bottleneck")).reshape(z_shape)
        out["crc"]["hyper"] = _crc(out["z"])
        indexes, means16 = hyper_synthesis(weights, out["z"], grid, m)
        out["crc"]["probability_model"] = _crc(indexes, means16)
        rows, table = indexes, Table(weights, "gaussian_conditional")
    else:
        rows, table = (
            np.broadcast_to(np.arange(m)[:, None, None], (m, *grid)),
            Table(weights, "entropy_bottleneck"),
        )
    groups = sum(1 for name in subs if name.startswith("y."))
    bounds = group_bounds(m, groups, stream["version"][1])
    parts = [
        decode(subs[f"y.{g}"], np.ascontiguousarray(rows[a:b]).reshape(-1), table).reshape(b - a, *grid)
        for g, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
    ]
    out["y"] = np.concatenate(parts)
    out["crc"]["symbols"] = _crc(*([out["z"]] if "z" in out else []), out["y"])
    out["checksums"] = stream["checksums"]
    return out
