"""Whole directories: `encode_image_files` (batched forward, coding on a pool)
writes the one-image loop's bytes."""

import shutil

import pytest
from click.testing import CliRunner

from bench.cli import main
from codec.codec_dir import load_codec
from codec.train import train_codec
from probes.coding import encode_image_files, encode_images, image_targets

from .conftest import TINY, write_images


@pytest.fixture(scope="module")
def codec_dir(tmp_path_factory, feature_cache):
    out = tmp_path_factory.mktemp("files") / "codec"
    train_codec(feature_cache, out, lmbda=10.0, steps=3, batch_size=2, hparams=TINY, progress=False)
    return out


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory, image_paths):
    """The bundled samples and five small PNGs of another size: 9 images, batches of 4 leave a remainder."""
    folder = tmp_path_factory.mktemp("photos")
    for p in image_paths:
        shutil.copy(p, folder / p.name)
    write_images(folder / "more", n=5, seed=3)
    return folder


@pytest.mark.parametrize("workers", [3, 0])  # a pool; in the caller's thread (a CPU device's default)
def test_directory_encode_writes_the_one_image_bytes(codec_dir, photo_dir, tmp_path, workers):
    codec = load_codec(codec_dir)
    paths, targets = image_targets([photo_dir], tmp_path / "out", force=False)
    assert len(paths) == 9
    loop = {t: data for t, data, _ in encode_images(codec, paths, targets, random_init=True)}
    options = dict(random_init=True, batch_size=4, workers=workers, threads=2, show_progress=False)
    results = list(encode_image_files(codec, paths, targets, **options))
    assert [r.target for r in results] == targets  # in input order
    assert all(r.error is None for r in results)
    assert {r.target: r.data for r in results} == loop
    assert all(r.timings["encoder_s"] > 0 and "codec_s" in r.timings for r in results)


def test_a_failing_file_is_named_and_the_others_are_written(codec_dir, photo_dir, tmp_path):
    inputs = tmp_path / "in"
    shutil.copytree(photo_dir, inputs)
    (inputs / "broken.png").write_bytes(b"\x89PNG not really")
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "encode",
            str(inputs / "*.png"),
            str(inputs / "more"),
            "--codec",
            str(codec_dir),
            "--random-init",
            "--batch-size",
            "3",
            "-o",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 3
    assert "broken.png" in result.output and "1 of 9 images failed" in result.output
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(written) == 8 and "broken.fcb" not in written
    one = tmp_path / "one.fcb"
    image = inputs / "more" / "img2.png"
    assert (
        runner.invoke(
            main, ["encode", str(image), "--codec", str(codec_dir), "--random-init", "-o", str(one)]
        ).exit_code
        == 0
    )
    assert one.read_bytes() == (tmp_path / "out" / "img2.fcb").read_bytes()


def test_a_glob_that_matches_nothing_is_an_input_error(tmp_path):
    from codec.errors import InputError

    with pytest.raises(InputError, match="no file matches"):
        image_targets([str(tmp_path / "*.jpg")], tmp_path / "out", force=False)


@pytest.mark.parametrize("workers", ["2", "0"])  # a pool; in the caller's thread (a CPU's default)
def test_many_streams_decode_like_one_and_a_bad_one_is_named(
    codec_dir, photo_dir, image_paths, tmp_path, workers
):
    """A directory's tree is mirrored by encode (photos/more/img0.png → fcb/more/img0.fcb) and by decode."""
    from safetensors.torch import load_file

    runner = CliRunner()
    streams = tmp_path / "fcb"
    encode = ["encode", str(photo_dir), "--codec", str(codec_dir), "--random-init", "-o", str(streams)]
    assert runner.invoke(main, encode).exit_code == 0
    assert sorted(p.name for p in (streams / "more").iterdir()) == [f"img{i}.fcb" for i in range(5)]
    assert sorted(p.name for p in streams.glob("*.fcb")) == sorted(f"{p.stem}.fcb" for p in image_paths)
    (streams / "more" / "bad.fcb").write_bytes((streams / "more" / "img0.fcb").read_bytes()[:-3])
    result = runner.invoke(
        main,
        [
            "decode",
            str(streams),
            "--codec",
            str(codec_dir),
            "--workers",
            workers,
            "-o",
            str(tmp_path / "dec"),
        ],
    )
    assert result.exit_code == 3, result.output
    assert "1 of 10 streams failed" in result.output and "bad.fcb" in result.output
    decoded = sorted(p.name for p in (tmp_path / "dec" / "more").iterdir())
    assert decoded == [f"img{i}.safetensors" for i in range(5)]
    assert len(list((tmp_path / "dec").glob("*.safetensors"))) == len(image_paths)
    one = tmp_path / "one.safetensors"
    decode_one = ["decode", str(streams / "more" / "img3.fcb"), "--codec", str(codec_dir), "-o", str(one)]
    assert runner.invoke(main, decode_one).exit_code == 0
    many, single = load_file(tmp_path / "dec" / "more" / "img3.safetensors"), load_file(one)
    assert many.keys() == single.keys() and all((many[k] == single[k]).all() for k in many)


