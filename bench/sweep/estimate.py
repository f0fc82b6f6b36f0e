"""`featcodec sweep STUDY --plan --estimate`: what a study's plan costs before anything runs.

    plan (graph.plan_steps) ─► per step: COSTS[kind](step, context) → Cost(seconds, bytes written, peak host /
                               device memory), from
                                 · dataset sizes (`data_size`: the data's own index when present, else the
                                   split's declared `size = N`, else the official dataset's known size),
                                 · per-operation costs (`Calibration`: `featcodec calibrate --device cpu|cuda`
                                   measures them; the shipped files say where each number comes from)
                           ─► per kind: count, device-hours, bytes, peak memory; totals; the critical path
                               (the longest chain of dependent steps) and the wall time on N parallel slots
                               (the runner's own scheduling, replayed with the estimated durations)

A new step kind needs one entry in `COSTS`. The model prices the graph it is given: a neck or eval with a
`features` input reads stored neck inputs instead of running the encoder, one with a `streams` input decodes
the streams instead of encoding, and so on.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.names import CALIBRATION_FORMAT, CALIBRATION_VERSION
from codec.errors import InputError

from .graph import Step, neck_grid
from .study import DataSplit, Study

CALIBRATION_DIR = Path(__file__).parent / "calibration"
FP16, FP32 = 2, 4
GiB = 2**30

# Official datasets' sizes, for a plan made before the data is downloaded: (source, annotation file name,
# split) → (images, samples); samples differ from images for pose (one sample per labelled person).
KNOWN_SIZES: dict[tuple[str, str, str | None], tuple[int, int, str]] = {
    ("nyuv2", "nyu_depth_v2_labeled.mat", None): (1449, 1449, "NYUv2 labeled (Silberman et al. 2012)"),
    ("nyuv2", "nyu_depth_v2_labeled.mat", "train"): (795, 795, "NYUv2 splits.mat trainNdxs"),
    ("nyuv2", "nyu_depth_v2_labeled.mat", "test"): (654, 654, "NYUv2 splits.mat testNdxs"),
    ("coco-caps", "captions_train2017.json", None): (118287, 118287, "COCO 2017 train captions"),
    ("coco-caps", "captions_train2017.json", "train"): (82783, 82783, "Karpathy train (all in train2017)"),
    ("coco-caps", "captions_val2017.json", None): (5000, 5000, "COCO 2017 val captions"),
    # an upper bound: Karpathy's test images come from val2014, of which val2017 holds a part
    ("coco-caps", "captions_val2017.json", "test"): (
        5000,
        5000,
        "at most COCO 2017 val (Karpathy test ∩ val2017)",
    ),
    ("coco-kpts", "person_keypoints_train2017.json", None): (
        56599,
        149813,
        "COCO 2017 train: people with keypoints",
    ),
    ("coco-kpts", "person_keypoints_val2017.json", None): (
        2346,
        6352,
        "COCO 2017 val: people with keypoints",
    ),
}


@dataclass
class Cost:
    seconds: float = 0.0
    bytes: int = 0  # written to the run directory
    host: int = 0  # peak host memory, bytes
    device: int = 0  # peak device memory, bytes (0 on the CPU)


@dataclass
class Calibration:
    """Per-operation costs: `ops` maps an operation key (`op[attr=value,...]`) to {seconds, source, ...}."""

    device: str
    ops: dict[str, dict]
    path: Path | None = None
    about: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Calibration:
        from codec.files import read_json_document

        doc = read_json_document(
            path,
            format=CALIBRATION_FORMAT,
            format_version=CALIBRATION_VERSION,
            required=("ops",),
            error=InputError,
            missing_hint="no calibration file; run featcodec calibrate",
        )
        return cls(
            doc.get("device", "?"), doc["ops"], Path(path), {k: v for k, v in doc.items() if k != "ops"}
        )

    @classmethod
    def shipped(cls, device: str) -> Calibration:
        return cls.load(CALIBRATION_DIR / f"{'cuda' if device.startswith('cuda') else 'cpu'}.json")

    def to_doc(self) -> dict:
        return {
            **self.about,
            "format": CALIBRATION_FORMAT,
            "format_version": CALIBRATION_VERSION,
            "device": self.device,
            "ops": dict(sorted(self.ops.items())),
        }

    def seconds(self, name: str, **attrs) -> float:
        """The cost of operation `name` with `attrs`: the calibrated entry sharing most attributes with them,
        scaled linearly by the input's pixels (resolution²) and by the batch where those differ."""
        wanted = op_key(name, **attrs)
        if wanted in self.ops:
            return float(self.ops[wanted]["seconds"])
        best, best_score = None, -1
        for key, entry in self.ops.items():
            op, got = parse_key(key)
            if op != name:
                continue
            score = sum(str(attrs.get(k)) == v for k, v in got.items()) * 2 - sum(k not in attrs for k in got)
            if score > best_score:
                best, best_score = (got, entry), score
        if best is None:
            where = self.path or f"the {self.device} calibration"
            raise InputError(
                f"{where}: no {name!r} cost; run featcodec calibrate --study STUDY on this study"
            )
        got, entry = best
        value = float(entry["seconds"])
        if "resolution" in got and attrs.get("resolution"):
            value *= (int(attrs["resolution"]) / int(got["resolution"])) ** 2
        if "batch" in got and attrs.get("batch"):
            value *= int(attrs["batch"]) / int(got["batch"])
        return value


