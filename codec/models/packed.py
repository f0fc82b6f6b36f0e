"""Packed-feature anchors: every level's channels tiled into one picture, intra-coded by a standard codec.

The way MPEG's Feature Compression Test Model codes features with VVC as its inner codec (and the VTM /
VVenC / HM / FFmpeg anchors of CompressAI-Vision): kinds `vvc` (VVenC), `hevc` (x265) and `av1` (SVT-AV1),
each at one QP (a study's `codec.qps` ladder gives one codec directory per QP). Nothing is learned; the
standard bitstream and the packing metadata travel in the `.fcb` (docs/bitstream.md, "Packed features").

    x {level: C×h×w} ─► per-channel min/max (float16, rounded outward; `ranges_per="level"`: one pair per
                        level, their extremes) ─► q = round((x−min)/(max−min)·1023)
                     ─► tiles in raster order (channel c at row c // cols, column c % cols) ─► frame H×W
                     ─► luma of a yuv420p10le picture ─► ffmpeg encoder (intra) ─► substream "s.<level>"
    x_hat            ◄─ min + q̂·(max−min)/1023 ◄─ untile ◄─ luma ◄─ ffmpeg's decoder ◄─┘
                        ranges: substream "r.<level>" (C float16 minima, then C float16 maxima, LE; 1 and 1
                        per level)
    checksums["<level>"] = CRC-32(r.<level> ‖ decoded luma as u16 LE): the encoder decodes its own picture,
                           the decoder refuses a stream whose samples differ (docs/bitstream.md, section 8)
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np
import torch

from codec import standard
from codec.bitstream import BitstreamError
from codec.levels import FeatureLevel

from .base import FeatureCodec
from .registry import register_codec
from .uniform import NoEntropyModel

ALIGN = 8  # frame sides are padded to a multiple of the smallest coding block
MIN_FRAME = 16  # VVenC and x265 refuse smaller pictures
RANGES_PER = (
    "channel",
    "level",
)  # one min/max per channel (default), or one per level: 4 bytes instead of 4·C
FILL = 1 << (standard.BIT_DEPTH - 1)  # mid-grey in unused tiles and the padding: cheapest to code
_F16_MAX = float(np.finfo(np.float16).max)


def tile_grid(channels: int) -> tuple[int, int]:
    """(rows, cols) of a level's tiles: cols = ⌈√C⌉, rows = ⌈C / cols⌉ (near-square frames)."""
    cols = math.isqrt(channels - 1) + 1 if channels > 1 else 1
    return -(-channels // cols), cols


def frame_shape(channels: int, height: int, width: int, height_factor: int = 1) -> tuple[int, int]:
    """The coded picture's H×W: the tile mosaic (its height times the standard's `height_factor` at the
    codec's QP) padded to a multiple of ALIGN, at least MIN_FRAME a side."""
    rows, cols = tile_grid(channels)

    def side(n: int) -> int:
        return max(MIN_FRAME, -(-n // ALIGN) * ALIGN)

    return side(height_factor * rows * height), side(cols * width)


def pack_level(q: np.ndarray, height_factor: int = 1) -> np.ndarray:
    """C×h×w samples → the H×W frame (tiles in raster order, FILL elsewhere)."""
    c, h, w = q.shape
    rows, cols = tile_grid(c)
    frame = np.full(frame_shape(c, h, w, height_factor), FILL, dtype=np.uint16)
    mosaic = np.full((rows * cols, h, w), FILL, dtype=np.uint16)
    mosaic[:c] = q
    frame[: rows * h, : cols * w] = (
        mosaic.reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, cols * w)
    )
    return frame


def unpack_level(frame: np.ndarray, channels: int, height: int, width: int) -> np.ndarray:
    """The inverse of pack_level: H×W frame → C×h×w."""
    rows, cols = tile_grid(channels)
    mosaic = frame[: rows * height, : cols * width].reshape(rows, height, cols, width).transpose(0, 2, 1, 3)
    return mosaic.reshape(rows * cols, height, width)[:channels]


def channel_ranges(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (min, max) of C×h×w features as float16, rounded outward so every value lies inside."""
    if not np.isfinite(x).all() or np.abs(x).max(initial=0.0) > _F16_MAX:
        raise ValueError(f"packed codecs need finite features within ±{_F16_MAX:g} (float16 ranges)")
    lo, hi = x.min(axis=(1, 2)), x.max(axis=(1, 2))
    lo16, hi16 = lo.astype(np.float16), hi.astype(np.float16)
    lo16 = np.where(lo16.astype(np.float32) > lo, np.nextafter(lo16, np.float16(-np.inf)), lo16)
    hi16 = np.where(hi16.astype(np.float32) < hi, np.nextafter(hi16, np.float16(np.inf)), hi16)
    return lo16.astype(np.float16), hi16.astype(np.float16)


def quantise(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    span = (hi.astype(np.float32) - lo.astype(np.float32))[:, None, None]
    scaled = (x - lo.astype(np.float32)[:, None, None]) / np.where(span > 0, span, 1) * standard.MAX_SAMPLE
    return np.clip(np.rint(scaled), 0, standard.MAX_SAMPLE).astype(np.uint16)


def decoded_checksum(ranges: bytes, frame: np.ndarray) -> int:
    """A level's `checksums` entry: CRC-32 (zlib) of its r.<level> bytes, then of the decoded H×W luma
    samples as little-endian u16 in row-major order: all that the reconstruction reads."""
    return zlib.crc32(np.ascontiguousarray(frame, dtype="<u2").tobytes(), zlib.crc32(ranges))


def dequantise(q: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """min + q·(max − min)/1023 in float32: the decoder's whole reconstruction rule."""
    lo32, hi32 = lo.astype(np.float32)[:, None, None], hi.astype(np.float32)[:, None, None]
    return lo32 + q.astype(np.float32) * ((hi32 - lo32) / np.float32(standard.MAX_SAMPLE))


class PackedFeatureCodec(NoEntropyModel, FeatureCodec):
    """Base of the packed anchors; `standard` names the entry of codec.standard.VIDEO_FORMATS."""

    standard = ""

    def __init__(
        self,
        levels: Sequence[FeatureLevel],
        resolution: int | None = None,
        qp: int = 32,
        preset: str | None = None,
        grid_stride: int = 16,
        ranges_per: str = "channel",
    ):
        super().__init__(levels, resolution, grid_stride)
        fmt = standard.video_format(self.standard)
        low, high = fmt.qp_range
        if not low <= int(qp) <= high:
            raise ValueError(f"{self.standard}: qp {qp} outside [{low}, {high}]")
        self.qp = int(qp)
        self.preset = str(preset or fmt.default_preset)
        if ranges_per not in RANGES_PER:
            raise ValueError(f"ranges_per {ranges_per!r}: choose from {', '.join(RANGES_PER)}")
        self.ranges_per = ranges_per

    def hparams(self) -> dict:
        return {
            "qp": self.qp,
            "preset": self.preset,
            "grid_stride": self.grid_stride,
            "ranges_per": self.ranges_per,
        }

    def _range_count(self, channels: int) -> int:
        return channels if self.ranges_per == "channel" else 1

    def latent_shapes(self, grid: Sequence[int]) -> dict[str, list[int]]:
        """The coded pictures (H×W luma) per level."""
        return {f"s.{name}": list(self._frame(shape)) for name, shape in self.level_shapes(grid).items()}

    def _frame(self, shape: Sequence[int]) -> tuple[int, int]:
        return frame_shape(*shape, standard.video_format(self.standard).height_factor(self.qp))

    def stream_fields(self, grid: Sequence[int]) -> dict:
        """The `packing` header field: everything another program needs to pull out and decode the frames."""
        fmt = standard.video_format(self.standard)
        levels = []
        for name, (c, h, w) in self.level_shapes(grid).items():
            levels.append(
                {
                    "name": name,
                    "channels": c,
                    "tile": [h, w],
                    "tiles": list(tile_grid(c)),
                    "frame": list(self._frame((c, h, w))),
                    "ranges": f"r.{name}",
                    "stream": f"s.{name}",
                }
            )
        return {
            "packing": {
                "standard": self.standard,
                "bitstream": fmt.bitstream,
                "pix_fmt": standard.PIX_FMT,
                "bit_depth": standard.BIT_DEPTH,
                "tile_order": "raster",
                "fill": FILL,
                "qp": self.qp,
                "ranges_per": self.ranges_per,
                "levels": levels,
            }
        }

    def forward(self, x: dict[str, torch.Tensor]) -> dict:
        """The real round trip (ffmpeg encode and decode): nothing to train,
        and x_hat is what a decoder gets."""
        out = self.compress(x)
        decoded = self.decompress([item["strings"] for item in out["items"]], out["shape"])
        device = next(iter(x.values())).device
        return {"x_hat": {n: t.to(device) for n, t in decoded["x_hat"].items()}, "likelihoods": {}}

    @torch.no_grad()
    def compress(
        self,
        x: dict[str, torch.Tensor],
        coder: str | None = None,
        groups: int = 1,
        threads: int | None = None,
    ) -> dict:
        grid = self.grid_of(x)
        fmt = standard.video_format(self.standard)
        arrays = {n: x[n].detach().to("cpu", torch.float32).numpy() for n in self.level_names}
        items = []
        for b in range(next(iter(arrays.values())).shape[0]):
            strings, checksums = {}, {}
            for name in self.level_names:
                lo, hi = channel_ranges(arrays[name][b])
                if self.ranges_per == "level":  # the extremes of the outward-rounded channel ranges
                    lo, hi = lo.min(keepdims=True), hi.max(keepdims=True)
                c = arrays[name].shape[1]
                q = quantise(arrays[name][b], np.broadcast_to(lo, (c,)), np.broadcast_to(hi, (c,)))
                frame = pack_level(q, fmt.height_factor(self.qp))
                ranges = lo.astype("<f2").tobytes() + hi.astype("<f2").tobytes()
                data = standard.encode_plane(
                    frame, self.standard, self.qp, preset=self.preset, threads=threads or 1
                )
                # the encoder decodes its own picture (as a video encoder's reconstruction loop does), so the
                # stream records what a decoder must reproduce
                checksums[name] = decoded_checksum(
                    ranges, standard.decode_plane(data, self.standard, frame.shape)
                )
                strings[f"r.{name}"], strings[f"s.{name}"] = ranges, data
            items.append({"strings": strings, "checksums": checksums, "estimated_bits": None})
        return {"items": items, "shape": list(grid), "coder": self.standard}

    @torch.no_grad()
    def decompress(
        self,
        strings: list[dict[str, bytes]],
        shape: Sequence[int],
        coder: str | None = None,
        threads: int | None = None,
        checksums: list[dict] | None = None,
        device: str | torch.device = "cpu",
    ) -> dict:
        """`checksums` (one dict per item, as the pipeline passes them): each level's decoded samples and
        ranges must match the encoder's CRC-32, else BitstreamError naming the level."""
        shapes = self.level_shapes(shape)
        out: dict[str, list[torch.Tensor]] = {n: [] for n in self.level_names}
        for index, item in enumerate(strings):
            for name in self.level_names:
                c, h, w = shapes[name]
                ranges, data = item.get(f"r.{name}"), item.get(f"s.{name}")
                if ranges is None or data is None:
                    raise BitstreamError(f"substreams r.{name} and s.{name} must both be present")
                n = self._range_count(c)
                if len(ranges) != 4 * n:
                    raise BitstreamError(
                        f"substream r.{name}: {len(ranges)} bytes, expected {4 * n} (2×{n} float16)"
                    )
                lo, hi = np.frombuffer(ranges, "<f2", n), np.frombuffer(ranges, "<f2", n, offset=2 * n)
                if not (np.isfinite(lo).all() and np.isfinite(hi).all() and (lo <= hi).all()):
                    raise BitstreamError(f"substream r.{name}: ranges must be finite with min ≤ max")
                frame = standard.decode_plane(data, self.standard, self._frame((c, h, w)))
                if frame.max(initial=0) > standard.MAX_SAMPLE:
                    raise BitstreamError(f"substream s.{name}: samples beyond {standard.BIT_DEPTH} bits")
                if checksums is not None and decoded_checksum(ranges, frame) != checksums[index].get(name):
                    raise BitstreamError(
                        f"header checksums[{name!r}]: the decoded samples and ranges of level {name} "
                        f"are not the encoder's (a corrupted s.{name} or r.{name}, or a decoder "
                        "that disagrees)"
                    )
                lo, hi = np.broadcast_to(lo, (c,)), np.broadcast_to(hi, (c,))
                out[name].append(torch.from_numpy(dequantise(unpack_level(frame, c, h, w), lo, hi)))
        return {"x_hat": {n: torch.stack(v).to(device) for n, v in out.items()}, "y_hat": None}


@register_codec("vvc")
class PackedVVC(PackedFeatureCodec):
    """Packed features, H.266/VVC intra (VVenC through ffmpeg), decoded by ffmpeg's native VVC decoder."""

    standard = "vvc"


@register_codec("hevc")
class PackedHEVC(PackedFeatureCodec):
    """Packed features, H.265/HEVC intra (x265), decoded by ffmpeg's HEVC decoder."""

    standard = "hevc"


@register_codec("av1")
class PackedAV1(PackedFeatureCodec):
    """Packed features, AV1 key frame (SVT-AV1), decoded by dav1d."""

    standard = "av1"


PACKED_KINDS = tuple(standard.VIDEO_FORMATS)


def create_packed_codec(
    features,
    out_dir,
    *,
    kind: str,
    levels: Sequence[str] | None = None,
    hparams: dict | None = None,
    force: bool = False,
):
    """A packed anchor's codec directory for the features of `features` (a feature cache, or anything with
    `levels`, `encoder`, `weights_id`, `resolution`): `featcodec train-codec --model vvc --qp N` without
    training. Its config records `lambda: null`; the rate point is `hparams.qp`."""
    from pathlib import Path

    from codec.codec_dir import save_codec
    from codec.files import CONFIG

    from .registry import create_codec

    if kind not in PACKED_KINDS:
        raise ValueError(f"{kind!r} is not a packed anchor ({', '.join(PACKED_KINDS)})")
    if (Path(out_dir) / CONFIG).exists() and not force:
        raise FileExistsError(f"{out_dir} already holds a codec; pass --force to overwrite")
    model = create_codec(
        kind, features.levels, levels=levels, resolution=features.resolution, **(hparams or {})
    )
    return save_codec(model, out_dir, encoder=features.encoder, weights_id=features.weights_id, lmbda=None)
