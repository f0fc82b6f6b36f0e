"""Probe tasks: targets, losses, decoding and the field's metrics (depth, pose, caption)."""

from .base import Task, get_task, list_tasks, register_task
from .caption import CaptionTask, caption_metrics, ptb_tokenize
from .depth import DepthTask, align_depth, depth_metrics, fit_scale_shift, silog_loss, ssi_loss
from .pose import PoseTask, decode_heatmaps, encode_heatmaps, keypoint_ap

register_task("depth", DepthTask)
register_task("pose", PoseTask)
register_task("caption", CaptionTask)

__all__ = [
    "CaptionTask",
    "DepthTask",
    "PoseTask",
    "Task",
    "align_depth",
    "caption_metrics",
    "decode_heatmaps",
    "depth_metrics",
    "encode_heatmaps",
    "fit_scale_shift",
    "get_task",
    "keypoint_ap",
    "list_tasks",
    "ptb_tokenize",
    "register_task",
    "silog_loss",
    "ssi_loss",
]