def op_key(name: str, **attrs) -> str:
    return f"{name}[{','.join(f'{k}={attrs[k]}' for k in sorted(attrs))}]"


# What a calibrated training or evaluation cost is keyed by (op_key) besides encoder and resolution, read off
# the step's settings: `featcodec calibrate` records under these keys and the estimate looks them up.
def codec_attrs(settings: dict) -> dict:
    """A codec or codec-set step's: its model, its sizes and its batch."""
    sizes = {k: settings.get(k) for k in ("channels", "latent_channels", "grid_stride")}
    if settings.get("adapter_rank") is not None:  # only when set: earlier calibrations keep their keys
        sizes["adapter_rank"] = settings["adapter_rank"]
    return {"model": settings["model"], **sizes, "batch": settings["batch_size"]}


def neck_attrs(settings: dict) -> dict:
    """A neck step's: its task, head and architecture."""
    return {k: settings[k] for k in ("task", "head", "layers", "dim")}


def parse_key(key: str) -> tuple[str, dict[str, str]]:
    name, _, rest = key.partition("[")
    pairs = [p.split("=", 1) for p in rest.rstrip("]").split(",") if "=" in p]
    return name, dict(pairs)


def data_size(split: DataSplit | dict, where: str = "") -> tuple[int, str]:
    """(samples, where the number comes from) of a study's data split, with its limit applied."""
    from probes.data import DatasetError, open_dataset, parse_spec

    if isinstance(split, dict):
        split = DataSplit(split["data"], split.get("split"), split.get("limit"), split.get("size"))
    name = split.data.split(":")[0]
    _, paths = parse_spec(split.data)
    present = name == "synthetic" or (paths and all(Path(p).exists() for p in paths))
    if present:
        try:
            return len(open_dataset(split.data, split=split.split, limit=split.limit)), "the data's index"
        except DatasetError as e:
            raise InputError(f"{where or split.data}: {e}") from None
    images, samples, source = None, None, ""
    if split.size is not None:
        images = samples = split.size
        source = "declared size"
    else:
        known = KNOWN_SIZES.get((name, Path(paths[0]).name if paths else "", split.split))
        if known is None:
            raise InputError(
                f"{where or split.data}: {split.data} is not here and its size is unknown; "
                "declare it: {data = ..., size = N}"
            )
        images, samples, source = known
    if split.limit is not None and split.limit < images:  # a limit counts images (pose: all people of them)
        samples, images = round(samples * split.limit / images), split.limit
    return samples, source


