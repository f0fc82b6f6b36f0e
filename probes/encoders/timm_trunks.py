"""Hiera trunks from timm: MAE Hiera (generalist) and the SAM2 Hiera trunk (specialised).

Both answer `forward_intermediates`, giving the four stage outputs (strides
4/8/16/32).  timm builds MAE Hiera with an absolute position embedding of a
fixed size (224 → 56×56 tokens); for other resolutions we build the model at
the target size and resize the checkpoint's embedding bicubically.
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from timm.models import hiera as timm_hiera
from timm.models import hieradet_sam2
from torch import nn

from .base import RANDOM_INIT, FrozenEncoder
from .checkpoints import CheckpointError, load_state_dict_file, load_strict, sha256_file
from .registry import register_encoder
from .spec import EncoderSpec, FeatureLevel

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

# Parts of Hiera/MAE checkpoints that are not the trunk we use.
_HIERA_UNUSED = ("head.", "decoder", "mask_token", "multi_scale_fusion_heads", "pred_", "norm_pix")


class TimmTrunkEncoder(FrozenEncoder):
    def _levels(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(pixels, intermediates_only=True)


def _stage_levels(embed_dim: int) -> tuple[FeatureLevel, ...]:
    return tuple(FeatureLevel(f"stage{i + 1}", embed_dim * 2**i, 4 * 2**i) for i in range(4))


def _resize_hiera_pos_embed(state_dict: dict, model: nn.Module, source: str) -> dict:
    """MAE Hiera's absolute pos_embed is 1×N×C for a square token grid: resize it to the model's."""
    pe = state_dict.get("pos_embed")
    if pe is None or model.pos_embed is None or pe.shape == model.pos_embed.shape:
        return state_dict
    n_src, n_dst = pe.shape[1], model.pos_embed.shape[1]
    g_src, g_dst = round(n_src**0.5), round(n_dst**0.5)
    if pe.ndim != 3 or g_src * g_src != n_src or g_dst * g_dst != n_dst:
        raise CheckpointError(
            f"{source}: cannot resize pos_embed {tuple(pe.shape)} to {tuple(model.pos_embed.shape)}"
        )
    grid = pe.reshape(1, g_src, g_src, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(g_dst, g_dst), mode="bicubic", align_corners=False)
    state_dict = dict(state_dict)
    state_dict["pos_embed"] = grid.permute(0, 2, 3, 1).reshape(1, n_dst, -1).to(pe.dtype)
    return state_dict


def _convert_hiera(state_dict: dict, model: nn.Module, source: str) -> dict:
    state_dict = timm_hiera.checkpoint_filter_fn(state_dict, model)
    return _resize_hiera_pos_embed(state_dict, model, source)


def _convert_sam2_trunk(state_dict: dict, model: nn.Module, source: str) -> dict:
    if any(k.startswith("image_encoder.trunk.") for k in state_dict):  # official SAM2 checkpoint
        return hieradet_sam2.checkpoint_filter_fn(state_dict, model, prefix="image_encoder.trunk.")
    if any(k.startswith("trunk.") for k in state_dict):  # a bare sam2 ImageEncoder state dict
        return hieradet_sam2.checkpoint_filter_fn(state_dict, model, prefix="trunk.")
    return hieradet_sam2.checkpoint_filter_fn(state_dict, model)  # timm layout


def _timm_builder(timm_name: str, convert, model_kwargs: dict | None = None, pretrained_tag: str = ""):
    def build(spec: EncoderSpec, resolution: int, *, checkpoint=None, pretrained=False) -> FrozenEncoder:
        kwargs = dict(model_kwargs or {})
        if spec.source == "timm" and "hiera_" in timm_name and "sam2" not in timm_name:
            kwargs["img_size"] = resolution
        model = timm.create_model(timm_name, pretrained=False, num_classes=0, **kwargs)
        model.head = nn.Identity()  # we use the trunk's intermediates only
        weights_id = RANDOM_INIT
        if checkpoint is not None:
            source = str(checkpoint)
            state_dict = convert(load_state_dict_file(checkpoint), model, source)
            load_strict(model, state_dict, source, ignore_prefixes=_HIERA_UNUSED)
            weights_id = sha256_file(checkpoint)
        elif pretrained:
            name = f"{timm_name}.{pretrained_tag}" if pretrained_tag else timm_name
            state_dict = _download_timm_state_dict(name)
            state_dict = convert(state_dict, model, f"timm:{name}")
            load_strict(model, state_dict, f"timm:{name}", ignore_prefixes=_HIERA_UNUSED)
            weights_id = f"pretrained:{name}"
        return TimmTrunkEncoder(spec, model, resolution, weights_id)

    return build


def _download_timm_state_dict(name: str) -> dict:
    try:
        reference = timm.create_model(name, pretrained=True, num_classes=0)
    except Exception as e:  # noqa: BLE001 - network / hub errors come in many types
        raise RuntimeError(
            f"could not fetch pretrained weights for {name!r} through timm/the HF hub ({type(e).__name__}: "
            f"{e}). "
            "Without a network, download the checkpoint elsewhere and pass it with --checkpoint PATH."
        ) from e
    return reference.state_dict()


_HIERA_SIZES = {  # name: (timm model, embed_dim)
    "tiny": ("hiera_tiny_224", 96),
    "small": ("hiera_small_224", 96),
    "base": ("hiera_base_224", 96),
    "base-plus": ("hiera_base_plus_224", 112),
    "large": ("hiera_large_224", 144),
}
_SAM2_TRUNK_SIZES = {
    "tiny": ("sam2_hiera_tiny", 96),
    "small": ("sam2_hiera_small", 96),
    "base-plus": ("sam2_hiera_base_plus", 112),
    "large": ("sam2_hiera_large", 144),
}


def _trunk_spec(
    name: str, family: str, dim: int, resolution: int, timm_name: str, description: str
) -> EncoderSpec:
    """A timm Hiera trunk's spec: four stages at strides 4–32, `dim` channels doubling per stage."""
    return EncoderSpec(
        name=name,
        source="timm",
        family=family,
        levels=_stage_levels(dim),
        default_resolution=resolution,
        description=description,
        model_id=timm_name,
    )


