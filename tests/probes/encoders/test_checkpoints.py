"""Checkpoint formats users have, and the errors for the ones we cannot use."""

import pickle

import pytest
import torch
from safetensors.torch import save_file

from probes.encoders import CheckpointError, create_encoder
from probes.encoders.checkpoints import sha256_file


def _official_sam2_checkpoint(path, encoder):
    """The official layout: {"model": state_dict} with the image encoder under image_encoder.*"""
    sd = {f"image_encoder.{k}": v for k, v in encoder.model.state_dict().items()}
    sd["sam_mask_decoder.some.weight"] = torch.zeros(2)  # other parts of SAM2 are ignored
    torch.save({"model": sd}, path)
    return path


def test_official_sam2_checkpoint_loads_into_the_package_encoder(tmp_path):
    source = create_encoder("sam2.1-hiera-tiny", random_init=True, resolution=64)
    ckpt = _official_sam2_checkpoint(tmp_path / "sam2.1_hiera_tiny.pt", source)
    loaded = create_encoder("sam2.1-hiera-tiny", checkpoint=ckpt, resolution=64)
    assert loaded.weights_id == sha256_file(ckpt)
    x = torch.randn(1, 3, 64, 64)
    for a, b in zip(source(x).values(), loaded(x).values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_official_sam2_checkpoint_loads_into_the_timm_trunk(tmp_path):
    source = create_encoder("sam2.1-hiera-tiny", random_init=True, resolution=64)
    ckpt = _official_sam2_checkpoint(tmp_path / "sam2.1_hiera_tiny.pt", source)
    trunk = create_encoder("sam2-trunk-tiny", checkpoint=ckpt, resolution=64)
    assert trunk.weights_id == sha256_file(ckpt)


def test_hiera_mae_checkpoint_with_model_state_and_224_pos_embed_is_resized(tmp_path):
    at_224 = create_encoder("hiera-tiny", random_init=True, resolution=224)
    sd = dict(at_224.model.state_dict())
    sd["decoder_embed.weight"] = torch.zeros(4, 4)  # MAE decoder parts are not the trunk
    sd["mask_token"] = torch.zeros(1, 1, 4)
    torch.save({"model_state": sd}, tmp_path / "mae_hiera_tiny_224.pth")
    at_128 = create_encoder("hiera-tiny", checkpoint=tmp_path / "mae_hiera_tiny_224.pth", resolution=128)
    assert at_128.model.pos_embed.shape == (1, 32 * 32, 96)
    # same weights at the native size reproduce the source exactly
    again = create_encoder("hiera-tiny", checkpoint=tmp_path / "mae_hiera_tiny_224.pth", resolution=224)
    x = torch.randn(1, 3, 224, 224)
    torch.testing.assert_close(again(x)["stage4"], at_224(x)["stage4"], rtol=0, atol=0)


def test_timm_safetensors_checkpoint_loads(tmp_path):
    source = create_encoder("mini-sam2-random", random_init=True)
    save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, tmp_path / "w.safetensors")
    loaded = create_encoder("mini-sam2-random", checkpoint=tmp_path / "w.safetensors")
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(source(x)["stage4"], loaded(x)["stage4"], rtol=0, atol=0)


def test_wrong_keys_are_an_error_naming_them(tmp_path):
    source = create_encoder("mini-sam2-random", random_init=True)
    sd = dict(source.model.state_dict())
    sd.pop("pos_embed")
    sd["blocks.99.attn.qkv.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as err:
        create_encoder("mini-sam2-random", checkpoint=tmp_path / "bad.pt")
    message = str(err.value)
    assert "bad.pt" in message and "pos_embed" in message and "blocks.99.attn.qkv.weight" in message


def test_checkpoint_without_image_encoder_is_refused_by_the_sam2_encoder(tmp_path):
    torch.save({"model": {"memory_encoder.x": torch.zeros(1)}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="image_encoder"):
        create_encoder("sam2.1-hiera-tiny", checkpoint=tmp_path / "other.pt", resolution=64)


class _Custom:  # a pickled object, as a full-model torch.save would produce
    def __init__(self):
        self.w = torch.zeros(2)


def test_pickle_only_checkpoint_is_refused(tmp_path):
    path = tmp_path / "pickled.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": _Custom()}, f)
    with pytest.raises(CheckpointError, match="pickle code execution"):
        create_encoder("mini-hiera-random", checkpoint=path)
    torch.save({"model": _Custom()}, tmp_path / "pickled_zip.pt")
    with pytest.raises(CheckpointError, match="pickle code execution"):
        create_encoder("mini-hiera-random", checkpoint=tmp_path / "pickled_zip.pt")


def test_truncated_checkpoints_are_reported(tmp_path):
    source = create_encoder("mini-hiera-random", random_init=True)
    torch.save(source.model.state_dict(), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        create_encoder("mini-hiera-random", checkpoint=tmp_path / "cut.pt")
    save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, tmp_path / "w.safetensors")
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        create_encoder("mini-hiera-random", checkpoint=tmp_path / "cut.safetensors")


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        create_encoder("mini-hiera-random", checkpoint=tmp_path / "absent.pt")


def test_pretrained_without_network_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="--checkpoint"):
        create_encoder("hiera-tiny", pretrained=True, resolution=64)