@dataclass
class Context:
    """What the cost functions share: the study, the calibration, sizes and encoder shapes, memoised."""

    study: Study
    calibration: Calibration
    sizes: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)
    declared: dict = field(default_factory=dict)  # (data, split, limit) → the study's `size = N`

    def __post_init__(self):
        splits = [*self.study.codec.data, *(s for t in self.study.tasks for s in (t.train, t.test))]
        self.declared = {(s.data, s.split, s.limit): s.size for s in splits if s.size is not None}

    @property
    def cuda(self) -> bool:
        return self.study.device.startswith("cuda")

    def size(self, split: dict) -> int:
        key = json.dumps(split, sort_keys=True)
        if key not in self.sizes:
            declared = self.declared.get((split["data"], split.get("split"), split.get("limit")))
            n, source = data_size({**split, "size": declared})
            self.sizes[key] = n
            name, *paths = split["data"].split(":")
            label = ":".join([name, *(Path(p).name for p in paths)])
            label += "".join(f" {k}={split[k]}" for k in ("split", "limit") if split.get(k))
            self.sources[label] = f"{n} ({source})"
        return self.sizes[key]

    def shapes(self, encoder: dict) -> dict[str, tuple[int, int, int]]:
        from probes.encoders import get_spec

        return get_spec(encoder["name"]).shapes(encoder.get("resolution"))

    def resolution(self, encoder: dict) -> int:
        from probes.encoders import get_spec

        return encoder.get("resolution") or get_spec(encoder["name"]).default_resolution

    def forward(self, encoder: dict) -> float:
        return self.calibration.seconds(
            "encoder_forward", encoder=encoder["name"], resolution=self.resolution(encoder)
        )

    def coding(self, op: str, encoder: dict) -> float:
        return self.calibration.seconds(
            op, encoder=encoder["name"], resolution=self.resolution(encoder), model=self.study.codec.model
        )

    def start(self, kind: str) -> float:
        return self.calibration.seconds("step_start", kind=kind)


def feature_elements(shapes: dict[str, tuple[int, int, int]], grid: Sequence[int] | None = None) -> int:
    """Elements of one image's features; with `grid`, as a neck on that working grid consumes them (each level
    that covers the grid area-averaged onto it: what a `features` step stores)."""
    from probes.necks import consumed_shape

    return sum(math.prod(consumed_shape(s, tuple(grid)) if grid else s) for s in shapes.values())


def _stored_grid(step: Step, ctx: Context) -> list[int] | None:
    """A features step's working grid: the plan's, or (a head not known
    offline) the neck head's if reachable."""
    s = step.settings
    return s.get("grid") or neck_grid(s["encoder"], s.get("neck_head") or s["head"])


def _encoder_of(step: Step) -> dict:
    """The encoder a step works for (from its settings or, through its inputs, an upstream step's)."""
    if "encoder" in step.settings:
        return step.settings["encoder"]
    for dep in step.dependencies:
        if dep.kind != "images":
            return _encoder_of(dep)
    raise KeyError(f"{step.label}: no encoder upstream")


def _upstream(step: Step, kind: str) -> Step | None:
    """The nearest step of `kind` among a step's inputs and theirs."""
    for dep in step.dependencies:
        found = dep if dep.kind == kind else _upstream(dep, kind)
        if found is not None:
            return found
    return None


def _split_of(step: Step) -> dict:
    s = step.settings
    for key in ("test", "train"):
        if isinstance(s.get(key), dict):
            return s[key]
    return {k: s.get(k) for k in ("data", "split", "limit", "size")}


def _images(step: Step, ctx: Context) -> Cost:
    n = ctx.size(_split_of(step))
    write = ctx.calibration.seconds("image_write", source=step.settings["data"].split(":")[0])
    size = ctx.calibration.ops.get(
        op_key("image_bytes", source=step.settings["data"].split(":")[0]), {"seconds": 5e5}
    )
    return Cost(ctx.start("images") + n * write, int(n * size["seconds"]), 256 * 2**20)


def _extract(step: Step, ctx: Context) -> Cost:
    enc = step.settings["encoder"]
    n = sum(ctx.size(_split_of(d)) for d in step.input("images"))
    dtype = FP16 if step.settings.get("dtype") == "float16" else FP32
    per_image = feature_elements(ctx.shapes(enc)) * dtype
    if step.settings.get("crop"):  # `crops_per_image` random crops of `crop` input pixels kept per image
        per_image = (
            per_image
            * step.settings["crop"] ** 2
            * step.settings["crops_per_image"]
            // ctx.resolution(enc) ** 2
        )
    batch, shard = 8, 64
    host = shard * per_image + batch * 3 * ctx.resolution(enc) ** 2 * FP32 + GiB
    return Cost(
        ctx.start("extract") + n * ctx.forward(enc),
        n * per_image,
        host,
        _activations(ctx, batch * feature_elements(ctx.shapes(enc)) * FP32),
    )


def _activations(ctx: Context, batch_feature_bytes: int) -> int:
    # a working set of a few times a batch's float32 features, plus the CUDA context; 0 on the CPU
    return 6 * batch_feature_bytes + GiB if ctx.cuda else 0


