"""The frozen-encoder module every family returns: pixels in, named feature maps out."""

from __future__ import annotations

import logging

import torch
from PIL import Image
from torch import nn

from .preprocess import preprocess_image
from .spec import EncoderSpec

log = logging.getLogger(__name__)

RANDOM_INIT = "random-init"


class FrozenEncoder(nn.Module):
    """A frozen encoder in eval mode; subclasses implement `_levels(pixels) -> list[Tensor]`.

    `weights_id` says where the weights came from: the sha256 of a checkpoint
    file, "pretrained:<tag>", or "random-init" (outputs are then marked so).
    """

    def __init__(self, spec: EncoderSpec, model: nn.Module, resolution: int, weights_id: str):
        super().__init__()
        self.spec = spec
        self.model = model
        self.resolution = spec.check_resolution(resolution)
        self.weights_id = weights_id
        self.requires_grad_(False)
        self.eval()

    @property
    def random_init(self) -> bool:
        return self.weights_id == RANDOM_INIT

    def train(self, mode: bool = True) -> FrozenEncoder:  # frozen: always eval
        return super().train(False)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return preprocess_image(image, self.resolution, self.spec.mean, self.spec.std)

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """pixels: B×3×R×R normalised → {level: B×C×H×W}; inference tensors (clone before autograd)."""
        if pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ValueError(f"{self.spec.name}: expected pixels B×3×H×W, got {tuple(pixels.shape)}")
        with torch.inference_mode():
            maps = self._levels(pixels)
        return {level.name: m for level, m in zip(self.spec.levels, maps, strict=True)}

    def _levels(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError
