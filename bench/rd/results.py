"""Results files → rate–accuracy points → curves per (task, dataset, encoder, neck).

Reads what the pipeline writes:

- `featcodec eval -o R.json` / `--json` (probes/evaluate.py, format "featcodec-eval"): one
  evaluation of a neck + frozen head; through a codec (`codec` set, `bpp` = real stream bits
  per input pixel) or clean (`codec` and `bpp` null). A `.jsonl` file holds one per line.
- `evaluate_zero_rate` records (format "featcodec-zero-rate"): the accuracy of the best
  feature-free prediction on a dataset, the rate-0 point of every curve on it.

A clean evaluation gives a curve its clean accuracy only if its neck never saw a codec
(`neck.trained_codec` null); a codec-trained neck scored on clean features is no baseline.

Points through one of the standard's anchors (packed features `packed-vvc|hevc|av1`, remote inference
`remote-vvc|jxl|jpeg`: the eval's `codec.anchor`) form curves of their own codec family, never mixed into the
learned codec's curves of the same probe.
"""

from __future__ import annotations

import json
import math
import os
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.names import REPORT_FORMAT, SWEEP_RECORD
from codec.errors import InputError
from codec.names import COMPLEXITY_FIELDS
from probes.names import EVAL_FORMAT, ZERO_RATE_FORMAT

LEARNED = "learned"  # the codec family of every point not through a standard anchor

# How the neck of a point relates to the codec it is scored through.
NECK_CLEAN = "clean-trained"  # trained on clean features
NECK_MATCHED = "codec-trained"  # trained through the same codec it is evaluated with
NECK_OTHER = "other-codec-trained"  # trained through a different codec


class ResultsError(InputError):
    """A results file that cannot be read; the message names the file and the field."""


@dataclass(frozen=True)
class RatePoint:
    """One evaluation: an operating point (codec set, rates known) or a clean evaluation (codec None)."""

    source: str  # file (and line or point index) it was read from
    task: str
    data: str  # dataset label: spec, split, limit
    encoder: str
    weights_id: str
    resolution: int | None
    neck: str  # neck architecture label ("—" when there is none: the demo)
    neck_training: str  # NECK_CLEAN | NECK_MATCHED | NECK_OTHER
    head: str
    metrics: dict[str, float]
    codec: str | None = None  # codec label (kind, λ, id); None: clean features
    lmbda: float | None = None
    rates: dict[str, float] = field(default_factory=dict)  # RATE_FIELDS present, for codec points
    per_image: dict | None = (
        None  # the eval's `per_image` (checked): scores keyed by image id, for the bootstrap
    )
    stream_bytes: dict[str, float] | None = None  # bytes per image: header / hyper (z) / main (y)
    neck_base: str = ""  # the neck without its KD weight and cross-neck first task
    kd: float | None = None  # KD weight the neck was trained with (None or 0: no distillation)
    after: str | None = None  # cross-neck: the task of the frozen first neck it sits on
    zero_rate: bool = False  # a zero-rate record (no features, 0 bits), not a point of any curve
    predictor: str | None = None  # zero-rate: what was predicted
    seed: int | None = (
        None  # the training seed of the neck (and, in a sweep, of the codec): one curve per seed
    )
    codec_family: str = LEARNED  # LEARNED, or a standard anchor: packed-hevc, remote-jpeg, …
    complexity: dict[str, float] | None = None  # COMPLEXITY_FIELDS of the coding (codec.complexity)

    @property
    def clean(self) -> bool:
        return self.codec is None and not self.zero_rate


# --- field access with messages that name the file and the field -----------------------------------


def _get(obj: dict, path: str, source: str, kind=None, optional: bool = False):
    value = obj
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            if optional:
                return None
            raise ResultsError(f"{source}: missing field {path!r}")
        value = value[key]
    if value is None and optional:
        return None
    if kind is not None and not _is(value, kind):
        raise ResultsError(f"{source}: field {path!r} is {value!r}, expected {_kind_name(kind)}")
    return value


