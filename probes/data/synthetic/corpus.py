"""`synthetic:mix[:N]`: the pretraining corpus, images of all three renderers with their instance masks.

Image i comes from renderer ("depth", "pose", "caption")[i % 3], seeded with
`SeedSequence([WORLD_SEED, task, PRETRAIN_STREAM, i // 3])`. The probe splits
use the same list with a split code 0..2 in third place, so the corpus draws
from seed streams disjoint from every probe split (train, val and test):
encoders pretrained on it have never seen an image they are probed on.

Samples: {"id", "task", "image" (PIL RGB), "masks" (N×H×W bool), "classes" (N names)}.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

from ..base import TaskDataset
from .instances import Instances, render_with_instances
from .world import SPLITS, WORLD_SEED

RENDERERS = ("depth", "pose", "caption")  # the order of world.image_rng's task codes
PRETRAIN_STREAM = 1000  # third seed entry; probe splits use SPLITS.index(split) = 0, 1, 2
DEFAULT_CORPUS_IMAGES = 3000
CORPUS_IMAGE_SIZE = (128, 128)  # the mini encoders' input size: no resizing

assert PRETRAIN_STREAM not in range(len(SPLITS))


def corpus_seed(index: int) -> tuple[str, list[int]]:
    """(renderer, seed entropy) of corpus image `index`."""
    task = RENDERERS[index % len(RENDERERS)]
    return task, [WORLD_SEED, RENDERERS.index(task), PRETRAIN_STREAM, index // len(RENDERERS)]


@lru_cache(maxsize=512)
def corpus_item(index: int, size: tuple[int, int]) -> tuple[str, np.ndarray, Instances]:
    task, entropy = corpus_seed(index)
    image, instances = render_with_instances(task, np.random.default_rng(entropy), size)
    image.flags.writeable = False
    instances.masks.flags.writeable = False
    return task, image, instances


class SyntheticMixDataset(TaskDataset):
    task = "segmentation"

    def __init__(
        self,
        *,
        source: str = "synthetic:mix",
        num_images: int = DEFAULT_CORPUS_IMAGES,
        image_size: tuple[int, int] = CORPUS_IMAGE_SIZE,
    ):
        self.source = source
        self.split = "pretrain"
        self.num_images = num_images
        self.image_size = tuple(image_size)

    def __len__(self) -> int:
        return self.num_images

    def render(self, index: int) -> tuple[str, np.ndarray, Instances]:
        """(renderer, H×W×3 uint8 read-only, Instances read-only) of image `index`."""
        if not 0 <= index < self.num_images:
            raise IndexError(f"{self.source}: index {index} outside 0..{self.num_images - 1}")
        return corpus_item(index, self.image_size)

    def __getitem__(self, index: int) -> dict[str, Any]:
        task, image, instances = self.render(index)
        return {
            "id": f"mix-{index:06d}",
            "task": task,
            "image": Image.fromarray(image.copy(), "RGB"),
            "masks": instances.masks.copy(),
            "classes": list(instances.classes),
        }
