"""The pretraining corpus (`synthetic:mix`) and the held-out evaluation images, as in-memory arrays.

Images are uint8 N×H×W×3; instances are a uint8 label map N×H×W (0 = no
instance, k = the k-th mask of the image; synthetic masks never overlap) so a
few thousand images fit in ~200 MB. The corpus is rendered once and cached
in the recipe's output directory (`corpus-N.npz`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import open_dataset
from ..data.synthetic.corpus import RENDERERS, SyntheticMixDataset
from ..encoders.spec import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)


@dataclass
class ImageSet:
    images: np.ndarray  # N×H×W×3 uint8
    labels: np.ndarray  # N×H×W uint8 instance ids (0: none)
    renderer: np.ndarray  # N int8 index into RENDERERS

    def __len__(self) -> int:
        return len(self.images)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, images=self.images, labels=self.labels, renderer=self.renderer)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> ImageSet:
        with np.load(path, allow_pickle=False) as f:
            return cls(f["images"], f["labels"], f["renderer"])


def _label_map(masks: np.ndarray) -> np.ndarray:
    labels = np.zeros(masks.shape[1:], dtype=np.uint8)
    for k, m in enumerate(masks[:255]):
        labels[m] = k + 1
    return labels


def render_corpus(num_images: int, size: int, progress=None) -> ImageSet:
    ds = SyntheticMixDataset(num_images=num_images, image_size=(size, size))
    images = np.zeros((num_images, size, size, 3), dtype=np.uint8)
    labels = np.zeros((num_images, size, size), dtype=np.uint8)
    renderer = np.zeros(num_images, dtype=np.int8)
    for i in range(num_images):
        task, image, instances = ds.render(i)
        images[i], labels[i], renderer[i] = image, _label_map(instances.masks), RENDERERS.index(task)
        if progress is not None:
            progress.update(1)
    return ImageSet(images, labels, renderer)


def load_or_render_corpus(directory: Path, num_images: int, size: int, progress=None) -> ImageSet:
    path = directory / f"corpus-{num_images}-{size}px.npz"
    if path.is_file():
        return ImageSet.load(path)
    corpus = render_corpus(num_images, size, progress)
    corpus.save(path)
    return corpus


def held_out_images(per_task: int, size: int, split: str = "test") -> ImageSet:
    """The first `per_task` images of each probe task's `split`, rendered at size×size with their instances:
    images no pretraining step has seen (the corpus uses other seeds)."""
    images, labels, renderer = [], [], []
    for t, task in enumerate(RENDERERS):
        ds = open_dataset(f"synthetic:{task}:{per_task}", split=split, image_size=(size, size))
        for i in range(per_task):
            if task == "pose":
                image = ds.image(ds.image_ids[i])
            else:
                image = ds[i]["image"]
            images.append(np.asarray(image.convert("RGB")))
            labels.append(_label_map(ds.instances(i).masks))
            renderer.append(t)
    return ImageSet(np.stack(images), np.stack(labels), np.asarray(renderer, dtype=np.int8))


def to_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 N×H×W×3 → normalised float N×3×H×W, as the encoders' preprocessing gives."""
    from ..encoders.preprocess import normalize_uint8

    return normalize_uint8(
        torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2), IMAGENET_MEAN, IMAGENET_STD
    )


def sample_batch(data: ImageSet, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random batch with random horizontal flips (the only augmentation: the renders vary enough)."""
    idx = rng.integers(0, len(data), batch)
    images, labels = data.images[idx], data.labels[idx]
    flip = rng.random(batch) < 0.5
    images[flip] = images[flip, :, ::-1]
    labels[flip] = labels[flip, :, ::-1]
    return images, labels