for _size, (_timm_name, _dim) in _HIERA_SIZES.items():
    _spec = _trunk_spec(
        f"hiera-{_size}", "hiera", _dim, 224, _timm_name, "MAE-pretrained Hiera trunk (generalist)"
    )
    register_encoder(_spec)(_timm_builder(_timm_name, _convert_hiera, pretrained_tag="mae"))

for _size, (_timm_name, _dim) in _SAM2_TRUNK_SIZES.items():
    _spec = _trunk_spec(
        f"sam2-trunk-{_size}",
        "sam2",
        _dim,
        1024,
        _timm_name,
        "SAM2 Hiera trunk (segmentation-specialised), no FPN",
    )
    register_encoder(_spec)(_timm_builder(_timm_name, _convert_sam2_trunk))

# Tiny random-init configurations for tests: the same model classes, a fraction of the size.
_spec = _trunk_spec(
    "mini-hiera-random", "hiera", 16, 64, "hiera_tiny_224", "tiny MAE-Hiera config, no weights (tests)"
)
register_encoder(_spec)(
    _timm_builder("hiera_tiny_224", _convert_hiera, {"embed_dim": 16, "num_heads": 1, "stages": (1, 1, 1, 1)})
)
_spec = _trunk_spec(
    "mini-sam2-random", "sam2", 16, 64, "sam2_hiera_tiny", "tiny SAM2-trunk config, no weights (tests)"
)
register_encoder(_spec)(
    _timm_builder(
        "sam2_hiera_tiny",
        _convert_sam2_trunk,
        {
            "embed_dim": 16,
            "num_heads": 1,
            "stages": (1, 1, 2, 1),
            "global_att_blocks": (3,),
            "window_spec": (8, 4, 4, 2),
        },
    )
)

# mini-hiera: MAE-pretrained on the synthetic world by `featcodec pretrain-mini` (docs/model_card.md).
# The bundled file holds the official MAE checkpoint keys and loads exactly as a downloaded
# mae_hiera_*.pth does (timm checkpoint_filter_fn; the MAE decoder is dropped).
MINI_HIERA_TRUNK = {"embed_dim": 16, "num_heads": 1, "stages": (1, 2, 2, 1)}  # = probes.pretrain.mae.TRUNK
_spec = _trunk_spec(
    "mini-hiera",
    "hiera",
    16,
    128,
    "hiera_tiny_224",
    "mini MAE Hiera pretrained on synthetic:mix (generalist, bundled weights)",
)
register_encoder(_spec, bundled=WEIGHTS_DIR / "mini-hiera.safetensors")(
    _timm_builder("hiera_tiny_224", _convert_hiera, MINI_HIERA_TRUNK)
)
