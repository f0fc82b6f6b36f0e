"""The shipped mini-hiera / mini-sam2 files: official key layouts, registry loading, CLI defaults."""

from __future__ import annotations

import json

import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from bench.cli import main
from probes.encoders import FeatureCache, bundled_weights, create_encoder, sample_images_dir
from probes.encoders.checkpoints import sha256_file
from probes.pretrain.mae import build_mae
from probes.pretrain.mapping import mae_to_hieradet
from probes.pretrain.sam import SHIPPED_PREFIXES, build_sam2_model

MAX_BYTES = 8 * 1024 * 1024  # both encoders together: the package has to hold the heads too


def _shapes(sd):
    return {k: tuple(v.shape) for k, v in sd.items()}


def test_shipped_files_are_small_safetensors():
    paths = [bundled_weights("mini-hiera"), bundled_weights("mini-sam2")]
    assert all(p.suffix == ".safetensors" and p.is_file() for p in paths)
    assert sum(p.stat().st_size for p in paths) <= MAX_BYTES


def test_mini_hiera_file_is_the_official_mae_checkpoint_layout():
    """Exactly the keys and shapes of `MaskedAutoencoderHiera(...).state_dict()` (the model_state of
    mae_hiera_*.pth), built by the official hiera package at the mini size."""
    shipped = load_file(str(bundled_weights("mini-hiera")))
    assert _shapes(shipped) == _shapes(build_mae(seed=0).state_dict())


def test_mini_sam2_file_is_within_the_official_sam2_layout():
    """Keys ⊂ a SAM2Base built by the sam2 package from the shipped config, same shapes, and all of the image
    encoder, prompt encoder and mask decoder (the parts a single image uses)."""
    shipped = load_file(str(bundled_weights("mini-sam2")))
    official = _shapes(build_sam2_model(seed=0).state_dict())
    assert set(shipped) <= set(official)
    assert {k: official[k] for k in shipped} == _shapes(shipped)
    assert set(shipped) == {k for k in official if k.startswith(SHIPPED_PREFIXES)}


def test_bundled_weights_load_through_the_registry_by_default():
    for name in ("mini-hiera", "mini-sam2"):
        encoder = create_encoder(name)
        assert encoder.weights_id == sha256_file(bundled_weights(name)) and not encoder.random_init
        features = encoder(torch.randn(1, 3, 128, 128))
        assert {k: tuple(v.shape[1:]) for k, v in features.items()} == encoder.spec.shapes(128)
    random = create_encoder("mini-sam2", random_init=True)
    assert random.random_init


def test_mini_sam2_trunk_started_from_mini_hiera_and_moved():
    """The SAM trunk was initialised by the mapping (same shapes) and then trained (different values)."""
    mapped = mae_to_hieradet(load_file(str(bundled_weights("mini-hiera"))))
    sam2 = {
        k[len("image_encoder.trunk.") :]: v
        for k, v in load_file(str(bundled_weights("mini-sam2"))).items()
        if k.startswith("image_encoder.trunk.")
    }
    assert _shapes(mapped) == _shapes(sam2)
    assert not torch.equal(mapped["blocks.0.attn.qkv.weight"], sam2["blocks.0.attn.qkv.weight"])


def test_cli_lists_weights_and_extracts_without_a_weights_option(tmp_path):
    result = CliRunner().invoke(main, ["encoders"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    sha = sha256_file(bundled_weights("mini-sam2"))[:12]
    assert f"bundled:{sha}" in rows["mini-sam2"] and "bundled:" in rows["mini-hiera"]
    assert rows["hiera-tiny"].rstrip().endswith("-")
    listed = {e["name"]: e for e in json.loads(CliRunner().invoke(main, ["encoders", "--json"]).output)}
    assert listed["mini-hiera"]["weights"].startswith("bundled:")
    out = tmp_path / "c"
    args = [
        "extract",
        "--encoder",
        "mini-sam2",
        "--images",
        str(sample_images_dir() / "room.png"),
        "--device",
        "cpu",
        "-o",
        str(out),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    cache = FeatureCache(out)
    assert cache.manifest["random_init"] is False and cache.manifest["resolution"] == 128
    result = CliRunner().invoke(main, ["extract", "--encoder", "hiera-tiny", "-o", str(tmp_path / "d")])
    assert result.exit_code == 2 and "exactly one" in result.output  # no bundled weights: still required


def test_registry_features_equal_the_official_sam2_model_loaded_from_the_shipped_file():
    shipped = load_file(str(bundled_weights("mini-sam2")))
    official = build_sam2_model(seed=1).eval()
    missing, unexpected = official.load_state_dict(shipped, strict=False)
    assert not unexpected and not [k for k in missing if k.startswith(SHIPPED_PREFIXES)]
    encoder = create_encoder("mini-sam2")
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = official.image_encoder(x)["backbone_fpn"]
    for name, ref in zip(encoder.spec.level_names, reference, strict=True):
        torch.testing.assert_close(encoder(x)[name], ref, rtol=1e-5, atol=1e-5)
    mae = build_mae(seed=1)
    mae.load_state_dict(load_file(str(bundled_weights("mini-hiera"))), strict=True)  # the official class
