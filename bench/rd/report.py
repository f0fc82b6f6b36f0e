"""`featcodec report`: rate–accuracy curves, BD-rate vs an anchor encoder, task-sufficient rates.

    results (eval JSON, demo report.json) ─► points ─► curves per (task, dataset, encoder, neck)
        ─► per task and metric: monotone hull, clean accuracy, task-sufficient rate,
           BD-rate / BD-metric of every curve vs the anchor encoder's curve (same neck and head)
        ─► REPORT_DIR/report.md, report.json, <task>-<metric>.png

The cost of specialisation in bits: with a generalist anchor (MAE Hiera) a positive
BD-rate of a specialised encoder (SAM2) says how many more bits its features need for
the same task accuracy (PCS 2025, "How Universal Are SAM2 Features?").
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from codec.files import atomic_write_bytes, atomic_write_json

from .bdrate import METHODS, MIN_POINTS, bd_metric, bd_rate
from .curves import COCO_STATS, PRIMARY_METRIC, UNDEFINED_COCO_VALUE, metric_direction, monotone_hull
from .curves import task_sufficient_rate as compute_task_sufficient_rate
from .results import REPORT_FORMAT, Curve, RatePoint, ResultsError, group_curves

REPORT_FORMAT_VERSION = 1
RATE_NAMES = {
    "bpp": "bits per pixel",
    "payload_bpp": "payload bits per pixel",
    "bits_per_element": "bits per element",
}


def _metric_value(p: RatePoint, metric: str) -> tuple[float | None, str | None]:
    """The point's value of `metric`, or None and why it cannot be used."""
    if metric not in p.metrics:
        return None, f"{p.source}: missing field 'metrics.{metric}' (it has {sorted(p.metrics)})"
    value = p.metrics[metric]
    if metric in COCO_STATS and value == UNDEFINED_COCO_VALUE:
        return None, f"{p.source}: {metric} = -1 (pycocotools: no ground truth in that range); point skipped"
    if not math.isfinite(value):
        return None, f"{p.source}: {metric} = {value}; point skipped"
    return value, None


def _section_metrics(task: str, curves: list[Curve], metrics: Sequence[str] | None) -> list[str]:
    present = {m for c in curves for p in (*c.points, *c.clean) for m in p.metrics}
    if metrics:
        return [m for m in metrics if m in present]
    primary = PRIMARY_METRIC.get(task)
    if primary in present:
        return [primary]
    candidates = sorted(present - {"num_images"})
    if len(candidates) == 1:
        return candidates
    raise ResultsError(f"task {task!r}: no default metric; choose one with --metric from {candidates}")


def _curve_entry(curve: Curve, metric: str, rate: str, hib: bool, fraction: float, notes: list[str]) -> dict:
    points = []
    for p in curve.points:
        value, why = _metric_value(p, metric)
        if why:
            notes.append(why)
            continue
        if rate not in p.rates:
            raise ResultsError(
                f"{p.source}: no rate {rate!r} (it has {sorted(p.rates)}); choose another --rate"
            )
        points.append(
            {"rate": p.rates[rate], "metric": value, "codec": p.codec, "lambda": p.lmbda, "source": p.source}
        )
    points.sort(key=lambda q: q["rate"])
    if points:
        hull = set(monotone_hull([q["rate"] for q in points], [q["metric"] for q in points], hib).tolist())
        for i, q in enumerate(points):
            q["on_hull"] = i in hull
    clean_values = []
    for p in curve.clean:
        value, why = _metric_value(p, metric)
        if why:
            notes.append(why)
        else:
            clean_values.append(value)
    clean = None
    if clean_values:  # several clean evaluations of the same probe: their mean (spread recorded)
        clean = {
            "value": float(np.mean(clean_values)), "n": len(clean_values),
            "min": min(clean_values), "max": max(clean_values), "sources": [p.source for p in curve.clean],
        }  # fmt: skip
    sufficient = None
    if clean is not None:
        try:
            sufficient = compute_task_sufficient_rate(
                [q["rate"] for q in points], [q["metric"] for q in points], clean["value"], fraction, hib
            ).to_dict()
        except ValueError as e:
            sufficient = {"rate": None, "reason": str(e)}
    return {
        "label": curve.label, "encoder": curve.encoder, "weights_id": curve.weights_id, "resolution": curve.resolution,
        "neck": curve.neck, "neck_training": curve.neck_training, "head": curve.head,
        "points": points, "clean": clean, "task_sufficient_rate": sufficient,
    }  # fmt: skip


