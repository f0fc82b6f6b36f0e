"""featcodec's encoders reproduce the official sam2 package on the same weights."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sam2.build_sam import build_sam2

from bench.cli import main
from probes.encoders import FeatureCache, create_encoder, load_image, sample_images_dir
from probes.encoders.preprocess import preprocess_image
from probes.encoders.spec import IMAGENET_MEAN, IMAGENET_STD

RES = 128


@pytest.fixture(scope="module")
def official_sam2(tmp_path_factory):
    """A SAM2.1-tiny built by the sam2 package itself, saved in the official {"model": ...} layout."""
    torch.manual_seed(0)
    model = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", ckpt_path=None, device="cpu")
    with torch.no_grad():  # non-trivial weights everywhere (the default init leaves some at 0)
        for p in model.image_encoder.parameters():
            p.add_(0.02 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    return model.eval(), path


def test_extract_cli_matches_the_sam2_image_encoder(official_sam2, photo_dir, tmp_path):
    model, ckpt = official_sam2
    out = tmp_path / "cache"
    result = CliRunner().invoke(
        main,
        [
            "extract",
            "--encoder",
            "sam2.1-hiera-tiny",
            "--checkpoint",
            str(ckpt),
            "--images",
            str(photo_dir),
            "--images",
            str(sample_images_dir() / "grace_hopper.jpg"),  # a real photograph
            "--resolution",
            str(RES),
            "--device",
            "cpu",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    cache = FeatureCache(out)
    assert len(cache) == 6
    for i, path in enumerate(cache.image_paths):
        pixels = preprocess_image(load_image(path), RES, IMAGENET_MEAN, IMAGENET_STD)
        with torch.no_grad():
            reference = model.image_encoder(pixels[None])["backbone_fpn"]
        for name, ref in zip(cache.level_names, reference, strict=True):
            diff = (cache[i][name] - ref[0]).abs().max().item()
            assert diff < 1e-4, (path, name, diff)


def test_timm_trunk_agrees_with_the_sam2_trunk_on_the_same_weights(official_sam2):
    model, ckpt = official_sam2
    trunk = create_encoder("sam2-trunk-tiny", checkpoint=ckpt, resolution=RES)
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 3, RES, RES)).astype(np.float32))
    with torch.no_grad():
        reference = model.image_encoder.trunk(x)
    ours = trunk(x)
    for name, ref in zip(trunk.spec.level_names, reference, strict=True):
        assert (ours[name] - ref).abs().max().item() < 1e-4, name
