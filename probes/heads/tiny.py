"""Tiny random-weight configurations of the pretrained heads, for tests and smoke runs.

The counterpart of the encoders' `mini-hiera`: the real transformers classes
(DepthAnythingForDepthEstimation, VitPoseForPoseEstimation,
BlipForConditionalGeneration) with a few small layers, built without any
download. `save_tiny_head(task, dir)` writes the official `save_pretrained`
layout (plus a BERT tokenizer for BLIP), so `load_head(dir)` takes the same path
as a downloaded checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

# a BERT-style WordPiece vocabulary: BERT's special tokens, BLIP's [DEC] start token, then words
TINY_VOCAB = (
    "[PAD] [UNK] [CLS] [SEP] [MASK] [DEC] a an the of on in with and is are at to two three "
    "man woman person people dog cat horse bird car bus train table sofa room street field sky "
    "red blue green white black small large sitting standing riding walking playing holding "
    "ball kite plate food pizza grass water tree building"
).split()


def tiny_depth_anything(image_size: int = 56, seed: int = 0):
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    torch.manual_seed(seed)
    backbone = Dinov2Config(
        image_size=image_size,
        patch_size=14,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        patch_size=14,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[8, 16, 16, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
    )
    return DepthAnythingForDepthEstimation(config).eval()


def tiny_vitpose(image_size: tuple[int, int] = (64, 48), seed: int = 0):
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation

    torch.manual_seed(seed)
    backbone = VitPoseBackboneConfig(
        image_size=list(image_size),
        patch_size=[16, 16],
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        out_indices=[2],
    )
    config = VitPoseConfig(backbone_config=backbone, use_simple_decoder=True, num_labels=17)
    return VitPoseForPoseEstimation(config).eval()


def tiny_blip(directory: str | os.PathLike, image_size: int = 32, seed: int = 0):
    """(model, tokenizer); the tokenizer's vocab.txt is written into `directory`."""
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(TINY_VOCAB) + "\n")
    tokenizer = BertTokenizer(vocab=str(vocab_file), bos_token="[DEC]")
    ids = {t: TINY_VOCAB.index(t) for t in ("[PAD]", "[SEP]", "[DEC]")}
    torch.manual_seed(seed)
    config = BlipConfig(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=16,
        ),
        text_config=dict(
            vocab_size=len(TINY_VOCAB),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=48,
            encoder_hidden_size=32,
            bos_token_id=ids["[DEC]"],
            pad_token_id=ids["[PAD]"],
            sep_token_id=ids["[SEP]"],
            eos_token_id=ids["[SEP]"],
        ),
    )
    return BlipForConditionalGeneration(config).eval(), tokenizer


def save_tiny_head(task: str, directory: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny `task` head in the official `save_pretrained` layout; returns the directory."""
    directory = Path(directory)
    if task == "depth":
        tiny_depth_anything(seed=seed).save_pretrained(directory)
    elif task == "pose":
        tiny_vitpose(seed=seed).save_pretrained(directory)
    elif task == "caption":
        model, tokenizer = tiny_blip(directory / "_vocab", seed=seed)
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
    else:
        raise ValueError(f"no tiny head for task {task!r}")
    return directory
