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
from .bootstrap import bootstrap_bd_rate
from .curves import COCO_STATS, PRIMARY_METRIC, UNDEFINED_COCO_VALUE, metric_direction, monotone_hull
from .curves import task_sufficient_rate as compute_task_sufficient_rate
from .results import REPORT_FORMAT, Curve, RatePoint, ResultsError, group_curves

REPORT_FORMAT_VERSION = 2  # 2: bootstrap CIs, zero-rate points, stream byte split, KD / cross-neck pairs
BOOTSTRAP_METHOD = "pchip"  # the CI is of the primary BD-rate
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
        points.append({
            "rate": p.rates[rate], "metric": value, "codec": p.codec, "lambda": p.lmbda, "source": p.source,
            "stream_bytes": p.stream_bytes,
        })  # fmt: skip
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
        "neck": curve.neck, "neck_base": curve.neck_base, "kd": curve.kd, "after": curve.after,
        "neck_training": curve.neck_training, "head": curve.head,
        "points": points, "clean": clean, "task_sufficient_rate": sufficient,
    }  # fmt: skip


def _bootstrap_scores(points: list[RatePoint], metric: str) -> tuple[str | None, str | None]:
    """The per-image score that stands for `metric` in every point: itself, or the points' common proxy."""
    for p in points:
        if p.per_image is None:
            return None, f"{p.source}: no per-image scores ('per_image')"
    if all(metric in p.per_image["scores"] for p in points):
        return metric, None
    proxies = {p.per_image["proxies"].get(metric) for p in points}
    proxy = proxies.pop() if len(proxies) == 1 else None
    if proxy and all(proxy in p.per_image["scores"] for p in points):
        return proxy, None
    return None, f"no per-image {metric} (nor a proxy for it) in every point"


def _aligned(points: list[RatePoint], score: str) -> tuple[np.ndarray, list | None, list[str], str | None]:
    """points × images matrix of `score` on the image ids every point has, their weights, and any note."""
    common = set(points[0].per_image["ids"])
    for p in points[1:]:
        common &= set(p.per_image["ids"])
    ids = [i for i in points[0].per_image["ids"] if i in common]
    rows, weights, note = [], None, None
    for p in points:
        where = {i: k for k, i in enumerate(p.per_image["ids"])}
        idx = [where[i] for i in ids]
        rows.append(np.asarray(p.per_image["scores"][score], dtype=np.float64)[idx])
        if p.per_image["weights"] is not None:
            w = np.asarray(p.per_image["weights"], dtype=np.float64)[idx]
            if weights is not None and not np.array_equal(w, weights):
                raise ValueError(f"{p.source}: per-image weights differ from other points' on the same images")
            weights = w
    if len(ids) < max(len(p.per_image["ids"]) for p in points):
        note = f"bootstrap over the {len(ids)} images every point was scored on"
    return np.vstack(rows), weights, ids, note


def _points_of(entry: dict, curve: Curve) -> list[RatePoint]:
    by_source = {p.source: p for p in curve.points}
    return [by_source[q["source"]] for q in entry["points"]]


def _compare(ref: dict, ref_curve: Curve, entry: dict, curve: Curve, metric: str, hib: bool, boot: dict) -> dict:
    """PCHIP BD-rate of `entry` vs `ref` on their hulls, and its bootstrap CI over test images where possible."""
    out: dict = {"bd_rate": None, "ci": None, "notes": []}
    hull_a = [q for q in ref["points"] if q["on_hull"]]
    hull_b = [q for q in entry["points"] if q["on_hull"]]
    if min(len(hull_a), len(hull_b)) < MIN_POINTS[BOOTSTRAP_METHOD]:
        out["notes"].append(f"needs {MIN_POINTS[BOOTSTRAP_METHOD]} hull points per curve")
        return out
    try:
        out["bd_rate"] = bd_rate([q["rate"] for q in hull_a], [q["metric"] for q in hull_a],
                                 [q["rate"] for q in hull_b], [q["metric"] for q in hull_b],
                                 method=BOOTSTRAP_METHOD, higher_is_better=hib)  # fmt: skip
    except ValueError as e:
        out["notes"].append(str(e))
        return out
    out["ci"] = _bootstrap(ref, ref_curve, entry, curve, metric, hib, boot, out["notes"])
    return out


