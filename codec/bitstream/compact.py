"""Container version 2: the common case of a learned codec's stream in a binary header of ≤ 64 bytes.

Version 1 spends a few hundred bytes of JSON on fields the decoder derives from its codec anyway (levels,
latent shapes, encoder, resolution); at 0.01–0.1 bpp that is a large share of a small image's stream.
Version 2 keeps only what the stream itself must say (docs/bitstream.md, section 6, is normative):

    offset  size  field
    0       4     magic  b"\\x89FCB"
    4       1     major version (2)
    5       1     minor version (0)
    6       1     flags: bit 0 = a JSON extension follows the lengths; other bits 0
    7       1     codec kind: 1 hyperprior, 2 factorized
    8       1     coder: 1 native, 2 constriction, 3 compressai, 4 native2
    9       1     substream count S, 1..255 (hyperprior: z, y.0 .. y.{S-2}; factorized: y.0 .. y.{S-1})
    10      8     codec id (its 16 hex digits as 8 bytes)
    18      8     codec config hash (16 hex digits as 8 bytes)
    26      2     grid H, u16 LE, 1..1024
    28      2     grid W, u16 LE, 1..1024
    30      4     checksum `symbols`, u32 LE
    34      4     checksum `probability_model`, u32 LE (hyperprior; 0 for factorized)
    38      4     checksum `hyper`, u32 LE (hyperprior; 0 for factorized)
    42      4     estimated bits, float32 LE (NaN: unknown)
    46      ...   S substream lengths, unsigned LEB128, each < 2**32 in at most 5 bytes, minimal
    ...     2+E   if flags bit 0: E (u16 LE, 2..65535), then E bytes: ASCII JSON object
                  (optional per-stream fields such as `source`; never codec-derived ones)
    ...     4     CRC32 of all header bytes before it
    ...     P     payload (substreams in order), then 4 bytes CRC32 of the payload

Parsed, it yields the same header dict as version 1 minus the codec-derived fields (`encoder`,
`resolution`, `levels`, `latents`), so the pipeline checks both versions the same way.
"""

from __future__ import annotations

import json
import math
import struct
import zlib

from codec.names import STREAM_FORMAT

from .container import _CRC, MAGIC, MAX_GRID, BitstreamError, Container, parse_json_header, split_payload

VERSION = (2, 1)  # minor 1: integer channel-group bounds (docs/bitstream.md, section 3); 0: the old ones
KIND_CODES = {"hyperprior": 1, "factorized": 2}  # the header's codec-kind byte
CODER_CODES = {"native": 1, "constriction": 2, "compressai": 3, "native2": 4}  # its coder byte
CHECKSUMS = ("symbols", "probability_model", "hyper")
_FIXED = struct.Struct("<4sBBBBBB8s8sHHIIIf")  # offsets 0..45 above
_FLAG_EXTENSION = 1
_U16 = struct.Struct("<H")
_EXTENSION_LIMIT = (1 << 16) - 1
# what the compact header carries itself; anything else goes to the extension
_CORE = {"format", "codec", "grid", "coder", "checksums", "estimated_bits"}
_DERIVED = {"encoder", "resolution", "levels", "latents"}  # the decoder's codec knows these


def substream_names(kind: str, count: int) -> list[str]:
    if kind == "hyperprior":
        return ["z"] + [f"y.{g}" for g in range(count - 1)]
    return [f"y.{g}" for g in range(count)]


def can_pack(header: dict, substreams: dict[str, bytes]) -> bool:
    """Whether `header` / `substreams` fit version 2 (a learned codec, a known coder, standard names)."""
    codec = header.get("codec") or {}
    kind = codec.get("kind")
    if kind not in KIND_CODES or header.get("coder") not in CODER_CODES or not 1 <= len(substreams) <= 255:
        return False
    try:
        bytes.fromhex(codec.get("id", "")), bytes.fromhex(codec.get("config_hash", ""))
    except (TypeError, ValueError):
        return False
    return (
        len(codec["id"]) == 16
        and len(codec["config_hash"]) == 16
        and list(substreams) == substream_names(kind, len(substreams))
        and set(header.get("checksums", {})) <= set(CHECKSUMS)
    )