def test_resume_writes_only_the_missing_outputs_and_refuses_a_foreign_one(codec_dir, photo_dir, tmp_path):
    runner = CliRunner()
    out, dec = tmp_path / "fcb", tmp_path / "dec"
    encode = ["encode", str(photo_dir), "--codec", str(codec_dir), "--random-init", "-o", str(out)]
    assert runner.invoke(main, encode).exit_code == 0
    first = {p: p.read_bytes() for p in out.rglob("*.fcb")}
    assert len(first) == 9
    for p in sorted(first)[::3]:  # an interrupted run: 3 streams never written
        p.unlink()
    result = runner.invoke(main, [*encode, "--resume"])
    assert result.exit_code == 0, result.output
    assert "resume: 6 of 9 outputs already there" in result.output
    assert {p: p.read_bytes() for p in out.rglob("*.fcb")} == first
    assert runner.invoke(main, [*encode, "--resume", "--force"]).exit_code == 2  # one or the other
    assert runner.invoke(main, encode).exit_code == 3  # without either, an existing output is refused

    decode = ["decode", str(out), "--codec", str(codec_dir), "-o", str(dec)]
    assert runner.invoke(main, decode).exit_code == 0
    (dec / "more" / "img1.safetensors").unlink()
    result = runner.invoke(main, [*decode, "--resume"])
    assert result.exit_code == 0 and "resume: 8 of 9 outputs already there" in result.output
    assert (dec / "more" / "img1.safetensors").exists()

    (out / "more" / "img1.fcb").write_bytes(b"not a stream")  # not this run's output: named, nothing lost
    result = runner.invoke(main, [*encode, "--resume"])
    assert result.exit_code == 3 and "img1.fcb: exists and is not a stream" in result.output
    (dec / "more" / "img1.safetensors").write_bytes(b"{}")
    result = runner.invoke(main, [*decode, "--resume"])
    assert result.exit_code == 3 and "img1.safetensors: exists and is not a safetensors file" in result.output


def test_resume_refuses_streams_of_another_codec(codec_dir, photo_dir, feature_cache, tmp_path):
    other = tmp_path / "other"
    train_codec(feature_cache, other, lmbda=40.0, steps=3, batch_size=2, hparams=TINY, progress=False)
    runner = CliRunner()
    out = tmp_path / "fcb"
    encode = ["encode", str(photo_dir / "more"), "--random-init", "-o", str(out)]
    assert runner.invoke(main, [*encode, "--codec", str(other)]).exit_code == 0
    result = runner.invoke(main, [*encode, "--codec", str(codec_dir), "--resume"])
    assert result.exit_code == 3 and "img0.fcb: exists, written by codec" in result.output


def test_a_batch_that_fails_to_code_is_coded_item_by_item_naming_the_file(
    codec_dir, photo_dir, tmp_path, monkeypatch
):
    import probes.coding

    codec = load_codec(codec_dir)
    paths, targets = image_targets([photo_dir], tmp_path / "out", force=False)
    loop = {t: data for t, data, _ in encode_images(codec, paths, targets, random_init=True)}
    real = probes.coding.encode_features

    def refuses_img2(codec, features, **kw):  # as a stream would fail (e.g. non-finite features)
        if any(s["name"] == "img2.png" for s in kw["sources"]):
            raise ValueError("features are not finite")
        return real(codec, features, **kw)

    monkeypatch.setattr(probes.coding, "encode_features", refuses_img2)
    options = dict(random_init=True, batch_size=4, workers=0, show_progress=False)
    results = list(encode_image_files(codec, paths, targets, **options))
    failed = [r for r in results if r.error is not None]
    assert [r.path.name for r in failed] == ["img2.png"] and "features are not finite" in failed[0].error
    assert {r.target: r.data for r in results if r.error is None} == {
        t: d for t, d in loop.items() if t.name != "img2.fcb"
    }
