"""`featcodec report`: rate–accuracy curves per training seed, across-seed estimates with intervals, verdicts.

    results (eval JSON / sweep results.jsonl) ─► points ─► curves per (task, dataset) and seed   (results.py)
        ─► typed records: probes, per-seed curves, estimates vs the anchor, KD / cross-neck pairs (compare.py)
        ─► verdicts on the paper's findings                                                     (verdicts.py)
        ─► REPORT_DIR/report.md (markdown.py), report.json, <task>-<metric>.png (plot.py), curves/*.json

The cost of specialisation in bits: with a generalist anchor (MAE Hiera) a positive BD-rate of a specialised
encoder (SAM2) says how many more bits its features need for the same task accuracy (PCS 2025, "How Universal
Are SAM2 Features?"). Every interval covers training seeds and test images where the results hold several
seeds (bench/rd/seeds.py, docs/analysis.md), and says so where they hold one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from bench.names import REPORT_FORMAT, REPORT_FORMAT_VERSION
from codec.files import atomic_write_bytes, atomic_write_json

from . import seeds as seed_stats
from .compare import (
    Options,
    build_probes,
    collect_probes,
    complexity_rows,
    metric_value,
    pair_records,
    seed_key,
    standard_comparisons,
)
from .curves import PRIMARY_METRIC, metric_direction
from .markdown import RATE_NAMES, format_markdown
from .plot import plot_section
from .records import Report, Section, ZeroRate
from .results import LEARNED, Curve, RatePoint, ResultsError, group_curves
from .verdicts import findings

# 3: curves per seed, across-seed estimates with seed-aware intervals, verdicts; 4: the standard's anchors
# (sections' standard_anchors, versus_standard, complexity)


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


def resolve_anchor(anchor: str | None, curves: Sequence[Curve]) -> str:
    """The anchor's encoder label: the given label or encoder name, else the
    first encoder with rate points."""
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


def _zero_rate(
    points: Sequence[RatePoint], task: str, data: str, metric: str, notes: list[str]
) -> list[ZeroRate]:
    out = []
    for p in points:
        if p.zero_rate and p.task == task and p.data == data:
            value, why = metric_value(p, metric)
            if why:
                notes.append(why)
                continue
            out.append(ZeroRate(value, p.predictor, p.head, p.source))
    return out


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
) -> Report:
    """The report's records: one section per (task, dataset, metric), and the verdicts.

    `bootstrap` resamples of the test images and the spread over training seeds give every estimate a
    `confidence` interval (bench/rd/seeds.py).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    opts = Options(bootstrap, confidence, seed)
    groups, notes = group_curves(points)
    all_curves = [c for curves in groups.values() for c in curves]
    anchor_label = resolve_anchor(anchor, [c for c in all_curves if c.codec_family == LEARNED] or all_curves)
    seeds = list(dict.fromkeys(seed_key(c.seed) for c in all_curves))
    sections, for_verdicts, plots_used = [], [], set()
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
            # the standard's anchors are curves of their own, outside the learned probes (and the verdicts)
            learned = [c for c in curves if c.codec_family == LEARNED]
            probes = build_probes(learned, metric, rate, hib, fraction, anchor_label, opts, section_notes)
            standard = collect_probes(
                [c for c in curves if c.codec_family != LEARNED],
                metric,
                rate,
                hib,
                fraction,
                opts,
                section_notes,
            )
            plot = f"{_slug(task)}-{_slug(metric)}.png"
            n = 2
            while plot in plots_used:  # the same task on several datasets
                plot, n = f"{_slug(task)}-{n}-{_slug(metric)}.png", n + 1
            plots_used.add(plot)
            sections.append(
                Section(
                    task,
                    data,
                    metric,
                    hib,
                    plot,
                    [p for p, _ in probes],
                    zero_rate=_zero_rate(points, task, data, metric, section_notes),
                    kd_pairs=pair_records(probes, metric, hib, opts, "kd"),
                    cross_neck_pairs=pair_records(probes, metric, hib, opts, "after"),
                    notes=section_notes,
                    standard_anchors=[p for p, _ in standard],
                    complexity=complexity_rows(curves),
                    versus_standard=standard_comparisons(probes, standard, metric, hib, opts),
                )
            )
            for_verdicts.append((task, metric, hib, probes))
    if metrics and not sections:
        raise ResultsError(f"--metric {', '.join(metrics)}: in none of the results")
    interval = {
        "method": seed_stats.METHOD if len(seeds) > 1 else "paired image bootstrap (percentile)",
        "level": confidence,
        "resamples": int(bootstrap),
        "seed": seed,
    }
    return Report(
        format=REPORT_FORMAT,
        format_version=REPORT_FORMAT_VERSION,
        inputs=[str(p) for p in inputs],
        rate=rate,
        fraction=fraction,
        anchor=anchor_label,
        seeds=seeds,
        interval=interval,
        sections=sections,
        verdicts=findings(for_verdicts, anchor_label, opts) if bootstrap else [],
        curve_files=_compressai_curves(groups, rate),
        notes=notes,
    )


