"""The study file (TOML): what to compare, validated before any work starts.

Every problem is collected and reported in one `StudyError` (unknown keys with the nearest valid one,
missing files, an unknown encoder, a head that does not fit its task, a task without data), so a user
fixes a study file in one pass rather than one error per run.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from codec.errors import InputError

NECK_MODES = ("clean", "decoded")
TASK_NAMES = ("depth", "pose", "caption")
CODEC_MODELS = ("hyperprior", "factorized", "uniform")
CODERS = ("compressai", "constriction", "native")
REMOTE_PREFIX = "remote-"  # an anchor kind acting on the image side (remote inference)


class StudyError(InputError):
    """A study file that cannot be run; the message lists every problem, each naming its key."""


@dataclass(frozen=True)
class DataSplit:
    data: str
    split: str | None = None
    limit: int | None = None

    def to_dict(self) -> dict:
        return {"data": self.data, "split": self.split, "limit": self.limit}


@dataclass(frozen=True)
class EncoderEntry:
    name: str
    weights: str  # "default" (the registry's own weights), "random", "pretrained" or a checkpoint path
    resolution: int | None

    def to_dict(self) -> dict:
        return {"name": self.name, "weights": self.weights, "resolution": self.resolution}


@dataclass(frozen=True)
class CodecPlan:
    model: str = "hyperprior"
    coder: str = "native"
    lambdas: tuple[float, ...] = ()
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-4
    channels: int | None = None
    latent_channels: int | None = None
    grid_stride: int | None = None  # the latent's stride in input pixels (None: the model's default, 16)
    # one gain-unit network for every λ (codec.variable_rate), trained once per (encoder, seed)
    variable_rate: bool = False
    data: tuple[DataSplit, ...] = ()

    def settings(self) -> dict:
        settings = {"model": self.model, "steps": self.steps, "batch_size": self.batch_size, "lr": self.lr,
                    "channels": self.channels, "latent_channels": self.latent_channels}  # fmt: skip
        if self.grid_stride is not None:  # only when set: the ids of studies without it stay as they were
            settings["grid_stride"] = self.grid_stride
        if self.variable_rate:  # likewise
            settings["variable_rate"] = True
        return settings


@dataclass(frozen=True)
class AnchorPlan:
    """One of the standard's anchors (`[anchors.KIND]`): deterministic, no seed, no training.

    Packed features (`kind` vvc | hevc | av1, codec.models.packed) at each QP of `points`, or remote inference
    (`kind` remote-vvc | remote-jxl | remote-jpeg, probes.anchors) at each image-codec quality of `points`."""

    kind: str
    points: tuple[float, ...]  # packed: QPs; remote: qualities (VVC QP, JPEG XL distance, JPEG q-scale)
    preset: str | None = None  # packed only: the encoder preset (None: the standard's default)

    @property
    def remote(self) -> bool:
        return self.kind.startswith(REMOTE_PREFIX)

    @property
    def standard(self) -> str:
        """The standard's name in codec.standard: vvc, hevc, av1 (packed) or vvc, jxl, jpeg (remote)."""
        return self.kind.removeprefix(REMOTE_PREFIX)


@dataclass(frozen=True)
class NeckPlan:
    layers: tuple[int, ...] = (2,)
    dim: int = 256
    heads: int = 8
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-4
    modes: tuple[str, ...] = ("clean",)
    kd: tuple[float, ...] = (0.0,)
    # decoded mode: fine-tune the clean neck for this many steps on each λ's decoded features (0: train a
    # neck from scratch for `steps` on them instead)
    finetune_steps: int = 0

    def settings(self) -> dict:
        return {"dim": self.dim, "heads": self.heads, "steps": self.steps, "batch_size": self.batch_size, "lr": self.lr}


@dataclass(frozen=True)
class TaskPlan:
    name: str
    head: str
    train: DataSplit
    test: DataSplit
    kd: tuple[float, ...] | None = None  # overrides necks.kd for this task
    train_head: bool = False  # a new built-in head trained with each neck (not the study's frozen-head setting)
    modes: tuple[str, ...] | None = None  # overrides necks.modes for this task


