"""Standard codecs through the ffmpeg that imageio-ffmpeg bundles: the inner codecs of MPEG's anchors.

    data = encode_plane(plane, "vvc", qp=32)          # H×W uint16 10-bit samples → VVC Annex-B bytes
    plane = decode_plane(data, "vvc", (H, W))         # ffmpeg's own decoder, sized as the caller expects
    data = encode_image(rgb, "jxl", quality=1.0)      # H×W×3 uint8 → a JPEG XL codestream
    rgb = decode_image(data, "jxl", (H, W))

Packed-feature anchors (codec.models.packed) code one luma plane per feature level; the remote-inference
anchor (probes.anchors) codes the picture. Calls run the ffmpeg binary (`imageio_ffmpeg.get_ffmpeg_exe()`) on
pipes, or the same libraries in-process through PyAV where its build has them (the x265 encoder; the HEVC, VVC
and dav1d decoders): the libraries (libvvenc, libx265, SVT-AV1, dav1d, libjxl) do all the coding, nothing here
codes video. Torch-free, so `featcodec info` and tests of the layout can use it.

Decoding is bounded: ffmpeg's decoder is told the largest picture it may allocate (`max_pixels`), and the
output must be exactly the size the caller derived from its own checked metadata, else BitstreamError.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .bitstream import BitstreamError

BIT_DEPTH = 10
MAX_SAMPLE = (1 << BIT_DEPTH) - 1
PIX_FMT = "yuv420p10le"  # libvvenc's only input format; the chroma planes are constant mid-grey
TIMEOUT_S = 300


@dataclass(frozen=True)
class VideoFormat:
    """One standard for feature planes: the ffmpeg encoder, its raw
    elementary-stream (de)muxer, the decoder."""

    name: str
    encoder: str
    stream: str  # ffmpeg muxer and demuxer of the raw elementary stream
    decoder: str
    qp_range: tuple[int, int]
    default_preset: str
    bitstream: str  # what the bytes are, for docs/bitstream.md and `featcodec info`
    # below this QP, frames are padded to twice the mosaic's height: ffmpeg's libvvenc wrapper gives a coded
    # picture one byte per luma sample and fails beyond it; at QP >= 37 even a worst-case 16×16 plane (noise,
    # checkerboard) stays under 0.85 byte per sample in the all-intra configuration, feature planes under 0.4
    tall_below_qp: int = 0

    def height_factor(self, qp: int) -> int:
        """How many times the tile mosaic's height a coded picture has at
        `qp` (docs/bitstream.md, section 8)."""
        return 2 if int(qp) < self.tall_below_qp else 1

    def encoder_args(self, qp: int, preset: str | None, threads: int, *, picture: bool = False) -> list[str]:
        """The encoder's ffmpeg options for a feature plane, or (`picture`) for a remote-inference picture."""
        preset = preset or self.default_preset
        if self.encoder == "libvvenc":  # QPA off: perceptual QP adaptation is for eyes, not features
            args = [
                "-c:v",
                "libvvenc",
                "-preset",
                preset,
                "-qp",
                str(qp),
                "-qpa",
                "0",
                "-threads",
                str(threads),
            ]
            # VVenC's all-intra configuration (GOP and intra period 1, as VTM's intra CTC): the random-access
            # default spends ~110 more bytes of parameter sets on each single picture. ALF and CC-ALF off on
            # feature planes: on the mini features they change bytes and feature MSE by under 1 % and cost
            # VVenC half its time on these small pictures; pictures keep them
            params = "GOPSize=1:IntraPeriod=1" + ("" if picture else ":ALF=0:CCALF=0")
            return [*args, "-vvenc-params", params]
        if self.encoder == "libx265":  # info=0: no encoder-version SEI (about 2 kB) in every stream
            return [
                "-c:v",
                "libx265",
                "-preset",
                preset,
                "-x265-params",
                f"qp={qp}:info=0:log-level=error:pools={threads}:frame-threads=1",
            ]
        if self.encoder == "libsvtav1":  # CQP: the QP ladder, not a rate-control target
            return [
                "-c:v",
                "libsvtav1",
                "-preset",
                preset,
                "-qp",
                str(qp),
                "-svtav1-params",
                f"rc=0:enable-tf=0:lp={threads}:enable-stat-report=0",
            ]
        raise ValueError(f"no arguments known for encoder {self.encoder!r}")


