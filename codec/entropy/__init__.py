"""Entropy coding backends: integer CDF tables in, bytes out (models separate from coders).

The probability model is a `CdfTable` (CompressAI's quantised CDFs of a GaussianConditional's
scale table or of an EntropyBottleneck's channels, stored with the codec weights so both sides
use bit-identical tables); a coder turns (symbols, table indexes) into bytes and back.

    coder = get_coder(DEFAULT_CODER)            # "native2" when codec._C is built, else "constriction"
    data = coder.encode(symbols, indexes, table)
    symbols = coder.decode(data, indexes, table)
"""

from .coders import CODERS, CompressAICoder, ConstrictionCoder, EntropyCoder, get_coder, register_coder
from .native import NativeCoder, SizedNativeCoder, default_coder, native_available
from .substreams import auto_groups, decode_substreams, encode_substreams, legacy_group_bounds, split_channels
from .tables import CdfTable

# native and native2 are registered whether or not codec._C is built, so streams naming them are
# recognised; without it get_coder("native") raises a clear error and new streams default to constriction.
DEFAULT_CODER = default_coder()

__all__ = [
    "CODERS",
    "DEFAULT_CODER",
    "CdfTable",
    "CompressAICoder",
    "ConstrictionCoder",
    "EntropyCoder",
    "NativeCoder",
    "SizedNativeCoder",
    "auto_groups",
    "decode_substreams",
    "default_coder",
    "encode_substreams",
    "get_coder",
    "legacy_group_bounds",
    "native_available",
    "register_coder",
    "split_channels",
]