def _codec(step: Step, ctx: Context) -> Cost:
    """A codec trained for one λ, a variable-rate `codec-set` trained once for all its λ (exported: one codec
    directory per λ), or one rate copied out of a codec-set (`trained` input: start-up only)."""
    s = step.settings
    enc = _encoder_of(step)
    if (
        step.input("trained") or "steps" not in s
    ):  # a rate copied out of a codec-set; a packed anchor (no training)
        return Cost(ctx.start("codec"), 64 * 2**20, GiB)
    extract = _upstream(step, "extract")
    # trained on the extract step's crops where it keeps crops: a step's cost scales with their pixels
    pixels = (extract.settings.get("crop") if extract else None) or ctx.resolution(enc)
    per_step = ctx.calibration.seconds(
        "codec_train_step", encoder=enc["name"], resolution=pixels, **codec_attrs(s)
    )
    batch_bytes = (
        s["batch_size"] * feature_elements(ctx.shapes(enc)) * FP32 * pixels**2 // ctx.resolution(enc) ** 2
    )
    codecs = len(s.get("lambdas") or [0])
    return Cost(
        ctx.start("codec") + s["steps"] * per_step,
        codecs * 64 * 2**20,
        4 * batch_bytes + GiB,
        _activations(ctx, batch_bytes),
    )


FEATURE_MEMORY = 2048 * 2**20  # probes.training: a neck's training features are kept in memory up to this


def _neck(step: Step, ctx: Context) -> Cost:
    """A neck: clean, reading a `features` step's stored inputs (no encoder); decoded, decoding its training
    split's `streams` (once into memory where PrecomputedFeatures applies, else every visited sample); or, in
    a
    plan without those steps, the encoder (and a codec round trip) run here."""
    s = step.settings
    enc = s["encoder"]
    n = ctx.size(s["train"])
    per_step = ctx.calibration.seconds(
        "neck_train_step",
        encoder=enc["name"],
        resolution=ctx.resolution(enc),
        **neck_attrs(s),
        batch=s["batch_size"],
    )
    held = n * feature_elements(ctx.shapes(enc)) * FP32  # the precompute decision: full-resolution float32
    visits = (
        n if held <= FEATURE_MEMORY and s["steps"] * s["batch_size"] > n else s["steps"] * s["batch_size"]
    )
    host = held if visits == n and held <= FEATURE_MEMORY else 0
    if step.input("features"):  # memory-mapped fp16 rows: read, nothing computed
        first = 0.0
    elif step.input("streams"):  # decoded on every visit, unless the streams step kept them decoded
        first = 0.0 if _kept_decoded(step) else visits * ctx.coding("codec_decode", enc)
    else:
        first = visits * ctx.forward(enc)
        if step.input("codec"):
            first += visits * (ctx.coding("codec_encode", enc) + ctx.coding("codec_decode", enc))
    if s.get("kd"):  # the head's own encoder on every sample, once (the KD targets)
        first += n * ctx.calibration.seconds("head_teacher", head=s["head"])
    if step.input("after"):  # a cross-neck: the first neck runs in every forward too
        per_step *= 1.3
    seconds = ctx.start("neck") + first + s["steps"] * per_step
    batch = s["batch_size"] * feature_elements(ctx.shapes(enc)) * FP32
    return Cost(seconds, 32 * 2**20, host + GiB, _activations(ctx, batch) + (2 * GiB if ctx.cuda else 0))


def _eval(step: Step, ctx: Context) -> Cost:
    """A neck scored on its test split: stored inputs read (clean), streams
    decoded, or the encoder run here."""
    (neck,) = step.input("neck")
    ns = neck.settings
    enc = ns["encoder"]
    n = ctx.size(step.settings["test"])
    per_image = ctx.calibration.seconds(
        "neck_eval", encoder=enc["name"], resolution=ctx.resolution(enc), **neck_attrs(ns)
    )
    if step.input("features"):
        first = 0.0
    elif step.input("streams"):  # a remote split's stored features are read; a codec's streams are decoded
        first = 0.0 if _kept_decoded(step) else n * ctx.coding("codec_decode", enc)
    else:
        first = n * ctx.forward(enc)
        if step.input("codec"):
            first += n * (ctx.coding("codec_encode", enc) + ctx.coding("codec_decode", enc))
    batch = step.settings["batch_size"] * feature_elements(ctx.shapes(enc)) * FP32
    return Cost(
        ctx.start("eval") + first + n * per_image,
        64 * 2**10 + n * 256,
        2 * batch + GiB,
        _activations(ctx, batch) + (2 * GiB if ctx.cuda else 0),
    )


