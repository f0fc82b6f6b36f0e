"""Pack and parse `.fcb` streams (docs/bitstream.md is the normative description).

    offset  size  field
    0       4     magic  b"\\x89FCB"
    4       1     major version (1)
    5       1     minor version (0)
    6       2     flags, u16 LE, must be 0
    8       4     header length H, u32 LE, 2 <= H <= HEADER_LIMIT
    12      H     header: UTF-8 JSON object (schema in docs/bitstream.md)
    12+H    4     CRC32 of bytes [0, 12+H), u32 LE
    16+H    P     payload: the substreams, concatenated in header order (P = sum of their lengths)
    16+H+P  4     CRC32 of the payload, u32 LE

Parsing is strict: every length is checked against the bytes actually present before it is used,
so no field can drive an allocation or a read past the end. Major version 2 (the compact binary header
of learned codecs' streams) is parsed by compact.py; both versions are read.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass, field

from codec.errors import InputError

MAGIC = b"\x89FCB"
VERSION = (1, 1)  # minor 1: integer channel-group bounds; minor 0 streams are read with the old ones
HEADER_LIMIT = 1 << 16  # a header is a few hundred bytes; anything larger is not ours
_FIXED = struct.Struct("<4sBBHI")  # magic, major, minor, flags, header length
_CRC = struct.Struct("<I")
SUBSTREAM_NAME_LIMIT = 64
MAX_GRID = 1024  # latent grid cells per side: 16384 px at stride 16 (compact header, info and pipeline)
SUBSTREAM_COUNT_LIMIT = 4096
JSON_DEPTH_LIMIT = 8  # featcodec's headers nest 3 deep (levels[i].shape)
JSON_NUMBER_LIMIT = 32  # characters of one JSON number: u32 checksums and float estimates need ≤ 25


class BitstreamError(InputError):
    """A stream that cannot be decoded correctly; the message names what is wrong."""


@dataclass
class Container:
    """A parsed stream: the header (dict) and the substreams by name, in stream order."""

    header: dict
    substreams: dict[str, bytes] = field(default_factory=dict)
    version: tuple[int, int] = VERSION

    @property
    def payload_bytes(self) -> int:
        return sum(len(s) for s in self.substreams.values())


def _number(text: str, kind: type):
    if len(text) > JSON_NUMBER_LIMIT:
        raise BitstreamError(f"header JSON number of {len(text)} characters (limit {JSON_NUMBER_LIMIT})")
    value = kind(text)
    if not math.isfinite(value):
        raise BitstreamError(f"header JSON number {text} overflows a float64")
    return value


def _refuse_constant(name: str):
    raise BitstreamError(f"header JSON holds {name}, which is not JSON")


def split_payload(data, payload_start: int, names: list[str], lengths: list[int]) -> dict[str, bytes]:
    """The substreams of a payload whose size the caller has checked against the data, once the payload's
    CRC-32 (stored right after it) matches."""
    total = sum(lengths)
    payload = data[payload_start : payload_start + total]
    (payload_crc,) = _CRC.unpack_from(data, payload_start + total)
    if zlib.crc32(payload) != payload_crc:
        raise BitstreamError("payload CRC32 mismatch: the payload is corrupted")
    substreams, offset = {}, 0
    for name, length in zip(names, lengths, strict=True):
        substreams[name] = bytes(payload[offset : offset + length])
        offset += length
    return substreams


def parse_json_header(raw: bytes, what: str = "header"):
    """Parse a header's ASCII JSON with its nesting depth and number sizes bounded *before* Python's
    parser sees them (so neither a deep array nor a 5000-digit integer reaches json.loads)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:  # a bracket counter that skips strings: the depth bound is checked before parsing
        if in_string:
            escaped, in_string = (False, True) if escaped else (byte == 0x5C, byte != 0x22)
        elif byte == 0x22:
            in_string = True
        elif byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    if deepest > JSON_DEPTH_LIMIT:
        raise BitstreamError(f"{what} JSON nests {deepest} deep (limit {JSON_DEPTH_LIMIT})")
    try:
        return json.loads(
            raw.decode("ascii"),
            parse_int=lambda t: _number(t, int),
            parse_float=lambda t: _number(t, float),
            parse_constant=_refuse_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        if isinstance(e, BitstreamError):
            raise
        raise BitstreamError(f"{what} is not valid ASCII JSON ({e})") from None


def pack(header: dict, substreams: dict[str, bytes]) -> bytes:
    """Frame `substreams` (name → bytes, in order) with `header`; lengths are filled in here."""
    if "substreams" in header:
        raise ValueError("pack() writes the 'substreams' field itself")
    if len(substreams) > SUBSTREAM_COUNT_LIMIT:
        raise ValueError(f"too many substreams ({len(substreams)} > {SUBSTREAM_COUNT_LIMIT})")
    for name in substreams:
        if not name or len(name) > SUBSTREAM_NAME_LIMIT:
            raise ValueError(f"bad substream name {name!r}")
    full = {**header, "substreams": [{"name": n, "length": len(b)} for n, b in substreams.items()]}
    text = json.dumps(full, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    if len(text) > HEADER_LIMIT:
        raise ValueError(f"header of {len(text)} bytes exceeds the limit of {HEADER_LIMIT}")
    head = _FIXED.pack(MAGIC, VERSION[0], VERSION[1], 0, len(text)) + text
    payload = b"".join(substreams.values())
    return b"".join((head, _CRC.pack(zlib.crc32(head)), payload, _CRC.pack(zlib.crc32(payload))))


def unpack(data: bytes | bytearray | memoryview) -> Container:
    """Parse and verify a stream; raise BitstreamError naming the first problem found."""
    data = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
    if len(data) < _FIXED.size:
        raise BitstreamError(
            f"truncated stream: {len(data)} bytes, shorter than the {_FIXED.size}-byte preamble"
        )
    magic, major, minor, flags, header_len = _FIXED.unpack_from(data, 0)
    if magic != MAGIC:
        raise BitstreamError(
            f"wrong magic {bytes(magic)!r}: not a featcodec .fcb stream (expected {MAGIC!r})"
        )
    if major == 2:
        from .compact import unpack_compact

        return unpack_compact(data)
    if major != VERSION[0] or minor > VERSION[1]:
        raise BitstreamError(
            f"unsupported stream version {major}.{minor} (this reader reads 1.0–1.1 and 2.0–2.1)"
        )
    if flags != 0:
        raise BitstreamError(f"reserved flags field is {flags:#06x}, must be 0")
    if not 2 <= header_len <= HEADER_LIMIT:
        raise BitstreamError(f"header length {header_len} out of range [2, {HEADER_LIMIT}]")
    head_end = _FIXED.size + header_len
    if len(data) < head_end + 2 * _CRC.size:
        raise BitstreamError(
            f"truncated stream: header says {header_len} header bytes, only {len(data)} bytes in all"
        )
    (head_crc,) = _CRC.unpack_from(data, head_end)
    if zlib.crc32(data[:head_end]) != head_crc:
        raise BitstreamError("header CRC32 mismatch: the header is corrupted")
    header = parse_json_header(bytes(data[_FIXED.size : head_end]))
    if not isinstance(header, dict):
        raise BitstreamError("header is not a JSON object")
    entries = header.get("substreams")
    if not isinstance(entries, list) or len(entries) > SUBSTREAM_COUNT_LIMIT:
        raise BitstreamError(
            f"header field 'substreams' missing or not a list of at most {SUBSTREAM_COUNT_LIMIT} entries"
        )
    payload_start = head_end + _CRC.size
    available = len(data) - payload_start - _CRC.size
    names, lengths, total = [], [], 0
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"name", "length"}:
            raise BitstreamError(f"header substreams[{i}] must be an object with 'name' and 'length'")
        name, length = entry["name"], entry["length"]
        if not isinstance(name, str) or not 0 < len(name) <= SUBSTREAM_NAME_LIMIT or name in names:
            raise BitstreamError(f"header substreams[{i}]: bad or repeated name {name!r}")
        if type(length) is not int or length < 0:
            raise BitstreamError(
                f"header substreams[{i}] ({name}): length {length!r} is not a non-negative integer"
            )
        total += length
        if total > available:
            raise BitstreamError(
                f"truncated stream: substreams need {total}+ payload bytes, only {available} present"
            )
        names.append(name)
        lengths.append(length)
    if total != available:
        raise BitstreamError(
            f"oversized stream: {available - total} unexpected trailing bytes after the {total}-byte payload"
        )
    substreams = split_payload(data, payload_start, names, lengths)
    return Container(header=header, substreams=substreams, version=(major, minor))
