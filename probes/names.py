"""The probes layer's names that are needed without importing torch (for the instant CLI and the report,
which reads probes' records): the index of its registries, and the format names of what it writes.

Index: a copy of each registry's names (the registries fill themselves from their decorators, and importing
them imports torch); tests/architecture/test_names.py keeps every copy equal to its registry.
Formats: defined here only; the modules that write and read them import them from here.
"""

# -- index of the registries (codec.registry.Registry) ---------------------------------------------
TASK_NAMES = ("depth", "pose", "caption")  # probes.tasks.base.TASKS (this order: help texts, pretrain-heads)
DATASET_USAGE = {  # probes.data.base.DATASETS: name -> its --data spec
    "coco-caps": "coco-caps:ANN_JSON:IMG_DIR",
    "coco-kpts": "coco-kpts:ANN_JSON:IMG_DIR",
    "nyuv2": "nyuv2:PATH",
    "synthetic": "synthetic:depth|pose|caption[:N] or synthetic:mix[:N]",
}
HEAD_SCHEMES = ("builtin", "builtin-new", "hf")  # probes.heads.registry.HEADS: `SCHEME:...` head specs
FEATURE_DTYPES = ("bfloat16", "float16", "float32")  # probes.encoders.extract.DTYPES

# -- formats ---------------------------------------------------------------------------------------
EVAL_FORMAT = "featcodec-eval"  # an evaluation result (probes/evaluate.py; read by bench.rd)
# an evaluation's rates: `bpp` (stream bits per input pixel) and its `codec` record's `payload_bpp`
# (probes/training/sources.py, probes/anchors.py)
RATE_FIELDS = ("bpp", "payload_bpp")
EVAL_FIELDS = (  # the fields of an evaluation result, in the order probes/evaluate.py writes them
    "format",
    "task",
    "metrics",
    "per_image",  # each test image's own scores (probes.tasks.base.per_image_scores): the report's bootstrap
    "encoder",
    "random_init",
    "neck",
    "head",
    "codec",
    "bpp",
    "complexity",
    "data",
    "generation",
    "seconds",
    "device",
    "machine",
    "versions",
)
ZERO_RATE_FORMAT = "featcodec-zero-rate"  # the feature-free prediction's result (probes/evaluate.py)
CACHE_FORMAT, CACHE_FORMAT_VERSION = "featcodec-feature-cache", 1  # a feature cache's manifest.json
NECK_FORMAT, NECK_FORMAT_VERSION = "featcodec-neck", 1  # a neck directory's config.json
HEAD_FORMAT = "featcodec-head"  # a built-in head directory's config.json
DECODED_SPLIT_FORMAT, DECODED_SPLIT_FORMAT_VERSION = "featcodec-decoded-split", 1  # probes/streams.py
NECK_INPUTS_FORMAT, NECK_INPUTS_FORMAT_VERSION = "featcodec-neck-inputs", 1  # probes/neck_inputs.py