def _bootstrap(ref, ref_curve, entry, curve, metric, hib, boot, notes: list[str]) -> dict | None:
    if not boot.get("resamples"):
        return None
    pa, pb = _points_of(ref, ref_curve), _points_of(entry, curve)
    score, why = _bootstrap_scores(pa + pb, metric)
    if score is None:
        notes.append(f"no bootstrap CI: {why}")
        return None
    try:
        matrix, weights, ids, note = _aligned(pa + pb, score)
    except ValueError as e:
        notes.append(f"no bootstrap CI: {e}")
        return None
    if not ids:
        notes.append("no bootstrap CI: the points share no image id")
        return None
    if not np.all(np.isfinite(matrix)):
        notes.append(f"no bootstrap CI: a per-image {score} is not finite")
        return None
    if note:
        notes.append(note)
    ci = bootstrap_bd_rate(
        [q["rate"] for q in ref["points"]], matrix[: len(pa)], [q["rate"] for q in entry["points"]],
        matrix[len(pa):], weights=weights, higher_is_better=hib, resamples=boot["resamples"],
        level=boot["level"], seed=boot["seed"],
    )  # fmt: skip
    ci["metric"] = score
    ci["method"] = BOOTSTRAP_METHOD
    if ci["valid"] < ci["resamples"]:
        notes.append(f"bootstrap: {ci['resamples'] - ci['valid']} of {ci['resamples']} resamples gave no "
                     "BD-rate (too few hull points or no overlap) and are left out")  # fmt: skip
    return ci


def _bd_entries(
    entries: list[dict], curves: list[Curve], anchor: str, hib: bool, metric: str = "", boot: dict | None = None
) -> None:
    """BD-rate and BD-metric of every curve vs the anchor curve with the same neck, neck training and head,
    and the bootstrap CI of the BD-rate over test images (`boot`: resamples, level, seed)."""
    anchors = {c.comparable: (e, c) for c, e in zip(curves, entries, strict=True) if c.label == anchor}
    for curve, entry in zip(curves, entries, strict=True):
        ref, ref_curve = anchors.get(curve.comparable, (None, None))
        entry["anchor"] = None if ref is None else ref["label"]
        entry["bd_rate"], entry["bd_metric"], entry["bd_notes"] = {}, {}, []
        entry["bd_rate_ci"] = None
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
        if entry["bd_rate"].get(BOOTSTRAP_METHOD) is not None and boot:
            entry["bd_rate_ci"] = _bootstrap(ref, ref_curve, entry, curve, metric, hib, boot, entry["bd_notes"])


def _pairs(entries: list[dict], curves: list[Curve], metric: str, hib: bool, boot: dict, what: str) -> list[dict]:
    """Curves that differ only in KD weight (`what` = "kd": kd 0 vs > 0) or in being a cross neck
    (`what` = "after": direct vs on a frozen first neck), same encoder, neck training and head."""
    def off(c):
        return not c.kd if what == "kd" else c.after is None

    def group(c):  # what must match between the two curves of a pair
        if what == "kd":
            return (c.label, c.neck_base, c.after, c.neck_training, c.head)
        return (c.label, bool(c.kd) and c.kd, c.neck_training, c.head)

    out = []
    both = list(zip(curves, entries, strict=True))
    for c_on, e_on in both:
        if off(c_on):
            continue
        for c_off, e_off in both:
            if not off(c_off) or group(c_off) != group(c_on):
                continue
            cmp = _compare(e_off, c_off, e_on, c_on, metric, hib, boot)
            tsr = (e_off["task_sufficient_rate"] or {}).get("rate"), (e_on["task_sufficient_rate"] or {}).get("rate")
            out.append({
                "encoder": c_on.label, "neck_off": c_off.neck, "neck_on": c_on.neck,
                "kd": c_on.kd, "after": c_on.after, "neck_training": c_on.neck_training,
                "clean_off": (e_off["clean"] or {}).get("value"), "clean_on": (e_on["clean"] or {}).get("value"),
                "task_sufficient_rate_off": tsr[0], "task_sufficient_rate_on": tsr[1],
                "bd_rate": cmp["bd_rate"], "bd_rate_ci": cmp["ci"], "notes": cmp["notes"],
            })  # fmt: skip
    return out