def _bd_entries(entries: list[dict], curves: list[Curve], anchor: str, hib: bool) -> None:
    """BD-rate and BD-metric of every curve vs the anchor curve with the same neck, neck training and head."""
    anchors = {c.comparable: e for c, e in zip(curves, entries, strict=True) if c.label == anchor}
    for curve, entry in zip(curves, entries, strict=True):
        ref = anchors.get(curve.comparable)
        entry["anchor"] = None if ref is None else ref["label"]
        entry["bd_rate"], entry["bd_metric"], entry["bd_notes"] = {}, {}, []
        if ref is None:
            entry["bd_notes"].append(f"no {anchor} curve with this neck and head")
            continue
        if ref is entry:
            continue
        hull_a = [q for q in ref["points"] if q["on_hull"]]
        hull_b = [q for q in entry["points"] if q["on_hull"]]
        for method in METHODS:
            if min(len(hull_a), len(hull_b)) < MIN_POINTS[method]:
                entry["bd_notes"].append(f"{method}: needs {MIN_POINTS[method]} hull points per curve")
                entry["bd_rate"][method] = entry["bd_metric"][method] = None
                continue
            args = ([q["rate"] for q in hull_a], [q["metric"] for q in hull_a],
                    [q["rate"] for q in hull_b], [q["metric"] for q in hull_b])  # fmt: skip
            for key, fn in (("bd_rate", bd_rate), ("bd_metric", bd_metric)):
                try:
                    entry[key][method] = fn(*args, method=method, higher_is_better=hib)
                except ValueError as e:
                    entry[key][method] = None
                    entry["bd_notes"].append(f"{key} ({method}): {e}")


def resolve_anchor(anchor: str | None, curves: Sequence[Curve]) -> str:
    """The anchor's encoder label: the given label or encoder name, else the first encoder with rate points."""
    labels = list(
        dict.fromkeys(c.label for c in curves if c.points) or dict.fromkeys(c.label for c in curves)
    )
    if anchor is None:
        if not labels:
            raise ResultsError("no curves in the results")
        return labels[0]
    if anchor in labels:
        return anchor
    by_name = list(dict.fromkeys(c.label for c in curves if c.encoder == anchor))
    if len(by_name) == 1:
        return by_name[0]
    if len(by_name) > 1:
        raise ResultsError(f"--anchor {anchor}: several variants ({by_name}); give one of these labels")
    raise ResultsError(f"--anchor {anchor}: no such encoder in the results; they hold {labels}")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "x"


