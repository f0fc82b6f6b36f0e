"""The short table `featcodec demo` prints: per task and encoder, clean accuracy, task-sufficient rate, BD-rate."""

from __future__ import annotations


def _fmt(value, digits=4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def _bd(entry: dict, metric: str = "") -> str:
    bd = entry.get("bd_rate") or {}
    if entry.get("encoder") == entry.get("anchor") and not bd:
        return "anchor"
    value = bd.get("pchip") if isinstance(bd, dict) else None
    if value is None:
        return "—"
    text = f"{value:+.1f} %"  # report.json holds BD-rates in percent
    ci = entry.get("bd_rate_ci") or {}
    low, high = ci.get("low"), ci.get("high")
    if low is not None and high is not None:
        if ci.get("metric") in (None, metric):
            text += f" [{low:+.1f}, {high:+.1f}]"
        else:  # the interval is of a per-image proxy (pose: OKS-AR): give it with the proxy's own estimate
            estimate = ci.get("estimate")
            text += f"; {ci['metric']}: {_fmt(estimate, 3) if estimate is None else f'{estimate:+.1f}'} % [{low:+.1f}, {high:+.1f}]"
    return text


def _tsr(entry: dict) -> str:
    tsr = entry.get("task_sufficient_rate") or {}
    if not tsr:
        return "—"  # no clean accuracy to take a fraction of
    if tsr.get("rate") is None:
        return "not reached" if str(tsr.get("reason", "")).startswith("never reached") else "—"
    return ("≤ " if tsr.get("upper_bound") else "") + f"{tsr['rate']:.4g}"


def summary_table(report: dict) -> str:
    """One row per (task, metric, encoder, neck) of a `featcodec report` report.json."""
    rate = report.get("rate", "bpp")
    lines = [f"| task | metric | encoder | neck | clean | task-sufficient {rate} | BD-rate vs {report.get('anchor')} |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for section in report.get("sections", []):
        for entry in section.get("curves", []):
            clean = (entry.get("clean") or {}).get("value")
            training = entry.get("neck_training", "clean-trained")
            neck = entry["neck"] + ("" if training == "clean-trained" else f" ({training})")
            lines.append(f"| {section['task']} | {section['metric']} | {entry['encoder']} | {neck} | "
                         f"{_fmt(clean)} | {_tsr(entry)} | {_bd(entry, section['metric'])} |")  # fmt: skip
    return "\n".join(lines) + "\n"
