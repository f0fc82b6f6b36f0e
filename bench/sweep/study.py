"""The study file (TOML): what to compare, validated before any work starts.

Every problem is collected and reported in one `StudyError` (unknown keys with the nearest valid one,
missing files, an unknown encoder, a head that does not fit its task, a task without data), so a user
fixes a study file in one pass rather than one error per run.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path

import tomllib

from codec.errors import InputError
from codec.names import TRANSFORM_KINDS

NECK_MODES = ("clean", "decoded")
RESOURCE_KEYS = ("cpus", "gpus", "memory")  # per step kind: Ray's num_cpus, num_gpus and memory (GiB)
FINETUNE_FRACTION = 0.1  # decoded-mode necks: fine-tuned from the clean neck for this fraction of necks.steps
REMOTE_PREFIX = "remote-"  # an anchor kind acting on the image side (remote inference)


class StudyError(InputError):
    """A study file that cannot be run; the message lists every problem, each naming its key."""


# The TOML schema is read off the dataclasses below: a field's name is its key, its annotation its type
# (tuple → list, float → int or float, X | None → X), its default the key's default; `toml=False` in a
# field's metadata keeps it out of the file, `toml=T` gives the TOML type where it differs from the field's.


@dataclass(frozen=True)
class DataSplit:
    data: str
    split: str | None = None
    limit: int | None = None
    size: int | None = None  # samples, for a plan priced before the data is here (not part of step ids)

    def to_dict(self) -> dict:
        return {"data": self.data, "split": self.split, "limit": self.limit}


@dataclass(frozen=True)
class EncoderEntry:
    name: str = field(metadata={"toml": False})
    weights: str = (
        "default"  # "default" (the registry's own weights), "random", "pretrained" or a checkpoint path
    )
    resolution: int | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "weights": self.weights, "resolution": self.resolution}


@dataclass(frozen=True)
class CodecPlan:
    model: str = "hyperprior"
    coder: str = "native2"
    lambdas: tuple[float, ...] = ()
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-4
    channels: int | None = None
    latent_channels: int | None = None
    grid_stride: int | None = None  # the latent's stride in input pixels (None: the model's default, 16)
    # levels finer than the grid projected to this many channels first (a cheaper analysis; None: full)
    adapter_rank: int | None = None
    # one gain-unit network for every λ (codec.variable_rate), trained once per (encoder, seed)
    variable_rate: bool = False
    # codec training on windows of `crop` input pixels, `crops_per_image` random ones kept per image by the
    # extract step (None: whole feature maps); the extract step stores fp16 either way
    crop: int | None = None
    crops_per_image: int = 1
    data: tuple[DataSplit, ...] = ()

    def settings(self) -> dict:
        settings = {
            "model": self.model,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "channels": self.channels,
            "latent_channels": self.latent_channels,
        }
        if self.grid_stride is not None:  # only when set: the ids of studies without it stay as they were
            settings["grid_stride"] = self.grid_stride
        if self.adapter_rank is not None:  # likewise
            settings["adapter_rank"] = self.adapter_rank
        if self.variable_rate:  # likewise
            settings["variable_rate"] = True
        return settings

    def extract_settings(self) -> dict:
        """What the extract step stores: fp16 feature shards, whole maps or
        `crops_per_image` crops per image."""
        crop = {"crop": self.crop, "crops_per_image": self.crops_per_image} if self.crop is not None else {}
        return {"dtype": "float16", **crop}


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
    # neck from scratch for `steps` on them instead); unset: FINETUNE_FRACTION of `steps`
    finetune_steps: int | None = None

    def settings(self) -> dict:
        return {
            "dim": self.dim,
            "heads": self.heads,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "lr": self.lr,
        }


@dataclass(frozen=True)
class TaskPlan:
    name: str = field(metadata={"toml": False})
    head: str = ""  # default: builtin:NAME
    train: DataSplit | None = None
    test: DataSplit | None = None
    kd: tuple[float, ...] | None = None  # overrides necks.kd for this task
    train_head: bool = (
        False  # a new built-in head trained with each neck (not the study's frozen-head setting)
    )
    modes: tuple[str, ...] | None = None  # overrides necks.modes for this task


@dataclass(frozen=True)
class CrossNeck:
    first: str
    second: str


@dataclass(frozen=True)
class Study:
    path: Path = field(metadata={"toml": False})
    name: str = ""
    description: str = ""
    encoders: tuple[EncoderEntry, ...] = field(default=(), metadata={"toml": dict})
    tasks: tuple[TaskPlan, ...] = field(default=(), metadata={"toml": dict})
    codec: CodecPlan = CodecPlan()
    necks: NeckPlan = NeckPlan()
    cross_neck: tuple[tuple[str, str], ...] = field(default=(), metadata={"toml": list})
    seeds: tuple[int, ...] = (0,)
    anchor: str | None = None
    device: str = "cpu"
    eval_batch_size: int = 8
    # streams steps also keep the decoded features (float32, exactly as decoded), so that every neck and eval
    # through them reads instead of decoding again: for small studies (the embedded one); the full study's
    # decoded splits would take ~0.7 TB, so it keeps only the streams and decodes them on read
    keep_decoded: bool = False
    threads: int = 0  # torch threads per step (0: torch's default); not part of step ids
    # codec, neck and extract steps save their state this often (and on kill -9 lose at most that much work):
    # every `checkpoint_minutes` and, when > 0, every `checkpoint_steps` training steps; not part of step ids
    checkpoint_minutes: float = 10.0
    checkpoint_steps: int = 0
    # what a step of each kind asks of a Ray cluster: {kind: {"cpus", "gpus", "memory" (GiB)}}; not in step
    # ids
    resources: dict = field(default_factory=dict, metadata={"toml": dict})
    # the standard's anchors, scored through every clean neck
    anchors: tuple[AnchorPlan, ...] = field(default=(), metadata={"toml": dict})
    raw: dict = field(default_factory=dict, compare=False, metadata={"toml": False})


def _toml_types(annotation) -> tuple[type, ...]:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        return _toml_types(args[0])
    if origin is tuple:
        return (list,)
    if annotation is float:
        return (int, float)
    if is_dataclass(annotation):
        return (dict,)
    return (annotation,)


def schema(cls) -> dict[str, tuple[type, ...]]:
    """{TOML key: accepted types} of a study dataclass."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in fields(cls):
        toml = f.metadata.get("toml", True)
        if toml is not False:
            out[f.name] = (toml,) if isinstance(toml, type) else _toml_types(hints[f.name])
    return out