@dataclass(frozen=True)
class Study:
    path: Path
    name: str
    description: str
    encoders: tuple[EncoderEntry, ...]
    tasks: tuple[TaskPlan, ...]
    codec: CodecPlan
    necks: NeckPlan
    cross_neck: tuple[tuple[str, str], ...] = ()
    seeds: tuple[int, ...] = (0,)
    anchor: str | None = None
    device: str = "cpu"
    eval_batch_size: int = 8
    threads: int = 0  # torch threads per step (0: torch's default); not part of step ids
    anchors: tuple[AnchorPlan, ...] = ()  # the standard's anchors, scored through every clean neck
    raw: dict = field(default_factory=dict, compare=False)


def _grid_stride(problems: _Problems, codec_raw: dict, model: str, encoders: list[EncoderEntry]) -> int | None:
    """`codec.grid_stride`, checked against every encoder's levels and resolution before any work: each level
    must rearrange losslessly onto the grid (codec.levels.grid_channels, as the codec's transforms do)."""
    stride = _typed(codec_raw, "grid_stride", int, None)
    if stride is None:
        return None
    if stride < 1 or stride & (stride - 1):
        problems.add("codec.grid_stride", f"must be a positive power of two, got {stride}")
        return None
    if model == "uniform":
        problems.add("codec.grid_stride", "the uniform codec has no latent grid; remove grid_stride")
        return None
    from codec.levels import grid_channels
    from probes.encoders import get_spec

    for entry in encoders:
        try:
            spec = get_spec(entry.name)
        except KeyError:
            continue  # already reported under encoders
        for level in spec.levels:
            try:
                grid_channels(level, stride)
            except ValueError as e:
                problems.add("codec.grid_stride", f"{stride}: {entry.name}: {e}")
        resolution = entry.resolution or spec.default_resolution
        if resolution % stride:
            problems.add("codec.grid_stride", f"{stride} does not divide {entry.name}'s resolution {resolution}")
    return stride


# The schema: section → {key: expected type(s)}; "*" marks a table of named entries.
_TOP = {"name": str, "description": str, "seeds": list, "anchor": str, "device": str, "eval_batch_size": int,
        "threads": int, "anchors": dict,
        "encoders": dict, "tasks": dict, "codec": dict, "necks": dict, "cross_neck": list}  # fmt: skip
_ENCODER = {"weights": str, "resolution": int}
_CODEC = {"model": str, "coder": str, "lambdas": list, "steps": int, "batch_size": int, "lr": (int, float),
          "channels": int, "latent_channels": int, "grid_stride": int, "variable_rate": bool,
          "data": list}  # fmt: skip
_NECKS = {"layers": list, "dim": int, "heads": int, "steps": int, "batch_size": int, "lr": (int, float),
          "modes": list, "kd": list, "finetune_steps": int}  # fmt: skip
_TASK = {"head": str, "train": dict, "test": dict, "kd": list, "modes": list, "train_head": bool}
_SPLIT = {"data": str, "split": str, "limit": int}
_CROSS = {"first": str, "second": str}
_ANCHOR = {"qps": list, "qualities": list, "preset": str}


class _Problems:
    def __init__(self, path: Path):
        self.path = path
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def check_keys(self, table: dict, schema: dict, where: str) -> None:
        for key, value in table.items():
            if key not in schema:
                near = difflib.get_close_matches(key, list(schema), n=1)
                self.add(f"{where}{key}", "unknown key" + (f"; did you mean {near[0]!r}?" if near else
                                                           f" (known: {', '.join(schema)})"))
                continue
            kinds = schema[key] if isinstance(schema[key], tuple) else (schema[key],)
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                names = " or ".join(k.__name__ for k in kinds)
                self.add(f"{where}{key}", f"expected {names}, got {type(value).__name__} {value!r}")

    def raise_if_any(self) -> None:
        if self.items:
            lines = "\n".join(f"  - {p}" for p in self.items)
            raise StudyError(f"{self.path}: {len(self.items)} problem(s) in the study file:\n{lines}")


def _typed(table: dict, key: str, kind, default):
    value = table.get(key, default)
    return value if isinstance(value, kind) and not isinstance(value, bool) else default


def _split(problems: _Problems, table, where: str) -> DataSplit | None:
    if not isinstance(table, dict):
        problems.add(where, "expected a table {data = ..., split = ..., limit = ...}")
        return None
    problems.check_keys(table, _SPLIT, f"{where}.")
    if "data" not in table:
        problems.add(where, "missing key 'data' (a --data spec such as synthetic:depth or nyuv2:PATH)")
        return None
    limit = table.get("limit")
    if isinstance(limit, int) and limit < 1:
        problems.add(f"{where}.limit", f"must be >= 1, got {limit}")
    return DataSplit(str(table["data"]), table.get("split"), limit if isinstance(limit, int) else None)


