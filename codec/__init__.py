"""featcodec's codec: learned, entropy-coded compression of frozen-encoder features.

Data flow: features {level: B×C×H×W} → codec.models (analysis, hyperprior) →
codec.ops (quantise + scale indexes) → codec.entropy (ANS / rANS) →
codec.bitstream (.fcb container) → and back.
"""

__version__ = "0.1.0"