def _features(step: Step, ctx: Context) -> Cost:
    """Neck inputs of one (encoder, split, working grid), stored fp16 as the neck consumes them
    (probes.neck_inputs):
    one encoder forward per sample; host memory: a shard (64 samples) and a batch."""
    enc = step.settings["encoder"]
    n = ctx.size(_split_of(step))
    per_image = feature_elements(ctx.shapes(enc), _stored_grid(step, ctx)) * FP16
    batch = step.settings["batch_size"] * feature_elements(ctx.shapes(enc)) * FP32
    # start-up as an extract step's (an encoder built, shards written): calibrate measures that one
    return Cost(
        ctx.start("extract") + n * ctx.forward(enc),
        n * per_image,
        64 * per_image + 2 * batch + GiB,
        _activations(ctx, batch),
    )


def _streams(step: Step, ctx: Context) -> Cost:
    """A split's .fcb streams through one codec (probes.streams): one encoder forward, one encode (and, with
    `keep_decoded`, one decode, the float32 features written too) per sample."""
    enc = _encoder_of(step)
    n = ctx.size(_split_of(step))
    bpp = ctx.calibration.ops.get(op_key("stream_bits_per_pixel"), {"seconds": 1.0})["seconds"]
    per_image = int(bpp * ctx.resolution(enc) ** 2 / 8)
    seconds = n * (ctx.coding("codec_encode", enc) + ctx.forward(enc))
    if step.settings.get("keep_decoded"):
        per_image += feature_elements(ctx.shapes(enc)) * FP32
        seconds += n * ctx.coding("codec_decode", enc)
    batch = step.settings["batch_size"] * feature_elements(ctx.shapes(enc)) * FP32
    return Cost(ctx.start("codec") + seconds, n * per_image, 2 * batch + GiB, _activations(ctx, batch))


def _remote(step: Step, ctx: Context) -> Cost:
    """Remote inference on a test split: each picture coded and decoded by an image codec (about two image
    writes), the encoder run on it, the features kept as a decoded split (float32)."""
    enc = _encoder_of(step)
    n = ctx.size(_split_of(step))
    source = step.settings["test"]["data"].split(":")[0]
    per_image = ctx.forward(enc) + 2 * ctx.calibration.seconds("image_write", source=source)
    decoded = feature_elements(ctx.shapes(enc)) * FP32
    return Cost(
        ctx.start("codec") + n * per_image, n * decoded, n * decoded + GiB, _activations(ctx, 8 * decoded)
    )


def _zero_rate(step: Step, ctx: Context) -> Cost:
    n = ctx.size(step.settings["train"]) + ctx.size(step.settings["test"])
    return Cost(
        ctx.start("zero-rate") + n * ctx.calibration.seconds("image_write", source="any") / 4, 2**20, GiB
    )


def _report(step: Step, ctx: Context) -> Cost:
    return Cost(ctx.start("report"), 16 * 2**20, GiB)


# step kind → cost function; a new kind needs one entry here
COSTS: dict[str, Callable[[Step, Context], Cost]] = {
    "images": _images,
    "extract": _extract,
    "features": _features,
    "codec-set": _codec,
    "codec": _codec,
    "neck": _neck,
    "eval": _eval,
    "streams": _streams,
    "remote": _remote,
    "zero-rate": _zero_rate,
    "report": _report,
}
DEVICE_KINDS = (
    "extract",
    "codec-set",
    "codec",
    "neck",
    "eval",
    "features",
    "streams",
    "remote",
)  # run on the study's device