def _is(value, kind) -> bool:
    if kind is float:  # JSON numbers; bool is an int in Python but not a number here
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def _kind_name(kind) -> str:
    return {float: "a number", str: "a string", dict: "an object", list: "a list", int: "an integer"}.get(
        kind, str(kind)
    )


def _metrics(obj: dict, path: str, source: str) -> dict[str, float]:
    metrics = _get(obj, path, source, dict)
    out = {}
    for name, value in metrics.items():
        if value is None:
            continue
        if not _is(value, float):
            raise ResultsError(f"{source}: field '{path}.{name}' is {value!r}, expected a number")
        out[name] = float(value)
    return out


def _positive_rate(obj: dict, path: str, source: str, optional: bool = False) -> float | None:
    value = _get(obj, path, source, float, optional=optional)
    if value is None:
        return None
    if not (math.isfinite(value) and value > 0):
        raise ResultsError(f"{source}: field {path!r} is {value!r}, expected a positive number of bits")
    return float(value)


def _per_image(obj: dict, source: str) -> dict | None:
    """The `per_image` record (probes.tasks.base.per_image_scores), checked so
    that the bootstrap can trust it."""
    per = _get(obj, "per_image", source, dict, optional=True)
    if per is None:
        return None
    ids = _get(per, "ids", f"{source}: per_image", list)
    if len(set(map(str, ids))) != len(ids):
        raise ResultsError(f"{source}: field 'per_image.ids' repeats an image id")
    n = len(ids)
    weights = _get(per, "weights", f"{source}: per_image", list, optional=True)
    scores = _get(per, "scores", f"{source}: per_image", dict)
    for name, values in [("weights", weights), *[(f"scores.{k}", v) for k, v in scores.items()]]:
        if values is None:
            continue
        if not isinstance(values, list) or len(values) != n or not all(_is(v, float) for v in values):
            raise ResultsError(f"{source}: field 'per_image.{name}' must be {n} numbers (one per id)")
    if weights is not None and not all(w > 0 for w in weights):
        raise ResultsError(f"{source}: field 'per_image.weights' must be positive")
    proxies = per.get("proxies") or {}
    return {
        "ids": [str(i) for i in ids],
        "weights": weights,
        "scores": scores,
        "proxies": proxies if isinstance(proxies, dict) else {},
    }


def _stream_bytes(codec: dict | None, source: str) -> dict[str, float] | None:
    per = None if codec is None else codec.get("stream_bytes_per_image")
    if per is None:
        return None
    if not isinstance(per, dict) or not all(_is(per.get(k), float) for k in ("header", "hyper", "main")):
        raise ResultsError(
            f"{source}: field 'codec.stream_bytes_per_image' must hold header, hyper and main bytes"
        )
    return {k: float(per[k]) for k in ("header", "hyper", "main")}


# --- labels ----------------------------------------------------------------------------------------


def data_label(data: dict) -> str:
    label = str(data.get("spec"))
    extra = [f"{k}={data[k]}" for k in ("split", "limit") if data.get(k) is not None]
    return f"{label} ({', '.join(extra)})" if extra else label


def neck_base_label(neck: dict) -> str:
    """`neck-2L d256`: the architecture alone, without KD weight and cross-neck first task."""
    name = neck.get("name") or (f"neck-{neck['layers']}L" if "layers" in neck else "neck")
    parts = [str(name)]
    if neck.get("dim"):
        parts.append(f"d{neck['dim']}")
    return " ".join(parts)


def neck_label(neck: dict) -> str:
    """`neck-2L d256 kd=0.5 after depth`: what makes two necks comparable across encoders.

    The encoder levels a neck reads are not part of it: they are named per encoder (stage1..4 for
    Hiera, fpn0..2 for SAM2), and comparing encoders through the same neck is the point.
    """
    parts = [neck_base_label(neck)]
    if neck.get("kd"):
        parts.append(f"kd={neck['kd']:g}")
    if isinstance(neck.get("after"), dict) and neck["after"].get("task"):
        parts.append(f"after {neck['after']['task']}")
    return " ".join(parts)


