"""The `.fcb` container: a self-describing, checksummed frame around a codec's substreams.

Layout and every check are documented byte-for-byte in docs/bitstream.md.
"""

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

__all__ = ["BYTE_SPLIT", "HEADER_LIMIT", "MAGIC", "VERSION", "BitstreamError", "Container", "byte_split", "pack", "stream_info", "unpack"]
