"""Packed-feature anchors (vvc / hevc / av1): packing, the CLI on a codec
directory, and the documented layout."""

import json
import struct
import subprocess
import zlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from bench.cli import main
from codec.bitstream import BitstreamError, pack, unpack
from codec.codec_dir import load_codec
from codec.models.packed import channel_ranges, dequantise, frame_shape, pack_level, quantise, unpack_level
from codec.pipeline import decode_stream, encode_features, round_trip
from codec.train import train_codec


def test_tiles_are_raster_order_and_invertible():
    q = np.arange(5 * 3 * 2, dtype=np.uint16).reshape(5, 3, 2)  # C=5 → 2 rows × 3 cols of 3×2 tiles
    frame = pack_level(q)
    assert frame.shape == frame_shape(5, 3, 2) == (16, 16)
    assert (frame[3:6, 2:4] == q[4]).all() and (frame[0:3, 4:6] == q[2]).all()
    assert (frame[3:6, 4:6] == 512).all() and (frame[6:, :] == 512).all()  # unused tile and padding: fill
    assert (unpack_level(frame, 5, 3, 2) == q).all()


def test_vvc_pictures_are_twice_the_mosaics_height_only_below_qp_37():
    from codec import standard

    vvc, hevc = standard.video_format("vvc"), standard.video_format("hevc")
    assert [vvc.height_factor(qp) for qp in (0, 36, 37, 63)] == [2, 2, 1, 1]
    assert {hevc.height_factor(qp) for qp in (0, 51)} == {1}


def test_ranges_hold_every_value_and_quantisation_error_is_half_a_step():
    x = (np.random.default_rng(0).standard_normal((4, 6, 6)) * [[[1]], [[30]], [[1e-3]], [[0]]]).astype(
        np.float32
    )
    lo, hi = channel_ranges(x)
    assert lo.dtype == np.float16 and (lo.astype(np.float32) <= x.min(axis=(1, 2))).all()
    assert (hi.astype(np.float32) >= x.max(axis=(1, 2))).all()
    error = np.abs(dequantise(quantise(x, lo, hi), lo, hi) - x).max(axis=(1, 2))
    step = (hi.astype(np.float32) - lo.astype(np.float32)) / 1023
    assert (error <= step / 2 + 1e-6).all()
    with pytest.raises(ValueError, match="finite"):
        channel_ranges(np.full((1, 2, 2), np.inf, np.float32))


def _train_vvc(feature_cache, *args):
    """`featcodec train-codec --model vvc` on the feature cache (a packed anchor: no training)."""
    command = ["train-codec", "--features", feature_cache.path, "--model", "vvc", *args]
    return CliRunner().invoke(main, [str(a) for a in command])


@pytest.fixture(scope="module")
def vvc_dirs(tmp_path_factory, feature_cache):
    """`featcodec train-codec --model vvc` at two QPs (no training)."""
    out = {}
    for qp in (22, 42):
        path = tmp_path_factory.mktemp("vvc") / f"qp{qp}"
        result = _train_vvc(feature_cache, "--qp", qp, "-o", path)
        assert result.exit_code == 0, result.output
        out[qp] = path
    return out


def test_train_codec_needs_qp_not_lambda(feature_cache, tmp_path):
    result = _train_vvc(feature_cache, "--lambda", 1, "-o", tmp_path / "x")
    assert result.exit_code != 0 and "--qp" in result.output