def codec_family(codec: dict | None) -> str:
    """LEARNED, or the standard anchor a point was coded with: the codec record's `anchor` (packed-KIND,
    remote-FORMAT); a packed kind without it (results written before the field) is packed-KIND too."""
    if not codec:
        return LEARNED
    if codec.get("anchor"):
        return str(codec["anchor"])
    from codec.standard import VIDEO_FORMATS  # here: `featcodec report --help` stays free of numpy

    kind = str(codec.get("kind") or "")
    return f"packed-{kind}" if kind in VIDEO_FORMATS else kind if kind.startswith("remote-") else LEARNED


def _complexity(result: dict, source: str) -> dict[str, float] | None:
    record = _get(result, "complexity", source, dict, optional=True)
    if record is None:
        return None
    return {k: float(record[k]) for k in COMPLEXITY_FIELDS if _is(record.get(k), float)}


def codec_label(codec: dict) -> str:
    parts = [str(codec.get("kind") or "codec")]
    if codec.get("lambda") is not None:
        parts.append(f"λ={codec['lambda']:g}")
    for key, name in (("qp", "qp"), ("quality", "q")):  # a standard anchor's rate point
        if _is(codec.get(key), float):
            parts.append(f"{name}={codec[key]:g}")
    ident = codec.get("codec_id") or (codec.get("sha256") or "")[:12]
    if ident:
        parts.append(str(ident))
    return " ".join(parts)


def _same_codec(a: dict | None, b: dict | None) -> bool:
    if not a or not b:
        return False
    if a.get("sha256") and b.get("sha256"):
        return a["sha256"] == b["sha256"]
    return bool(a.get("dir")) and a.get("dir") == b.get("dir")


# --- readers ---------------------------------------------------------------------------------------


def eval_point(result: dict, source: str) -> RatePoint:
    """A point from one `featcodec eval` result (probes/evaluate.py's dict)."""
    if result.get("format") != EVAL_FORMAT:
        raise ResultsError(f"{source}: field 'format' is {result.get('format')!r}, expected {EVAL_FORMAT!r}")
    task = _get(result, "task", source, str)
    metrics = _metrics(result, "metrics", source)
    neck = _get(result, "neck", source, dict)
    head = _get(result, "head", source, dict)
    codec = _get(result, "codec", source, dict, optional=True)
    trained_codec = _get(result, "neck.trained_codec", source, dict, optional=True)
    bpp = _positive_rate(result, "bpp", source, optional=True)
    if codec is not None and bpp is None:
        raise ResultsError(
            f"{source}: field 'bpp' is missing or null, but the evaluation ran through a codec"
        )
    if codec is None and bpp is not None:
        raise ResultsError(
            f"{source}: field 'bpp' is {bpp!r}, but field 'codec' is null (a clean evaluation)"
        )
    rates: dict[str, float] = {}
    if codec is not None:
        rates["bpp"] = bpp
        payload = _positive_rate(result, "codec.payload_bpp", source, optional=True)
        if payload is not None:
            rates["payload_bpp"] = payload
    if trained_codec is None:
        training = NECK_CLEAN
    else:
        training = NECK_MATCHED if _same_codec(trained_codec, codec) else NECK_OTHER
    resolution = _get(result, "encoder.resolution", source, int, optional=True)
    return RatePoint(
        source=source,
        task=task,
        data=data_label(_get(result, "data", source, dict)),
        encoder=_get(result, "encoder.name", source, str),
        weights_id=_get(result, "encoder.weights_id", source, str),
        resolution=resolution,
        neck=neck_label(neck),
        neck_training=training,
        head=str(head.get("spec") or head.get("class") or "head"),
        metrics=metrics,
        codec=None if codec is None else codec_label(codec),
        lmbda=None if codec is None else _get(result, "codec.lambda", source, float, optional=True),
        rates=rates,
        per_image=_per_image(result, source),
        stream_bytes=_stream_bytes(codec, source),
        neck_base=neck_base_label(neck),
        kd=float(neck["kd"]) if _is(neck.get("kd"), float) else None,
        after=str(neck["after"]["task"])
        if isinstance(neck.get("after"), dict) and neck["after"].get("task")
        else None,
        seed=_seed(result, source),
        codec_family=codec_family(codec),
        complexity=_complexity(result, source) if codec is not None else None,
    )


