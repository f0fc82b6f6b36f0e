"""The task registry: one Task per probe, found by name."""

import pytest

from codec.registry import UnknownNameError
from probes.tasks import TASKS, CaptionTask, DepthTask, PoseTask, get_task


def test_every_task_is_registered():
    assert TASKS.names() == ["caption", "depth", "pose"]
    assert isinstance(get_task("depth"), DepthTask) and isinstance(get_task("pose"), PoseTask)
    assert isinstance(get_task("caption", label_smoothing=0.1), CaptionTask)


def test_options_reach_the_task():
    t = get_task("depth", output_kind="metric-depth")
    assert t.output_kind == "metric-depth" and t.align == "none"
    assert get_task("depth").align == "scale-shift"


def test_unknown_task():
    message = "unknown task 'segmentation'; choose from caption, depth, pose"
    with pytest.raises(UnknownNameError, match=message):
        get_task("segmentation")
