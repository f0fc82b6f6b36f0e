"""Pretrained heads from HF transformers, run behind a neck instead of their own encoder.

    Depth Anything (Yang et al., 2024): DPT neck + head over 4 DINOv2 hidden states (with CLS)
    ViTPose (Xu et al., 2022): simple/classic decoder over the last ViT feature map → 17 heatmaps
    BLIP (Li et al., 2022): BERT text decoder cross-attending to the ViT's `image_embeds`

For each we keep the model's own task part (neck/head/decoder) and feed it the
neck's tokens where the model would feed its backbone's; the backbone stays as
the distillation `teacher`. Loaded with `from_pretrained(LOCAL_DIR_OR_HUB_ID)`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from codec.registry import Registry

from .base import IMAGENET_MEAN, IMAGENET_STD, CaptionHead, FrozenHead, HeadError
from .spec import TokenSpec

log = logging.getLogger(__name__)

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _offline() -> bool:
    from huggingface_hub.constants import HF_HUB_OFFLINE

    return bool(HF_HUB_OFFLINE) or os.environ.get("TRANSFORMERS_OFFLINE", "0") in ("1", "true", "True")


def _from_pretrained(cls, source: str, what: str, **kwargs):
    """`cls.from_pretrained(source)`, local only when offline, with an error naming the source."""
    try:
        return cls.from_pretrained(source, local_files_only=_offline() or Path(source).is_dir(), **kwargs)
    except (OSError, ValueError) as e:
        hint = (
            ""
            if Path(source).is_dir()
            else f" (download it first: `hf download {source}`, or pass a local directory)"
        )
        raise HeadError(f"cannot load {what} from {source!r}{hint}: {e}") from e


def _image_stats(source: str, default_mean, default_std) -> tuple[tuple, tuple]:
    """mean/std from the checkpoint's preprocessor_config.json when it has one."""
    from transformers.utils import cached_file

    try:
        path = cached_file(
            source,
            "preprocessor_config.json",
            local_files_only=True,
            _raise_exceptions_for_missing_entries=False,
        )
    except OSError:
        path = None
    if not path:
        return default_mean, default_std
    config = json.loads(Path(path).read_text())
    return tuple(config.get("image_mean", default_mean)), tuple(config.get("image_std", default_std))


class HFHead(FrozenHead):
    """A head around a transformers model (`self.model`)."""

    def describe(self) -> dict:
        # the hub commit the checkpoint resolved to (None for a local directory)
        revision = getattr(self.model.config, "_commit_hash", None)
        return {**super().describe(), "model_type": self.model.config.model_type, "revision": revision}


