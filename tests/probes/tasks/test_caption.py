"""Captioning: PTB-style tokenisation, BLEU-4 / CIDEr-D (pycocoevalcap)
against hand-computed values, CE loss."""

import math

import pytest
import torch

from probes.data import open_dataset
from probes.tasks import caption_metrics, get_task, ptb_tokenize
from tests.probes.fixtures import CAPTIONS, write_coco_captions


@pytest.mark.parametrize(
    ("raw", "tokens"),
    [
        ("A man riding a wave on top of a surfboard.", "a man riding a wave on top of a surfboard"),
        ("The dog's toy, isn't it?", "the dog 's toy is n't it"),
        ('A "red" (bright) T-shirt; 3.5 feet -- wow...', "a red bright t-shirt 3.5 feet wow"),
        ("  Two\ncats  !", "two cats"),
    ],
)
def test_tokenisation_follows_ptb_as_coco_caption_uses_it(raw, tokens):
    assert ptb_tokenize(raw) == tokens


def test_identical_captions_score_bleu4_one():
    refs = {1: ["A man rides a big wave.", "Someone surfing"], 2: ["Two dogs play with a frisbee."]}
    m = caption_metrics(refs, {1: "a man rides a big wave", 2: "Two dogs play with a Frisbee!"})
    assert m["BLEU-4"] == pytest.approx(1.0, abs=1e-6) and m["BLEU-1"] == pytest.approx(1.0, abs=1e-6)


def test_short_candidate_gets_the_brevity_penalty():
    m = caption_metrics({1: ["a b c d e f g h"]}, {1: "a b c d e f"})
    assert m["BLEU-4"] == pytest.approx(math.exp(1 - 8 / 6), rel=1e-6)


def test_cider_d_matches_the_hand_computed_tf_idf():
    # Every n-gram occurs in one image of two: idf = log 2 everywhere, so a candidate equal to a
    # reference has cosine 1 with it and 0 with an unrelated one; ×10, averaged over references.
    refs = {1: ["a b c d"], 2: ["e f g h"]}
    assert caption_metrics(refs, {1: "a b c d", 2: "e f g h"})["CIDEr-D"] == pytest.approx(10.0)
    refs[1].append("w x y z")
    assert caption_metrics(refs, {1: "a b c d", 2: "e f g h"})["CIDEr-D"] == pytest.approx(7.5)


def test_images_without_candidates_are_an_error():
    with pytest.raises(ValueError, match=r"images without a candidate \[2\]"):
        caption_metrics({1: ["a"], 2: ["b"]}, {1: "a"})


def test_cross_entropy_ignores_padding_and_vanishes_on_targets():
    labels = torch.tensor([[5, 2, -100], [1, -100, -100]])
    logits = torch.full((2, 3, 8), -50.0)
    for b, t in ((0, 0), (0, 1), (1, 0)):
        logits[b, t, labels[b, t]] = 50.0
    logits[0, 2] = torch.randn(8)  # padded positions do not count
    task = get_task("caption")
    assert task.make_targets([], (3,)) == {}
    assert task.loss(logits, {"labels": labels}) == pytest.approx(0, abs=1e-6)
    uniform = torch.zeros(2, 3, 8, requires_grad=True)
    loss = task.loss(uniform, {"labels": labels})
    loss.backward()
    assert loss.item() == pytest.approx(math.log(8)) and uniform.grad.abs().sum() > 0


def test_decode_and_evaluate_on_a_coco_captions_dataset(tmp_path):
    ann, img = write_coco_captions(tmp_path)
    ds = open_dataset(f"coco-caps:{ann}:{img}")
    task = get_task("caption")
    samples = [ds[i] for i in range(len(ds))]
    preds = task.decode([CAPTIONS[s["id"]][0] + " " for s in samples], samples)
    assert preds[0] == {"image_id": 1, "caption": CAPTIONS[1][0]}
    m = task.evaluate(preds, ds)
    assert m["BLEU-4"] == pytest.approx(1.0, abs=1e-6) and m["CIDEr-D"] > 1.0
    assert m == caption_metrics(
        {s["id"]: s["captions"] for s in samples}, {p["image_id"]: p["caption"] for p in preds}
    )
    with pytest.raises(ValueError, match=r"without a candidate \[3\]"):
        task.evaluate(preds[:2], ds)


def test_per_image_cider_averages_to_the_corpus_cider(tmp_path):
    ann, img = write_coco_captions(tmp_path)
    ds = open_dataset(f"coco-caps:{ann}:{img}")
    preds = [{"image_id": i, "caption": "a cat on a mat" if i == 1 else CAPTIONS[i][0]} for i in ds.image_ids]
    metrics, per = get_task("caption").evaluate_per_image(preds, ds)
    assert per["ids"] == [str(i) for i in ds.image_ids] and per["weights"] is None
    cider = per["scores"]["CIDEr-D"]
    assert sum(cider) / len(cider) == pytest.approx(metrics["CIDEr-D"], abs=1e-12)
    assert cider[0] < min(cider[1:])  # the wrong caption scores lowest