def _zero_rate(points: Sequence[RatePoint], task: str, data: str, metric: str, notes: list[str]) -> list[dict]:
    out = []
    for p in points:
        if p.zero_rate and p.task == task and p.data == data:
            value, why = _metric_value(p, metric)
            if why:
                notes.append(why)
                continue
            out.append({"value": value, "predictor": p.predictor, "task_config": p.head, "source": p.source})
    return out


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
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """The report as a JSON-ready dict: one section per (task, dataset, metric).

    `bootstrap` resamples of the test images (0: none) give each BD-rate a `confidence` interval.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    boot = {"resamples": int(bootstrap), "level": confidence, "seed": seed}
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
            _bd_entries(entries, curves, anchor_label, hib, metric, boot)
            plot = f"{_slug(task)}-{_slug(metric)}.png"
            n = 2
            while plot in plots_used:  # the same task on several datasets
                plot, n = f"{_slug(task)}-{n}-{_slug(metric)}.png", n + 1
            plots_used.add(plot)
            sections.append({
                "task": task, "data": data, "metric": metric, "higher_is_better": hib,
                "plot": plot, "curves": entries, "notes": section_notes,
                "zero_rate": _zero_rate(points, task, data, metric, section_notes),
                "kd_pairs": _pairs(entries, curves, metric, hib, boot, "kd"),
                "cross_neck_pairs": _pairs(entries, curves, metric, hib, boot, "after"),
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
        "bootstrap": {**boot, "method": BOOTSTRAP_METHOD},
        "sections": sections,
        "curve_files": _compressai_curves(groups, rate),
        "notes": notes,
    }


def _compressai_curves(groups: dict, rate: str) -> list[dict]:
    """One CompressAI-style results JSON per curve ({"name", "description", "results": {"bpp": [...], METRIC: [...]}}),
    every metric the curve's points all have, by increasing rate; `file` is where it goes in REPORT_DIR."""
    out, used = [], set()
    for (task, data), curves in groups.items():
        for c in curves:
            points = sorted((p for p in c.points if rate in p.rates), key=lambda p: p.rates[rate])
            if not points:
                continue
            names = [m for m in points[0].metrics if m != "num_images" and all(m in p.metrics for p in points)]
            stem = f"curves/{_slug(task)}-{_slug(c.label)}-{_slug(c.neck)}"
            if c.neck_training != "clean-trained":
                stem += f"-{_slug(c.neck_training)}"
            file, n = f"{stem}.json", 2
            while file in used:
                file, n = f"{stem}-{n}.json", n + 1
            used.add(file)
            training = "" if c.neck_training == "clean-trained" else f", {c.neck_training} neck"
            out.append({
                "file": file,
                "name": c.label,
                "description": f"{task} on {data}: {c.label}, {c.neck}{training}, head {c.head}; "
                               f"'bpp' is featcodec's {rate} ({RATE_NAMES.get(rate, rate)}), one entry per codec",
                "results": {"bpp": [p.rates[rate] for p in points], **{m: [p.metrics[m] for p in points] for m in names},
                            "lambda": [p.lmbda for p in points]},
            })  # fmt: skip
    return out


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


def _ci(ci: dict | None, metric: str = "") -> str:
    """`[+3.1, +9.8] %` and the share of resamples where the test curve needs more bits."""
    if not ci or ci.get("low") is None:
        return "—"
    proxy = "" if ci.get("metric") in (None, metric) else f", on per-image {ci['metric']}"
    return (f"[{ci['low']:+.2f}, {ci['high']:+.2f}] %, P(>0) = {ci['fraction_positive']:.2f}"
            f" (n = {ci['images']}{proxy})")  # fmt: skip


