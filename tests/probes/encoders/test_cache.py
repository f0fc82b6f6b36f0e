"""The feature cache: manifest contents, resume after interruption, bad inputs."""

import json

import pytest
import torch
from click.testing import CliRunner

from bench.cli import main
from probes.encoders import FeatureCache, ImageReadError, collect_images, create_encoder, extract_features
from probes.encoders import extract as extract_module
from probes.encoders.cache import CacheError
from probes.encoders.checkpoints import sha256_file


@pytest.fixture
def encoder():
    return create_encoder("mini-hiera-random", random_init=True, resolution=64)


def test_manifest_records_what_made_the_features(encoder, photo_dir, tmp_path):
    images = collect_images([photo_dir])
    cache = extract_features(encoder, images, tmp_path / "c", batch_size=2, shard_size=2, progress=False)
    m = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert m["encoder"] == "mini-hiera-random" and m["resolution"] == 64 and m["dtype"] == "float32"
    assert m["weights"]["id"] == "random-init" and m["random_init"] is True
    assert [lv["name"] for lv in m["levels"]] == ["stage1", "stage2", "stage3", "stage4"]
    assert m["levels"][0] == {"name": "stage1", "channels": 16, "stride": 4, "shape": [16, 16, 16]}
    assert [e["sha256"] for e in m["images"]] == [sha256_file(p) for p in images]
    assert {"torch", "timm", "python"} <= set(m["versions"])
    assert len(m["shards"]) == 3 and all(s["complete"] for s in m["shards"]) and m["complete"]
    assert len(cache) == 5 and cache.image_paths == [str(p) for p in images]


def test_cached_features_equal_a_direct_forward(encoder, photo_dir, tmp_path):
    images = collect_images([photo_dir])
    cache = extract_features(encoder, images, tmp_path / "c", batch_size=3, shard_size=2, progress=False)
    from probes.encoders import load_image

    direct = encoder(torch.stack([encoder.preprocess(load_image(p)) for p in images]))
    for i in range(len(images)):
        for name in cache.level_names:
            torch.testing.assert_close(cache[i][name], direct[name][i], rtol=1e-5, atol=1e-5)
    batches = list(cache.iter_batches(2, levels=["stage2"]))
    assert [b["stage2"].shape[0] for b in batches] == [2, 2, 1] and list(batches[0]) == ["stage2"]


def test_interrupted_run_resumes_and_skips_finished_shards(encoder, photo_dir, tmp_path, monkeypatch):
    images = collect_images([photo_dir])
    out = tmp_path / "c"
    saves = []
    real_save = extract_module.save_tensors

    def crash_on_second_shard(path, tensors, metadata):
        if saves:
            raise KeyboardInterrupt  # simulated interruption mid-run
        saves.append(path.name)
        return real_save(path, tensors, metadata)

    monkeypatch.setattr(extract_module, "save_tensors", crash_on_second_shard)
    with pytest.raises(KeyboardInterrupt):
        extract_features(encoder, images, out, batch_size=2, shard_size=2, progress=False)
    m = json.loads((out / "manifest.json").read_text())
    assert [s["complete"] for s in m["shards"]] == [True, False, False]
    assert not list(out.glob("*.tmp")), "no half-written files are left behind"
    first_shard_mtime = (out / "shard-00000.safetensors").stat().st_mtime_ns

    written = []
    monkeypatch.setattr(
        extract_module, "save_tensors", lambda p, t, md: (written.append(p.name), real_save(p, t, md))
    )
    cache = extract_features(encoder, images, out, batch_size=2, shard_size=2, progress=False)
    assert written == ["shard-00001.safetensors", "shard-00002.safetensors"]
    assert (out / "shard-00000.safetensors").stat().st_mtime_ns == first_shard_mtime
    assert len(cache) == 5


def test_resume_with_different_settings_is_refused(encoder, photo_dir, tmp_path):
    images = collect_images([photo_dir])
    extract_features(encoder, images, tmp_path / "c", progress=False)
    with pytest.raises(CacheError, match="dtype"):
        extract_features(encoder, images, tmp_path / "c", dtype="float16", progress=False)
    cache = extract_features(encoder, images, tmp_path / "c", dtype="float16", progress=False, force=True)
    assert cache[0]["stage1"].dtype == torch.float16


def test_unreadable_inputs_are_skipped_by_name_or_abort_with_strict(encoder, photo_dir, tmp_path):
    (photo_dir / "broken.png").write_bytes(b"not an image at all")
    images = collect_images([photo_dir])
    cache = extract_features(encoder, images, tmp_path / "c", progress=False)
    assert len(cache) == 5
    assert [s["path"] for s in cache.manifest["skipped"]] == [str(photo_dir / "broken.png")]
    with pytest.raises(ImageReadError, match="broken.png"):
        extract_features(encoder, images, tmp_path / "strict", strict=True, progress=False)


