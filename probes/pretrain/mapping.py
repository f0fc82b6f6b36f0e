"""MAE Hiera (official `hiera` package) → SAM2 hieradet (official `sam2` package) trunk weights.

Both are the same network written twice. MAE Hiera keeps tokens in "unrolled"
order and attends within mask units; hieradet keeps a B×H×W×C map and attends
within spatial windows. With 8×8-token mask units, Hiera's stage-1/2 mask-unit
attention is hieradet's 8×8 / 4×4 window attention on the same aligned blocks,
its q-pooling (max over the unrolled stride) is hieradet's MaxPool2d(2), and
the per-block parameters (norm1, attn.qkv, attn.proj, norm2, MLP, proj) have
the same shapes and meaning. So the mapping is renaming plus two layout changes:

    pos_embed (1, N, C), N = H·W tokens   → pos_embed (1, C, H, W) as the window "background"
                                             embedding, with bkg size = the pretraining token grid
                                             (bicubic resampling to the same size is the identity)
    (none)                                → pos_embed_window: zeros (Hiera has no per-window term)
    blocks.i.mlp.fc1 / fc2                → blocks.i.mlp.layers.0 / layers.1

Not mapped, on purpose: `encoder_norm` (hieradet has no final norm: SAM2's FPN
reads the raw stage outputs), `multi_scale_fusion_heads`, `decoder_*`, `mask_token`
(the MAE decoder, which SAM2 does not have).

One architectural difference cannot be mapped away: Hiera's stage 3→4
transition block attends globally, but hieradet cannot q-pool under global
attention (window_unpartition divides by window_size // stride = 0), so that
block uses a window the size of the whole stage-3 map at the pretraining
resolution (8×8 tokens at 128 px). At that resolution the two are equal; at
larger inputs hieradet attends within 8×8 windows there.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

MAE_ONLY_PREFIXES = ("encoder_norm.", "multi_scale_fusion_heads.", "decoder_", "mask_token")


def hieradet_trunk_config(mae_config: Mapping, resolution: int) -> dict:
    """hieradet `Hiera` kwargs equal to the MAE Hiera trunk of `mae_config` at `resolution`."""
    stages = tuple(mae_config["stages"])
    if tuple(mae_config.get("mask_unit_size", (8, 8))) != (8, 8):
        raise ValueError("the mapping assumes Hiera's default 8×8-token mask units")
    if tuple(mae_config.get("mask_unit_attn", (True, True, False, False))) != (True, True, False, False):
        raise ValueError("the mapping assumes mask-unit attention in stages 1-2 and global in 3-4")
    tokens = resolution // 4
    stage_ends = [sum(stages[: i + 1]) - 1 for i in range(4)]
    stage3_first, transition_34 = stage_ends[1] + 1, stage_ends[2] + 1
    # stage 3 after its first (pooling, mask-unit) block and stage 4 after its first block: global
    global_blocks = [b for b in range(stage3_first + 1, sum(stages)) if b != transition_34]
    stage3_grid = tokens // 4
    return {
        "embed_dim": mae_config["embed_dim"],
        "num_heads": mae_config["num_heads"],
        "stages": list(stages),
        "q_pool": 3,
        "window_spec": [8, 4, stage3_grid, stage3_grid // 2],
        "global_att_blocks": global_blocks,
        "window_pos_embed_bkg_spatial_size": [tokens, tokens],
    }


def mae_to_hieradet(mae_state: Mapping[str, torch.Tensor], window: int = 8) -> dict[str, torch.Tensor]:
    """The trunk of an official MAE Hiera state dict (`model_state`) as a sam2 hieradet state dict."""
    out: dict[str, torch.Tensor] = {}
    for key, value in mae_state.items():
        if key.startswith(MAE_ONLY_PREFIXES):
            continue
        if key == "pos_embed":
            _, n, c = value.shape
            side = round(n**0.5)
            if side * side != n:
                raise ValueError(f"pos_embed of {n} tokens is not a square grid")
            out["pos_embed"] = value.reshape(1, side, side, c).permute(0, 3, 1, 2).contiguous()
            out["pos_embed_window"] = torch.zeros(1, c, window, window, dtype=value.dtype)
            continue
        if key in ("pos_embed_spatial", "pos_embed_temporal"):
            raise ValueError("video Hiera (separate spatial/temporal position embeddings) is not mapped")
        key = key.replace(".mlp.fc1.", ".mlp.layers.0.").replace(".mlp.fc2.", ".mlp.layers.1.")
        out[key] = value.clone()
    return out