def _byte_table(s: dict) -> list[str]:
    # the split is a property of an encoder's streams on this test set: one row per (encoder, codec), not per neck
    rows, seen = [], set()
    for e in s["curves"]:
        for q in e["points"]:
            if q.get("stream_bytes") and (e["label"], q["codec"]) not in seen:
                seen.add((e["label"], q["codec"]))
                rows.append((e, q))
    if not rows:
        return []
    lines = ["", "Stream bytes per image (header = container + JSON header; hyper = z; main = y, or x for "
             "the uniform codec):", "",
             "| encoder | neck | codec | rate | header | hyper (z) | main (y) | total |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for e, q in rows:
        b = q["stream_bytes"]
        total = sum(b.values())
        cells = " | ".join(f"{b[k]:.1f} ({100 * b[k] / total:.0f} %)" if total else f"{b[k]:.1f}"
                           for k in ("header", "hyper", "main"))  # fmt: skip
        lines.append(f"| {e['label']} | {e['neck']} | {q['codec']} | {q['rate']:.4g} | {cells} | {total:.1f} |")
    return lines


def _pair_table(pairs: list[dict], what: str, metric: str, rate: str) -> list[str]:
    if not pairs:
        return []
    if what == "kd":
        title, off, on = "KD on/off (same encoder, neck architecture, head)", "KD off", "KD on"
    else:
        title, off, on = "Cross-neck: task directly vs on a frozen first-task neck", "direct", "cross"
    lines = ["", f"{title}: BD-rate of *{on}* vs *{off}*, negative = {on} needs fewer bits.", "",
             f"| encoder | {off} neck | {on} neck | clean {metric} ({off} → {on}) | task-sufficient {rate} "
             f"({off} → {on}) | BD-rate | CI |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in pairs:
        lines.append(
            f"| {r['encoder']} | {r['neck_off']} | {r['neck_on']} | {_num(r['clean_off'])} → {_num(r['clean_on'])} | "
            f"{_num(r['task_sufficient_rate_off'])} → {_num(r['task_sufficient_rate_on'])} | {_percent(r['bd_rate'])} | "
            f"{_ci(r['bd_rate_ci'], metric)} |"
        )
    notes = [f"- {r['encoder']} {r['neck_on']}: {n}" for r in pairs for n in r["notes"]]
    return lines + (["", *notes] if notes else [])


def format_markdown(report: dict) -> str:
    rate = report["rate"]
    lines = [
        "# featcodec rate–accuracy report",
        "",
        f"Rate: {RATE_NAMES.get(rate, rate)} (`{rate}`). Anchor: **{report['anchor']}**. "
        f"Task-sufficient rate: lowest rate reaching {report['fraction']:g} of the clean accuracy "
        "(interpolated in log-rate on the monotone hull). BD-rate: Bjøntegaard delta-rate vs the anchor "
        "(PCHIP; classic cubic in brackets), negative = fewer bits than the anchor for equal accuracy. "
        + (
            f"CI: {100 * report['bootstrap']['level']:g} % percentile interval of the PCHIP BD-rate over "
            f"{report['bootstrap']['resamples']} paired bootstrap resamples of the test images (seed "
            f"{report['bootstrap']['seed']}); P(>0): share of resamples where the encoder needs more bits. "
            if report.get("bootstrap", {}).get("resamples") else ""
        )
        + "Zero rate: the best prediction without features (0 bits). Formulas: docs/analysis.md.",
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
        for z in s.get("zero_rate", []):
            lines += [f"Zero rate (no features, 0 bits): {s['metric']} = {_num(z['value'])} — {z['predictor']}.", ""]
        lines += [
            f"| encoder | neck | head | points ({rate} → {s['metric']}) | clean | task-sufficient {rate} | "
            f"BD-rate vs {report['anchor']} | BD-rate CI | BD-{s['metric']} |",
            "|---|---|---|---|---|---|---|---|---|",
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
            ci = _ci(e.get("bd_rate_ci"), s["metric"])
            if e["anchor"] is None:
                bdr = bdm = ci = "—"
            elif e["anchor"] == e["label"]:
                bdr = bdm = ci = "anchor"
            else:
                bdr = f"{_percent(e['bd_rate'].get('pchip'))} ({_percent(e['bd_rate'].get('cubic'))})"
                bdm = f"{_num(e['bd_metric'].get('pchip'))} ({_num(e['bd_metric'].get('cubic'))})"
            neck = e["neck"] + ("" if e["neck_training"] == "clean-trained" else f" ({e['neck_training']})")
            lines.append(
                f"| {e['label']} | {neck} | {e['head']} | {pts} | {clean} | {_tsr(e)} | {bdr} | {ci} | {bdm} |"
            )
        lines += _byte_table(s)
        lines += _pair_table(s.get("cross_neck_pairs", []), "after", s["metric"], rate)
        lines += _pair_table(s.get("kd_pairs", []), "kd", s["metric"], rate)
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
    if report.get("curve_files"):
        lines += ["CompressAI-style curves: " + ", ".join(f"`{c['file']}`" for c in report["curve_files"]), ""]
    lines += ["Inputs:", "", *[f"- `{p}`" for p in report["inputs"]], ""]
    return "\n".join(lines)


# --- plots -----------------------------------------------------------------------------------------


def plot_section(section: dict, rate: str, fraction: float) -> bytes:
    """PNG of one section: log-rate axis, hull as lines, dominated points hollow, clean accuracy dashed,
    task-sufficient rates as stars, the zero-rate accuracy dotted (rate 0 has no place on a log axis)."""
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
    for z in section.get("zero_rate", []):
        ax.axhline(z["value"], ls=":", lw=1.2, color="k", label="zero rate (no features)")
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
    curve_files = report.get("curve_files", [])
    names = ["report.md", "report.json", *[s["plot"] for s in report["sections"]], *[c["file"] for c in curve_files]]
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
    for section in report["sections"]:
        atomic_write_bytes(out_dir / section["plot"], plot_section(section, report["rate"], report["fraction"]))
    for curve in curve_files:
        (out_dir / curve["file"]).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / curve["file"], {k: v for k, v in curve.items() if k != "file"})
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