def build_report(
    points: Sequence[RatePoint],
    *,
    metrics: Sequence[str] | None = None,
    rate: str = "bpp",
    anchor: str | None = None,
    fraction: float = 0.95,
    directions: dict[str, bool] | None = None,
    inputs: Sequence[str] = (),
) -> dict:
    """The report as a JSON-ready dict: one section per (task, dataset, metric)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    groups, notes = group_curves(points)
    all_curves = [c for curves in groups.values() for c in curves]
    anchor_label = resolve_anchor(anchor, all_curves)
    sections, plots_used = [], set()
    for (task, data), curves in groups.items():
        chosen = _section_metrics(task, curves, metrics)
        if not chosen:
            notes.append(f"{task} on {data}: none of the metrics {list(metrics or [])}; skipped")
        for metric in chosen:
            try:
                hib = metric_direction(metric, directions)
            except ValueError as e:
                raise ResultsError(str(e)) from e
            section_notes: list[str] = []
            entries = [_curve_entry(c, metric, rate, hib, fraction, section_notes) for c in curves]
            _bd_entries(entries, curves, anchor_label, hib)
            plot = f"{_slug(task)}-{_slug(metric)}.png"
            n = 2
            while plot in plots_used:  # the same task on several datasets
                plot, n = f"{_slug(task)}-{n}-{_slug(metric)}.png", n + 1
            plots_used.add(plot)
            sections.append({
                "task": task, "data": data, "metric": metric, "higher_is_better": hib,
                "plot": plot, "curves": entries, "notes": section_notes,
            })  # fmt: skip
    if metrics and not sections:
        raise ResultsError(f"--metric {', '.join(metrics)}: in none of the results")
    return {
        "format": REPORT_FORMAT,
        "format_version": REPORT_FORMAT_VERSION,
        "inputs": [str(p) for p in inputs],
        "rate": rate,
        "fraction": fraction,
        "anchor": anchor_label,
        "methods": list(METHODS),
        "sections": sections,
        "notes": notes,
    }


# --- markdown --------------------------------------------------------------------------------------


def _num(value, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def _percent(value) -> str:
    return "—" if value is None else f"{value:+.2f} %"


def _tsr(entry: dict) -> str:
    t = entry["task_sufficient_rate"]
    if t is None:
        return "— (no clean eval)"
    if t["rate"] is None:
        return "not reached"
    return ("≤ " if t.get("upper_bound") else "") + f"{t['rate']:.4g}"


def format_markdown(report: dict) -> str:
    rate = report["rate"]
    lines = [
        "# featcodec rate–accuracy report",
        "",
        f"Rate: {RATE_NAMES.get(rate, rate)} (`{rate}`). Anchor: **{report['anchor']}**. "
        f"Task-sufficient rate: lowest rate reaching {report['fraction']:g} of the clean accuracy "
        "(interpolated in log-rate on the monotone hull). BD-rate: Bjøntegaard delta-rate vs the anchor "
        "(PCHIP; classic cubic in brackets), negative = fewer bits than the anchor for equal accuracy. "
        "Formulas: docs/analysis.md.",
        "",
    ]
    for s in report["sections"]:
        arrow = "higher is better" if s["higher_is_better"] else "lower is better"
        lines += [
            f"## {s['task']}: {s['metric']} ({arrow})",
            "",
            f"Data: `{s['data']}`",
            "",
            f"![{s['task']} {s['metric']}]({s['plot']})",
            "",
        ]
        lines += [
            f"| encoder | neck | head | points ({rate} → {s['metric']}) | clean | task-sufficient {rate} | "
            f"BD-rate vs {report['anchor']} | BD-{s['metric']} |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for e in s["curves"]:
            pts = (
                ", ".join(
                    f"{q['rate']:.4g} → {q['metric']:.4g}" + ("" if q["on_hull"] else " (dominated)")
                    for q in e["points"]
                )
                or "—"
            )
            clean = "—" if e["clean"] is None else _num(e["clean"]["value"])
            if e["anchor"] is None:
                bdr = bdm = "—"
            elif e["anchor"] == e["label"]:
                bdr = bdm = "anchor"
            else:
                bdr = f"{_percent(e['bd_rate'].get('pchip'))} ({_percent(e['bd_rate'].get('cubic'))})"
                bdm = f"{_num(e['bd_metric'].get('pchip'))} ({_num(e['bd_metric'].get('cubic'))})"
            neck = e["neck"] + ("" if e["neck_training"] == "clean-trained" else f" ({e['neck_training']})")
            lines.append(
                f"| {e['label']} | {neck} | {e['head']} | {pts} | {clean} | {_tsr(e)} | {bdr} | {bdm} |"
            )
        why = [f"- {e['label']}: {n}" for e in s["curves"] for n in e["bd_notes"]]
        why += [
            f"- {e['label']}: task-sufficient rate: {e['task_sufficient_rate']['reason']}"
            for e in s["curves"]
            if e["task_sufficient_rate"] and e["task_sufficient_rate"].get("reason")
        ]
        why += [f"- {n}" for n in s["notes"]]
        if why:
            lines += ["", "Notes:", "", *why]
        lines.append("")
    if report["notes"]:
        lines += ["## Notes", "", *[f"- {n}" for n in report["notes"]], ""]
    lines += ["Inputs:", "", *[f"- `{p}`" for p in report["inputs"]], ""]
    return "\n".join(lines)


# --- plots -----------------------------------------------------------------------------------------


def plot_section(section: dict, rate: str, fraction: float) -> bytes:
    """PNG of one section: log-rate axis, hull as lines, dominated points hollow, clean accuracy dashed,
    task-sufficient rates as stars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(6.4, 4.4), dpi=110)
    FigureCanvasAgg(fig)  # Agg, without touching pyplot's global backend
    ax = fig.add_subplot()
    colors = [f"C{i % 10}" for i in range(len(section["curves"]))]
    has_points = has_star = False
    for color, e in zip(colors, section["curves"], strict=True):
        label = e["label"] + (
            ""
            if len(section["curves"]) == len({c["label"] for c in section["curves"]})
            else f" · {e['neck']}"
        )
        hull = [q for q in e["points"] if q["on_hull"]]
        off = [q for q in e["points"] if not q["on_hull"]]
        if hull:
            has_points = True
            ax.plot([q["rate"] for q in hull], [q["metric"] for q in hull], "o-", color=color, label=label)
        if off:
            ax.plot([q["rate"] for q in off], [q["metric"] for q in off], "o", mfc="none", color=color)
        if e["clean"] is not None:
            ax.axhline(e["clean"]["value"], ls="--", lw=1, color=color, label=f"{e['label']} clean")
        t = e["task_sufficient_rate"]
        if t and t.get("rate"):
            ax.plot([t["rate"]], [t["target"]], "*", ms=11, color=color)
            has_star = True
    if has_star:
        ax.plot(
            [], [], "*", ms=9, color="0.4", ls="none", label=f"task-sufficient rate ({fraction:g} of clean)"
        )
    if has_points:
        ax.set_xscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    ax.set_xlabel(f"{RATE_NAMES.get(rate, rate)} ({rate}, log scale)")
    better = "higher" if section["higher_is_better"] else "lower"
    ax.set_ylabel(f"{section['metric']} ({better} is better)")
    ax.set_title(f"{section['task']}: {section['metric']} vs rate", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# --- writing ---------------------------------------------------------------------------------------


def write_report(
    report: dict,
    out_dir: str | os.PathLike,
    *,
    force: bool = False,
    protect: Sequence[str | os.PathLike] = (),
) -> list[Path]:
    """Write report.md, report.json and the plots into `out_dir` (atomic per file).

    Existing files of the same names are replaced only with `force`; the paths in
    `protect` (the inputs) are never overwritten, even with `force`.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a directory")
    names = ["report.md", "report.json", *[s["plot"] for s in report["sections"]]]
    targets = [out_dir / n for n in names]
    protected = {Path(p).resolve() for p in protect}
    clash = [str(t) for t in targets if t.resolve() in protected]
    if clash:
        raise FileExistsError(
            f"{', '.join(clash)}: is an input of this report; write the report elsewhere (-o)"
        )
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        raise FileExistsError(f"{out_dir}: already holds {', '.join(existing)}; pass --force to replace")
    out_dir.mkdir(parents=True, exist_ok=True)
    for section, target in zip(report["sections"], targets[2:], strict=True):
        atomic_write_bytes(target, plot_section(section, report["rate"], report["fraction"]))
    atomic_write_json(out_dir / "report.json", report)
    atomic_write_bytes(out_dir / "report.md", format_markdown(report).encode())
    return targets


def report_from_files(
    paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *, force: bool = False, **options
) -> dict:
    """Load results, build the report, write it; returns the report dict."""
    from .results import load_results

    points = load_results(paths)
    if not points:
        raise ResultsError(f"{', '.join(map(str, paths))}: no results")
    report = build_report(points, inputs=[str(p) for p in paths], **options)
    write_report(report, out_dir, force=force, protect=paths)
    return report
