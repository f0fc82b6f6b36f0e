"""Rate–accuracy analysis: every result is a curve, and encoders differ by a number of bits.

- `bdrate`: Bjøntegaard delta-rate / delta-metric between two curves (VCEG-M33 cubic, CTC PCHIP).
- `curves`: metric directions, the monotone hull, the task-sufficient rate.
- `results`: `featcodec eval` JSON → points → curves per seed.
- `bootstrap`, `seeds`: the image bootstrap and the intervals across training seeds and test images.
- `records`, `compare`, `verdicts`: the report's typed records, comparisons, and the verdicts on the paper's
findings.
- `report`, `markdown`, `plot`: `featcodec report` (report.md, report.json, one plot per task and metric).
"""

import importlib

# Names resolve on first use (PEP 562), so `featcodec report --help` does not pay for numpy and scipy.
_WHERE = {
    "bd_metric": "bdrate",
    "bd_rate": "bdrate",
    "TaskSufficientRate": "curves",
    "metric_direction": "curves",
    "monotone_hull": "curves",
    "task_sufficient_rate": "curves",
    "build_report": "report",
    "format_markdown": "report",
    "report_from_files": "report",
    "write_report": "report",
    "Curve": "results",
    "RatePoint": "results",
    "ResultsError": "results",
    "group_curves": "results",
    "load_results": "results",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Curve",
    "RatePoint",
    "ResultsError",
    "TaskSufficientRate",
    "bd_metric",
    "bd_rate",
    "build_report",
    "format_markdown",
    "group_curves",
    "load_results",
    "metric_direction",
    "monotone_hull",
    "report_from_files",
    "task_sufficient_rate",
    "write_report",
]
