"""Probe tasks: targets, losses, decoding and the field's metrics (depth, pose, caption)."""

from .base import TASKS, Task, get_task, register_task
from .caption import CaptionTask, caption_metrics, ptb_tokenize
from .depth import DepthTask, align_depth, depth_metrics, fit_scale_shift, silog_loss, ssi_loss
from .pose import PoseTask, decode_heatmaps, encode_heatmaps, keypoint_ap

__all__ = [
    "TASKS",
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
    "ptb_tokenize",
    "register_task",
    "silog_loss",
    "ssi_loss",
]