def _data_problems(problems: _Problems, split: DataSplit, where: str, base: Path, task: str | None) -> None:
    """Paths a data spec names must exist; its task must be the task it is used for."""
    from probes.data import DatasetError, parse_spec

    try:
        entry, paths = parse_spec(split.data)
    except DatasetError as e:
        problems.add(where, str(e))
        return
    name = split.data.split(":")[0]
    for p in paths if name != "synthetic" else []:  # synthetic:TASK[:N] names no files
        if not Path(p).exists() and not (base / p).exists():
            problems.add(where, f"{p}: no such file or directory")
    data_task = {"nyuv2": "depth", "coco-kpts": "pose", "coco-caps": "caption"}.get(name)
    if name == "synthetic" and paths:
        data_task = paths[0]
    if task and data_task and data_task != task and data_task != "mix":
        problems.add(where, f"{split.data!r} is {data_task} data, but the task is {task}")


def load_study(path: str | os.PathLike) -> Study:
    """Parse and validate a study file; raises StudyError listing every problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as e:
        raise StudyError(f"{path}: cannot read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise StudyError(f"{path}: not valid TOML ({e})") from None
    problems = _Problems(path)
    problems.check_keys(raw, _TOP, "")
    base = path.parent

    from probes.encoders import get_spec

    encoders = []
    enc_table = _typed(raw, "encoders", dict, {})
    if not enc_table:
        problems.add("encoders", "no encoders: add [encoders.NAME] tables")
    for name, table in enc_table.items():
        where = f"encoders.{name}"
        if not isinstance(table, dict):
            problems.add(where, "expected a table")
            continue
        problems.check_keys(table, _ENCODER, f"{where}.")
        weights = _typed(table, "weights", str, "default")
        resolution = _typed(table, "resolution", int, None)
        try:
            spec = get_spec(name)
        except KeyError as e:
            problems.add(where, str(e).strip('"'))
            spec = None
        if spec is not None and resolution is not None:
            try:
                spec.check_resolution(resolution)
            except ValueError as e:
                problems.add(f"{where}.resolution", str(e))
        if weights not in ("default", "random", "pretrained"):
            file = Path(weights) if Path(weights).is_absolute() else base / weights
            if not file.is_file():
                problems.add(f"{where}.weights", f"{weights}: checkpoint not found (or use default|random|pretrained)")
            else:
                weights = str(file.resolve())
        encoders.append(EncoderEntry(name, weights, resolution))

    tasks = []
    task_table = _typed(raw, "tasks", dict, {})
    if not task_table:
        problems.add("tasks", "no tasks: add [tasks.depth], [tasks.pose] or [tasks.caption]")
    for name, table in task_table.items():
        where = f"tasks.{name}"
        if name not in TASK_NAMES:
            near = difflib.get_close_matches(name, TASK_NAMES, n=1)
            problems.add(where, "unknown task" + (f"; did you mean {near[0]!r}?" if near else f" ({', '.join(TASK_NAMES)})"))
            continue
        if not isinstance(table, dict):
            problems.add(where, "expected a table")
            continue
        problems.check_keys(table, _TASK, f"{where}.")
        head = _typed(table, "head", str, f"builtin:{name}")
        _head_problems(problems, head, name, f"{where}.head", base)
        train = _split(problems, table.get("train"), f"{where}.train") if "train" in table else None
        test = _split(problems, table.get("test"), f"{where}.test") if "test" in table else None
        if train is None and "train" not in table:
            problems.add(where, "task without training data: add train = {data = ..., split = ...}")
        if test is None and "test" not in table:
            problems.add(where, "task without test data: add test = {data = ..., split = ...}")
        for split, w in ((train, "train"), (test, "test")):
            if split is not None:
                _data_problems(problems, split, f"{where}.{w}", base, name)
        kd = table.get("kd")
        kd = tuple(float(v) for v in kd) if isinstance(kd, list) and all(isinstance(v, (int, float)) for v in kd) else None
        task_modes = table.get("modes")
        if task_modes is not None and (not isinstance(task_modes, list) or not task_modes
                                       or any(m not in NECK_MODES for m in task_modes)):
            problems.add(f"{where}.modes", f"give a list of {' / '.join(NECK_MODES)}, got {task_modes!r}")
            task_modes = None
        if train and test:
            train_head = table.get("train_head", False) is True
            if train_head and not head.startswith("builtin:"):
                problems.add(f"{where}.train_head", f"only a built-in head can be trained with the neck, not {head!r}")
            tasks.append(TaskPlan(name, head, train, test, kd, train_head,
                                  tuple(task_modes) if task_modes else None))

    codec_raw = _typed(raw, "codec", dict, {})
    problems.check_keys(codec_raw, _CODEC, "codec.")
    lambdas = codec_raw.get("lambdas", [])
    if not isinstance(lambdas, list) or not lambdas or not all(isinstance(v, (int, float)) and v > 0 for v in lambdas):
        problems.add("codec.lambdas", "give a non-empty list of positive λ values")
        lambdas = []
    model = _typed(codec_raw, "model", str, "hyperprior")
    if model not in CODEC_MODELS:
        problems.add("codec.model", f"{model!r}; choose from {', '.join(CODEC_MODELS)}")
    coder = _typed(codec_raw, "coder", str, "native")
    if coder not in CODERS:
        problems.add("codec.coder", f"{coder!r}; choose from {', '.join(CODERS)}")
    codec_data = []
    for i, item in enumerate(codec_raw.get("data", []) if isinstance(codec_raw.get("data"), list) else []):
        split = _split(problems, item, f"codec.data[{i}]")
        if split is not None:
            _data_problems(problems, split, f"codec.data[{i}]", base, None)
            codec_data.append(split)
    if not codec_data:
        problems.add("codec.data", "no images to train the codecs on: data = [{data = ..., split = ..., limit = ...}]")
    codec = CodecPlan(
        model=model, coder=coder, lambdas=tuple(float(v) for v in lambdas),
        steps=_typed(codec_raw, "steps", int, 1000), batch_size=_typed(codec_raw, "batch_size", int, 8),
        lr=float(_typed(codec_raw, "lr", (int, float), 1e-4)), channels=_typed(codec_raw, "channels", int, None),
        latent_channels=_typed(codec_raw, "latent_channels", int, None),
        grid_stride=_grid_stride(problems, codec_raw, model, encoders), data=tuple(codec_data),
        variable_rate=codec_raw.get("variable_rate") is True,
    )  # fmt: skip
    if codec.variable_rate and (model != "hyperprior" or len(codec.lambdas) < 2):
        problems.add("codec.variable_rate", f"needs model = \"hyperprior\" and ≥ 2 lambdas (got {model!r}, "
                                            f"{len(codec.lambdas)} λ)")  # fmt: skip

    necks_raw = _typed(raw, "necks", dict, {})
    problems.check_keys(necks_raw, _NECKS, "necks.")
    layers = necks_raw.get("layers", [2])
    if not isinstance(layers, list) or not layers or not all(isinstance(v, int) and v > 0 for v in layers):
        problems.add("necks.layers", "give a list of positive layer counts, e.g. [2, 4, 6]")
        layers = [2]
    modes = necks_raw.get("modes", ["clean"])
    if not isinstance(modes, list) or not modes or any(m not in NECK_MODES for m in modes):
        problems.add("necks.modes", f"give a list of {' / '.join(NECK_MODES)}, got {modes!r}")
        modes = ["clean"]
    kd = necks_raw.get("kd", [0.0])
    if not isinstance(kd, list) or not all(isinstance(v, (int, float)) and v >= 0 for v in kd):
        problems.add("necks.kd", "give a list of KD weights >= 0")
        kd = [0.0]
    necks = NeckPlan(
        layers=tuple(layers), dim=_typed(necks_raw, "dim", int, 256), heads=_typed(necks_raw, "heads", int, 8),
        steps=_typed(necks_raw, "steps", int, 1000), batch_size=_typed(necks_raw, "batch_size", int, 8),
        lr=float(_typed(necks_raw, "lr", (int, float), 1e-4)), modes=tuple(modes), kd=tuple(float(v) for v in kd),
        finetune_steps=_typed(necks_raw, "finetune_steps", int, 0),
    )  # fmt: skip
    if necks.finetune_steps < 0:
        problems.add("necks.finetune_steps", f"must be >= 0, got {necks.finetune_steps}")
    if necks.dim % max(necks.heads, 1):
        problems.add("necks.dim", f"{necks.dim} is not divisible by necks.heads = {necks.heads}")

    cross = []
    task_names = {t.name for t in tasks} | set(task_table)
    for i, item in enumerate(_typed(raw, "cross_neck", list, [])):
        where = f"cross_neck[{i}]"
        if not isinstance(item, dict):
            problems.add(where, "expected a table {first = TASK, second = TASK}")
            continue
        problems.check_keys(item, _CROSS, f"{where}.")
        first, second = item.get("first"), item.get("second")
        for key, value in (("first", first), ("second", second)):
            if value not in task_names:
                problems.add(f"{where}.{key}", f"{value!r} is not a task of this study ({', '.join(sorted(task_names))})")
        if first == second:
            problems.add(where, "first and second must be different tasks")
        cross.append((str(first), str(second)))

    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        problems.add("seeds", "give a non-empty list of integers")
        seeds = [0]
    anchor = raw.get("anchor")
    if anchor is not None and anchor not in enc_table:
        problems.add("anchor", f"{anchor!r} is not an encoder of this study ({', '.join(enc_table)})")
    anchors = _anchors(problems, _typed(raw, "anchors", dict, {}))
    problems.raise_if_any()
    return Study(
        path=path.resolve(), name=_typed(raw, "name", str, path.stem), description=_typed(raw, "description", str, ""),
        encoders=tuple(encoders), tasks=tuple(tasks), codec=codec, necks=necks, cross_neck=tuple(cross),
        seeds=tuple(seeds), anchor=anchor or (encoders[0].name if encoders else None),
        device=_typed(raw, "device", str, "cpu"), eval_batch_size=_typed(raw, "eval_batch_size", int, 8),
        threads=max(0, _typed(raw, "threads", int, 0)), anchors=anchors, raw=raw,
    )  # fmt: skip


def _anchors(problems: _Problems, table: dict) -> tuple[AnchorPlan, ...]:
    """`[anchors.hevc] qps = [...]` / `[anchors.remote-jpeg] qualities = [...]`, checked against codec.standard."""
    from codec import standard

    out = []
    for kind, entry in table.items():
        where = f"anchors.{kind}"
        remote = kind.startswith(REMOTE_PREFIX)
        name = kind.removeprefix(REMOTE_PREFIX)
        formats = standard.IMAGE_FORMATS if remote else standard.VIDEO_FORMATS
        if name not in formats:
            known = [*standard.VIDEO_FORMATS, *(REMOTE_PREFIX + f for f in standard.IMAGE_FORMATS)]
            problems.add(where, f"unknown anchor; choose from {', '.join(known)}")
            continue
        if not isinstance(entry, dict):
            problems.add(where, "expected a table")
            continue
        problems.check_keys(entry, _ANCHOR, f"{where}.")
        key = "qualities" if remote else "qps"
        for other in ("qps", "qualities", "preset") if remote else ("qualities",):
            if other != key and other in entry:
                problems.add(f"{where}.{other}", f"not an option of {'remote inference' if remote else 'packed'} "
                                                 f"anchors (use {key})")  # fmt: skip
        points = entry.get(key)
        if not isinstance(points, list) or not points or not all(_is_number(v) and v >= 0 for v in points) \
                or len(set(points)) != len(points):  # fmt: skip
            problems.add(f"{where}.{key}", f"give a non-empty list of distinct numbers, got {points!r}")
            continue
        if not remote:
            low, high = formats[name].qp_range
            bad = [v for v in points if not isinstance(v, int) or not low <= v <= high]
            if bad:
                problems.add(f"{where}.qps", f"{bad}: {name} QPs are integers in [{low}, {high}]")
                continue
        out.append(AnchorPlan(kind, tuple(points), _typed(entry, "preset", str, None) if not remote else None))
    return tuple(out)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _head_problems(problems: _Problems, head: str, task: str, where: str, base: Path) -> None:
    if head.startswith("builtin:"):
        if head.split(":", 1)[1] != task:
            problems.add(where, f"{head!r} is not a {task} head (use builtin:{task})")
    elif head.startswith("hf:"):
        target = head[3:]
        looks_local = target.startswith((".", "/")) or target.count("/") > 1  # a hub id is ORG/NAME
        if looks_local and not Path(target).exists():
            problems.add(where, f"{target}: no such directory")
    else:
        file = Path(head) if Path(head).is_absolute() else base / head
        if not file.is_dir():
            problems.add(where, f"{head}: not a head directory (or use builtin:{task} / hf:ID_OR_DIR)")
