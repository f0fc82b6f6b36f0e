"""One figure per section: each encoder one colour, each neck variant one line style, per-seed curves thin
around the across-seed curve (per λ: geometric mean rate, mean metric over seeds), one clean line per probe,
the zero-rate accuracy dotted, task-sufficient rates as stars; the standard's anchors as thin across-seed
curves of the
encoder's colour, one marker per anchor family."""

from __future__ import annotations

import io

import numpy as np

from .markdown import RATE_NAMES
from .records import Probe, Section

STYLES = ["-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1))]
ANCHOR_MARKERS = ["s", "^", "D", "v", "P", "X"]


def _variant(p: Probe) -> str:
    return p.neck + ("" if p.neck_training == "clean-trained" else f" ({p.neck_training})")


def across_seeds(p: Probe) -> tuple[list[float], list[float]]:
    """The across-seed curve: points matched by λ (or by rank), geometric-mean rate and mean metric."""
    by_key: dict = {}
    for sc in p.seeds:
        for i, q in enumerate(sc.points):
            by_key.setdefault(q.lmbda if q.lmbda is not None else i, []).append((q.rate, q.metric))
    rows = sorted(
        (float(np.exp(np.mean(np.log([r for r, _ in v])))), float(np.mean([m for _, m in v])))
        for v in by_key.values()
    )
    return [r for r, _ in rows], [m for _, m in rows]


def plot_section(section: Section, rate: str, fraction: float) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(7.2, 4.8), dpi=110)
    FigureCanvasAgg(fig)  # Agg, without touching pyplot's global backend
    ax = fig.add_subplot()
    encoders = list(dict.fromkeys(p.label for p in section.probes))
    variants = list(dict.fromkeys(_variant(p) for p in section.probes))
    color = {e: f"C{i % 10}" for i, e in enumerate(encoders)}
    style = {v: STYLES[i % len(STYLES)] for i, v in enumerate(variants)}
    has_points = has_star = False
    for p in section.probes:
        c, ls = color[p.label], style[_variant(p)]
        for sc in p.seeds:
            if sc.points:
                ax.plot(
                    [q.rate for q in sc.points],
                    [q.metric for q in sc.points],
                    ls=ls,
                    lw=0.7,
                    alpha=0.35,
                    color=c,
                    marker=".",
                    ms=3,
                )
        rates, metrics = across_seeds(p)
        if rates:
            has_points = True
            ax.plot(rates, metrics, ls=ls, lw=2.0, color=c, marker="o", ms=5)
        if p.clean is not None and p.clean.value is not None and p.neck_training == "clean-trained":
            ax.axhline(p.clean.value, ls=ls, lw=0.9, color=c, alpha=0.6)
        t = p.task_sufficient_rate
        if t is not None and t.value is not None and p.clean is not None and p.clean.value is not None:
            ax.plot(
                [t.value],
                [fraction * p.clean.value if section.higher_is_better else p.clean.value / fraction],
                "*",
                ms=11,
                color=c,
            )
            has_star = True
    families = list(dict.fromkeys(a.codec_family for a in section.standard_anchors))
    marker = {f: ANCHOR_MARKERS[i % len(ANCHOR_MARKERS)] for i, f in enumerate(families)}
    for a in section.standard_anchors:
        rates, metrics = across_seeds(a)
        if rates:
            has_points = True
            ax.plot(
                rates,
                metrics,
                ls="-.",
                lw=1.0,
                color=color.get(a.label, "0.4"),
                marker=marker[a.codec_family],
                ms=5,
                mfc="none",
            )
    for z in section.zero_rate[:1]:
        ax.axhline(z.value, ls=":", lw=1.4, color="k")
    handles = [Line2D([], [], color=color[e], lw=2, label=e) for e in encoders]
    handles += [Line2D([], [], color="0.3", ls=style[v], lw=1.5, label=v) for v in variants]
    handles += [
        Line2D([], [], color="0.4", ls="-.", lw=1.0, marker=marker[f], mfc="none", label=f"{f} (anchor)")
        for f in families
    ]
    handles.append(
        Line2D([], [], color="0.5", lw=0.7, alpha=0.5, label="per seed (thin); across seeds (thick)")
    )
    handles.append(Line2D([], [], color="0.5", lw=0.9, label="clean accuracy (horizontal, per probe)"))
    if section.zero_rate:
        handles.append(Line2D([], [], color="k", ls=":", lw=1.4, label="zero rate (no features)"))
    if has_star:
        handles.append(
            Line2D(
                [],
                [],
                color="0.4",
                marker="*",
                ls="none",
                ms=9,
                label=f"task-sufficient rate ({fraction:g} of clean)",
            )
        )
    if has_points:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    ax.set_xlabel(f"{RATE_NAMES.get(rate, rate)} ({rate}, log scale)")
    better = "higher" if section.higher_is_better else "lower"
    ax.set_ylabel(f"{section.metric} ({better} is better)")
    ax.set_title(f"{section.task}: {section.metric} vs rate", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(handles=handles, fontsize=7, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