@dataclass
class Estimate:
    study: Study
    calibration: Calibration
    costs: dict[str, Cost]  # step id → cost
    steps: list[Step]
    jobs: int
    sizes: dict[str, str]

    def by_kind(self) -> dict[str, dict]:
        rows: dict[str, dict] = defaultdict(
            lambda: {"count": 0, "seconds": 0.0, "bytes": 0, "host": 0, "device": 0}
        )
        for step in self.steps:
            c, row = self.costs[step.id], rows[step.kind]
            row["count"] += 1
            row["seconds"] += c.seconds
            row["bytes"] += c.bytes
            row["host"], row["device"] = max(row["host"], c.host), max(row["device"], c.device)
        return dict(rows)

    @property
    def device_hours(self) -> float:
        return sum(self.costs[s.id].seconds for s in self.steps if s.kind in DEVICE_KINDS) / 3600

    @property
    def total_hours(self) -> float:
        return sum(c.seconds for c in self.costs.values()) / 3600

    @property
    def scratch_bytes(self) -> int:
        return sum(c.bytes for c in self.costs.values())

    def critical_path(self) -> tuple[float, list[Step]]:
        finish: dict[str, tuple[float, Step | None]] = {}
        for step in self.steps:  # dependencies first
            before = max(
                ((finish[d.id][0], d) for d in step.dependencies), key=lambda x: x[0], default=(0.0, None)
            )
            finish[step.id] = (before[0] + self.costs[step.id].seconds, before[1])
        end = max(self.steps, key=lambda s: finish[s.id][0])
        chain, step = [], end
        while step is not None:
            chain.append(step)
            step = finish[step.id][1]
        return finish[end.id][0], chain[::-1]

    def wall_seconds(self, slots: int | None = None) -> float:
        """The runner's schedule replayed: ready steps in plan order, `slots` at a time."""
        slots = slots or self.jobs
        done_at: dict[str, float] = {}
        pending, running, now = list(self.steps), [], 0.0
        while pending or running:
            ready = [
                s for s in pending if all(d.id in done_at and done_at[d.id] <= now for d in s.dependencies)
            ]
            for step in ready[: max(0, slots - len(running))]:
                pending.remove(step)
                running.append((now + self.costs[step.id].seconds, step))
            running.sort(key=lambda r: r[0])
            end, step = running.pop(0)
            now = end
            done_at[step.id] = end
        return now

    def table(self) -> str:
        unit = "GPU" if self.study.device.startswith("cuda") else "CPU"
        lines = [
            f"estimate for {self.study.name} on {self.study.device} "
            f"(calibration: {self.calibration.path or 'given'}; {self.calibration.about.get('machine', '')})",
            f"{'kind':<10} {'count':>6} {'hours':>10} {'written':>10} {'peak host':>10} {'peak dev':>9}",
        ]
        for kind, row in self.by_kind().items():
            lines.append(
                f"{kind:<10} {row['count']:>6} {row['seconds'] / 3600:>10.2f} {_bytes(row['bytes']):>10} "
                f"{_bytes(row['host']):>10} {_bytes(row['device']):>9}"
            )
        length, chain = self.critical_path()
        lines += [
            f"total: {len(self.steps)} steps, {self.device_hours:.2f} {unit}-hours on the "
            f"{self.study.device} steps "
            f"({self.total_hours:.2f} step-hours in all), {_bytes(self.scratch_bytes)} written",
            f"critical path: {length / 3600:.2f} h through {len(chain)} steps: "
            + " → ".join(dict.fromkeys(s.kind for s in chain)),
            f"wall time with {self.jobs} step(s) at a time: {self.wall_seconds() / 60:.1f} min",
            "data sizes:",
            *(f"  {k}: {v}" for k, v in self.sizes.items()),
        ]
        return "\n".join(lines)


def _bytes(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def estimate(
    study: Study, steps: list[Step], calibration: Calibration | None = None, jobs: int = 1
) -> Estimate:
    """Price every step of `steps` (a plan of `study`)."""
    calibration = calibration or Calibration.shipped(study.device)
    ctx = Context(study, calibration)
    costs = {}
    for step in steps:
        if step.kind not in COSTS:
            raise InputError(f"step kind {step.kind!r} has no cost function in bench.sweep.estimate.COSTS")
        costs[step.id] = COSTS[step.kind](step, ctx)
    return Estimate(study, calibration, costs, steps, jobs, ctx.sources)


def estimate_plan(
    study_path: str | os.PathLike, calibration: Calibration | None = None, jobs: int = 1
) -> Estimate:
    """`featcodec sweep STUDY --plan --estimate`: the study's plan, priced; no
    data or checkpoint needs to be here."""
    from .graph import plan_steps
    from .study import load_study

    study = load_study(study_path, require_data=False)
    return estimate(study, plan_steps(study), calibration, jobs)


def calibration_about(device: str) -> dict:
    import torch

    return {
        "machine": f"{platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
        + (f", {torch.cuda.get_device_name()}" if device.startswith("cuda") else ""),
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def _kept_decoded(step: Step) -> bool:
    """Whether a reader of a `streams` or `remote` step finds the features stored (remote inference always; a
    codec's streams with the study's keep_decoded) instead of decoding the streams."""
    (streams,) = step.input("streams")
    return streams.kind == "remote" or bool(streams.settings.get("keep_decoded"))
