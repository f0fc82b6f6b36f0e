"""Training necks (and built-in heads) against frozen task heads; the neck directory format."""

from .loop import TrainNeckOptions, distillation_loss, learning_rate, torchrun_command, train_neck
from .neck_dir import NeckDirError, load_neck, read_neck_config
from .objectives import open_task_data, predict, task_for, task_loss
from .sources import CodecRoundTrip, build_feature_source

__all__ = [
    "CodecRoundTrip",
    "NeckDirError",
    "TrainNeckOptions",
    "build_feature_source",
    "distillation_loss",
    "learning_rate",
    "load_neck",
    "open_task_data",
    "predict",
    "read_neck_config",
    "task_for",
    "task_loss",
    "torchrun_command",
    "train_neck",
]