def test_reader_errors_name_the_file(tmp_path):
    with pytest.raises(CacheError, match="no manifest"):
        FeatureCache(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(CacheError, match="manifest.json"):
        FeatureCache(tmp_path)


def test_extract_cli_defaults_to_the_bundled_samples_and_refuses_to_mix_settings(tmp_path):
    runner = CliRunner()
    args = [
        "extract",
        "--encoder",
        "mini-sam2-random",
        "--random-init",
        "--device",
        "cpu",
        "-o",
        str(tmp_path / "c"),
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert len(FeatureCache(tmp_path / "c")) >= 4
    result = runner.invoke(main, args + ["--dtype", "bfloat16"])
    assert result.exit_code == 3 and "different settings" in result.output


def test_extract_cli_usage_and_input_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["extract", "--encoder", "mini-sam2-random", "-o", str(tmp_path / "c")])
    assert result.exit_code == 2 and "exactly one" in result.output
    result = runner.invoke(main, ["extract", "--encoder", "nope", "--random-init", "-o", str(tmp_path / "c")])
    assert result.exit_code == 3 and "unknown encoder" in result.output
    result = runner.invoke(
        main,
        [
            "extract",
            "--encoder",
            "mini-sam2-random",
            "--random-init",
            "--images",
            str(tmp_path / "absent"),
            "-o",
            str(tmp_path / "c"),
        ],
    )
    assert result.exit_code == 3 and "absent" in result.output


def test_encoders_command_lists_the_registry():
    result = CliRunner().invoke(main, ["encoders"])
    assert result.exit_code == 0
    assert "sam2.1-hiera-tiny" in result.output and "fpn0:256/4" in result.output
    result = CliRunner().invoke(main, ["encoders", "--json"])
    assert any(e["name"] == "hiera-large" for e in json.loads(result.output))


def test_random_init_is_the_same_network_in_every_process():
    """A random-init encoder is reproducible: a neck trained on it in one
    process is evaluated on it in another."""
    import subprocess
    import sys

    import torch

    from probes.encoders import create_encoder

    code = (
        "import torch; from probes.encoders import create_encoder; torch.manual_seed(123); "
        "m = create_encoder('mini-hiera-random', random_init=True); "
        "print(float(sum(p.double().sum() for p in m.parameters())))"
    )
    torch.manual_seed(7)  # the caller's RNG state must not matter
    here = float(
        sum(p.double().sum() for p in create_encoder("mini-hiera-random", random_init=True).parameters())
    )
    there = float(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    assert here == there


def test_crops_are_windows_of_the_whole_maps_drawn_the_same_on_every_run(photo_dir, tmp_path):
    """Codec training data: `crops_per_image` windows per image, fp16, each
    cut at whole cells of every level."""
    from probes.encoders.extract import crop_windows
    from probes.training.sources import CachedFeatures

    encoder = create_encoder("mini-hiera-random", random_init=True, resolution=128)
    images = collect_images([photo_dir])
    whole = extract_features(encoder, images, tmp_path / "w", dtype="float16", progress=False)
    crops = extract_features(
        encoder,
        images,
        tmp_path / "c",
        dtype="float16",
        crop=64,
        crops_per_image=2,
        shard_size=2,
        progress=False,
    )
    assert len(crops) == 2 * len(whole) and crops.get(0)["stage4"].shape == (128, 2, 2)
    windows = [w for i in range(len(images)) for w in crop_windows(encoder, crops.manifest["crop"], i)]
    for row, window in enumerate(windows):
        for name, (ys, xs) in window.items():
            assert torch.equal(crops.get(row)[name], whole.get(row // 2)[name][:, ys, xs])
    assert windows != [
        w
        for i in range(len(images))
        for w in crop_windows(encoder, {"size": 64, "per_image": 2, "seed": 1}, i)
    ]
    with pytest.raises(ValueError, match="coarsest stride 32"):
        extract_features(encoder, images, tmp_path / "bad", crop=48, progress=False)
    with pytest.raises(ValueError, match="holds crops"):
        CachedFeatures(crops, ["stage1"])
    # codec training reads the crops shard by shard (4 rows: 2 images × 2 crops), whole maps item by item
    assert crops.read_order == {"block": 4, "window": 8} and whole.read_order is None
    # a codec trained on the crops codes the whole maps (fully convolutional; it records the encoder's
    # resolution)
    from codec.codec_dir import load_codec
    from codec.pipeline import round_trip
    from codec.train import train_codec

    train_codec(
        crops,
        tmp_path / "codec",
        lmbda=1.0,
        kind="hyperprior",
        steps=2,
        batch_size=2,
        hparams={"N": 8, "M": 8, "grid_stride": 8},
        progress=False,
    )
    codec = load_codec(tmp_path / "codec")
    assert codec.config["resolution"] == 128
    trip = round_trip(codec, {k: v.unsqueeze(0).float() for k, v in whole.get(0).items()})
    assert trip.features["stage1"].shape == (1, 16, 32, 32) and trip.bits > 0
