"""CLI of the codec layer: `featcodec decode` and `featcodec info` (streams and codec directories only).

`info` parses the container without torch, so it answers at once; `decode` imports torch when it runs.
The commands that need encoders or feature caches (`train-codec`, `encode`) live in probes.commands.coding.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from .errors import InputError

CODER_HELP = (
    "Entropy coder (default: native2, featcodec's rANS with lanes sized to the substream; native: its 8-lane "
    "format 1; constriction where codec._C is not built)."
)


def write_output(path: Path, data: bytes, force: bool) -> None:
    """Write a file a command produces: refuse to overwrite without --force, atomically."""
    from .files import atomic_write_bytes

    if path.exists() and not force:
        raise InputError(f"{path}: exists; pass --force to overwrite")
    atomic_write_bytes(path, data)


def resume_inputs(paths, targets, force: bool, written_by_this_run) -> tuple[list[Path], list[Path]]:
    """--resume: the inputs still to do (codec.inputs.remaining), the skipped count said on stderr."""
    from .inputs import remaining

    if force:
        raise click.UsageError("--resume keeps existing outputs and --force overwrites them: give one")
    todo = remaining(paths, targets, written_by_this_run)
    click.echo(f"resume: {len(paths) - len(todo[0])} of {len(paths)} outputs already there", err=True)
    return todo


def stream_of(codec):
    """--resume's check of an existing .fcb: a stream this codec wrote (codec.pipeline.check_identity, the
    decoder's own check of the header)."""
    from .bitstream import BitstreamError, unpack
    from .pipeline import check_identity

    def check(path: Path) -> None:
        try:
            container = unpack(read_input(path))
        except BitstreamError as e:
            raise InputError(f"{path}: exists and is not a stream ({e}); pass --force to overwrite") from e
        try:
            check_identity(codec, container.header, container.version)
        except BitstreamError as e:
            raise InputError(
                f"{path}: exists, written by codec other than {codec.codec_id} ({e}); pass --force to "
                "overwrite"
            ) from e

    return check


def features_of(codec):
    """--resume's check of an existing .safetensors: features this codec decoded (its metadata says so)."""
    from safetensors import SafetensorError, safe_open

    def check(path: Path) -> None:
        try:
            with safe_open(path, framework="numpy") as f:
                codec_id = (f.metadata() or {}).get("codec_id")
        except (SafetensorError, OSError) as e:
            raise InputError(f"{path}: exists and is not a safetensors file ({e}); pass --force") from e
        if codec_id != codec.codec_id:
            raise InputError(
                f"{path}: exists, decoded by codec {codec_id}, not {codec.codec_id}; pass --force to "
                "overwrite"
            )

    return check


def read_input(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from e


def stream_summary(path: Path, data: bytes, seconds: dict, codec=None) -> dict:
    """The per-stream summary `featcodec encode` prints (sizes, bits per element, bpp, timings)."""
    from .bitstream import stream_info

    info = stream_info(data, codec)
    keys = (
        "bytes",
        "payload_bytes",
        "bits_per_element",
        "bpp_input",
        "bpp_source",
        "estimated_bits",
        "coder",
    )
    return {"output": str(path), **{k: info.get(k) for k in keys}, "seconds": seconds}


def output_options(help: str):
    """--force, --json and the required -o of the coding commands (encode and decode), one help text each."""

    def decorate(fn):
        fn = click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help=help)(fn)
        fn = click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")(fn)
        fn = click.option(
            "--resume",
            is_flag=True,
            help="Skip inputs whose output is already there, written by this codec (outputs are written "
            "atomically, so each is complete): continue an interrupted run over many files.",
        )(fn)
        return click.option("--force", is_flag=True, help="Overwrite existing outputs.")(fn)

    return decorate