class DepthAnythingHead(HFHead):
    """`DepthAnythingForDepthEstimation`'s DPT neck + depth head; expects its 4 hidden states.

    The teacher sees a square `image_size` input (518 px for V2: 37×37 patches), the
    same pixels the encoder sees, where the HF processor would keep the aspect ratio.
    """

    task = "depth"

    def __init__(self, model, spec: str, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        backbone_config = model.config.backbone_config
        size = _pair(backbone_config.image_size)
        patch = _pair(model.config.patch_size)
        super().__init__(spec, size, mean, std)
        self.model = model
        self.grid = (size[0] // patch[0], size[1] // patch[1])
        self.output_kind = (
            "metric-depth" if model.config.depth_estimation_type == "metric" else "relative-disparity"
        )
        self.freeze()

    def expects(self) -> TokenSpec:
        return TokenSpec(
            self.grid,
            self.model.config.backbone_config.hidden_size,
            len(self.model.config.neck_hidden_sizes),
            True,
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self.expects().check(tokens, f"{self.spec} input")
        hidden = self.model.neck(list(tokens.unbind(1)), *self.grid)
        return self.model.head(hidden, *self.grid)

    @torch.no_grad()
    def teacher(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.model.backbone(pixels).feature_maps, dim=1)


class VitPoseHead(HFHead):
    """`VitPoseForPoseEstimation`'s decoder; expects the last backbone feature map (no CLS)."""

    task = "pose"

    def __init__(self, model, spec: str, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        backbone_config = model.config.backbone_config
        size, patch = _pair(backbone_config.image_size), _pair(backbone_config.patch_size)
        super().__init__(spec, size, mean, std)
        self.model = model
        self.grid = (size[0] // patch[0], size[1] // patch[1])
        self.freeze()

    def expects(self) -> TokenSpec:
        return TokenSpec(self.grid, self.model.config.backbone_config.hidden_size, 1, False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self.expects().check(tokens, f"{self.spec} input")
        fmap = tokens[:, 0].transpose(1, 2).reshape(tokens.shape[0], -1, *self.grid)
        return self.model.head(fmap)

    @torch.no_grad()
    def teacher(self, pixels: torch.Tensor) -> torch.Tensor:
        kwargs = {}
        if getattr(self.model.config.backbone_config, "num_experts", 1) > 1:  # ViTPose+: expert 0 = COCO
            kwargs["dataset_index"] = torch.zeros(pixels.shape[0], dtype=torch.long, device=pixels.device)
        return self.model.backbone(pixels, **kwargs).feature_maps[-1].unsqueeze(1)


class BlipCaptionHead(HFHead, CaptionHead):
    """`BlipForConditionalGeneration`'s text decoder; expects `image_embeds` (CLS + patches)."""

    def __init__(
        self, model, tokenizer, spec: str, mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD, max_length: int = 40
    ):
        vision = model.config.vision_config
        super().__init__(spec, _pair(vision.image_size), mean, std)
        self.model = model
        self.tokenizer = tokenizer
        self.grid = (vision.image_size // vision.patch_size,) * 2
        self.max_length = max_length
        text = model.config.text_config
        self.bos_token_id, self.sep_token_id, self.pad_token_id = (
            text.bos_token_id,
            text.sep_token_id,
            text.pad_token_id,
        )
        self.freeze()

    def expects(self) -> TokenSpec:
        return TokenSpec(self.grid, self.model.config.vision_config.hidden_size, 1, True)

    def tokenize(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(
            list(captions),
            padding="longest",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        input_ids = enc["input_ids"].clone()
        input_ids[:, 0] = self.bos_token_id  # BLIP replaces [CLS] by its [DEC] token to start decoding
        labels = input_ids.masked_fill(enc["attention_mask"] == 0, -100)[:, 1:]
        return {"input_ids": input_ids, "attention_mask": enc["attention_mask"], "labels": labels}

    def forward(
        self, tokens: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        self.expects().check(tokens, f"{self.spec} input")
        out = self.model.text_decoder(
            input_ids=input_ids, attention_mask=attention_mask, encoder_hidden_states=tokens[:, 0]
        )
        return out.logits[:, :-1]  # position t predicts token t+1 = labels[:, t]

    @torch.no_grad()
    def generate(self, tokens: torch.Tensor, *, max_new_tokens: int = 20, num_beams: int = 1) -> list[str]:
        # BlipForConditionalGeneration.generate only takes pixel_values (it runs its own vision
        # model), so we drive its text decoder the same way with the neck's tokens instead.
        image_embeds = tokens[:, 0]
        b = image_embeds.shape[0]
        input_ids = torch.full((b, 1), self.bos_token_id, dtype=torch.long, device=image_embeds.device)
        out = self.model.text_decoder.generate(
            input_ids=input_ids,
            eos_token_id=self.sep_token_id,
            pad_token_id=self.pad_token_id,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=torch.ones(
                image_embeds.shape[:2], dtype=torch.long, device=image_embeds.device
            ),
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            do_sample=False,
        )
        return [s.strip() for s in self.tokenizer.batch_decode(out, skip_special_tokens=True)]

    @torch.no_grad()
    def teacher(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.vision_model(pixel_values=pixels).last_hidden_state.unsqueeze(1)


# builder(source, spec) -> FrozenHead, by the checkpoint's transformers `model_type`
HF_HEADS: Registry[Callable[[str, str], FrozenHead]] = Registry("transformers head", error=HeadError)
register_hf_head = HF_HEADS.register


def load_hf_head(source: str, spec: str | None = None) -> FrozenHead:
    """A frozen head from a local directory or hub id; the model type picks the builder in `HF_HEADS`."""
    from transformers import AutoConfig

    config = _from_pretrained(AutoConfig, source, "a transformers config")
    if config.model_type not in HF_HEADS:
        raise HeadError(
            f"{source!r}: model type {config.model_type!r} is not a supported head; "
            f"choose from {', '.join(HF_HEADS.names())}"
        )
    return HF_HEADS.get(config.model_type)(source, spec or f"hf:{source}")


@register_hf_head("depth_anything")
def _depth_anything(source: str, spec: str) -> FrozenHead:
    from transformers import DepthAnythingForDepthEstimation

    model = _from_pretrained(
        DepthAnythingForDepthEstimation, source, "DepthAnythingForDepthEstimation", dtype=torch.float32
    )
    return DepthAnythingHead(model, spec, *_image_stats(source, IMAGENET_MEAN, IMAGENET_STD))


@register_hf_head("vitpose")
def _vitpose(source: str, spec: str) -> FrozenHead:
    from transformers import VitPoseForPoseEstimation

    model = _from_pretrained(
        VitPoseForPoseEstimation, source, "VitPoseForPoseEstimation", dtype=torch.float32
    )
    return VitPoseHead(model, spec, *_image_stats(source, IMAGENET_MEAN, IMAGENET_STD))


@register_hf_head("blip")
def _blip(source: str, spec: str) -> FrozenHead:
    from transformers import AutoTokenizer, BlipForConditionalGeneration

    model = _from_pretrained(
        BlipForConditionalGeneration, source, "BlipForConditionalGeneration", dtype=torch.float32
    )
    tokenizer = _from_pretrained(AutoTokenizer, source, "the BLIP tokenizer")
    return BlipCaptionHead(model, tokenizer, spec, *_image_stats(source, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD))
