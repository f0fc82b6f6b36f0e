"""Built-in light heads, trained by featcodec itself (jointly with a neck) and then frozen.

For users without a pretrained head; small on purpose, each after the simplest
decoder of its field:

    depth   tokens → map → conv → [ReLU → ×2 bilinear → conv3×3]×k → ReLU → 1×1 → softplus (DPT-lite,
    relative disparity) pose    tokens → map → [deconv 4×4/2 → ReLU]×2 → 1×1 → 17 heatmaps
    (ViTPose classic decoder) caption word tokens ─► L × pre-norm TransformerDecoderLayer (cross-attends to
    the tokens) ─► vocabulary logits

A new head (`builtin-new:TASK`) has no encoder of its own, hence no distillation
teacher. The pretrained heads shipped with featcodec (`builtin:TASK`, see
`probes.heads.pretrain`) were trained end to end with a small encoder of their
own (`teacher.TinyViT`, config "teacher"), which `teacher()` runs for `--kd`.
A head directory holds `config.json` ("format": "featcodec-head") + `weights.safetensors`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from codec.registry import Registry

from .base import CaptionHead, FrozenHead, HeadError
from .spec import TokenSpec
from .teacher import TinyViT

COCO_KEYPOINTS = 17


def _to_map(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    return tokens[:, 0].transpose(1, 2).reshape(tokens.shape[0], -1, *grid)


class BuiltinHead(FrozenHead):
    """Common part: a fixed token spec, a JSON config, and a teacher encoder when pretrained with one.

    `patch` is the teacher's (and the preprocessed image's) pixels per token: input_size = grid × patch.
    """

    defaults: dict = {}

    def __init__(
        self,
        spec: str,
        grid=(16, 16),
        width: int = 128,
        patch: int = 16,
        teacher: dict | None = None,
        **options,
    ):
        super().__init__(spec, (grid[0] * patch, grid[1] * patch))
        self.grid = (int(grid[0]), int(grid[1]))
        self.width = int(width)
        self.patch = int(patch)
        self.options = {**self.defaults, **options}
        self.teacher_config = dict(teacher) if teacher else None
        # built before the task layers, so a seed fixes the teacher's initial weights whatever the head
        self.encoder = TinyViT(self.grid, self.width, self.patch, **self.teacher_config) if teacher else None
        self.has_teacher = self.encoder is not None
        self.trained = False

    def expects(self) -> TokenSpec:
        return TokenSpec(self.grid, self.width, 1, False)

    def config(self) -> dict:
        out = {"grid": list(self.grid), "width": self.width, "patch": self.patch, **self.options}
        if self.teacher_config:
            out["teacher"] = self.teacher_config
        return out

    @torch.no_grad()
    def teacher(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.encoder is None:
            return super().teacher(pixels)  # raises: a new head has no encoder of its own
        return self.encoder(pixels)

    def unfreeze(self) -> BuiltinHead:
        super().unfreeze()
        if self.encoder is not None:  # fine-tuning a pretrained head moves its decoder, never the KD target
            self.encoder.requires_grad_(False)
        return self

    def describe(self) -> dict:
        return {**super().describe(), "builtin": self.config(), "trained": self.trained}


BUILTIN_HEADS: Registry[type[BuiltinHead]] = Registry("built-in head", attribute="task", error=HeadError)
register_builtin_head = BUILTIN_HEADS.register  # by task; sets the class's `task`


@register_builtin_head("depth")
class BuiltinDepthHead(BuiltinHead):
    output_kind = "relative-disparity"
    defaults = {"channels": 64, "upsample": 3}

    def __init__(self, spec: str = "builtin-new:depth", grid=(16, 16), width: int = 128, **options):
        super().__init__(spec, grid, width, **options)
        c, k = int(self.options["channels"]), int(self.options["upsample"])
        self.stem = nn.Conv2d(self.width, c, 3, padding=1)
        self.ups = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for _ in range(k))
        self.out = nn.Conv2d(c, 1, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self.expects().check(tokens, f"{self.spec} input")
        x = self.stem(_to_map(tokens, self.grid))
        for conv in self.ups:
            x = conv(F.interpolate(F.relu(x), scale_factor=2, mode="bilinear", align_corners=False))
        # softplus, not ReLU: a head trained from scratch must not be able to die into a constant 0 map
        return F.softplus(self.out(F.relu(x))).squeeze(1)


@register_builtin_head("pose")
class BuiltinPoseHead(BuiltinHead):
    defaults = {"channels": 128}

    def __init__(self, spec: str = "builtin-new:pose", grid=(16, 12), width: int = 128, **options):
        super().__init__(spec, grid, width, **options)
        c = int(self.options["channels"])
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(self.width, c, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(c, c, 4, stride=2, padding=1),
            nn.ReLU(),
        )
        self.out = nn.Conv2d(c, COCO_KEYPOINTS, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self.expects().check(tokens, f"{self.spec} input")
        return self.out(self.deconv(_to_map(tokens, self.grid)))


PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def caption_words(caption: str) -> list[str]:
    """Lower-cased words and numbers: the word-level tokenisation of the built-in caption head."""
    return _WORD.findall(caption.lower())


def build_vocabulary(captions: Iterable[str], max_size: int = 10000, min_count: int = 1) -> list[str]:
    counts = Counter(w for c in captions for w in caption_words(c))
    words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    return [PAD, BOS, EOS, UNK, *words[: max_size - 4]]


@register_builtin_head("caption")
class BuiltinCaptionHead(BuiltinHead, CaptionHead):
    defaults = {"layers": 2, "heads": 4, "max_length": 24}

    def __init__(
        self, spec: str = "builtin-new:caption", grid=(12, 12), width: int = 128, vocab=None, **options
    ):
        super().__init__(spec, grid, width, **options)
        if not vocab or list(vocab[:4]) != [PAD, BOS, EOS, UNK]:
            raise ValueError(
                "the built-in caption head needs a vocabulary from build_vocabulary(training captions)"
            )
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        d, n = self.width, int(self.options["max_length"]) + 1
        self.embed = nn.Embedding(len(self.vocab), d)
        self.pos = nn.Parameter(torch.zeros(1, n, d))
        layer = nn.TransformerDecoderLayer(
            d, self.options["heads"], 4 * d, dropout=0.0, batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, self.options["layers"])
        self.norm = nn.LayerNorm(d)
        self.lm = nn.Linear(d, len(self.vocab))
        nn.init.trunc_normal_(self.pos, std=0.02)

    def config(self) -> dict:
        return {**super().config(), "vocab": self.vocab}

    def tokenize(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        m = int(self.options["max_length"])
        seqs = [[1, *(self.index.get(w, 3) for w in caption_words(c))][:m] + [2] for c in captions]
        t = max(map(len, seqs))
        input_ids = torch.zeros(len(seqs), t, dtype=torch.long)
        for i, s in enumerate(seqs):
            input_ids[i, : len(s)] = torch.tensor(s)
        attention_mask = (torch.arange(t) < torch.tensor([len(s) for s in seqs])[:, None]).long()
        labels = input_ids.masked_fill(attention_mask == 0, -100)[:, 1:]
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}

    def _logits(self, tokens: torch.Tensor, input_ids: torch.Tensor, attention_mask=None) -> torch.Tensor:
        t = input_ids.shape[1]
        x = self.embed(input_ids) + self.pos[:, :t]
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=x.device, dtype=x.dtype)
        pad = None  # float like the causal mask (mixing bool and float masks is deprecated in torch)
        if attention_mask is not None:
            pad = torch.zeros(attention_mask.shape, dtype=x.dtype, device=x.device)
            pad = pad.masked_fill(attention_mask == 0, float("-inf"))
        x = self.decoder(x, tokens[:, 0], tgt_mask=causal, tgt_key_padding_mask=pad, tgt_is_causal=True)
        return self.lm(self.norm(x))

    def forward(
        self, tokens: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        self.expects().check(tokens, f"{self.spec} input")
        return self._logits(tokens, input_ids, attention_mask)[:, :-1]

    @torch.no_grad()
    def generate(self, tokens: torch.Tensor, *, max_new_tokens: int = 20, num_beams: int = 1) -> list[str]:
        """Greedy decoding (`num_beams` is accepted for interface parity and ignored)."""
        b = tokens.shape[0]
        steps = min(max_new_tokens, int(self.options["max_length"]))
        ids = torch.full((b, 1), 1, dtype=torch.long, device=tokens.device)
        done = torch.zeros(b, dtype=torch.bool, device=tokens.device)
        for _ in range(steps):
            nxt = self._logits(tokens, ids)[:, -1].argmax(-1)
            nxt = nxt.masked_fill(done, 0)
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            done |= nxt == 2
            if done.all():
                break
        words = []
        for row in ids[:, 1:].tolist():
            out = []
            for i in row:
                if i in (0, 2):
                    break
                out.append(self.vocab[i])
            words.append(" ".join(out))
        return words