def _leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def pack_compact(header: dict, substreams: dict[str, bytes]) -> bytes:
    """Version-2 stream; `header` in the version-1 schema (codec-derived fields are dropped)."""
    if not can_pack(header, substreams):
        raise ValueError("header/substreams do not fit the compact (version 2) container")
    codec, checks = header["codec"], header.get("checksums", {})
    grid = header["grid"]
    if not all(type(v) is int and 1 <= v <= MAX_GRID for v in grid) or len(grid) != 2:
        raise ValueError(f"grid {grid!r} outside [1, {MAX_GRID}]")
    estimated = header.get("estimated_bits")
    extension = {k: v for k, v in header.items() if k not in _CORE | _DERIVED and v is not None}
    flags = _FLAG_EXTENSION if extension else 0
    head = bytearray(
        _FIXED.pack(
            MAGIC,
            VERSION[0],
            VERSION[1],
            flags,
            KIND_CODES[codec["kind"]],
            CODER_CODES[header["coder"]],
            len(substreams),
            bytes.fromhex(codec["id"]),
            bytes.fromhex(codec["config_hash"]),
            grid[0],
            grid[1],
            *(int(checks.get(name, 0)) for name in CHECKSUMS),
            math.nan if estimated is None else float(estimated),
        )
    )
    for data in substreams.values():
        if len(data) >= 1 << 32:
            raise ValueError("a substream of 4 GiB or more does not fit the compact container")
        head += _leb128(len(data))
    if extension:
        text = json.dumps(extension, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
        if len(text) > _EXTENSION_LIMIT:
            raise ValueError(f"extension of {len(text)} bytes exceeds the limit of {_EXTENSION_LIMIT}")
        head += _U16.pack(len(text)) + text
    head += _CRC.pack(zlib.crc32(head))
    payload = b"".join(substreams.values())
    return bytes(head) + payload + _CRC.pack(zlib.crc32(payload))


def unpack_compact(data: memoryview) -> Container:
    """Parse a version-2 stream (magic and major already checked by container.unpack)."""
    if len(data) < _FIXED.size:
        raise BitstreamError(
            f"truncated stream: {len(data)} bytes, shorter than the {_FIXED.size}-byte compact header"
        )
    (_, _, minor, flags, kind_code, coder_code, count, codec_id, config_hash, gh, gw, *checks, estimated) = (
        _FIXED.unpack_from(data, 0)
    )
    if minor > VERSION[1]:
        raise BitstreamError(f"unsupported stream version 2.{minor} (this reader reads 1.0–1.1 and 2.0–2.1)")
    if flags & ~_FLAG_EXTENSION:
        raise BitstreamError(f"reserved flag bits set ({flags:#04x})")
    kind = {v: k for k, v in KIND_CODES.items()}.get(kind_code)
    coder = {v: k for k, v in CODER_CODES.items()}.get(coder_code)
    if kind is None:
        raise BitstreamError(f"unknown codec kind code {kind_code}")
    if coder is None:
        raise BitstreamError(f"unknown coder code {coder_code}")
    if count < 1:
        raise BitstreamError("compact header declares no substreams")
    if not (1 <= gh <= MAX_GRID and 1 <= gw <= MAX_GRID):
        raise BitstreamError(f"grid {gh}×{gw} outside [1, {MAX_GRID}]")
    pos, lengths = _FIXED.size, []
    for i in range(count):
        value = shift = 0
        for n in range(5):
            if pos >= len(data):
                raise BitstreamError("truncated stream: the substream lengths run past the end")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                if (n and byte == 0) or value >= 1 << 32:
                    raise BitstreamError(f"substream {i}: non-minimal or oversized length encoding")
                break
        else:
            raise BitstreamError(f"substream {i}: length encoding longer than 5 bytes")
        lengths.append(value)
    extension: dict = {}
    if flags & _FLAG_EXTENSION:
        if pos + _U16.size > len(data):
            raise BitstreamError("truncated stream: extension length runs past the end")
        (size,) = _U16.unpack_from(data, pos)
        pos += _U16.size
        if size < 2 or pos + size > len(data):
            raise BitstreamError(f"extension length {size} out of range or past the end")
        raw = bytes(data[pos : pos + size])
        pos += size
    if pos + 2 * _CRC.size > len(data):
        raise BitstreamError("truncated stream: no room for the header CRC and payload CRC")
    (head_crc,) = _CRC.unpack_from(data, pos)
    if zlib.crc32(data[:pos]) != head_crc:
        raise BitstreamError("header CRC32 mismatch: the header is corrupted")
    if flags & _FLAG_EXTENSION:
        extension = parse_json_header(raw, "header extension")
        if not isinstance(extension, dict) or set(extension) & (_CORE | _DERIVED | {"substreams"}):
            raise BitstreamError(
                "header extension must be a JSON object without core or codec-derived fields"
            )
    payload_start = pos + _CRC.size
    available = len(data) - payload_start - _CRC.size
    total = sum(lengths)
    if total > available:
        raise BitstreamError(
            f"truncated stream: substreams need {total} payload bytes, only {available} present"
        )
    if total < available:
        raise BitstreamError(
            f"oversized stream: {available - total} unexpected trailing bytes after the payload"
        )
    names = substream_names(kind, count)
    substreams = split_payload(data, payload_start, names, lengths)
    checksums = dict(zip(CHECKSUMS, checks, strict=True))
    if kind != "hyperprior":
        if checksums["probability_model"] or checksums["hyper"]:
            raise BitstreamError("a factorized stream's hyperprior checksums must be 0")
        checksums = {"symbols": checksums["symbols"]}
    header = {
        **extension,
        "format": STREAM_FORMAT,
        "codec": {"kind": kind, "id": codec_id.hex(), "config_hash": config_hash.hex()},
        "grid": [gh, gw],
        "coder": coder,
        "checksums": checksums,
        "estimated_bits": None if math.isnan(estimated) else float(estimated),
        "substreams": [{"name": n, "length": n_} for n, n_ in zip(names, lengths, strict=True)],
    }
    return Container(header=header, substreams=substreams, version=(VERSION[0], minor))
