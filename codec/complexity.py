"""Coding complexity as CompressAI-Vision reports it: kMAC per pixel of the learned parts on each side,
and encode / decode milliseconds of every codec.

MACs are counted by torch's FLOP counter (`torch.utils.flop_counter.FlopCounterMode`: convolutions and
matrix products, the learned transforms; 1 MAC = 2 FLOPs) around a real `.fcb` encode and decode, so an
entropy coder, zstd or a standard codec outside torch counts zero MACs — the packed anchors have no learned
parts. Milliseconds come from a second, uncounted run (the counter slows what it watches).
"""

from __future__ import annotations

import time

import torch

from .codec_dir import LoadedCodec
from .pipeline import decode_streams, encode_features


def codec_complexity(codec: LoadedCodec, features: dict[str, torch.Tensor], *, pixels: int) -> dict:
    """Per item of `features` ({level: B×C×H×W}): encoder- and decoder-side kMAC per input pixel (`pixels`
    = the R×R image the features come from) and encode / decode ms, through real streams."""
    from torch.utils.flop_counter import FlopCounterMode

    if pixels <= 0:
        raise ValueError(f"pixels must be positive, got {pixels}")
    items = next(iter(features.values())).shape[0]
    with FlopCounterMode(display=False) as counted:
        streams = encode_features(codec, features)
    encoder_flops = counted.get_total_flops()
    with FlopCounterMode(display=False) as counted:
        decode_streams(codec, streams)
    decoder_flops = counted.get_total_flops()
    start = time.perf_counter()
    streams = encode_features(codec, features)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decode_streams(codec, streams)
    decode_s = time.perf_counter() - start
    return {
        "encoder_kmac_per_pixel": encoder_flops / 2 / items / pixels / 1e3,
        "decoder_kmac_per_pixel": decoder_flops / 2 / items / pixels / 1e3,
        "encode_ms": 1e3 * encode_s / items,
        "decode_ms": 1e3 * decode_s / items,
        "items": items,
    }
