"""Image captioning: teacher-forced cross-entropy, BLEU-4 and CIDEr-D.

Scores come from pycocoevalcap's `Bleu(4)` and `Cider` (the coco-caption
CIDEr-D: clipped tf-idf n-grams, Gaussian length penalty σ = 6, ×10, document
frequencies from the evaluated references) called directly. Its PTB
tokenizer, METEOR and SPICE need Java and downloads, so they are not used;
text is tokenised by `ptb_tokenize` instead, which reproduces what
coco-caption does with Stanford's PTBTokenizer: lower-case; split off the
clitics n't, 's, 're, 've, 'll, 'd, 'm; keep hyphenated words and decimals
whole; drop the punctuation tokens coco-caption removes (. , ? ! : ; - -- ...
quotes, brackets).
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch.nn.functional as F
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from torch import Tensor

from .base import Task, per_image_scores, register_task

IGNORE_INDEX = -100  # labels the loss skips (padding, prompt tokens)
# coco-caption's PUNCTUATIONS (after PTB's bracket/quote escaping), plus the raw brackets/quotes.
_DROP = {
    "''",
    "'",
    "``",
    "`",
    "-lrb-",
    "-rrb-",
    "-lcb-",
    "-rcb-",
    ".",
    "?",
    "!",
    ",",
    ":",
    "-",
    "--",
    "...",
    ";",
}
_DROP |= set('()[]{}"')
_TOKEN = re.compile(r"n't|'(?:s|re|ve|ll|d|m)\b|[a-z0-9]+(?:[-./][a-z0-9]+)*|\.\.\.|--|\S")


def ptb_tokenize(text: str) -> str:
    """Space-joined tokens, as coco-caption's PTBTokenizer would produce them (see module docstring)."""
    s = text.lower().replace("\n", " ").replace("\r", " ")
    s = re.sub(r"([a-z])n't\b", r"\1 n't", s)
    s = re.sub(r"'(s|re|ve|ll|d|m)\b", r" '\1", s)
    return " ".join(t for t in _TOKEN.findall(s) if t not in _DROP)


def caption_metrics(
    references: Mapping[Any, Sequence[str]], candidates: Mapping[Any, str]
) -> dict[str, float]:
    """Corpus BLEU-1..4 and CIDEr-D of one candidate per image against its references."""
    return caption_scores(references, candidates)[0]


def caption_scores(
    references: Mapping[Any, Sequence[str]], candidates: Mapping[Any, str]
) -> tuple[dict[str, float], dict]:
    """`caption_metrics` and the per-image CIDEr-D (pycocoevalcap's own per-image scores).

    Corpus CIDEr-D is the mean of the per-image scores; the document frequencies behind them come
    from all the evaluated references and stay fixed when a subset is averaged. BLEU is a corpus
    statistic (clipped counts summed before the ratio), not a mean of per-image BLEU, so it has none.
    """
    if set(references) != set(candidates):
        missing = sorted(set(references) - set(candidates), key=str)[:3]
        extra = sorted(set(candidates) - set(references), key=str)[:3]
        raise ValueError(
            f"captions: images without a candidate {missing}, candidates without references {extra}"
        )
    if not references:
        raise ValueError("captions: nothing to evaluate")
    gts = {k: [ptb_tokenize(r) for r in refs] for k, refs in references.items()}
    res = {k: [ptb_tokenize(candidates[k])] for k in references}
    with contextlib.redirect_stdout(io.StringIO()):  # Bleu prints its length ratios
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        cider, per_image = Cider().compute_score(gts, res)  # per image in the order of gts' keys
    out = {f"BLEU-{n + 1}": float(b) for n, b in enumerate(bleu)}
    out["CIDEr-D"] = float(cider)
    return out, per_image_scores(list(gts), {"CIDEr-D": list(per_image)})


@register_task("caption")
class CaptionTask(Task):
    def __init__(self, *, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing  # BLIP fine-tunes with 0.1

    def make_targets(
        self, samples: Sequence[dict[str, Any]], output_shape: Sequence[int]
    ) -> dict[str, Tensor]:
        """Nothing: tokenising captions into `labels` is the head's job (its own tokenizer)."""
        return {}

    def loss(self, outputs: Tensor, targets: dict[str, Tensor]) -> Tensor:
        """Cross-entropy of logits B×T×V against labels B×T (logits[:, t]
        predicts labels[:, t]; -100 ignored)."""
        labels = targets["labels"].to(outputs.device)
        if outputs.shape[:2] != labels.shape:
            raise ValueError(f"logits {tuple(outputs.shape)} and labels {tuple(labels.shape)} differ in B×T")
        return F.cross_entropy(
            outputs.flatten(0, 1).float(),
            labels.flatten(),
            ignore_index=IGNORE_INDEX,
            label_smoothing=self.label_smoothing,
        )

    def decode(self, outputs: Sequence[str], samples: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Generated captions as COCO results {"image_id", "caption"}."""
        return [
            {"image_id": s["id"], "caption": str(c).strip()} for c, s in zip(outputs, samples, strict=True)
        ]

    def evaluate_per_image(
        self, predictions: Sequence[dict[str, Any]], dataset: Any
    ) -> tuple[dict[str, float], dict]:
        candidates = {p["image_id"]: p["caption"] for p in predictions}
        references = {i: dataset.captions[i] for i in dataset.image_ids}
        return caption_scores(references, candidates)
