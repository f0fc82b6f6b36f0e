"""The report as markdown, and the formatters the demo summary shares with it (`bench/sweep/summary.py`)."""

from __future__ import annotations

from .records import Estimate, Pair, Probe, Report, Section, StandardComparison
from .seeds import COVERS_IMAGES

RATE_NAMES = {"bpp": "bits per pixel", "payload_bpp": "payload bits per pixel"}


def num(value, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def percent(value) -> str:
    return "—" if value is None else f"{value:+.1f} %"


def estimate(e: Estimate | None, unit: str = "", digits: int = 4) -> str:
    """`-31.8 % [-52.0, -8.1]`: the across-seed estimate and its interval; `†`
    where it covers test images only."""
    if e is None or e.value is None:
        return "—"
    if unit == "%":
        text = f"{e.value:+.1f} %"
        interval = "" if e.low is None else f" [{e.low:+.1f}, {e.high:+.1f}]"
    else:
        text = num(e.value, digits)
        interval = "" if e.low is None else f" [{num(e.low, digits)}, {num(e.high, digits)}]"
    return text + interval + ("†" if e.covers == COVERS_IMAGES and interval else "")


def per_seed(e: Estimate | None, unit: str = "") -> str:
    if e is None or not e.per_seed:
        return "—"
    fmt = (lambda v: "—" if v is None else f"{v:+.1f}") if unit == "%" else (lambda v: num(v, 3))
    return ", ".join(fmt(v) for v in e.per_seed.values())


def share(e: Estimate | None) -> str:
    return "—" if e is None or e.share_training is None else f"{100 * e.share_training:.0f} %"


def tsr(e: Estimate | None) -> str:
    """Across-seed task-sufficient rate; how many seeds reach it."""
    if e is None:
        return "— (no clean eval)"
    reached = sum(v is not None for v in e.per_seed.values())
    total = len(e.per_seed)
    if e.value is None:
        return "not reached" if reached == 0 else f"reached by {reached}/{total} seeds"
    text = estimate(e)
    return text if reached == total else f"{text} ({reached}/{total} seeds reach it)"


def bd_cell(p: Probe) -> str:
    if p.anchor is None:
        return "—"
    if p.anchor == p.label:
        return "anchor"
    return estimate(p.bd_rate, "%")


def cubic_cell(p: Probe) -> str:
    if not p.bd_rate_cubic:
        return "—"
    out = []
    for c in p.bd_rate_cubic.values():
        if c["value"] is None:
            out.append("—")
        elif not c["reliable"]:
            out.append("unreliable")
        else:
            out.append(f"{c['value']:+.1f}")
    return ", ".join(out)


def _pair_table(pairs: list[Pair], metric: str) -> list[str]:
    if not pairs:
        return []
    what = pairs[0].what
    if what == "kd":
        title, off, on = "KD on/off (same encoder, neck architecture, head)", "KD off", "KD on"
    else:
        title, off, on = "Cross-neck: task directly vs on a frozen first-task neck", "direct", "cross"
    lines = [
        "",
        f"{title}: BD-rate of *{on}* vs *{off}* (negative = {on} needs fewer bits) and the clean accuracy "
        f"difference {on} − {off}, across seeds.",
        "",
        f"| encoder | {off} neck | {on} neck | BD-rate | per seed | clean {metric} difference | per seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in pairs:
        lines.append(
            f"| {r.encoder} | {r.neck_off} | {r.neck_on} | {estimate(r.bd_rate, '%')} | "
            f"{per_seed(r.bd_rate, '%')} | {estimate(r.clean_difference)} | {per_seed(r.clean_difference)} |"
        )
    notes = [f"- {r.encoder} {r.neck_on}: {n}" for r in pairs for n in r.notes]
    return lines + (["", *notes] if notes else [])


def _byte_table(s: Section) -> list[str]:
    rows, seen = [], set()  # a property of an encoder's streams: one row per (encoder, codec)
    for p in s.probes:
        for sc in p.seeds:
            for q in sc.points:
                if q.stream_bytes and (p.label, q.codec) not in seen:
                    seen.add((p.label, q.codec))
                    rows.append((p, sc, q))
    if not rows:
        return []
    lines = [
        "",
        "Stream bytes per image (header = container + header; hyper = z; main = y, or x for the uniform "
        "codec):",
        "",
        "| encoder | seed | codec | rate | header | hyper (z) | main (y) | total |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p, sc, q in rows:
        b = q.stream_bytes
        total = sum(b.values())
        cells = " | ".join(
            f"{b[k]:.1f} ({100 * b[k] / total:.0f} %)" if total else f"{b[k]:.1f}"
            for k in ("header", "hyper", "main")
        )
        lines.append(f"| {p.label} | {_seed(sc.seed)} | {q.codec} | {q.rate:.4g} | {cells} | {total:.1f} |")
    return lines


def _points(p: Probe, zero: float | None = None, higher_is_better: bool = True) -> str:
    """`seed: rate → metric, …` per seed of a probe; dominated and below-zero-rate points marked."""
    return (
        "; ".join(
            f"{_seed(sc.seed)}: "
            + ", ".join(
                f"{q.rate:.3g} → {q.metric:.3g}"
                + ("" if q.on_hull else " (dominated)")
                + (" ⊘" if _below_zero_rate(q.metric, zero, higher_is_better) else "")
                for q in sc.points
            )
            for sc in p.seeds
            if sc.points
        )
        or "—"
    )


def standard_table(s: Section, rate: str) -> list[str]:
    """ "Learned codec vs the standard's anchors": each anchor's curve and the
    learned codec's BD-rate against it."""
    if not s.standard_anchors:
        return []
    versus = {(c.encoder, c.neck, c.neck_training, c.family): c for c in s.versus_standard}
    lines = [
        "",
        "Learned codec vs the standard's anchors (packed-*: features packed into frames and coded by the "
        "standard codec, as MPEG's FCTM; remote-*: the picture coded, the whole network at the receiver). "
        "BD-rate of the learned codec against each anchor, same encoder, neck and head, per seed then across "
        "seeds; negative = the learned codec needs fewer bits for equal accuracy. Anchor curves are not "
        "probes: no verdict reads them.",
        "",
        f"| encoder | neck | anchor | anchor points per seed ({rate} → {s.metric}) | clean (same neck) | "
        "BD-rate of learned vs anchor | per seed | share from training |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for a in s.standard_anchors:
        c: StandardComparison | None = versus.get((a.label, a.neck, a.neck_training, a.codec_family))
        neck = a.neck + ("" if a.neck_training == "clean-trained" else f" ({a.neck_training})")
        bd = "— (no learned curve with this neck)" if c is None else estimate(c.bd_rate, "%")
        lines.append(
            f"| {a.label} | {neck} | {a.codec_family} | {_points(a, higher_is_better=s.higher_is_better)} | "
            f"{estimate(a.clean)} | {bd} | {per_seed(c.bd_rate if c else None, '%')} | "
            f"{share(c.bd_rate if c else None)} |"
        )
    notes = [f"- {c.encoder} · {c.neck} vs {c.family}: {n}" for c in s.versus_standard for n in c.notes]
    return lines + (["", *notes] if notes else [])


def complexity_table(s: Section) -> list[str]:
    """Each codec's complexity as CompressAI-Vision reports it (codec.complexity)."""
    if not s.complexity:
        return []
    lines = [
        "",
        "Coding complexity per image (median over each codec's rate points): kMAC per pixel of the "
        "learned parts (torch's FLOP counter; a standard codec has none) and wall-clock encode / decode ms "
        "(ffmpeg's process included for the standard codecs; the remote anchors' frozen encoder is not "
        "coding and is not counted).",
        "",
        "| encoder | codec family | codec | encoder kMAC/px | decoder kMAC/px | encode ms | decode ms | "
        "points |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in s.complexity:
        lines.append(
            f"| {r.encoder} | {r.family} | {r.codec} | {num(r.encoder_kmac_per_pixel)} | "
            f"{num(r.decoder_kmac_per_pixel)} | {num(r.encode_ms, 3)} | {num(r.decode_ms, 3)} | {r.points} |"
        )
    return lines


def verdict_table(report: Report) -> list[str]:
    if not report.verdicts:
        return []
    lines = [
        "| finding | verdict | comparison | estimate [interval] | per seed | on the finding's side |",
        "|---|---|---|---|---|---|",
    ]
    for v in report.verdicts:
        if not v.evidence:
            lines.append(f"| ({v.finding}) {v.claim} | **{v.outcome}** | — | — | — | — |")
        for i, e in enumerate(v.evidence):
            head = f"({v.finding}) {v.claim}" if i == 0 else ""
            outcome = f"**{v.outcome}**" if i == 0 else ""
            unit = "%" if "%" in e.label else ""
            lines.append(
                f"| {head} | {outcome} | {e.label} | {estimate(e.estimate, unit)} | "
                f"{per_seed(e.estimate, unit)} | {e.outcome} |"
            )
    return lines


def interval_sentence(report: Report) -> str:
    i = report.interval
    seeds = report.seeds
    if len(seeds) > 1:
        covers = (
            f"Intervals: {100 * i['level']:g} % across {len(seeds)} training seeds ({', '.join(seeds)}) and "
            f"the test images ({i['method']}); they cover training noise (codec, neck, fine-tune seeds) and "
            "the draw of test images, not other datasets or other encoder checkpoints. Few seeds make wide "
            "intervals (t with few degrees of freedom)."
        )
    else:
        covers = (
            f"Intervals (†): {100 * i['level']:g} % over {i['resamples']} paired bootstrap resamples of the "
            "test images of ONE training seed: they cover test images only, not training noise, which "
            "moves these results by more than the intervals are wide; run several seeds (`seeds = [0, 1, "
            "2]`)."
        )
    return covers


def format_markdown(report: Report) -> str:
    rate = report.rate
    lines = [
        "# featcodec rate–accuracy report",
        "",
        f"Rate: {RATE_NAMES.get(rate, rate)} (`{rate}`). Anchor: **{report.anchor}**. Task-sufficient rate: "
        "lowest "
        f"rate reaching {report.fraction:g} of the clean accuracy (per seed, on its monotone hull; across "
        "seeds a "
        "geometric mean). BD-rate: PCHIP Bjøntegaard delta-rate vs the anchor, per seed then across seeds; "
        "negative = fewer bits than the anchor for equal accuracy. "
        + interval_sentence(report)
        + " Zero rate: the best prediction without features (0 bits); a coded point worse than it is worse "
        "than "
        "sending nothing. Formulas: docs/analysis.md.",
        "",
    ]
    if report.verdicts:
        lines += [
            "## Verdicts on the paper's findings",
            "",
            *verdict_table(report),
            "",
            f"Rule: {report.verdicts[0].rule}.",
            "",
        ]
    for s in report.sections:
        arrow = "higher is better" if s.higher_is_better else "lower is better"
        lines += [
            f"## {s.task}: {s.metric} ({arrow})",
            "",
            f"Data: `{s.data}`",
            "",
            f"![{s.task} {s.metric}]({s.plot})",
            "",
        ]
        for z in s.zero_rate:
            lines += [
                f"Zero rate (no features, 0 bits): {s.metric} = {num(z.value)} — {z.predictor}. "
                f"Points {'above' if not s.higher_is_better else 'below'} it are marked ⊘.",
                "",
            ]
        score = next((p.bd_rate.score for p in s.probes if p.bd_rate and p.bd_rate.score), None)
        if score and score != s.metric:
            lines += [
                f"Intervals and across-seed BD-rates resample per-image **{score}** (the proxy of "
                f"{s.metric}: "
                f"{s.metric} is not a mean over images); clean values are {s.metric}.",
                "",
            ]
        lines += [
            f"| encoder | neck | head | seed: points ({rate} → {s.metric}) | clean | clean per seed | "
            f"task-sufficient {rate} | BD-rate vs {report.anchor} | BD-rate per seed | share from training | "
            "cubic BD per seed |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        zero = s.zero_rate[0].value if s.zero_rate else None
        for p in s.probes:
            pts = _points(p, zero, s.higher_is_better)
            neck = p.neck + ("" if p.neck_training == "clean-trained" else f" ({p.neck_training})")
            lines.append(
                f"| {p.label} | {neck} | {p.head} | {pts} | {estimate(p.clean)} | {per_seed(p.clean)} | "
                f"{tsr(p.task_sufficient_rate)} | {bd_cell(p)} | {per_seed(p.bd_rate, '%')} | "
                f"{share(p.bd_rate)} | {cubic_cell(p)} |"
            )
        lines += standard_table(s, rate)
        lines += complexity_table(s)
        lines += _byte_table(s)
        lines += _pair_table(s.cross_neck_pairs, s.metric)
        lines += _pair_table(s.kd_pairs, s.metric)
        why = [f"- {p.name}: {n}" for p in (*s.probes, *s.standard_anchors) for n in p.notes]
        why += [
            f"- {p.label} · {p.neck}: seed {sc.seed}: task-sufficient rate: "
            f"{sc.task_sufficient_rate['reason']}"
            for p in s.probes
            for sc in p.seeds
            if sc.task_sufficient_rate and sc.task_sufficient_rate.get("reason")
        ]
        why += [f"- {n}" for n in s.notes]
        if why:
            lines += ["", "Notes:", "", *why]
        lines.append("")
    if report.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in report.notes], ""]
    if report.curve_files:
        lines += ["CompressAI-style curves: " + ", ".join(f"`{c['file']}`" for c in report.curve_files), ""]
    lines += ["Inputs:", "", *[f"- `{p}`" for p in report.inputs], ""]
    return "\n".join(lines)


def _seed(seed: int | None) -> str:
    return "—" if seed is None else str(seed)


def _below_zero_rate(value: float, zero: float | None, higher_is_better: bool) -> bool:
    """A coded point that is worse than the zero-rate prediction (no features at all)."""
    if zero is None:
        return False
    return value < zero if higher_is_better else value > zero


def summary_table(report: Report) -> str:
    """What `featcodec demo` prints: the verdicts, then per task and probe the across-seed numbers."""
    rate = report.rate
    lines = [interval_sentence(report), ""]
    if report.verdicts:
        lines += verdict_table(report) + [""]
    lines += [
        f"| task | metric | encoder | neck | clean | task-sufficient {rate} | BD-rate vs {report.anchor} | "
        "per seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in report.sections:
        for p in s.probes:
            neck = p.neck + ("" if p.neck_training == "clean-trained" else f" ({p.neck_training})")
            score = "" if not p.bd_rate or p.bd_rate.score in (None, s.metric) else f" ({p.bd_rate.score})"
            lines.append(
                f"| {s.task} | {s.metric} | {p.label} | {neck} | {estimate(p.clean)} | "
                f"{tsr(p.task_sufficient_rate)} | {bd_cell(p)}{score} | {per_seed(p.bd_rate, '%')} |"
            )
    # the direct neck of each encoder (no KD, no cross-neck): the report has the others
    versus = [
        (s, c)
        for s in report.sections
        for c in s.versus_standard
        if c.neck in {p.neck for p in s.probes if not p.kd and p.after is None}
    ]
    if versus:
        lines += [
            "",
            "| task | metric | encoder | neck | BD-rate of learned vs the standard's anchor | per seed |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {s.task} | {s.metric} | {c.encoder} | {c.neck} | vs {c.family}: {estimate(c.bd_rate, '%')} | "
            f"{per_seed(c.bd_rate, '%')} |"
            for s, c in versus
        ]
    return "\n".join(lines) + "\n"
