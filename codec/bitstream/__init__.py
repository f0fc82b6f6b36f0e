"""The `.fcb` container: a self-describing, checksummed frame around a codec's substreams.

Layout and every check are documented byte-for-byte in docs/bitstream.md.
"""

from .compact import VERSION as COMPACT_VERSION
from .compact import can_pack, pack_compact
from .container import (
    HEADER_LIMIT,
    MAGIC,
    VERSION,
    BitstreamError,
    Container,
    pack,
    unpack,
)
from .info import BYTE_SPLIT, byte_split, stream_info

__all__ = [
    "BYTE_SPLIT",
    "COMPACT_VERSION",
    "HEADER_LIMIT",
    "MAGIC",
    "VERSION",
    "BitstreamError",
    "Container",
    "byte_split",
    "can_pack",
    "pack",
    "pack_compact",
    "stream_info",
    "unpack",
]
