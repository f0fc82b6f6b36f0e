"""The frozen task head interface shared by pretrained (HF transformers) and built-in heads.

    tokens B×M×T×C (= expects()) ──forward──► task output
        depth:   B×H×W (`output_kind`: "relative-disparity" or "metric-depth")
        pose:    B×17×h×w heatmaps (COCO keypoint order)
        caption: logits B×T×V aligned with `tokenize()`'s labels (teacher forcing),
                 `generate(tokens) -> list[str]` for evaluation
    image ──preprocess──► pixels ──teacher──► the head's own encoder tokens (for distillation)

A head is frozen (no parameter requires grad, eval mode) but differentiable:
gradients flow through it into the neck.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from torch import nn

from codec.errors import InputError
from probes.encoders.spec import IMAGENET_MEAN, IMAGENET_STD

from .spec import TokenSpec


class HeadError(InputError):
    """A head spec or directory that cannot be loaded; the message names it."""


class FrozenHead(nn.Module):
    task: str = ""
    output_kind: str | None = None  # depth heads only
    has_teacher: bool = True

    def __init__(self, spec: str, input_size: tuple[int, int], mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.spec = spec
        self.input_size = (int(input_size[0]), int(input_size[1]))  # H × W of the head's own image input
        self.mean, self.std = tuple(mean), tuple(std)
        self.trainable = False

    # -- the interface ---------------------------------------------------------------------------------
    def expects(self) -> TokenSpec:
        raise NotImplementedError

    def teacher(self, pixels: torch.Tensor) -> torch.Tensor:
        """The head's own encoder tokens on `pixels` (from `preprocess`), B×M×T×C, without grad."""
        raise HeadError(
            f"head {self.spec!r} has no encoder of its own: knowledge distillation (--kd) needs one"
        )

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """PIL image → 3×H×W normalised pixels for `teacher` (square-free resize to `input_size`)."""
        from probes.encoders.preprocess import preprocess_image

        return preprocess_image(image, self.input_size, self.mean, self.std)

    def describe(self) -> dict:
        """What a results file records about this head."""
        return {
            "spec": self.spec,
            "class": type(self).__name__,
            "task": self.task,
            "expects": self.expects().to_dict(),
            "output_kind": self.output_kind,
            "input_size": list(self.input_size),
        }

    # -- frozen by default ----------------------------------------------------------------------------
    def freeze(self) -> FrozenHead:
        self.trainable = False
        self.requires_grad_(False)
        return self.train(False)

    def unfreeze(self) -> FrozenHead:
        """Built-in heads only: train jointly with the neck (`train-neck --train-head`)."""
        self.trainable = True
        self.requires_grad_(True)
        return self.train(True)

    def train(self, mode: bool = True) -> FrozenHead:
        return super().train(mode and self.trainable)


class CaptionHead(FrozenHead):
    """Captioning heads also tokenise (teacher forcing) and generate."""

    task = "caption"

    def tokenize(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        """→ {"input_ids", "attention_mask", "labels"}; labels[:, t] is the
        target of logits[:, t] (-100 = pad)."""
        raise NotImplementedError

    def generate(self, tokens: torch.Tensor, *, max_new_tokens: int = 20, num_beams: int = 1) -> list[str]:
        raise NotImplementedError
