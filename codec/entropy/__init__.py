"""Entropy coding backends: integer CDF tables in, bytes out (models separate from coders).

The probability model is a `CdfTable` (CompressAI's quantised CDFs of a GaussianConditional's
scale table or of an EntropyBottleneck's channels, stored with the codec weights so both sides
use bit-identical tables); a coder turns (symbols, table indexes) into bytes and back.

    coder = get_coder(DEFAULT_CODER)            # "native" when codec._C is built, else "constriction"
    data = coder.encode(symbols, indexes, table)
    symbols = coder.decode(data, indexes, table)
"""

from .coders import CODERS, CompressAICoder, ConstrictionCoder, EntropyCoder, get_coder
from .native import NativeCoder, default_coder, native_available
from .substreams import decode_substreams, encode_substreams, legacy_group_bounds, split_channels
from .tables import CdfTable

# Always registered, so streams naming it are recognised; get_coder("native") raises a clear error
# where the extension is not built, and new streams then default to constriction.
CODERS["native"] = NativeCoder
DEFAULT_CODER = default_coder()

__all__ = [
    "CODERS",
    "DEFAULT_CODER",
    "CdfTable",
    "CompressAICoder",
    "ConstrictionCoder",
    "EntropyCoder",
    "NativeCoder",
    "decode_substreams",
    "default_coder",
    "encode_substreams",
    "get_coder",
    "legacy_group_bounds",
    "native_available",
    "split_channels",
]
