"""featcodec's codec: learned, entropy-coded compression of frozen-encoder features.

Data flow: features {level: B×C×H×W} → codec.models (analysis, hyperprior) →
codec.ops (quantise + scale indexes) → codec.entropy (ANS / rANS) →
codec.bitstream (.fcb container) → and back.
"""

__version__ = "0.1.0"

import warnings

# compressai imports torch_geometric, which calls torch.jit.script at import time; the resulting
# deprecation warning says nothing about featcodec and would greet every command.
warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)
