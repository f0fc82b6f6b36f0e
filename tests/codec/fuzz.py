"""Checksum-consistent mutation fuzzing of `.fcb` decoding (issue 22).

Every mutation keeps the container self-consistent where that is cheap to do: substream lengths and both
CRC32s are rebuilt (by repacking, or in place after a byte edit), and the `hyper` checksum is recomputed
from the mutated `z` whenever it still entropy-decodes, so mutations reach the header checks, the coders,
the hyper path and y decoding. The oracle: decoding either raises `BitstreamError` or returns exactly
the features of the unmutated stream (a mutation may be a no-op, e.g. in `source`); anything else (another
exception, different features) is a finding.

    python -m tests.codec.fuzz --mutations 14000 --seed 2022   # the large run reported in bench/RESULTS.md

bench/RESULTS.md also gives the AddressSanitizer build of codec._C this runs under.
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from codec.bitstream import BitstreamError, pack, pack_compact, stream_info, unpack
from codec.bitstream.info import describe
from codec.codec_dir import save_codec
from codec.entropy import CdfTable, get_coder
from codec.levels import random_features
from codec.models import create_codec
from codec.models.base import crc32_arrays
from codec.pipeline import decode_stream, encode_features
from probes.encoders.spec import FeatureLevel

# stride-32 level on a stride-16 grid: only even grids fit it (the odd-grid case of issue 22)
LEVELS = [FeatureLevel("fine", 4, 8), FeatureLevel("mid", 8, 16), FeatureLevel("coarse", 8, 32)]
HPARAMS = {"N": 8, "M": 25}  # M = 25, so 22 channel groups are possible
CODERS_OF_SYMBOLS = ("native", "constriction", "compressai")
COMBOS = [
    ("hyperprior", "native"),
    ("hyperprior", "constriction"),
    ("hyperprior", "compressai"),
    ("factorized", "native"),
    ("factorized", "constriction"),
    ("factorized", "compressai"),
    ("uniform", "zstd"),
]


PACKED = (
    "hevc",
    "hevc",
)  # a packed anchor (x265 and the HEVC decoder): `--packed`, and a short run in test_fuzz


def make_codecs(root: Path, packed: bool = False) -> dict:
    out = {}
    if packed:
        model = create_codec(PACKED[0], LEVELS, resolution=64, qp=30)
        out[PACKED[0]] = save_codec(
            model, root / PACKED[0], encoder="fuzz-levels", weights_id="random-init", lmbda=None
        )
    for kind in ("hyperprior", "factorized", "uniform"):
        torch.manual_seed(0)
        hparams = (
            {}
            if kind == "uniform"
            else {**HPARAMS, "hyper_path": "integer"}
            if kind == "hyperprior"
            else HPARAMS
        )
        model = create_codec(kind, LEVELS, resolution=64, **hparams)
        out[kind] = save_codec(model, root / kind, encoder="fuzz-levels", weights_id="random-init", lmbda=1.0)
    return out


def features(grid=(2, 2), seed=0) -> dict:
    return random_features(LEVELS, (grid[0] * 16, grid[1] * 16), seed=seed, scale=3)


def base_streams(codec, coder: str) -> list[bytes]:
    """Streams of both container versions, 1 and several channel groups (22 of M = 25 among them)."""
    out = []
    groups = (1,) if coder in ("zstd", PACKED[1]) else (1, 3, 22)
    for grid, group in [((2, 2), g) for g in groups] + [((2, 4), 2 if len(groups) > 1 else 1)]:
        for compact in (True, False):
            (data,) = encode_features(
                codec,
                features(grid),
                coder=coder if coder in CODERS_OF_SYMBOLS else "native",
                groups=group,
                compact=compact,
            )
            out.append(data)
    return out


def craft_stream(
    codec,
    coder: str,
    grid: tuple[int, int],
    groups: int,
    seed: int = 0,
    compact: bool = False,
    spread: int = 3,
) -> bytes:
    """A fully consistent stream for any grid, odd ones included: random symbols in [-spread, spread]
    (large ones escape), entropy-coded with `coder` in `groups` channel groups, with the checksums a correct
    encoder would write."""
    from codec import ops
    from codec.entropy import encode_substreams, split_channels
    from codec.models.hyperprior import MEAN_GRID

    model, rng = codec.model, np.random.default_rng(seed)
    shapes = model.latent_shapes(grid)
    y = rng.integers(-spread, spread + 1, shapes["y"]).astype(np.int32)
    strings, checksums = {}, {}
    if model.kind == "hyperprior":
        z = rng.integers(-spread, spread + 1, shapes["z"]).astype(np.int32)
        z_table = CdfTable.from_entropy_model(model.entropy_bottleneck)
        strings["z"] = get_coder(coder).encode(z.reshape(-1), model._z_indexes(shapes["z"]), z_table)
        z_t = torch.from_numpy(z)[None]
        z_hat = ops.dequantize(z_t, model._medians().expand_as(z_t.float()).contiguous())
        scales, means = model.entropy_parameters(z_hat, grid)
        _, indexes = ops.quantize_index(means, means, scales, model.gaussian_conditional.scale_table)
        indexes = indexes[0].numpy()
        means_grid = torch.round(means * MEAN_GRID).to(torch.int32)[0].numpy()
        table = CdfTable.from_entropy_model(model.gaussian_conditional)
        checksums = {
            "hyper": crc32_arrays(z),
            "probability_model": crc32_arrays(indexes, means_grid),
            "symbols": crc32_arrays(z, y),
        }
    else:
        indexes = np.ascontiguousarray(model._indexes(grid))
        table = CdfTable.from_entropy_model(model.entropy_bottleneck)
        checksums = {"symbols": crc32_arrays(y)}
    coded = encode_substreams(get_coder(coder), y, indexes, table, split_channels(model.M, groups))
    strings.update({f"y.{g}": b for g, b in enumerate(coded)})
    header = {
        "format": "featcodec-fcb",
        "codec": {"kind": model.kind, "id": codec.codec_id, "config_hash": codec.config_hash},
        "grid": list(grid),
        "coder": coder,
        "checksums": checksums,
        "estimated_bits": None,
        "source": None,
    }
    header.update(describe(codec, header))
    return pack_compact(header, strings) if compact else pack(header, strings)


def _fix_crcs(data: bytearray) -> bytearray:
    """Rebuild both CRC32s of a (possibly edited) stream in place, where its framing still parses."""
    if len(data) < 12:
        return data
    major = data[4]
    if major == 1:
        (h,) = struct.unpack_from("<I", data, 8)
        head_end = 12 + h
        if head_end + 8 > len(data):
            return data
        struct.pack_into("<I", data, head_end, zlib.crc32(data[:head_end]))
        start = head_end + 4
    elif major == 2 and len(data) >= 46:
        pos = 46
        for _ in range(data[9]):
            while pos < len(data) and data[pos] & 0x80:
                pos += 1
            pos += 1
        if data[6] & 1 and pos + 2 <= len(data):
            pos += 2 + struct.unpack_from("<H", data, pos)[0]
        if pos + 8 > len(data):
            return data
        struct.pack_into("<I", data, pos, zlib.crc32(data[:pos]))
        start = pos + 4
    else:
        return data
    struct.pack_into("<I", data, len(data) - 4, zlib.crc32(data[start:-4]))
    return data


def _repack(header: dict, substreams: dict, version: int) -> bytes:
    header = {k: v for k, v in header.items() if k != "substreams"}
    if version == 2:
        try:
            return pack_compact(header, substreams)
        except (ValueError, TypeError, KeyError):
            pass
    return pack(header, substreams)


def _rebuild_hyper(codec, header: dict, substreams: dict) -> None:
    """Recompute the `hyper` checksum from a mutated z, where it still
    decodes (so the mutation reaches h_s)."""
    model = codec.model
    if (
        model.kind != "hyperprior"
        or "z" not in substreams
        or header.get("coder") not in ("native", "constriction", "compressai")
    ):
        return
    try:
        grid = tuple(header["grid"])
        z_shape = model.latent_shapes(grid)["z"]
        table = CdfTable.from_entropy_model(model.entropy_bottleneck)
        z = get_coder(header["coder"]).decode(substreams["z"], model._z_indexes(z_shape), table)
        header["checksums"] = {**header.get("checksums", {}), "hyper": crc32_arrays(z.reshape(z_shape))}
    except Exception:  # noqa: BLE001 - a z that does not decode stays as it is
        pass


def _json_edit(rng: random.Random, header: dict, codec) -> tuple[str, dict | str]:
    """A header edit: a dict (repacked with pack) or raw JSON text (spliced in with the CRCs fixed)."""
    header = json.loads(json.dumps(header))
    choice = rng.randrange(14)
    if choice == 0:
        header["grid"] = rng.choice(
            [
                [1, 1],
                [3, 5],
                [1, 2],
                [2, 1],
                [0, 2],
                [2, 1025],
                [-1, 2],
                [2.0, 2],
                [True, 2],
                [2],
                [2, 2, 2],
                "2x2",
            ]
        )
        header.update(describe(codec, header))  # a valid grid: levels and latents follow, so only it is odd
        return "grid", header
    if choice == 1:
        header["checksums"] = rng.choice(
            [
                {},
                {"symbols": header["checksums"].get("symbols", 0)},
                {**header["checksums"], "extra": 1},
                {"symbols": -1},
                {"symbols": 1 << 32},
                {"symbols": "0"},
                None,
            ]
        )
        return "checksums", header
    if choice == 2:
        header["codec"] = {
            **header["codec"],
            "kind": rng.choice(["hyperprior", "factorized", "uniform", "x", 1]),
        }
        return "kind", header
    if choice == 3:
        header["encoder"] = {**(header.get("encoder") or {}), "name": rng.choice(["other", "", None])}
        return "encoder", header
    if choice == 4:
        header["resolution"] = rng.choice([32, 128, None, 64.0, "64", 2**40])
        return "resolution", header
    if choice == 5:
        header["coder"] = rng.choice(["native", "constriction", "compressai", "zstd", "", None])
        return "coder", header
    if choice == 6:  # raw text: json.dumps itself cannot write the deepest ones
        depth = rng.choice([3, 9, 100, 3000, 60000])
        text = json.dumps(
            {k: v for k, v in header.items() if k not in ("substreams", "source")},
            sort_keys=True,
            separators=(",", ":"),
        )
        return "json-bomb", text[:-1] + ',"source":' + "[" * depth + "0" + "]" * depth + "}"
    if choice == 7:
        digits = "9" * rng.choice([30, 33, 400, 4301, 20000])
        text = json.dumps(
            {k: v for k, v in header.items() if k != "substreams"}, sort_keys=True, separators=(",", ":")
        )
        field = rng.choice(["resolution", "estimated_bits"])
        return "huge-int", text.replace(f'"{field}":', f'"{field}":{digits},"_":', 1)
    if choice == 8:
        header[rng.choice(["unknown", "format2", "z"])] = 1
        return "unknown-field", header
    if choice == 9:
        header["estimated_bits"] = rng.choice([None, -1.0, 1e308, "x", [1]])
        return "estimated-bits", header
    if choice == 10:
        if header.get("levels"):
            header["levels"][0]["shape"] = [1, 1, 1]
        header.pop(rng.choice(["levels", "latents", "format", "codec", "grid", "checksums"]), None)
        return "fields", header
    if choice == 11:
        header["format"] = "featcodec-fcb2"
        return "format", header
    if choice == 12:
        header["checksums"] = {k: (v ^ (1 << rng.randrange(32))) for k, v in header["checksums"].items()}
        return "checksum-value", header
    header["codec"] = {**header["codec"], "config_hash": "0" * 16}
    return "config-hash", header


def mutate(rng: random.Random, data: bytes, codec) -> tuple[str, bytes]:
    """One checksum-consistent mutation of a valid stream: (what was done, the new stream)."""
    container = unpack(data)
    header, subs, version = dict(container.header), dict(container.substreams), container.version[0]
    names = list(subs)
    op = rng.randrange(13)
    if op == 12 and codec.model.kind in (
        "hyperprior",
        "factorized",
    ):  # a consistent stream for another (maybe odd) grid
        grid = rng.choice([(1, 1), (3, 5), (1, 2), (2, 3), (2, 2), (4, 2), (2, 6)])
        groups = rng.choice([1, 2, 22, codec.model.M])
        return f"crafted-grid-{grid[0]}x{grid[1]}", craft_stream(
            codec, header["coder"], grid, groups, rng.randrange(1 << 30), rng.random() < 0.5
        )
    if op <= 3:  # edit one substream's bytes
        name = rng.choice(names)
        body = bytearray(subs[name])
        what = ["flip", "truncate", "append", "replace"][op]
        if what == "flip" and body:
            for _ in range(rng.choice([1, 1, 2, 8])):
                body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
        elif what == "truncate" and body:
            del body[rng.randrange(len(body)) :]
        elif what == "append":
            body += bytes(rng.randrange(256) for _ in range(rng.choice([1, 3, 4, 8])))
        else:  # tiny substreams: 0, 1, 4 or 8 random bytes
            body = bytearray(rng.randrange(256) for _ in range(rng.choice([0, 1, 4, 8])))
        subs[name] = bytes(body)
        if name == "z":
            _rebuild_hyper(codec, header, subs)
        return f"substream-{what}", _repack(header, subs, version)
    if op == 4:  # substreams: drop, add (unknown / unused), swap, reorder
        what = rng.choice(["drop", "add", "swap"])
        if what == "drop" and len(names) > 1:
            del subs[rng.choice(names)]
        elif what == "add":
            subs[rng.choice(["z", "y.99", "w", f"y.{len(names)}", "x.fine"])] = bytes(
                rng.randrange(256) for _ in range(8)
            )
        elif len(names) > 1:
            a, b = rng.sample(names, 2)
            subs = {(b if n == a else a if n == b else n): subs[n] for n in names}
        return f"substreams-{what}", _repack(header, subs, version)
    if op <= 6:  # a raw byte anywhere (preamble, header, lengths, payload), then both CRCs rebuilt
        body = bytearray(data)
        for _ in range(rng.choice([1, 1, 2])):
            i = rng.randrange(len(body))
            body[i] = rng.randrange(256) if rng.random() < 0.5 else body[i] ^ (1 << rng.randrange(8))
        return "raw-byte", bytes(_fix_crcs(body))
    if op == 7:  # raw insertion or deletion, CRCs rebuilt
        body = bytearray(data)
        i = rng.randrange(len(body))
        if rng.random() < 0.5:
            body[i:i] = bytes(rng.randrange(256) for _ in range(rng.choice([1, 4])))
        else:
            del body[i : i + rng.choice([1, 4])]
        return "raw-insert-delete", bytes(_fix_crcs(body))
    if op == 8:  # trailing bytes after the last CRC
        return "trailing", data + bytes(rng.randrange(256) for _ in range(rng.choice([1, 4])))
    # header edits, written as version 1 (JSON) so every field is reachable
    full = header if version == 1 else {**header, **describe(codec, header)}
    what, edited = _json_edit(rng, full, codec)
    if isinstance(edited, str):
        return what, _raw_json_stream(edited, subs)
    try:
        return what, pack({k: v for k, v in edited.items() if k != "substreams"}, subs)
    except (ValueError, TypeError):
        return what, data


def _raw_json_stream(text: str, subs: dict) -> bytes:
    entries = json.dumps([{"length": len(b), "name": n} for n, b in subs.items()], separators=(",", ":"))
    raw = (text[:-1] + ',"substreams":' + entries + "}").encode("ascii")
    pre = struct.pack("<4sBBHI", b"\x89FCB", 1, 1, 0, len(raw)) + raw
    payload = b"".join(subs.values())
    return pre + struct.pack("<I", zlib.crc32(pre)) + payload + struct.pack("<I", zlib.crc32(payload))


def decode_cli(codec, data: bytes, folder: Path):
    """`featcodec decode` of `data` with `codec` (in-process, through the CLI root's error mapping)."""
    from click.testing import CliRunner

    from bench.cli import main

    (folder / "s.fcb").write_bytes(data)
    command = ["decode", folder / "s.fcb", "--codec", codec.path, "-o", folder / "o.safetensors", "--force"]
    return CliRunner().invoke(main, [str(a) for a in command])


def run(
    codecs: dict,
    mutations_per_combo: int,
    seed: int,
    cli_every: int = 0,
    folder: Path | None = None,
    combos=COMBOS,
) -> dict:
    """Counts per outcome; `findings` lists crashes (other exceptions) and silent wrong decodes. With
    `cli_every` = k, every k-th mutated stream also goes through `featcodec decode` (exit codes counted).
    A packed anchor's stream is held to the same oracle: its per-level checksums of the decoded samples
    (docs/bitstream.md, section 8) refuse a mutated standard bitstream that its decoder accepts."""
    counts: Counter = Counter()
    exits: Counter = Counter()
    kinds: Counter = Counter()  # mutations per kind (its name up to the first digit-free part)
    findings = []
    for kind, coder in combos:
        codec = codecs[kind]
        bases = base_streams(codec, coder)
        references = [decode_stream(codec, b).features for b in bases]
        rng = random.Random(f"{seed}-{kind}-{coder}")
        for i in range(mutations_per_combo):
            k = rng.randrange(len(bases))
            what, data = mutate(rng, bases[k], codec)
            kinds[what.split("-grid-")[0] if what.startswith("crafted") else what] += 1
            if cli_every and i % cli_every == 0:
                exits[decode_cli(codec, data, folder).exit_code] += 1
            for args in (
                (data,),
                (data, codec),
            ):  # `featcodec info` reads every stream too, with or without --codec
                try:
                    stream_info(*args)
                except BitstreamError:
                    pass
                except Exception as e:  # noqa: BLE001 - the finding itself
                    counts["crash"] += 1
                    findings.append(
                        (kind, coder, i, what, f"stream_info {type(e).__name__}: {e}"[:200], data)
                    )
            try:
                decoded = decode_stream(codec, data).features
            except BitstreamError:
                counts["refused"] += 1
                continue
            except Exception as e:  # noqa: BLE001 - the finding itself
                counts["crash"] += 1
                findings.append((kind, coder, i, what, f"{type(e).__name__}: {e}"[:200], data))
                continue
            if what.startswith("crafted"):  # another grid's stream: it decodes to its own content
                odd = any(int(v) % 2 for v in what.rsplit("-", 1)[1].split("x"))
                counts["crafted-odd-grid-decoded" if odd else "crafted-decoded"] += 1
                if odd:
                    findings.append((kind, coder, i, what, "odd grid decoded", data))
                continue
            same = set(decoded) == set(references[k]) and all(
                torch.equal(decoded[n], references[k][n]) for n in decoded
            )
            counts["decoded-identical" if same else "silent-wrong"] += 1
            if not same:
                findings.append((kind, coder, i, what, "silent wrong decode", data))
    return {"counts": dict(counts), "exit_codes": dict(exits), "mutations": dict(kinds), "findings": findings}


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mutations", type=int, default=12000, help="in all, spread over the kind/coder pairs"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--save", type=Path, help="write findings' streams into this folder")
    parser.add_argument(
        "--cli-every", type=int, default=10, help="run every k-th stream through featcodec decode"
    )
    parser.add_argument(
        "--packed", action="store_true", help="fuzz the hevc packed anchor only (runs ffmpeg)"
    )
    args = parser.parse_args()
    combos = [PACKED] if args.packed else COMBOS
    with tempfile.TemporaryDirectory() as tmp:
        codecs = make_codecs(Path(tmp), packed=args.packed)
        result = run(codecs, -(-args.mutations // len(combos)), args.seed, args.cli_every, Path(tmp), combos)
    print(json.dumps({k: result[k] for k in ("counts", "exit_codes", "mutations")}))
    for kind, coder, i, what, message, data in result["findings"][:50]:
        print(kind, coder, i, what, message)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            (args.save / f"{kind}-{coder}-{i}.fcb").write_bytes(data)


if __name__ == "__main__":
    main()