VIDEO_FORMATS = {
    "vvc": VideoFormat(
        "vvc",
        "libvvenc",
        "vvc",
        "vvc",
        (0, 63),
        "faster",
        "H.266/VVC elementary stream, Annex B byte stream (start codes)",
        tall_below_qp=37,
    ),
    "hevc": VideoFormat(
        "hevc",
        "libx265",
        "hevc",
        "hevc",
        (0, 51),
        "fast",
        "H.265/HEVC elementary stream, Annex B byte stream (start codes)",
    ),
    "av1": VideoFormat(
        "av1",
        "libsvtav1",
        "obu",
        "libdav1d",
        (1, 63),
        "8",
        "AV1 low-overhead bitstream format (AV1 spec section 5.2: a sequence of OBUs)",
    ),
}


@dataclass(frozen=True)
class ImageFormat:
    """One standard for pictures: the ffmpeg encoder, its quality option and the demuxer of its files."""

    name: str
    encoder: str
    quality_option: str  # what `quality` means: VVC QP, JPEG XL Butteraugli distance, JPEG q-scale
    demuxer: str
    decoder: str | None
    muxer: str

    def encoder_args(self, quality: float, threads: int) -> list[str]:
        if self.name == "vvc":
            return [
                "-pix_fmt",
                PIX_FMT,
                *VIDEO_FORMATS["vvc"].encoder_args(int(quality), None, threads, picture=True),
            ]
        if self.name == "jxl":
            return [
                "-c:v",
                "libjxl",
                "-distance",
                f"{float(quality):g}",
                "-effort",
                "7",
                "-threads",
                str(threads),
            ]
        if self.name == "jpeg":  # ffmpeg's baseline JPEG encoder, 4:2:0, q-scale 2 (best) .. 31
            return ["-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-q:v", str(int(quality)), "-huffman", "optimal"]
        raise ValueError(f"no arguments known for image format {self.name!r}")


IMAGE_FORMATS = {
    "vvc": ImageFormat("vvc", "libvvenc", "qp", "vvc", "vvc", "vvc"),
    "jxl": ImageFormat("jxl", "libjxl", "distance", "jpegxl_pipe", None, "image2pipe"),
    "jpeg": ImageFormat("jpeg", "mjpeg", "q", "jpeg_pipe", None, "image2pipe"),
}


class StandardCodecError(RuntimeError):
    """ffmpeg is missing or failed to encode (decode failures are BitstreamErrors: the stream's fault)."""


def ffmpeg_exe() -> str:
    """The ffmpeg binary bundled by imageio-ffmpeg (built with libvvenc, libx265, SVT-AV1, dav1d, libjxl)."""
    try:
        import imageio_ffmpeg
    except ImportError as e:
        raise StandardCodecError(
            "the standard anchors need imageio-ffmpeg (pip install imageio-ffmpeg)"
        ) from e
    return imageio_ffmpeg.get_ffmpeg_exe()


