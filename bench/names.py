"""The bench layer's format names and record schemas, needed without importing torch (the report reads
sweep rows; the instant CLI): defined here only, as codec/names.py and probes/names.py are for theirs; the
modules that write and the modules that read them import them from here.

The records a sweep's results.jsonl holds are evaluation records (probes.names.EVAL_FORMAT, written by
probes/evaluate.py, their rate fields probes.names.RATE_FIELDS) with the `sweep` record below added.
"""

# -- formats ---------------------------------------------------------------------------------------
# report.json (bench/rd/report.py; read back by bench/rd/results.py)
REPORT_FORMAT, REPORT_FORMAT_VERSION = "featcodec-report", 4
CALIBRATION_FORMAT, CALIBRATION_VERSION = "featcodec-calibration", 1  # bench/sweep/calibration/*.json

# -- the sweep row: one line of RUN_DIR/results.jsonl --------------------------------------------------
SWEEP_RESULTS = "results.jsonl"  # written by bench/sweep/runner.py, read by bench/rd (featcodec report)
POINT_KINDS = ("eval", "zero-rate")  # the steps whose result is a row
SWEEP_RECORD = "sweep"  # the row's field saying where in the study the point comes from:
SWEEP_FIELDS = (  # ... of an eval step's row
    "study",
    "step",
    "neck_step",
    "codec_step",
    "encoder",
    "task",
    "layers",
    "kd",
    "mode",
    "seed",  # the training seed of the neck and its codec: bench.rd's seed axis
    "lambda",
    "after",
    "test",
    "codec",
    "anchor",
    "anchor_point",
)
ZERO_RATE_SWEEP_FIELDS = ("study", "step", "task", "test", "lambda")  # ... of a zero-rate step's row