def test_cli_encode_info_decode_on_a_vvc_codec(vvc_dirs, feature_cache, tmp_path):
    run = CliRunner()
    save_file({k: v.float().contiguous() for k, v in feature_cache[0].items()}, tmp_path / "in.safetensors")
    sizes, errors = {}, {}
    for qp, codec_dir in vvc_dirs.items():
        fcb = tmp_path / f"{qp}.fcb"
        result = run.invoke(
            main,
            [
                "encode",
                "--features",
                str(tmp_path / "in.safetensors"),
                "--codec",
                str(codec_dir),
                "-o",
                str(fcb),
            ],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        info = json.loads(run.invoke(main, ["info", str(fcb), "--json"]).stdout)
        assert info["codec"]["kind"] == "vvc" and info["coder"] == "vvc"
        assert [s["name"] for s in info["substreams"]][:2] == ["r.stage1", "s.stage1"]
        out = tmp_path / f"{qp}.safetensors"
        assert (
            run.invoke(main, ["decode", str(fcb), "--codec", str(codec_dir), "-o", str(out)]).exit_code == 0
        )
        decoded, clean = load_file(str(out)), feature_cache[0]
        errors[qp] = sum(
            float(((decoded[k] - clean[k].float()) ** 2).mean() / clean[k].float().var()) for k in clean
        )
        sizes[qp] = info["payload_bytes"]
    assert sizes[42] < sizes[22] and errors[42] > errors[22]  # the QP ladder trades rate for distortion
    assert errors[22] < 0.01


def test_round_trip_matches_the_model_and_every_standard_decodes(feature_cache, tmp_path):
    batch = {k: v[None].float() for k, v in feature_cache[1].items()}
    for kind in ("hevc", "av1"):
        codec = train_codec(feature_cache, tmp_path / kind, lmbda=None, kind=kind, hparams={"qp": 30})
        trip = round_trip(codec, batch, check=True)
        assert trip.exact and trip.stream_bytes["main"] > 0 and trip.stream_bytes["hyper"] == 4 * 240


def _documented_parse(data: bytes) -> tuple[dict, dict]:
    """docs/bitstream.md sections 1 and 8 only: preamble, JSON header, substreams in header order."""
    magic, major, _minor, _flags, h = struct.unpack_from("<4sBBHI", data, 0)
    assert magic == b"\x89FCB" and major == 1
    header = json.loads(data[12 : 12 + h])
    assert struct.unpack_from("<I", data, 12 + h)[0] == zlib.crc32(data[: 12 + h])
    offset, parts = 16 + h, {}
    for entry in header["substreams"]:
        parts[entry["name"]] = data[offset : offset + entry["length"]]
        offset += entry["length"]
    return header, parts


def test_standard_bitstream_extracted_from_the_documented_layout_decodes_with_ffmpeg(
    vvc_dirs, feature_cache, tmp_path
):
    import imageio_ffmpeg

    codec = load_codec(vvc_dirs[22])
    (data,) = encode_features(codec, {k: v.float() for k, v in feature_cache[2].items()})
    ours = decode_stream(codec, data).features
    header, parts = _documented_parse(data)
    for level in header["packing"]["levels"]:
        (frame_h, frame_w), (rows, cols), (h, w), c = (
            level["frame"],
            level["tiles"],
            level["tile"],
            level["channels"],
        )
        path = tmp_path / f"{level['name']}.266"
        path.write_bytes(parts[level["stream"]])
        # one thread, as docs/bitstream.md says: ffmpeg 9.0's multithreaded VVC decoder is not deterministic
        yuv = subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                "-v",
                "error",
                "-threads",
                "1",
                "-f",
                "vvc",
                "-i",
                str(path),
                "-f",
                "rawvideo",
                "-pix_fmt",
                "yuv420p10le",
                "-",
            ],
            capture_output=True,
            check=True,
        ).stdout
        luma = np.frombuffer(yuv, "<u2", frame_h * frame_w).reshape(frame_h, frame_w)
        # the level's checksum: CRC-32 of its ranges' bytes, then of the decoded luma samples (u16 LE)
        assert header["checksums"][level["name"]] == zlib.crc32(
            luma.tobytes(), zlib.crc32(parts[level["ranges"]])
        )
        ranges = np.frombuffer(parts[level["ranges"]], "<f2").astype(np.float32)
        lo, hi = ranges[:c], ranges[c:]
        tiles = np.stack(
            [
                luma[(k // cols) * h : (k // cols + 1) * h, (k % cols) * w : (k % cols + 1) * w]
                for k in range(c)
            ]
        )
        x_hat = lo[:, None, None] + tiles.astype(np.float32) * ((hi - lo) / np.float32(1023))[:, None, None]
        assert rows * cols >= c
        assert torch.equal(torch.from_numpy(x_hat), ours[level["name"]])


def test_per_level_ranges_carry_one_pair_per_level(feature_cache, tmp_path):
    batch = {k: v[None].float() for k, v in feature_cache[1].items()}
    codecs = {
        per: train_codec(
            feature_cache, tmp_path / per, lmbda=None, kind="vvc", hparams={"qp": 51, "ranges_per": per}
        )
        for per in ("channel", "level")
    }
    (data,) = encode_features(codecs["level"], batch)
    parsed = unpack(data)
    assert parsed.header["packing"]["ranges_per"] == "level"
    assert all(len(parsed.substreams[f"r.{n}"]) == 4 for n in codecs["level"].model.level_names)
    decoded = decode_stream(codecs["level"], data).features
    for name, x in batch.items():  # every value inside the level's one range, within a 10-bit step of it
        assert torch.all(decoded[name] >= x.min() - 1e-3) and torch.all(decoded[name] <= x.max() + 1e-3)
    (per_channel,) = encode_features(codecs["channel"], batch)
    assert len(data) < len(per_channel)
    with pytest.raises(ValueError, match="ranges_per"):
        train_codec(
            feature_cache, tmp_path / "x", lmbda=None, kind="vvc", hparams={"qp": 51, "ranges_per": "tile"}
        )


def test_malformed_ranges_and_packing_are_bitstream_errors(vvc_dirs, feature_cache):
    codec = load_codec(vvc_dirs[42])
    (data,) = encode_features(codec, {k: v.float() for k, v in feature_cache[3].items()})
    parsed = unpack(data)
    header = {k: v for k, v in parsed.header.items() if k != "substreams"}
    short = {**parsed.substreams, "r.stage2": parsed.substreams["r.stage2"][:-2]}
    with pytest.raises(BitstreamError, match="r.stage2"):
        decode_stream(codec, pack(header, short))
    edited = json.loads(json.dumps(header))
    edited["packing"]["levels"][0]["tiles"] = [1, 16]
    with pytest.raises(BitstreamError, match="packing"):
        decode_stream(codec, pack(edited, parsed.substreams))
    garbage = {**parsed.substreams, "s.stage3": b"\x00\x00\x01" + bytes(40)}
    with pytest.raises(BitstreamError):
        decode_stream(codec, pack(header, garbage))


def test_decoded_samples_and_ranges_must_match_the_encoders_checksums(vvc_dirs, feature_cache):
    codec = load_codec(vvc_dirs[42])
    (data,) = encode_features(codec, {k: v.float() for k, v in feature_cache[3].items()})
    parsed = unpack(data)
    header = {k: v for k, v in parsed.header.items() if k != "substreams"}
    assert set(header["checksums"]) == set(codec.model.level_names)
    wrong = {**header, "checksums": {**header["checksums"], "stage2": header["checksums"]["stage2"] ^ 1}}
    with pytest.raises(BitstreamError, match=r"checksums\['stage2'\]"):
        decode_stream(codec, pack(wrong, parsed.substreams))
    ranges = bytearray(parsed.substreams["r.stage4"])
    ranges[-2] ^= 0x01  # the last maximum one float16 step off: still valid ranges, other features
    with pytest.raises(BitstreamError, match=r"checksums\['stage4'\]"):
        decode_stream(codec, pack(header, {**parsed.substreams, "r.stage4": bytes(ranges)}))
    with pytest.raises(BitstreamError, match="checksums"):  # a stream without them is refused
        decode_stream(codec, pack({**header, "checksums": {}}, parsed.substreams))


def test_in_process_hevc_encode_writes_the_ffmpeg_binarys_bytes(monkeypatch):
    """The packed-HEVC anchor encodes through PyAV's libx265 (no process per
    plane): the same bytes as ffmpeg."""
    from codec import standard

    plane = np.random.default_rng(3).integers(0, standard.MAX_SAMPLE + 1, (48, 80)).astype(np.uint16)
    in_process = standard.encode_plane(plane, "hevc", qp=37, preset="ultrafast")
    monkeypatch.setattr(standard, "_pyav", lambda: None)  # the ffmpeg binary instead
    assert standard.encode_plane(plane, "hevc", qp=37, preset="ultrafast") == in_process


@pytest.mark.parametrize("kind", ["vvc", "hevc", "av1"])
def test_in_process_decoders_give_the_ffmpeg_binarys_samples_within_the_same_bound(monkeypatch, kind):
    from codec import standard

    yy, xx = np.mgrid[0:48, 0:80]
    plane = (np.sin(xx / 5) * 300 + yy * 4 + 400).astype(np.uint16)
    data = standard.encode_plane(plane, kind, qp=30)
    in_process = standard.decode_plane(data, kind, plane.shape)
    with pytest.raises(BitstreamError):  # another size than the caller's metadata: refused, not allocated
        standard.decode_plane(data, kind, (16, 16))
    monkeypatch.setattr(standard, "_pyav", lambda: None)  # the ffmpeg binary instead
    assert np.array_equal(standard.decode_plane(data, kind, plane.shape), in_process)
    assert np.abs(in_process.astype(int) - plane).mean() < 20
