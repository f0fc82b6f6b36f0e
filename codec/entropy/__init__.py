"""Entropy coding backends: integer CDF tables in, bytes out (models separate from coders).

The probability model is a `CdfTable` (CompressAI's quantised CDFs of a GaussianConditional's
scale table or of an EntropyBottleneck's channels, stored with the codec weights so both sides
use bit-identical tables); a coder turns (symbols, table indexes) into bytes and back.

    coder = get_coder("constriction")           # or "compressai"
    data = coder.encode(symbols, indexes, table)
    symbols = coder.decode(data, indexes, table)
"""

from .coders import CODERS, CompressAICoder, ConstrictionCoder, EntropyCoder, get_coder
from .substreams import decode_substreams, encode_substreams, split_channels
from .tables import CdfTable

__all__ = [
    "CODERS",
    "CdfTable",
    "CompressAICoder",
    "ConstrictionCoder",
    "EntropyCoder",
    "decode_substreams",
    "encode_substreams",
    "get_coder",
    "split_channels",
]
