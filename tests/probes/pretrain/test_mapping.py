"""MAE Hiera → hieradet: the mapped trunk computes what the MAE trunk computes, through every loader path."""

from __future__ import annotations

import warnings

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from probes.encoders import create_encoder
from probes.pretrain.mae import MAE_CONFIG, RESOLUTION, TRUNK, build_mae
from probes.pretrain.mapping import MAE_ONLY_PREFIXES, hieradet_trunk_config, mae_to_hieradet
from probes.pretrain.sam import CONFIG_PATH, build_sam2_model

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    from hiera import Hiera as OfficialHiera
from sam2.modeling.backbones.hieradet import Hiera as HieraDet


@pytest.fixture(scope="module")
def mae_state():
    """An official MaskedAutoencoderHiera at the mini size with non-trivial weights everywhere."""
    mae = build_mae(seed=3)
    with torch.no_grad():
        for p in mae.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return {k: v.clone() for k, v in mae.state_dict().items()}


def _x(batch=2, res=RESOLUTION):
    return torch.randn(batch, 3, res, res, generator=torch.Generator().manual_seed(1))


def test_mapped_hieradet_equals_the_official_hiera_trunk_at_every_stage(mae_state):
    reference = OfficialHiera(input_size=(RESOLUTION, RESOLUTION), q_pool=3, **TRUNK).eval()
    trunk = {k: v for k, v in mae_state.items() if not k.startswith(MAE_ONLY_PREFIXES)}
    missing, unexpected = reference.load_state_dict(trunk, strict=False)
    assert not unexpected and all(k.startswith(("norm.", "head.")) for k in missing)  # classifier only
    mapped = HieraDet(**hieradet_trunk_config(MAE_CONFIG, RESOLUTION)).eval()
    mapped.load_state_dict(mae_to_hieradet(mae_state), strict=True)
    with torch.no_grad():
        _, stages = reference(_x(), return_intermediates=True)
        ours = mapped(_x())
    assert len(stages) == len(ours) == 4
    for ref, out in zip(stages, ours, strict=True):
        torch.testing.assert_close(out, ref.permute(0, 3, 1, 2), rtol=1e-4, atol=1e-5)
    # a wrong mapping is caught: the transposed position embedding changes the outputs
    broken = mae_to_hieradet(mae_state)
    broken["pos_embed"] = broken["pos_embed"].transpose(2, 3).contiguous()
    mapped.load_state_dict(broken)
    with torch.no_grad():
        assert (mapped(_x())[0] - stages[0].permute(0, 3, 1, 2)).abs().max() > 1e-3


def test_unmapped_parts_are_exactly_the_mae_decoder_and_encoder_norm(mae_state):
    mapped = mae_to_hieradet(mae_state)
    dropped = {k for k in mae_state if k.startswith(MAE_ONLY_PREFIXES)}
    assert {k.split(".")[0] for k in dropped} == {
        "encoder_norm",
        "multi_scale_fusion_heads",
        "decoder_embed",
        "decoder_pos_embed",
        "decoder_blocks",
        "decoder_norm",
        "decoder_pred",
        "mask_token",
    }
    assert set(mapped) - {
        k.replace(".mlp.fc1.", ".mlp.layers.0.").replace(".mlp.fc2.", ".mlp.layers.1.") for k in mae_state
    } == {"pos_embed_window"}
    assert not mapped["pos_embed_window"].any()


def test_shipped_config_trunk_is_the_mapped_trunk():
    trunk = OmegaConf.to_container(OmegaConf.load(CONFIG_PATH).model.image_encoder.trunk)
    trunk.pop("_target_")
    assert trunk == hieradet_trunk_config(MAE_CONFIG, RESOLUTION)


def test_user_style_mae_file_through_the_registry_equals_the_mapped_sam2_trunk(mae_state, tmp_path):
    """The loader path of a downloaded mae_hiera_*.pth ({"model_state": ...}) and the safetensors path agree
    with the sam2 ImageEncoder's trunk after the mapping."""
    torch.save({"model_state": mae_state}, tmp_path / "mae_hiera_mini.pth")
    save_file({k: v.contiguous() for k, v in mae_state.items()}, tmp_path / "mae.safetensors")
    from_pth = create_encoder("mini-hiera", checkpoint=tmp_path / "mae_hiera_mini.pth")
    from_st = create_encoder("mini-hiera", checkpoint=tmp_path / "mae.safetensors")
    sam2 = build_sam2_model(seed=0).eval()
    sam2.image_encoder.trunk.load_state_dict(mae_to_hieradet(mae_state), strict=True)
    x = _x()
    with torch.no_grad():
        trunk_out = sam2.image_encoder.trunk(x)
    for features in (from_pth(x), from_st(x)):
        for name, ref in zip(from_pth.spec.level_names, trunk_out, strict=True):
            torch.testing.assert_close(features[name], ref, rtol=1e-4, atol=1e-5)