def _seed(result: dict, source: str) -> int | None:
    """A sweep row's seed (codec and neck), else the neck's own training
    seed, else None (one unnamed seed)."""
    for path in (f"{SWEEP_RECORD}.seed", "neck.seed"):
        value = _get(result, path, source, optional=True)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool):
                raise ResultsError(f"{source}: field {path!r} is {value!r}, expected an integer")
            return value
    return None


def zero_rate_point(result: dict, source: str) -> RatePoint:
    """The zero-rate record of a (task, dataset): probes.evaluate.evaluate_zero_rate's dict."""
    return RatePoint(
        source=source,
        task=_get(result, "task", source, str),
        data=data_label(_get(result, "data", source, dict)),
        encoder="—",
        weights_id="—",
        resolution=None,
        neck="—",
        neck_training=NECK_CLEAN,
        head=str(result.get("task_config") or "—"),
        metrics=_metrics(result, "metrics", source),
        per_image=_per_image(result, source),
        zero_rate=True,
        predictor=str(result.get("predictor") or "feature-free prediction"),
    )


def _points_of(obj, source: str) -> list[RatePoint]:
    if isinstance(obj, list):
        return [p for i, item in enumerate(obj) for p in _points_of(item, f"{source}[{i}]")]
    if not isinstance(obj, dict):
        raise ResultsError(f"{source}: expected a JSON object, got {type(obj).__name__}")
    if obj.get("format") == EVAL_FORMAT:
        return [eval_point(obj, source)]
    if obj.get("format") == ZERO_RATE_FORMAT:
        return [zero_rate_point(obj, source)]
    if obj.get("format") == REPORT_FORMAT:
        raise ResultsError(f"{source}: is a featcodec report (the output of `featcodec report`), not results")
    if "format" in obj:
        raise ResultsError(
            f"{source}: field 'format' is {obj['format']!r}, expected {EVAL_FORMAT!r} (a `featcodec eval` "
            "result)"
        )
    raise ResultsError(
        f"{source}: not a `featcodec eval` result (field 'format' = {EVAL_FORMAT!r}); fields: "
        f"{sorted(obj)[:8]}"
    )


def load_results(paths: Iterable[str | os.PathLike]) -> list[RatePoint]:
    """Every point in the given files (eval JSON, eval JSON lines), in file order."""
    points: list[RatePoint] = []
    for path in paths:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ResultsError(f"{path}: cannot read ({e})") from e
        if path.suffix == ".jsonl":
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    points.extend(_points_of(_parse(line, f"{path}:{n}"), f"{path}:{n}"))
        else:
            points.extend(_points_of(_parse(text, str(path)), str(path)))
    return points


