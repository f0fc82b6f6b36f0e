"""Rate–accuracy analysis: every result is a curve, and encoders differ by a number of bits.

- `bdrate`: Bjøntegaard delta-rate / delta-metric between two curves (VCEG-M33 cubic, CTC PCHIP).
- `curves`: metric directions, the monotone hull, the task-sufficient rate.
- `results`: `featcodec eval` JSON and the demo's report.json → points → curves.
- `report`: `featcodec report` (report.md, report.json, one plot per task and metric).
"""

from .bdrate import bd_metric, bd_rate
from .curves import TaskSufficientRate, metric_direction, monotone_hull, task_sufficient_rate
from .report import build_report, format_markdown, report_from_files, write_report
from .results import Curve, RatePoint, ResultsError, group_curves, load_results

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
