"""The short table `featcodec demo` prints: per task and encoder, clean accuracy, task-sufficient rate, BD-rate."""

from __future__ import annotations


def _fmt(value, digits=4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def _bd(entry: dict) -> str:
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
        text += f" [{low:+.1f}, {high:+.1f}]"
    return text


def _tsr(entry: dict) -> str:
    tsr = entry.get("task_sufficient_rate") or {}
    if tsr.get("rate") is None:
        return "not reached" if tsr.get("reason") is None else "—"
    return ("≤ " if tsr.get("upper_bound") else "") + f"{tsr['rate']:.4g}"


def summary_table(report: dict) -> str:
    """One row per (task, metric, encoder, neck) of a `featcodec report` report.json."""
    rate = report.get("rate", "bpp")
    lines = [f"| task | metric | encoder | neck | clean | task-sufficient {rate} | BD-rate vs {report.get('anchor')} |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for section in report.get("sections", []):
        for entry in section.get("curves", []):
            clean = (entry.get("clean") or {}).get("value")
            lines.append(f"| {section['task']} | {section['metric']} | {entry['encoder']} | {entry['neck']} | "
                         f"{_fmt(clean)} | {_tsr(entry)} | {_bd(entry)} |")  # fmt: skip
    return "\n".join(lines) + "\n"
