"""The official `sam2` package's ImageEncoder (Hiera trunk + FPN neck, scalp 1).

Its `backbone_fpn` outputs (256 channels at strides 4/8/16) are the split
point feature-coding evaluations of SAM2 use.  Built from the package's own
hydra configs; only `image_encoder` is instantiated, not the whole SAM2 model.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .base import RANDOM_INIT, FrozenEncoder
from .checkpoints import CheckpointError, load_state_dict_file, load_strict, sha256_file, strip_prefix
from .registry import register_encoder
from .spec import EncoderSpec, FeatureLevel

_FPN_LEVELS = tuple(FeatureLevel(f"fpn{i}", 256, 4 * 2**i) for i in range(3))

_CONFIGS = {  # (version, size): config name inside the sam2 package
    ("sam2.1", "tiny"): "configs/sam2.1/sam2.1_hiera_t.yaml",
    ("sam2.1", "small"): "configs/sam2.1/sam2.1_hiera_s.yaml",
    ("sam2.1", "base-plus"): "configs/sam2.1/sam2.1_hiera_b+.yaml",
    ("sam2.1", "large"): "configs/sam2.1/sam2.1_hiera_l.yaml",
    ("sam2", "tiny"): "configs/sam2/sam2_hiera_t.yaml",
    ("sam2", "small"): "configs/sam2/sam2_hiera_s.yaml",
    ("sam2", "base-plus"): "configs/sam2/sam2_hiera_b+.yaml",
    ("sam2", "large"): "configs/sam2/sam2_hiera_l.yaml",
}


class Sam2ImageEncoder(FrozenEncoder):
    def _levels(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        return list(self.model(pixels)["backbone_fpn"])


def build_sam2_image_encoder(config_name: str) -> torch.nn.Module:
    """Instantiate `model.image_encoder` from a sam2 hydra config (random weights).

    `config_name`: a config inside the sam2 package, or the path of a yaml file in the same layout.
    """
    try:
        import sam2  # noqa: F401  (initialises hydra's global config module)
        from hydra import compose
        from hydra.utils import instantiate
        from omegaconf import OmegaConf
    except ImportError as e:
        raise RuntimeError(
            "the official 'sam2' package is needed for sam2*-hiera-* encoders: "
            "SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2"
        ) from e
    if Path(config_name).is_absolute():  # a config file of ours (mini-sam2), not in sam2's search path
        cfg = OmegaConf.load(config_name)
    else:
        cfg = compose(config_name=config_name)
    OmegaConf.resolve(cfg)
    return instantiate(cfg.model.image_encoder, _recursive_=True)


def _builder(config_name: str):
    config_name = str(config_name)

    def build(spec: EncoderSpec, resolution: int, *, checkpoint=None, pretrained=False) -> FrozenEncoder:
        model = build_sam2_image_encoder(config_name)
        weights_id = RANDOM_INIT
        if pretrained:
            raise RuntimeError(
                f"{spec.name}: the sam2 package has no hub download; fetch the official checkpoint "
                "(https://github.com/facebookresearch/sam2#download-checkpoints) and pass --checkpoint PATH"
            )
        if checkpoint is not None:
            source = str(checkpoint)
            state_dict = load_state_dict_file(checkpoint)
            encoder_sd = strip_prefix(state_dict, "image_encoder.")
            if not encoder_sd:
                if any(k.startswith(("trunk.", "neck.")) for k in state_dict):
                    encoder_sd = dict(state_dict)  # a bare ImageEncoder state dict
                else:
                    raise CheckpointError(
                        f"{source}: no 'image_encoder.*' keys; expected an official SAM2 checkpoint "
                        f"({{'model': state_dict}}), first keys: {sorted(state_dict)[:5]}"
                    )
            load_strict(model, encoder_sd, source)
            weights_id = sha256_file(checkpoint)
        return Sam2ImageEncoder(spec, model, resolution, weights_id)

    return build


for (_version, _size), _config in _CONFIGS.items():
    _spec = EncoderSpec(
        name=f"{_version}-hiera-{_size}",
        source="sam2",
        family="sam2",
        levels=_FPN_LEVELS,
        default_resolution=1024,
        description=f"official {_version} ImageEncoder (trunk + FPN, scalp 1)",
        model_id=_config,
    )
    register_encoder(_spec)(_builder(_config))

# mini-sam2: the sam2 package's ImageEncoder at a small size (config beside the weights), trunk
# initialised from mini-hiera and trained SAM-style by `featcodec pretrain-mini` (docs/model_card.md).
# The bundled file uses the official checkpoint keys (image_encoder.*, sam_prompt_encoder.*, ...).
_MINI_DIR = Path(__file__).resolve().parent / "weights"
_spec = EncoderSpec(
    name="mini-sam2",
    source="sam2",
    family="sam2",
    levels=tuple(FeatureLevel(f"fpn{i}", 64, 4 * 2**i) for i in range(3)),
    default_resolution=128,
    description="mini SAM2 ImageEncoder (trunk + FPN) trained on synthetic:mix (specialist, bundled weights)",
    model_id=str(_MINI_DIR / "mini-sam2.yaml"),
)
register_encoder(_spec, bundled=_MINI_DIR / "mini-sam2.safetensors")(_builder(_MINI_DIR / "mini-sam2.yaml"))
