"""What a `.fcb` stream says about itself (`featcodec info`), without torch.

A version-1 stream describes itself fully; a compact (version 2) one leaves out what its codec implies
(levels, shapes, encoder), which `describe(codec, header)` fills in from a loaded codec (any object with
`codec_id`, `config_hash`, `encoder`, `config` and `model`: nothing here imports the models).
"""

from __future__ import annotations

from .container import MAX_GRID, BitstreamError, unpack


def describe(codec, header: dict) -> dict:
    """The codec-derived fields a compact (version 2) header leaves out, as version 1 writes them."""
    grid = header.get("grid")
    if not (
        isinstance(grid, list) and len(grid) == 2 and all(type(v) is int and 1 <= v <= MAX_GRID for v in grid)
    ):
        return {}
    model = codec.model
    shapes = model.level_shapes(grid)
    return {
        "encoder": {"name": codec.encoder, "weights_id": codec.config["weights_id"]},
        "resolution": codec.config.get("resolution"),
        "levels": [{**lv.to_dict(), "shape": list(shapes[lv.name])} for lv in model.levels],
        "latents": model.latent_shapes(grid),
    }


def stream_info(data: bytes, codec=None) -> dict:
    """Header fields, sizes, bits per element and bits per pixel of one stream (no codec needed for a
    version-1 stream; a compact one needs `codec` for its levels, latents and bits per element)."""
    container = unpack(data)
    header = container.header
    if codec is not None and container.version[0] >= 2:
        info = header.get("codec") or {}
        if info.get("id") != codec.codec_id or info.get("config_hash") != codec.config_hash:
            raise BitstreamError(f"the stream was written by codec {info.get('id')}, not by {codec.codec_id}")
        header = {**describe(codec, header), **header}
    payload = container.payload_bytes
    elements = 0
    for level in header.get("levels") or []:
        shape = level.get("shape") if isinstance(level, dict) else None
        if isinstance(shape, list) and all(type(v) is int and v > 0 for v in shape):
            n = 1
            for v in shape:
                n *= v
            elements += n
    info = {
        "container_version": list(container.version),
        "bytes": len(data),
        "header_bytes": len(data) - payload - 4,
        "payload_bytes": payload,
        "codec": header.get("codec"),
        "encoder": header.get("encoder"),
        "resolution": header.get("resolution"),
        "grid": header.get("grid"),
        "levels": header.get("levels"),
        "latents": header.get("latents"),
        "coder": header.get("coder"),
        "substreams": [{"name": n, "bytes": len(s)} for n, s in container.substreams.items()],
        "elements": elements,
        "bits_per_element": 8 * len(data) / elements if elements else None,
        "payload_bits_per_element": 8 * payload / elements if elements else None,
        "estimated_bits": header.get("estimated_bits"),
        "source": header.get("source"),
    }
    estimated = header.get("estimated_bits")
    if isinstance(estimated, (int, float)) and payload:
        info["coding_overhead"] = (8 * payload - estimated) / (8 * payload)
    resolution = header.get("resolution")
    if type(resolution) is int and resolution > 0:
        info["bpp_input"] = 8 * len(data) / resolution**2
    source = header.get("source") or {}
    if isinstance(source, dict) and type(source.get("width")) is int and type(source.get("height")) is int:
        if source["width"] > 0 and source["height"] > 0:
            info["bpp_source"] = 8 * len(data) / (source["width"] * source["height"])
    return info


# Which part of a stream its bytes pay for: the hyper-latent z (side information), the main latent
# y.* of the learned codecs, or x.* (the quantised features themselves, the uniform codec's only
# payload, so it counts as main); everything else — preamble, JSON header, CRCs — is header.
BYTE_SPLIT = ("header", "hyper", "main")


def byte_split(data: bytes | dict) -> dict[str, int]:
    """Bytes of one stream by what they code: {"header", "hyper" (z), "main"
    (y.* / x.*)}; they sum to len(data).

    `data` is the stream, or its `stream_info` when the caller has parsed it already.
    """
    info = data if isinstance(data, dict) else stream_info(data)
    hyper = sum(s["bytes"] for s in info["substreams"] if s["name"] == "z")
    main = sum(s["bytes"] for s in info["substreams"] if s["name"].startswith(("y.", "x.", "s.")))
    # a packed anchor's per-channel ranges "r.<level>" are its side information, as z is a hyperprior's
    hyper += sum(s["bytes"] for s in info["substreams"] if s["name"].startswith("r."))
    other = info["payload_bytes"] - hyper - main  # a substream of no known kind: counted with the header
    return {"header": info["bytes"] - info["payload_bytes"] + other, "hyper": hyper, "main": main}
