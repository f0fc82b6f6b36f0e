"""Features ⇄ `.fcb` streams with a loaded codec, and (for `featcodec encode IMAGE`) images → streams.

    streams = encode_features(codec, {"fpn0": B×C×H×W, ...})  # native2 (else constriction), auto groups
    decoded = decode_stream(codec, streams[0])       # .features {level: C×H×W}, .header
    info = stream_info(streams[0])                   # no codec needed (codec.bitstream.info, no torch)
    trip = round_trip(codec, features, check=True)   # encode → bytes → decode, with the bits

A stream is validated against the codec before any entropy decoding: codec id and config hash,
levels, grid and latent shapes (bounded, so no field can size an allocation), coder, substream names.
The grid's pixel count must also be within the decoder's `max_pixels` (default: MAX_PIXELS_FACTOR
times the codec's training resolution squared), so a small stream cannot make it allocate gigabytes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .bitstream import BitstreamError, Container, can_pack, pack, pack_compact, unpack
from .bitstream.container import MAX_GRID
from .bitstream.info import BYTE_SPLIT, byte_split, describe, stream_info
from .codec_dir import LoadedCodec
from .entropy import CODERS, DEFAULT_CODER, legacy_group_bounds
from .errors import InputError
from .names import STREAM_FORMAT

MAX_PIXELS_FACTOR = 4  # default decode limit: 4x the pixels of the codec's training resolution
# every key a header may hold (docs/bitstream.md, section 2; `source` is the compact header's extension); a
# packed anchor's also holds `packing` (section 8)
_HEADER_KEYS = {
    "format",
    "codec",
    "encoder",
    "resolution",
    "grid",
    "levels",
    "latents",
    "coder",
    "checksums",
    "estimated_bits",
    "source",
    "substreams",
}
# the checksums each kind's encoder writes, all required; a packed anchor's: one per level (its decoded
# samples)
_CHECKSUMS = {
    "hyperprior": {"symbols", "probability_model", "hyper"},
    "factorized": {"symbols"},
    "uniform": {"symbols"},
}


def _batched(codec: LoadedCodec, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for name in codec.model.level_names:
        if name not in features:
            raise ValueError(f"features lack level {name!r}; the codec codes {codec.model.level_names}")
        t = features[name]
        out[name] = t.unsqueeze(0) if t.ndim == 3 else t
    return out


def encode_features(
    codec: LoadedCodec,
    features: dict[str, torch.Tensor],
    *,
    coder: str = DEFAULT_CODER,
    groups: int | None = None,
    threads: int | None = None,
    sources: Sequence[dict | None] | None = None,
    timings: dict | None = None,
    compact: bool = True,
) -> list[bytes]:
    """One .fcb stream per item of `features` ({level: B×C×H×W} or C×H×W).

    groups=None (the default, as `featcodec encode`'s): one channel group per 2^18 latent symbols
    (codec.entropy.auto_groups), coded on `threads` threads (None: the CPUs this process may use); the bytes
    do not depend on the thread count.

    compact: learned codecs' streams get the version-2 binary header (≤ 64 bytes for up to 3 channel
    groups without a source; codec/bitstream/compact.py); False, or the uniform baseline, writes the
    version-1 JSON header (readable by older readers)."""
    model = codec.model
    if model.kind == "uniform":
        coder = "zstd"
    elif getattr(model, "standard", ""):  # a packed anchor: the "coder" is the standard that codes the frames
        coder = model.standard
    else:
        CODERS.get(coder)  # an unknown name raises, listing the coders
    x = _batched(codec, features)
    device = next(iter(model.buffers())).device
    x = {k: v.to(device, torch.float32) for k, v in x.items()}
    start = time.perf_counter()
    compressed = model.compress(x, coder=coder, groups=groups, threads=threads)
    if timings is not None:
        timings["codec_s"] = timings.get("codec_s", 0.0) + time.perf_counter() - start
    grid = compressed["shape"]
    shapes = model.level_shapes(grid)
    batch = len(compressed["items"])
    sources = list(sources) if sources is not None else [None] * batch
    streams = []
    for item, source in zip(compressed["items"], sources, strict=True):
        header = {
            "format": STREAM_FORMAT,
            "codec": {"kind": model.kind, "id": codec.codec_id, "config_hash": codec.config_hash},
            "encoder": {"name": codec.encoder, "weights_id": codec.config["weights_id"]},
            "resolution": codec.config.get("resolution"),
            "grid": list(grid),
            "levels": [{**lv.to_dict(), "shape": list(shapes[lv.name])} for lv in model.levels],
            "latents": model.latent_shapes(grid),
            "coder": coder,
            "checksums": item["checksums"],
            "estimated_bits": item["estimated_bits"],
            "source": source,
        }
        if hasattr(
            model, "stream_fields"
        ):  # the packed anchors' `packing` (docs/bitstream.md, "Packed features")
            header.update(model.stream_fields(grid))
        write_compact = compact and can_pack(header, item["strings"])
        streams.append(
            pack_compact(header, item["strings"]) if write_compact else pack(header, item["strings"])
        )
    return streams


def _require(header: dict, key: str, kind: type | tuple, what: str = ""):
    value = header.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise BitstreamError(f"header field {key!r} missing or not {what or kind}")
    return value


def default_max_pixels(codec: LoadedCodec) -> int | None:
    """MAX_PIXELS_FACTOR × the training resolution², or None (only MAX_GRID) for a codec without one."""
    resolution = codec.config.get("resolution")
    return MAX_PIXELS_FACTOR * resolution * resolution if type(resolution) is int and resolution > 0 else None


def _check_pixels(codec: LoadedCodec, grid: tuple[int, int], max_pixels: int | None) -> None:
    limit = default_max_pixels(codec) if max_pixels is None else int(max_pixels)
    stride = codec.model.grid_stride
    height, width = grid[0] * stride, grid[1] * stride
    if limit is not None and height * width > limit:
        why = (
            f"max_pixels={limit}"
            if max_pixels is not None
            else f"{MAX_PIXELS_FACTOR}× the codec's {codec.config['resolution']}² px training resolution = "
            f"{limit} px"
        )
        raise BitstreamError(
            f"stream declares a {height}×{width} px grid ({height * width} px), over this decoder's limit of "
            f"{why}; pass a larger max_pixels (featcodec decode --max-pixels) to decode it"
        )


def check_grid(codec: LoadedCodec, grid: tuple[int, int]) -> None:
    """Every level must tile the grid exactly: (grid · grid_stride) divisible by the level's stride, so that
    its shape is (C, grid·grid_stride/stride) and the lossless rearrangement onto the grid is defined."""
    stride = codec.model.grid_stride
    for level in codec.model.levels:
        if any(g * stride % level.stride for g in grid):
            raise BitstreamError(
                f"grid {grid[0]}×{grid[1]} does not fit level {level.name!r}: "
                f"{grid[0] * stride}×{grid[1] * stride} px "
                f"is not a multiple of its stride {level.stride}"
            )


def expected_substreams(codec: LoadedCodec, names: Sequence[str]) -> list[str]:
    """The substream names, in order, a stream of this codec must carry (the
    group count G is the stream's)."""
    model = codec.model
    if model.kind == "uniform":
        return [f"x.{name}" for name in model.level_names]
    if getattr(model, "standard", ""):  # a packed anchor: per level its ranges, then its standard bitstream
        return [f"{part}.{name}" for name in model.level_names for part in ("r", "s")]
    groups = sum(1 for n in names if n.startswith("y."))
    return (["z"] if model.kind == "hyperprior" else []) + [f"y.{g}" for g in range(groups)]


def check_identity(codec: LoadedCodec, header: dict, version: tuple[int, int]) -> None:
    """A stream header written by `codec` (kind, id, config hash), in its container version's form; else
    BitstreamError."""
    info, model = _require(header, "codec", dict, "an object"), codec.model
    if info != {"kind": info.get("kind"), "id": info.get("id"), "config_hash": info.get("config_hash")}:
        raise BitstreamError(
            f"header field 'codec' has fields other than kind, id, config_hash: {sorted(info)}"
        )
    if (info.get("kind"), info.get("id"), info.get("config_hash")) != (
        model.kind,
        codec.codec_id,
        codec.config_hash,
    ):
        raise BitstreamError(
            f"codec mismatch: the stream was written by codec {info.get('kind')}:{info.get('id')} "
            f"(config {info.get('config_hash')}), this is {model.kind}:{codec.codec_id} (config "
            f"{codec.config_hash})"
        )
    if version[0] >= 2:  # the compact header leaves encoder, resolution, levels and latents to the codec
        if set(header) & {"encoder", "resolution", "levels", "latents"}:
            raise BitstreamError(
                "a compact stream must not carry 'encoder', 'resolution', 'levels' or 'latents'"
            )
        return
    encoder = {"name": codec.encoder, "weights_id": codec.config["weights_id"]}
    if header.get("encoder") != encoder:
        raise BitstreamError(
            f"codec mismatch: the stream's encoder is {header.get('encoder')!r}, the codec "
            f"directory's {encoder!r}"
        )
    if header.get("resolution") != codec.config.get("resolution"):
        raise BitstreamError(
            f"codec mismatch: the stream's resolution is {header.get('resolution')!r}, the codec "
            f"directory's {codec.config.get('resolution')!r}"
        )


def check_header(
    codec: LoadedCodec, container: Container, max_pixels: int | None = None
) -> tuple[tuple[int, int], str]:
    """Validate a parsed stream against `codec`; returns (grid, coder). Nothing is allocated from the
    stream's sizes before the grid has passed `max_pixels` (see default_max_pixels)."""
    header, model = container.header, codec.model
    if header.get("format") != STREAM_FORMAT:
        raise BitstreamError(f"header field 'format' is {header.get('format')!r}, expected {STREAM_FORMAT!r}")
    unknown = set(header) - _HEADER_KEYS - ({"packing"} if getattr(model, "standard", "") else set())
    if unknown:
        raise BitstreamError(f"unknown header field(s) {sorted(unknown)}")
    check_identity(codec, header, container.version)
    grid = _require(header, "grid", list, "a list")
    if len(grid) != 2 or not all(type(v) is int and 1 <= v <= MAX_GRID for v in grid):
        raise BitstreamError(f"header field 'grid' {grid!r} is not two integers in [1, {MAX_GRID}]")
    grid = (grid[0], grid[1])
    _check_pixels(codec, grid, max_pixels)
    check_grid(codec, grid)
    if container.version[0] < 2:
        shapes = model.level_shapes(grid)
        if header.get("levels") != [{**lv.to_dict(), "shape": list(shapes[lv.name])} for lv in model.levels]:
            raise BitstreamError(
                "header field 'levels' does not match the codec's levels and the stream's grid"
            )
        if header.get("latents") != model.latent_shapes(grid):
            raise BitstreamError(
                "header field 'latents' does not match the codec's latent shapes for the grid"
            )
    coder = _require(header, "coder", str, "a string")
    allowed = ("zstd",) if model.kind == "uniform" else tuple(CODERS.names())
    if getattr(model, "standard", ""):
        allowed = (model.standard,)
        for key, value in model.stream_fields(grid).items():
            if header.get(key) != value:
                raise BitstreamError(
                    f"header field {key!r} does not match the {model.kind} codec's packing for the grid"
                )
    if coder not in allowed:
        raise BitstreamError(
            f"header field 'coder' is {coder!r}; a {model.kind} codec reads {', '.join(allowed)}"
        )
    checksums = _require(header, "checksums", dict, "an object")
    required = set(model.level_names) if getattr(model, "standard", "") else _CHECKSUMS[model.kind]
    if set(checksums) != required:
        raise BitstreamError(
            f"header field 'checksums' has {sorted(checksums)}; a {model.kind} stream carries "
            f"exactly {sorted(required)}"
        )
    for key, value in checksums.items():
        if type(value) is not int or not 0 <= value < 1 << 32:
            raise BitstreamError(f"header checksums[{key!r}] is not a 32-bit unsigned integer")
    estimated = header.get("estimated_bits")
    if estimated is not None and (type(estimated) not in (int, float) or not math.isfinite(estimated)):
        raise BitstreamError(f"header field 'estimated_bits' {estimated!r} is not a finite number or null")
    if not isinstance(header.get("source"), dict | None):
        raise BitstreamError("header field 'source' is not an object or null")
    names = list(container.substreams)
    expected = expected_substreams(codec, names)
    if names != expected:
        raise BitstreamError(
            f"substreams {names} are not the {model.kind} codec's {expected} (unknown, unused, "
            "missing or out of order)"
        )
    groups = sum(1 for n in names if n.startswith("y."))
    if model.kind in ("hyperprior", "factorized") and not 1 <= groups <= model.latent_shapes(grid)["y"][0]:
        raise BitstreamError(f"{groups} channel groups: the count must be in [1, M]")
    return grid, coder


@dataclass
class Decoded:
    features: dict[str, torch.Tensor]  # {level: C×H×W}
    header: dict
    y_hat: torch.Tensor | None = None
    timings: dict = field(default_factory=dict)


def decode_streams(
    codec: LoadedCodec,
    streams: Sequence[bytes],
    *,
    threads: int | None = None,
    device: str | torch.device = "cpu",
    max_pixels: int | None = None,
) -> list[Decoded]:
    """Decode streams of one grid together (a batch); each is validated first, its grid against
    `max_pixels` (default: default_max_pixels(codec))."""
    start = time.perf_counter()
    containers = [unpack(data) for data in streams]
    # minor version 0 (1.0, 2.0) streams were written with the old channel-group bounds (docs/bitstream.md)
    checked = [(*check_header(codec, c, max_pixels), c.version[1] == 0) for c in containers]
    if len(set(checked)) != 1:
        raise BitstreamError(
            "streams decoded as one batch must share grid, coder and container minor version"
        )
    grid, coder, legacy = checked[0]
    parsed = time.perf_counter()
    with legacy_group_bounds(legacy):
        out = codec.model.decompress(
            [c.substreams for c in containers],
            grid,
            coder=coder,
            threads=threads,
            checksums=[c.header["checksums"] for c in containers],
            device=device,
        )
    timings = {"parse_s": parsed - start, "decode_s": time.perf_counter() - parsed}
    return [
        Decoded(
            features={name: t[b] for name, t in out["x_hat"].items()},
            header={**describe(codec, c.header), **c.header} if c.version[0] >= 2 else c.header,
            y_hat=None if out["y_hat"] is None else out["y_hat"][b],
            timings=timings,
        )
        for b, c in enumerate(containers)
    ]


def decode_stream(codec: LoadedCodec, data: bytes, **kwargs) -> Decoded:
    return decode_streams(codec, [data], **kwargs)[0]


@dataclass
class RoundTrip:
    """What a batch of features becomes after real coding: decoded features and the streams' sizes."""

    features: dict[str, torch.Tensor]  # {level: B×C×H×W}, decoded from the streams
    streams: list[bytes]  # one .fcb stream per item
    bits: int  # whole streams (header included), as a file on disk would count them
    payload_bits: int  # the substreams only
    exact: bool | None = None  # decoded == the model's own quantised reconstruction (when checked)
    timings: dict = field(default_factory=dict)
    stream_bytes: dict = field(default_factory=dict)  # {"header", "hyper", "main"} summed over the streams


def round_trip(
    codec: LoadedCodec,
    features: dict[str, torch.Tensor],
    *,
    coder: str = DEFAULT_CODER,
    groups: int | None = None,
    threads: int | None = None,
    check: bool = False,
    sources: Sequence[dict | None] | None = None,
) -> RoundTrip:
    """Features → `.fcb` bytes → features: the one round trip used by evaluation, training through a codec,
    the demo and the sweeps. Bits are the streams' real lengths, not the model's rate estimate.

    With `check`, the decoded features are compared with the model's own quantised reconstruction
    (its eval forward), which a correct decoder reproduces exactly.
    """
    x = {n: features[n].detach() for n in codec.model.level_names}
    timings: dict = {}
    start = time.perf_counter()
    streams = encode_features(codec, x, coder=coder, groups=groups, threads=threads, sources=sources)
    timings["encode_s"] = time.perf_counter() - start
    start = time.perf_counter()
    decoded = decode_streams(codec, streams, threads=threads)
    timings["decode_s"] = time.perf_counter() - start
    hat = {n: torch.stack([d.features[n] for d in decoded]).float() for n in codec.model.level_names}
    exact = None
    if check:
        device = next(iter(codec.model.buffers())).device
        with torch.no_grad():
            own = codec.model.eval()(
                {k: (v.unsqueeze(0) if v.ndim == 3 else v).to(device, torch.float32) for k, v in x.items()}
            )
        exact = all(torch.equal(hat[k], own["x_hat"][k].to(hat[k].device)) for k in hat)
    infos = [stream_info(s) for s in streams]  # parsed once for both the payload and the byte split
    splits = [byte_split(i) for i in infos]
    split = {part: sum(x[part] for x in splits) for part in BYTE_SPLIT}
    payload = sum(i["payload_bytes"] for i in infos)
    return RoundTrip(hat, streams, 8 * sum(len(s) for s in streams), 8 * payload, exact, timings, split)


def read_features_file(path, levels: Sequence[str]) -> dict[str, torch.Tensor]:
    """A safetensors file of features {level: C×H×W or 1×C×H×W} for `featcodec encode --features`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        features = load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise InputError(f"{path}: not a readable safetensors file ({e})") from e
    for name in levels:
        t = features.get(name)
        if t is None:
            raise InputError(f"{path}: no tensor {name!r}; the codec codes {list(levels)}")
        if t.ndim not in (3, 4) or (t.ndim == 4 and t.shape[0] != 1) or not t.is_floating_point():
            raise InputError(
                f"{path}: tensor {name!r} must be float C×H×W or 1×C×H×W, got {t.dtype} {tuple(t.shape)}"
            )
    return features