def _run(args: list[str], data: bytes, what: str, error: type[Exception]) -> bytes:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *args]
    try:
        done = subprocess.run(cmd, input=data, capture_output=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise error(f"{what}: ffmpeg ran longer than {TIMEOUT_S} s") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise error(f"{what}: ffmpeg failed ({' | '.join(message[-3:]) or f'exit {done.returncode}'})")
    return done.stdout


def _encode_args(pix_fmt: str, h: int, w: int, encoder: Sequence[str], muxer: str) -> list[str]:
    """ffmpeg's arguments that code one raw H×W `pix_fmt` frame from stdin to a `muxer` stream on stdout."""
    raw_input = f"-f rawvideo -pix_fmt {pix_fmt} -s {w}x{h} -i pipe:0 -frames:v 1".split()
    return [*raw_input, *encoder, "-f", muxer, "pipe:1"]


def _decode_args(h: int, w: int, demuxer: str, decoder: Sequence[str], pix_fmt: str) -> list[str]:
    """ffmpeg's arguments that decode one H×W frame of a `demuxer` stream on stdin to raw `pix_fmt` on
    stdout, on one thread, its allocation capped (`_allocation`)."""
    head = ["-threads", "1", "-max_pixels", str(_allocation(h, w)), "-f", demuxer, *decoder]
    return [*head, *"-i pipe:0 -frames:v 1 -f rawvideo -pix_fmt".split(), pix_fmt, "pipe:1"]


def _yuv_frame(plane: np.ndarray) -> bytes:
    """A yuv420p10le frame whose luma is `plane` and whose chroma is mid-grey (512)."""
    h, w = plane.shape
    chroma = np.full(2 * (h // 2) * (w // 2), 1 << (BIT_DEPTH - 1), dtype="<u2")
    return plane.astype("<u2").tobytes() + chroma.tobytes()


def _allocation(h: int, w: int) -> int:
    """ffmpeg's `-max_pixels` for an H×W picture: decoders allocate whole
    coding-tree units (up to 128×128)."""
    return (h + 128) * (w + 128)


def video_format(name: str) -> VideoFormat:
    if name not in VIDEO_FORMATS:
        raise ValueError(f"unknown standard {name!r}; choose from {', '.join(VIDEO_FORMATS)}")
    return VIDEO_FORMATS[name]


def encode_plane(
    plane: np.ndarray, standard: str, qp: int, *, preset: str | None = None, threads: int = 1
) -> bytes:
    """One H×W plane of 10-bit samples (even H and W), intra-coded as the luma of a single picture."""
    fmt = video_format(standard)
    low, high = fmt.qp_range
    if not low <= int(qp) <= high:
        raise ValueError(f"{standard}: qp {qp} outside [{low}, {high}]")
    plane = np.asarray(plane)
    if plane.ndim != 2 or plane.shape[0] % 2 or plane.shape[1] % 2:
        raise ValueError(f"a plane must be 2-D with even sides, got shape {plane.shape}")
    if plane.size and (plane.min() < 0 or plane.max() > MAX_SAMPLE):
        raise ValueError(f"samples must lie in [0, {MAX_SAMPLE}]")
    h, w = plane.shape
    if fmt.encoder == "libx265" and _pyav() is not None:
        return _encode_in_process(plane, fmt, int(qp), preset, threads)
    args = _encode_args(PIX_FMT, h, w, fmt.encoder_args(int(qp), preset, threads), fmt.stream)
    return _run(args, _yuv_frame(plane), f"{fmt.encoder} encode of a {w}×{h} plane", StandardCodecError)


def _pyav():
    try:
        import av
    except ImportError:
        return None
    return av


def _encode_in_process(
    plane: np.ndarray, fmt: VideoFormat, qp: int, preset: str | None, threads: int
) -> bytes:
    """The same libx265 call through PyAV's libavcodec, without an ffmpeg process per picture (≈ 10× faster on
    the small planes of a feature level; the bytes equal the ffmpeg binary's, which a test keeps true).
    Decoding stays in the ffmpeg process: it reads streams from outside."""
    from fractions import Fraction

    av = _pyav()
    h, w = plane.shape
    frame = av.VideoFrame.from_ndarray(
        np.concatenate(
            [plane.astype(np.uint16), np.full((h // 2, w), 1 << (BIT_DEPTH - 1), dtype=np.uint16)]
        ),
        format=PIX_FMT,
    )
    ctx = av.CodecContext.create(fmt.encoder, "w")
    # ffmpeg's rawvideo input runs at 25 fps: the same timing in the parameter sets, so the same bytes
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base, ctx.framerate = w, h, PIX_FMT, Fraction(1, 25), 25
    args = fmt.encoder_args(qp, preset, threads)
    ctx.options = {
        "preset": args[args.index("-preset") + 1],
        "x265-params": args[args.index("-x265-params") + 1],
    }
    try:
        return b"".join(bytes(p) for p in ctx.encode(frame)) + b"".join(bytes(p) for p in ctx.encode(None))
    except av.error.FFmpegError as e:
        raise StandardCodecError(f"{fmt.encoder} encode of a {w}×{h} plane: {e}") from e


def decode_plane(data: bytes, standard: str, shape: tuple[int, int]) -> np.ndarray:
    """The luma plane (H×W uint16) of the first picture in `data`, decoded by ffmpeg's decoder; the picture
    must be exactly `shape` (the caller's checked metadata), and nothing larger is allocated."""
    fmt = video_format(standard)
    h, w = int(shape[0]), int(shape[1])
    if _pyav() is not None:
        return _decode_in_process(bytes(data), fmt, h, w)
    # one decoding thread: ffmpeg 9.0's multithreaded VVC decoder returns other samples for about one run in
    # four on the same stream (a race; tests/codec/models/test_packed.py), the decoded-sample checksums catch
    # it
    args = _decode_args(h, w, fmt.stream, ["-c:v", fmt.decoder], PIX_FMT)
    raw = _run(args, bytes(data), f"{fmt.decoder} decode", BitstreamError)
    expected = 2 * (h * w + 2 * (h // 2) * (w // 2))
    if len(raw) != expected:
        raise BitstreamError(
            f"{standard} stream decodes to {len(raw)} bytes of {PIX_FMT}, expected a {w}×{h} "
            f"picture ({expected} bytes)"
        )
    return np.frombuffer(raw, dtype="<u2", count=h * w).reshape(h, w).astype(np.uint16)


def _decode_in_process(data: bytes, fmt: VideoFormat, h: int, w: int) -> np.ndarray:
    """The ffmpeg binary's demuxer and decoder through PyAV's libavcodec, without a process per picture (an
    ffmpeg process costs ≈ 15 ms, more than decoding a feature level); the same `max_pixels` bound. A
    standard's
    decoder is normative, so the samples equal the binary's (a test keeps it true)."""
    import io

    av = _pyav()
    what = f"{fmt.decoder} decode"
    try:
        with av.open(io.BytesIO(data), format=fmt.stream) as container:
            ctx = av.CodecContext.create(fmt.decoder, "r")
            ctx.options, ctx.thread_count = {"max_pixels": str(_allocation(h, w))}, 1
            frames = []
            for packet in container.demux(video=0):
                frames += ctx.decode(packet) if packet.size else []
                if frames:
                    break
            frames = frames or list(ctx.decode(None))
    except (av.error.FFmpegError, IndexError) as e:  # IndexError: no video stream in the data
        raise BitstreamError(f"{what}: {e}") from None
    if not frames:
        raise BitstreamError(f"{what}: the stream holds no picture")
    frame = frames[0]
    if (frame.format.name, frame.height, frame.width) != (PIX_FMT, h, w):
        raise BitstreamError(
            f"{fmt.name} stream decodes to a {frame.width}×{frame.height} {frame.format.name} "
            f"picture, expected {w}×{h} {PIX_FMT}"
        )
    luma = frame.planes[0]
    return np.frombuffer(luma, "<u2").reshape(h, luma.line_size // 2)[:, :w].astype(np.uint16)


def image_format(name: str) -> ImageFormat:
    if name not in IMAGE_FORMATS:
        raise ValueError(f"unknown image format {name!r}; choose from {', '.join(IMAGE_FORMATS)}")
    return IMAGE_FORMATS[name]


def encode_image(rgb: np.ndarray, fmt_name: str, quality: float, *, threads: int = 1) -> bytes:
    """An H×W×3 uint8 RGB picture coded as one `fmt_name` image (VVC: intra, 4:2:0 10-bit, even sides)."""
    fmt = image_format(fmt_name)
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"an image must be H×W×3 uint8, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    args = _encode_args("rgb24", h, w, fmt.encoder_args(quality, threads), fmt.muxer)
    return _run(args, rgb.tobytes(), f"{fmt.encoder} encode of a {w}×{h} image", StandardCodecError)


def decode_image(data: bytes, fmt_name: str, shape: tuple[int, int]) -> np.ndarray:
    """The H×W×3 uint8 RGB picture in `data` (ffmpeg's decoder and its default YUV→RGB conversion)."""
    fmt = image_format(fmt_name)
    h, w = int(shape[0]), int(shape[1])
    decoder = ["-c:v", fmt.decoder] if fmt.decoder else []
    args = _decode_args(h, w, fmt.demuxer, decoder, "rgb24")
    raw = _run(args, bytes(data), f"{fmt.name} decode", BitstreamError)
    if len(raw) != h * w * 3:
        raise BitstreamError(f"{fmt.name} image decodes to {len(raw)} bytes of RGB, expected {w}×{h}×3")
    return np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3).copy()
