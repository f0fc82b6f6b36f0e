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
from .info import stream_info

__all__ = ["HEADER_LIMIT", "MAGIC", "VERSION", "BitstreamError", "Container", "pack", "stream_info", "unpack"]
