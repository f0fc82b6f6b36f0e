"""Training necks (and built-in heads) against frozen task heads; the neck directory format."""

from .loop import TrainNeckOptions, batch_indices, distillation_loss, learning_rate, train_neck
from .neck_dir import NeckDirError, load_neck, read_neck_config
from .sources import CodecRoundTrip, build_feature_source, decode_through_codec
from .tasks import open_task_data, predict, task_for, task_loss

__all__ = [
    "CodecRoundTrip",
    "NeckDirError",
    "TrainNeckOptions",
    "batch_indices",
    "build_feature_source",
    "decode_through_codec",
    "distillation_loss",
    "learning_rate",
    "load_neck",
    "open_task_data",
    "predict",
    "read_neck_config",
    "task_for",
    "task_loss",
    "train_neck",
]
