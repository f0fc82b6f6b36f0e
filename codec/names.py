"""The codec layer's names that are needed without importing torch (for the instant CLI and torch-free
readers): the index of its registries, and the format names of what it writes.

Index: a copy of each registry's `names()` (the registries fill themselves from their decorators, and
importing them imports torch); tests/architecture/test_names.py keeps every copy equal to its registry.
Formats: defined here only; the modules that write and read them import them from here.
"""

# -- index of the registries (codec.registry.Registry) ---------------------------------------------
CODEC_KINDS = ("av1", "factorized", "hevc", "hyperprior", "uniform", "vvc")  # codec.models.registry.CODECS
CODER_NAMES = ("compressai", "constriction", "native", "native2")  # codec.entropy.coders.CODERS
PACKED_KINDS = ("av1", "hevc", "vvc")  # codec.models.packed.PACKED_KINDS: the standard anchors (CODEC_KINDS)
# the learned kinds with the multi-level analysis / synthesis (codec.models.base.TransformFeatureCodec)
TRANSFORM_KINDS = ("factorized", "hyperprior")

# -- options of a codec kind -------------------------------------------------------------------------
HYPER_PATHS = ("float64", "integer")  # how a hyperprior's h_s runs (codec/models/integer.py)

# -- formats and record schemas --------------------------------------------------------------------
STREAM_FORMAT = "featcodec-fcb"  # the `format` of a parsed .fcb header (docs/bitstream.md)
CODEC_FORMAT, CODEC_FORMAT_VERSION = "featcodec-codec", 1  # a codec directory's config.json (codec_dir.py)
# the `complexity` record of a coded evaluation (codec.complexity.codec_complexity, probes.anchors; bench.rd)
COMPLEXITY_FIELDS = ("encoder_kmac_per_pixel", "decoder_kmac_per_pixel", "encode_ms", "decode_ms")


def schema_record(schema: tuple[str, ...], fields: dict) -> dict:
    """`fields` in the order of `schema`, which must name exactly its keys: how a producer writes a record
    whose schema is declared in a names module (its readers import the same schema)."""
    if set(fields) != set(schema):
        raise AssertionError(f"a record's fields {sorted(fields)} are not its schema's {list(schema)}")
    return {name: fields[name] for name in schema}