def defaults(cls) -> dict:
    return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


def _named_tables(problems: _Problems, key: str, tables: dict, how: str, known=None):
    """(name, table, where) of each [KEY.NAME] table of the study file; none at all, a name not `known` (a
    registry) and a value that is not a table are problems."""
    if not tables:
        problems.add(key, f"no {key}: {how}")
    for name, table in tables.items():
        where = f"{key}.{name}"
        if known is not None and name not in known:
            problems.add(where, known.unknown(name))
        elif not isinstance(table, dict):
            problems.add(where, "expected a table")
        else:
            yield name, table, where


def _read(problems: _Problems, cls, table: dict, where: str) -> dict:
    """The table's values of `cls`'s plain fields (well typed; lists as tuples), its defaults for the rest;
    unknown keys and wrong types are reported."""
    keys = schema(cls)
    problems.check_keys(table, keys, where)
    out = defaults(cls)
    for key, kinds in keys.items():
        value = table.get(key)
        if key in table and _is(value, kinds) and not (kinds == (dict,) or is_dataclass(out.get(key))):
            if isinstance(value, list):
                value = tuple(value)
            elif float in kinds:
                value = float(value)
            out[key] = value
    return out


def _is(value, kinds: tuple[type, ...]) -> bool:
    return isinstance(value, kinds) and (not isinstance(value, bool) or bool in kinds)