def _parse(text: str, source: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ResultsError(f"{source}: not valid JSON ({e})") from e


# --- curves ----------------------------------------------------------------------------------------


@dataclass
class Curve:
    """The points of one encoder (weights, resolution) + neck + head on one task and dataset."""

    task: str
    data: str
    encoder: str
    weights_id: str
    resolution: int | None
    neck: str
    neck_training: str
    head: str
    label: str = ""  # encoder label, unique within the inputs (set by `group_curves`)
    points: list[RatePoint] = field(default_factory=list)  # through a codec
    clean: list[RatePoint] = field(default_factory=list)  # clean baselines (clean-trained neck, no codec)
    neck_base: str = ""  # the neck's architecture (its label without KD weight and first task)
    kd: float | None = None
    after: str | None = None  # cross-neck: the first neck's task
    seed: int | None = None  # one curve per training seed; never merged across seeds
    codec_family: str = (
        LEARNED  # the learned codec's curve, or a standard anchor's (packed-hevc, remote-jpeg)
    )

    @property
    def probe(self) -> tuple:
        """What a curve measures, whatever its seed: encoder, neck, neck training, head, codec family."""
        return (
            self.encoder,
            self.weights_id,
            self.resolution,
            self.neck,
            self.neck_training,
            self.head,
            self.codec_family,
        )

    @property
    def key(self) -> tuple:
        return (*self.probe, self.seed)

    @property
    def comparable(self) -> tuple:
        """Curves of different encoders with the same neck, neck training and head compare by BD."""
        return (self.neck, self.neck_training, self.head)


def encoder_labels(points: Sequence[RatePoint]) -> dict[tuple, str]:
    """(name, weights_id, resolution) → a label: the name, with
    weights/resolution where a name has several."""
    variants: dict[str, list[tuple]] = OrderedDict()
    for p in points:
        ident = (p.encoder, p.weights_id, p.resolution)
        if ident not in variants.setdefault(p.encoder, []):
            variants[p.encoder].append(ident)
    labels = {}
    for name, idents in variants.items():
        weights = {w for _, w, _ in idents}
        resolutions = {r for _, _, r in idents}
        for _, w, r in idents:
            label = name
            if len(weights) > 1:
                label += f" [{w[:12] if len(w) == 64 else w}]"
            if len(resolutions) > 1:
                label += f" @{r}px"
            labels[(name, w, r)] = label
    return labels


def group_curves(points: Sequence[RatePoint]) -> tuple[dict[tuple[str, str], list[Curve]], list[str]]:
    """Curves by (task, dataset), in input order, and notes on points that fit no curve.

    Clean evaluations attach to every curve with the same encoder, neck and head
    (whatever its neck training), since they measure the uncompressed accuracy of
    that probe.
    """
    labels = encoder_labels(points)
    groups: dict[tuple[str, str], dict[tuple, Curve]] = OrderedDict()
    notes: list[str] = []
    for p in points:
        if p.zero_rate:  # belongs to its (task, dataset) section, not to a curve
            continue
        if p.clean and p.neck_training != NECK_CLEAN:
            notes.append(
                f"{p.source}: a clean evaluation of a neck trained through a codec is no clean baseline; "
                "skipped"
            )
            continue
        curves = groups.setdefault((p.task, p.data), OrderedDict())
        training = NECK_CLEAN if p.clean else p.neck_training
        key = (p.encoder, p.weights_id, p.resolution, p.neck, training, p.head, p.seed, p.codec_family)
        curve = curves.get(key)
        if curve is None:
            curve = curves[key] = Curve(
                p.task,
                p.data,
                p.encoder,
                p.weights_id,
                p.resolution,
                p.neck,
                training,
                p.head,
                label=labels[(p.encoder, p.weights_id, p.resolution)],
                neck_base=p.neck_base or p.neck,
                kd=p.kd,
                after=p.after,
                seed=p.seed,
                codec_family=p.codec_family,
            )
        (curve.clean if p.clean else curve.points).append(p)
    out: dict[tuple[str, str], list[Curve]] = OrderedDict()
    for group, curves in groups.items():
        out[group] = list(curves.values())

        def twin(c: Curve) -> tuple:  # the clean-trained curve of the same probe and seed
            return (c.encoder, c.weights_id, c.resolution, c.neck, c.head, c.seed)

        baselines = {
            twin(c): c.clean
            for c in out[group]
            if c.neck_training == NECK_CLEAN and c.codec_family == LEARNED
        }
        for c in out[group]:  # codec-trained necks and anchor curves share the clean baseline of their twin
            if c.neck_training != NECK_CLEAN or c.codec_family != LEARNED:
                c.clean = list(baselines.get(twin(c), []))
        # a clean-trained curve made only of clean evaluations, whose baseline now serves others: drop it
        served = {twin(c) for c in out[group] if c.points}
        out[group] = [c for c in out[group] if c.points or twin(c) not in served]
    return out, notes