def _compressai_curves(groups: dict, rate: str) -> list[dict]:
    """One CompressAI-style results JSON per curve ({"name", "description", "results": {"bpp": [...], METRIC:
    [...]}}),
    every metric the curve's points all have, by increasing rate; `file` is where it goes in REPORT_DIR."""
    out, used = [], set()
    for (task, data), curves in groups.items():
        for c in curves:
            points = sorted((p for p in c.points if rate in p.rates), key=lambda p: p.rates[rate])
            if not points:
                continue
            names = [
                m for m in points[0].metrics if m != "num_images" and all(m in p.metrics for p in points)
            ]
            stem = f"curves/{_slug(task)}-{_slug(c.label)}-{_slug(c.neck)}"
            if c.codec_family != LEARNED:
                stem += f"-{_slug(c.codec_family)}"
            if c.seed is not None:
                stem += f"-seed{c.seed}"
            if c.neck_training != "clean-trained":
                stem += f"-{_slug(c.neck_training)}"
            file, n = f"{stem}.json", 2
            while file in used:
                file, n = f"{stem}-{n}.json", n + 1
            used.add(file)
            training = "" if c.neck_training == "clean-trained" else f", {c.neck_training} neck"
            out.append(
                {
                    "file": file,
                    "name": c.label if c.codec_family == LEARNED else f"{c.label} {c.codec_family}",
                    "description": f"{task} on {data}: {c.label}, {c.neck}{training}, head {c.head}, seed "
                    f"{c.seed}; "
                    f"'bpp' is featcodec's {rate} ({RATE_NAMES.get(rate, rate)}), one entry per codec",
                    "results": {
                        "bpp": [p.rates[rate] for p in points],
                        **{m: [p.metrics[m] for p in points] for m in names},
                        "lambda": [p.lmbda for p in points],
                    },
                }
            )
    return out


def write_report(
    report: Report,
    out_dir: str | os.PathLike,
    *,
    force: bool = False,
    protect: Sequence[str | os.PathLike] = (),
) -> list[Path]:
    """Write report.md, report.json, the plots and the curve files into `out_dir` (atomic per file).

    Existing files of the same names are replaced only with `force`; the paths in
    `protect` (the inputs) are never overwritten, even with `force`.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a directory")
    names = [
        "report.md",
        "report.json",
        *[s.plot for s in report.sections],
        *[c["file"] for c in report.curve_files],
    ]
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
    for section in report.sections:
        atomic_write_bytes(out_dir / section.plot, plot_section(section, report.rate, report.fraction))
    for curve in report.curve_files:
        (out_dir / curve["file"]).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / curve["file"], {k: v for k, v in curve.items() if k != "file"})
    atomic_write_json(out_dir / "report.json", report.to_dict())
    atomic_write_bytes(out_dir / "report.md", format_markdown(report).encode())
    return targets


def report_from_files(
    paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *, force: bool = False, **options
) -> Report:
    """Load results, build the report, write it; returns the report."""
    from .results import load_results

    points = load_results(paths)
    if not points:
        raise ResultsError(f"{', '.join(map(str, paths))}: no results")
    report = build_report(points, inputs=[str(p) for p in paths], **options)
    write_report(report, out_dir, force=force, protect=paths)
    return report