def _crop(
    problems: _Problems,
    crop: int | None,
    per_image: int,
    grid_stride: int | None,
    encoders: list[EncoderEntry],
) -> None:
    """`codec.crop`: whole cells of every encoder's coarsest level and of the codec's latent grid."""
    if not _is(per_image, (int,)) or per_image < 1:
        problems.add("codec.crops_per_image", f"must be a positive integer, got {per_image!r}")
    if crop is None:
        return
    from probes.encoders import get_spec

    if not _is(crop, (int,)) or crop <= 0 or crop % (grid_stride or 16):
        problems.add(
            "codec.crop", f"{crop!r}: must be a positive multiple of the latent stride {grid_stride or 16}"
        )
        return
    for entry in encoders:
        try:
            spec = get_spec(entry.name)
        except KeyError:
            continue  # named as an unknown encoder already
        resolution = entry.resolution or spec.default_resolution
        coarsest = max(level.stride for level in spec.levels)
        if crop % coarsest or crop > resolution:
            problems.add(
                "codec.crop",
                f"{crop}: {entry.name}: must be a multiple of its coarsest stride {coarsest} "
                f"and at most its resolution {resolution}",
            )


def _grid_stride(
    problems: _Problems, stride: int | None, model: str, encoders: list[EncoderEntry]
) -> int | None:
    """`codec.grid_stride`, checked against every encoder's levels and resolution before any work: each level
    must rearrange losslessly onto the grid (codec.levels.grid_channels, as the codec's transforms do)."""
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
        except InputError:
            continue  # already reported under encoders
        for level in spec.levels:
            try:
                grid_channels(level, stride)
            except ValueError as e:
                problems.add("codec.grid_stride", f"{stride}: {entry.name}: {e}")
        resolution = entry.resolution or spec.default_resolution
        if resolution % stride:
            problems.add(
                "codec.grid_stride", f"{stride} does not divide {entry.name}'s resolution {resolution}"
            )
    return stride


# `[anchors.KIND]`: the points are `qps` (packed) or `qualities` (remote), the AnchorPlan's `points`
_ANCHOR = {"qps": (list,), "qualities": (list,), "preset": (str,)}


class _Problems:
    def __init__(self, path: Path, require_data: bool = True):
        self.path = path
        self.items: list[str] = []
        self.missing: list[str] = []  # files not here: problems only when the data is required
        self.require_data = require_data

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def add_missing(self, where: str, message: str) -> None:
        (self.items if self.require_data else self.missing).append(f"{where}: {message}")

    def check_keys(self, table: dict, schema: dict, where: str) -> None:
        for key, value in table.items():
            if key not in schema:
                near = difflib.get_close_matches(key, list(schema), n=1)
                self.add(
                    f"{where}{key}",
                    "unknown key"
                    + (f"; did you mean {near[0]!r}?" if near else f" (known: {', '.join(schema)})"),
                )
                continue
            if not _is(value, schema[key]):
                names = " or ".join(k.__name__ for k in schema[key])
                self.add(f"{where}{key}", f"expected {names}, got {type(value).__name__} {value!r}")

    def raise_if_any(self) -> None:
        if self.items:
            lines = "\n".join(f"  - {p}" for p in self.items)
            raise StudyError(f"{self.path}: {len(self.items)} problem(s) in the study file:\n{lines}")


