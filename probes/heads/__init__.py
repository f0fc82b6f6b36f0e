"""Frozen task heads behind one interface: `expects()`, `forward(tokens)`, `teacher(pixels)`.

Pretrained heads come from HF transformers (Depth Anything, ViTPose, BLIP);
built-in light heads are pretrained by featcodec on the synthetic world and
shipped (`builtin:TASK`), or trained new with a neck (`builtin-new:TASK`), then frozen.
"""

from .base import CaptionHead, FrozenHead, HeadError
from .builtin import BUILTIN_HEADS, BuiltinCaptionHead, BuiltinDepthHead, BuiltinHead, BuiltinPoseHead
from .hf import BlipCaptionHead, DepthAnythingHead, VitPoseHead, load_hf_head
from .registry import HEADS, load_builtin_head, load_head, register_head, save_builtin_head, shipped_head_dir
from .spec import TokenSpec

__all__ = [
    "BUILTIN_HEADS",
    "HEADS",
    "BlipCaptionHead",
    "BuiltinCaptionHead",
    "BuiltinDepthHead",
    "BuiltinHead",
    "BuiltinPoseHead",
    "CaptionHead",
    "DepthAnythingHead",
    "FrozenHead",
    "HeadError",
    "TokenSpec",
    "VitPoseHead",
    "load_builtin_head",
    "load_head",
    "load_hf_head",
    "register_head",
    "save_builtin_head",
    "shipped_head_dir",
]