@click.command("decode")
@click.argument("streams", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--codec", "codec_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--threads", type=click.IntRange(min=1), help="Threads for one stream's substreams (default: the CPUs)."
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    help="Threads that decode streams beside the caller (default: the CPUs for a GPU; 0 for a CPU, whose "
    "convolutions already use every core: streams then decode one after another).",
)
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    help="Refuse streams whose grid covers more pixels (default: 4× the codec's training resolution²).",
)
@output_options(
    "A .safetensors file (one STREAM), or a directory that receives one STEM.safetensors per stream "
    "(a directory input's tree mirrored)."
)
def decode_command(streams, codec_dir, threads, workers, device, max_pixels, force, resume, as_json, output):
    """Decode .fcb streams (files, directories, quoted globs) into
    safetensors files of features {level: C×H×W}.

    A stream that fails is named and the others are still decoded; the exit status is then 3.
    """
    from safetensors.torch import save

    from .codec_dir import load_codec
    from .stream_files import decode_stream_files, decode_targets

    paths, targets = decode_targets(streams, output, force=force or resume)
    codec = load_codec(codec_dir, device=device)
    if resume:
        paths, targets = resume_inputs(paths, targets, force, features_of(codec))
    for folder in {t.parent for t in targets}:
        folder.mkdir(parents=True, exist_ok=True)
    summaries, failures = [], []
    results = decode_stream_files(
        codec,
        paths,
        threads=threads,
        workers=workers,
        device=device,
        max_pixels=max_pixels,
        show_progress=len(paths) > 1,
    )
    for result, target in zip(results, targets, strict=True):
        if result.error is not None:
            click.echo(f"failed: {result.error}", err=True)
            failures.append(result.error)
            continue
        start = time.perf_counter()
        header = result.decoded.header
        metadata = {
            "encoder": str(header["encoder"].get("name")),
            "weights_id": str(header["encoder"].get("weights_id")),
            "codec_id": codec.codec_id,
            "source": json.dumps(header.get("source")),
        }
        tensors = {k: v.detach().cpu().contiguous() for k, v in result.decoded.features.items()}
        write_output(target, save(tensors, metadata=metadata), force)
        timings = {**result.decoded.timings, "write_s": time.perf_counter() - start}
        summaries.append(
            {
                "output": str(target),
                "levels": {k: list(v.shape) for k, v in tensors.items()},
                "seconds": timings,
            }
        )
        if not as_json:
            click.echo(
                f"wrote {target} ({', '.join(f'{k} {tuple(v.shape)}' for k, v in tensors.items())})", err=True
            )
    if as_json:
        click.echo(json.dumps(summaries[0] if len(paths) == 1 and summaries else summaries, indent=2))
    if failures:
        raise InputError(
            "\n  ".join([f"{len(failures)} of {len(paths)} streams failed:", *failures])
            if len(paths) > 1
            else failures[0]
        )


@click.command("info")
@click.argument("stream", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--codec",
    "codec_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The codec that wrote the stream: adds what a compact (v2) header leaves to it (levels, latents, "
    "encoder, bits per element).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info_command(stream, codec_dir, as_json):
    """Print a .fcb stream's header, sizes, bits per element and bits per pixel."""
    from .bitstream import BitstreamError, stream_info

    data = read_input(stream)
    codec = None
    if codec_dir:  # only then torch is needed
        from .codec_dir import load_codec

        codec = load_codec(codec_dir)
    try:
        info = stream_info(data, codec)
    except BitstreamError as e:
        raise InputError(f"{stream}: {e}") from e
    info = {"file": str(stream), **info}
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    codec, encoder = info["codec"] or {}, info["encoder"] or {}
    lines = [
        f"file              {stream} (container {'.'.join(map(str, info['container_version']))})",
        f"codec             {codec.get('kind')} {codec.get('id')} (config {codec.get('config_hash')})",
        f"encoder           {encoder.get('name')} ({encoder.get('weights_id')}) at {info['resolution']} px",
        "levels            "
        + (
            ", ".join(f"{lv.get('name')} {tuple(lv.get('shape', ()))}" for lv in info["levels"])
            if info["levels"]
            else "(not in a compact stream: pass --codec)"
        ),
        f"latents           {info['latents'] if info['latents'] else '(pass --codec)'}",
        f"coder             {info['coder']}",
        f"bytes             {info['bytes']} (header {info['header_bytes']}, payload {info['payload_bytes']})",
        "substreams        " + ", ".join(f"{s['name']}:{s['bytes']}" for s in info["substreams"]),
    ]
    if info.get("bits_per_element") is not None:
        lines.append(
            f"bits/element      {info['bits_per_element']:.5f} (payload "
            f"{info['payload_bits_per_element']:.5f})"
        )
    if info.get("estimated_bits") is not None:
        lines.append(
            f"model estimate    {info['estimated_bits']:.0f} bits (coding overhead "
            f"{100 * info.get('coding_overhead', 0):.2f} %)"
        )
    if info.get("bpp_input") is not None:
        lines.append(f"bpp (input)       {info['bpp_input']:.5f}")
    if info.get("bpp_source") is not None:
        src = info["source"]
        lines.append(
            f"bpp (source)      {info['bpp_source']:.5f} ({src.get('name')}, "
            f"{src.get('width')}×{src.get('height')})"
        )
    click.echo("\n".join(lines))