def _absolute(path: str, base: Path) -> Path:
    """A path of the study file: relative to the file's folder (never to the process's working directory)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _split(problems: _Problems, table, where: str, base: Path) -> DataSplit | None:
    if not isinstance(table, dict):
        problems.add(where, "expected a table {data = ..., split = ..., limit = ...}")
        return None
    values = _read(problems, DataSplit, table, f"{where}.")
    if "data" not in table:
        problems.add(where, "missing key 'data' (a --data spec such as synthetic:depth or nyuv2:PATH)")
        return None
    for key in ("limit", "size"):
        if isinstance(values[key], int) and values[key] < 1:
            problems.add(f"{where}.{key}", f"must be >= 1, got {values[key]}")
    values["data"] = _absolute_spec(problems, str(table["data"]), where, base)
    return DataSplit(**values)


def _absolute_spec(problems: _Problems, spec: str, where: str, base: Path) -> str:
    """The data spec with every path it names made absolute (relative ones: to the study file's folder)."""
    from probes.data import DatasetError, parse_spec

    try:
        entry, paths = parse_spec(spec)
    except DatasetError:
        return spec  # reported by _data_problems
    if not entry.files:  # synthetic:TASK[:N] names no files
        return spec
    return ":".join([entry.name, *(str(_absolute(p, base)) for p in paths)])


def _data_problems(problems: _Problems, split: DataSplit, where: str, task: str | None) -> None:
    """Paths a data spec names must exist; its task must be the task it is used for."""
    from probes.data import DatasetError, parse_spec

    try:
        entry, paths = parse_spec(split.data)
    except DatasetError as e:
        problems.add(where, str(e))
        return
    for p in paths if entry.files else []:
        if not Path(p).exists():
            problems.add_missing(where, f"{p}: no such file or directory")
    data_task = entry.task_of(paths)
    if task and data_task and data_task != task and data_task != "mix":
        problems.add(where, f"{split.data!r} is {data_task} data, but the task is {task}")


def _float_list(problems: _Problems, value, where: str, ok, message: str, default: tuple) -> tuple:
    if isinstance(value, (list, tuple)) and value and all(_is(v, (int, float)) and ok(v) for v in value):
        return tuple(float(v) for v in value)
    problems.add(where, message)
    return default


def _resources(problems: _Problems, table: dict) -> dict:
    from .graph import KINDS

    out = {}
    for kind, request in table.items():
        where = f"resources.{kind}"
        if kind not in KINDS:
            problems.add(where, f"unknown step kind (known: {', '.join(KINDS)})")
            continue
        if not isinstance(request, dict):
            problems.add(where, "expected a table {cpus = N, gpus = N, memory = GIB}")
            continue
        problems.check_keys(request, dict.fromkeys(RESOURCE_KEYS, (int, float)), f"{where}.")
        out[kind] = {
            k: v for k, v in request.items() if k in RESOURCE_KEYS and _is(v, (int, float)) and v >= 0
        }
        for k, v in request.items():
            if _is(v, (int, float)) and v < 0:
                problems.add(f"{where}.{k}", f"must be >= 0, got {v}")
    return out


def load_study(path: str | os.PathLike, *, require_data: bool = True) -> Study:
    """Parse and validate a study file; raises StudyError listing every problem.

    Every path it names (data, checkpoints, heads) comes back absolute, resolved against the study file's
    folder, so a step runs the same from any working directory and on any node. With `require_data=False`
    (a plan priced before the downloads: --plan --estimate), files that are not there yet are no problem.
    """
    path = Path(path).resolve()
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as e:
        raise StudyError(f"{path}: cannot read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise StudyError(f"{path}: not valid TOML ({e})") from None
    problems = _Problems(path, require_data)
    top = _read(problems, Study, raw, "")
    base = path.parent

    from codec.entropy import CODERS
    from codec.models import CODECS
    from probes.encoders import get_spec
    from probes.tasks import TASKS

    encoders = []
    enc_table = raw.get("encoders") if isinstance(raw.get("encoders"), dict) else {}
    for name, table, where in _named_tables(problems, "encoders", enc_table, "add [encoders.NAME] tables"):
        entry = EncoderEntry(name, **_read(problems, EncoderEntry, table, f"{where}."))
        try:
            spec = get_spec(name)
        except InputError as e:
            problems.add(where, str(e))
            spec = None
        if spec is not None and entry.resolution is not None:
            try:
                spec.check_resolution(entry.resolution)
            except ValueError as e:
                problems.add(f"{where}.resolution", str(e))
        if entry.weights not in ("default", "random", "pretrained"):
            file = _absolute(entry.weights, base)
            if not file.is_file():
                problems.add_missing(
                    f"{where}.weights",
                    f"{entry.weights}: checkpoint not found (or use default|random|pretrained)",
                )
            entry = replace(entry, weights=str(file))
        encoders.append(entry)

    tasks = []
    task_table = raw.get("tasks") if isinstance(raw.get("tasks"), dict) else {}
    how = "add [tasks.depth], [tasks.pose] or [tasks.caption]"
    for name, table, where in _named_tables(problems, "tasks", task_table, how, known=TASKS):
        values = _read(problems, TaskPlan, table, f"{where}.")
        head = _head(problems, values["head"] or f"builtin:{name}", name, f"{where}.head", base)
        train = _split(problems, table["train"], f"{where}.train", base) if "train" in table else None
        test = _split(problems, table["test"], f"{where}.test", base) if "test" in table else None
        if "train" not in table:
            problems.add(where, "task without training data: add train = {data = ..., split = ...}")
        if "test" not in table:
            problems.add(where, "task without test data: add test = {data = ..., split = ...}")
        for split, w in ((train, "train"), (test, "test")):
            if split is not None:
                _data_problems(problems, split, f"{where}.{w}", name)
        kd = values["kd"]
        if kd is not None:
            kd = _float_list(
                problems, kd, f"{where}.kd", lambda v: v >= 0, "give a list of KD weights >= 0", None
            )
        task_modes = values["modes"]
        if task_modes is not None and (not task_modes or any(m not in NECK_MODES for m in task_modes)):
            problems.add(
                f"{where}.modes", f"give a list of {' / '.join(NECK_MODES)}, got {list(task_modes)!r}"
            )
            task_modes = None
        if train and test:
            if values["train_head"] and not head.startswith("builtin:"):
                problems.add(
                    f"{where}.train_head", f"only a built-in head can be trained with the neck, not {head!r}"
                )
            tasks.append(TaskPlan(name, head, train, test, kd, values["train_head"], task_modes))

    codec_raw = raw.get("codec") if isinstance(raw.get("codec"), dict) else {}
    values = _read(problems, CodecPlan, codec_raw, "codec.")
    values["lambdas"] = _float_list(
        problems,
        codec_raw.get("lambdas"),
        "codec.lambdas",
        lambda v: v > 0,
        "give a non-empty list of positive λ values",
        (),
    )
    if values["model"] not in CODECS:
        problems.add("codec.model", CODECS.unknown(values["model"]))
    if values["coder"] not in CODERS:
        problems.add("codec.coder", CODERS.unknown(values["coder"]))
    codec_data = []
    for i, item in enumerate(codec_raw.get("data", []) if isinstance(codec_raw.get("data"), list) else []):
        split = _split(problems, item, f"codec.data[{i}]", base)
        if split is not None:
            _data_problems(problems, split, f"codec.data[{i}]", None)
            codec_data.append(split)
    if not codec_data:
        problems.add(
            "codec.data", "no images to train the codecs on: data = [{data = ..., split = ..., limit = ...}]"
        )
    values["data"] = tuple(codec_data)
    values["grid_stride"] = _grid_stride(problems, values["grid_stride"], values["model"], encoders)
    rank = values["adapter_rank"]  # an int or None here: _read reported a wrong type and kept the default
    if rank is not None and (rank < 1 or values["model"] not in TRANSFORM_KINDS):
        problems.add(
            "codec.adapter_rank",
            f"{rank!r}: a positive integer, for a {' or '.join(TRANSFORM_KINDS)} codec "
            f"(model = {values['model']!r})",
        )
        values["adapter_rank"] = None
    _crop(problems, values["crop"], values["crops_per_image"], values["grid_stride"], encoders)
    codec = CodecPlan(**values)
    if codec.variable_rate and (codec.model != "hyperprior" or len(codec.lambdas) < 2):
        problems.add(
            "codec.variable_rate",
            f'needs model = "hyperprior" and ≥ 2 lambdas (got {codec.model!r}, {len(codec.lambdas)} λ)',
        )

    necks_raw = raw.get("necks") if isinstance(raw.get("necks"), dict) else {}
    values = _read(problems, NeckPlan, necks_raw, "necks.")
    if not values["layers"] or not all(_is(v, (int,)) and v > 0 for v in values["layers"]):
        problems.add("necks.layers", "give a list of positive layer counts, e.g. [2, 4, 6]")
        values["layers"] = NeckPlan.layers
    if not values["modes"] or any(m not in NECK_MODES for m in values["modes"]):
        problems.add("necks.modes", f"give a list of {' / '.join(NECK_MODES)}, got {list(values['modes'])!r}")
        values["modes"] = NeckPlan.modes
    values["kd"] = _float_list(
        problems, values["kd"], "necks.kd", lambda v: v >= 0, "give a list of KD weights >= 0", NeckPlan.kd
    )
    if values["finetune_steps"] is None:
        values["finetune_steps"] = max(1, round(FINETUNE_FRACTION * values["steps"]))
    necks = NeckPlan(**values)
    if necks.finetune_steps < 0:
        problems.add("necks.finetune_steps", f"must be >= 0, got {necks.finetune_steps}")
    if necks.dim % max(necks.heads, 1):
        problems.add("necks.dim", f"{necks.dim} is not divisible by necks.heads = {necks.heads}")

    cross = []
    task_names = {t.name for t in tasks} | set(task_table)
    for i, item in enumerate(top["cross_neck"] if isinstance(raw.get("cross_neck"), list) else []):
        where = f"cross_neck[{i}]"
        if not isinstance(item, dict):
            problems.add(where, "expected a table {first = TASK, second = TASK}")
            continue
        problems.check_keys(item, schema(CrossNeck), f"{where}.")
        first, second = item.get("first"), item.get("second")
        for key, value in (("first", first), ("second", second)):
            if value not in task_names:
                problems.add(
                    f"{where}.{key}",
                    f"{value!r} is not a task of this study ({', '.join(sorted(task_names))})",
                )
        if first == second:
            problems.add(where, "first and second must be different tasks")
        cross.append((str(first), str(second)))

    seeds = top["seeds"]
    if not seeds or not all(_is(s, (int,)) for s in seeds):
        problems.add("seeds", "give a non-empty list of integers")
        seeds = Study.seeds
    anchor = top["anchor"]
    if anchor is not None and anchor not in enc_table:
        problems.add("anchor", f"{anchor!r} is not an encoder of this study ({', '.join(enc_table)})")
    resources = _resources(problems, raw["resources"]) if isinstance(raw.get("resources"), dict) else {}
    for key in ("checkpoint_minutes", "checkpoint_steps"):
        if top[key] < 0:
            problems.add(key, f"must be >= 0, got {top[key]}")
    anchors = _anchors(problems, raw["anchors"]) if isinstance(raw.get("anchors"), dict) else ()
    problems.raise_if_any()
    return Study(
        path=path,
        name=top["name"] or path.stem,
        description=top["description"],
        encoders=tuple(encoders),
        tasks=tuple(tasks),
        codec=codec,
        necks=necks,
        cross_neck=tuple(cross),
        seeds=tuple(seeds),
        anchor=anchor or (encoders[0].name if encoders else None),
        device=top["device"],
        eval_batch_size=top["eval_batch_size"],
        threads=max(0, top["threads"]),
        resources=resources,
        raw=raw,
        keep_decoded=top["keep_decoded"],
        checkpoint_minutes=top["checkpoint_minutes"],
        checkpoint_steps=top["checkpoint_steps"],
        anchors=anchors,
    )


def _anchors(problems: _Problems, table: dict) -> tuple[AnchorPlan, ...]:
    """`[anchors.hevc] qps = [...]` / `[anchors.remote-jpeg] qualities = [...]`,
    checked against codec.standard."""
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
                problems.add(
                    f"{where}.{other}",
                    f"not an option of {'remote inference' if remote else 'packed'} anchors (use {key})",
                )
        points = entry.get(key)
        if (
            not isinstance(points, list)
            or not points
            or not all(_is_number(v) and v >= 0 for v in points)
            or len(set(points)) != len(points)
        ):
            problems.add(f"{where}.{key}", f"give a non-empty list of distinct numbers, got {points!r}")
            continue
        if not remote:
            low, high = formats[name].qp_range
            bad = [v for v in points if not isinstance(v, int) or not low <= v <= high]
            if bad:
                problems.add(f"{where}.qps", f"{bad}: {name} QPs are integers in [{low}, {high}]")
                continue
        out.append(
            AnchorPlan(
                kind,
                tuple(points),
                entry.get("preset") if not remote and isinstance(entry.get("preset"), str) else None,
            )
        )
    return tuple(out)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _head(problems: _Problems, head: str, task: str, where: str, base: Path) -> str:
    """The head spec, a local directory in it made absolute; a missing one is reported."""
    if head.startswith("builtin:"):
        if head.split(":", 1)[1] != task:
            problems.add(where, f"{head!r} is not a {task} head (use builtin:{task})")
        return head
    if head.startswith("hf:"):
        target = head[3:]
        if target.startswith((".", "/", "~")) or target.count("/") > 1:  # a hub id is ORG/NAME
            local = _absolute(target, base)
            if not local.exists():
                problems.add_missing(where, f"{target}: no such directory")
            return f"hf:{local}"
        return head
    local = _absolute(head, base)
    if not local.is_dir():
        problems.add_missing(where, f"{head}: not a head directory (or use builtin:{task} / hf:ID_OR_DIR)")
    return str(local)
