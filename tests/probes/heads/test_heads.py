"""Frozen heads: the pretrained (tiny random HF configs) and built-in families behind one interface."""

from __future__ import annotations

import json

import pytest
import torch

from probes.encoders import get_spec
from probes.heads import (
    BlipCaptionHead,
    BuiltinCaptionHead,
    DepthAnythingHead,
    HeadError,
    VitPoseHead,
    load_head,
    save_builtin_head,
)
from probes.heads.builtin import build_vocabulary, caption_words
from probes.heads.tiny import save_tiny_head
from probes.necks import Neck

HF_CLASSES = {"depth": DepthAnythingHead, "pose": VitPoseHead, "caption": BlipCaptionHead}
CAPTIONS = ["a man riding a horse", "two dogs playing with a ball", "a cat on the sofa"]


@pytest.fixture(scope="module")
def hf_heads(tmp_path_factory):
    """Each tiny head saved with `save_pretrained` (the official layout) and loaded back by spec."""
    root = tmp_path_factory.mktemp("hf-heads")
    return {task: load_head(f"hf:{save_tiny_head(task, root / task)}") for task in HF_CLASSES}


def _pixels(head, batch=2):
    return torch.randn(batch, 3, *head.input_size)


def _outputs(head, tokens):
    if head.task == "caption":
        t = head.tokenize(CAPTIONS[: tokens.shape[0]])
        return head(tokens, t["input_ids"], t["attention_mask"]), t["labels"]
    return head(tokens), None


@pytest.mark.parametrize("task", list(HF_CLASSES))
def test_hf_head_loads_from_a_save_pretrained_directory(hf_heads, task):
    head = hf_heads[task]
    assert isinstance(head, HF_CLASSES[task]) and head.task == task
    assert not head.training and all(not p.requires_grad for p in head.parameters())
    head.train()
    assert not head.training  # frozen heads stay in eval mode


@pytest.mark.parametrize("task", list(HF_CLASSES))
def test_teacher_tokens_have_the_shape_the_head_expects(hf_heads, task):
    head = hf_heads[task]
    teacher = head.teacher(_pixels(head))
    assert tuple(teacher.shape) == head.expects().shape(2)
    out, _ = _outputs(head, teacher)
    assert out.shape[0] == 2 and torch.isfinite(out).all()


def test_depth_anything_behind_its_teacher_reproduces_the_full_model(hf_heads):
    head = hf_heads["depth"]
    pixels = _pixels(head)
    with torch.no_grad():
        full = head.model(pixel_values=pixels).predicted_depth
        ours = head(head.teacher(pixels))
    torch.testing.assert_close(ours, full)
    assert head.output_kind == "relative-disparity"


def test_vitpose_behind_its_teacher_reproduces_the_full_model(hf_heads):
    head = hf_heads["pose"]
    pixels = _pixels(head)
    with torch.no_grad():
        torch.testing.assert_close(head(head.teacher(pixels)), head.model(pixel_values=pixels).heatmaps)
    assert head(head.teacher(pixels)).shape[1] == 17


def test_blip_behind_its_teacher_reproduces_the_full_model(hf_heads):
    head = hf_heads["caption"]
    pixels = _pixels(head)
    t = head.tokenize(CAPTIONS[:2])
    with torch.no_grad():
        full = head.model(
            pixel_values=pixels, input_ids=t["input_ids"], attention_mask=t["attention_mask"]
        ).logits
        ours = head(head.teacher(pixels), t["input_ids"], t["attention_mask"])
    torch.testing.assert_close(ours, full[:, :-1])


@pytest.mark.parametrize("task", list(HF_CLASSES))
def test_one_training_step_updates_the_neck_and_never_the_head(hf_heads, task):
    head = hf_heads[task]
    shapes = get_spec("mini-hiera-random").shapes(64)
    neck = Neck(shapes, head.expects(), layers=1, dim=32, heads=4)
    before = {k: v.clone() for k, v in head.state_dict().items()}
    opt = torch.optim.AdamW(neck.parameters(), lr=1e-3)
    out, labels = _outputs(head, neck({n: torch.randn(2, *s) for n, s in shapes.items()}))
    if labels is not None:
        loss = torch.nn.functional.cross_entropy(out.flatten(0, 1), labels.flatten(), ignore_index=-100)
    else:
        loss = out.square().mean()
    loss.backward()
    assert all(p.grad is None for p in head.parameters())
    assert neck.embed["stage1"][1].weight.grad.abs().sum() > 0  # gradient flowed back through the head
    opt.step()
    for k, v in head.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_blip_generates_strings_from_neck_tokens(hf_heads):
    head = hf_heads["caption"]
    tokens = torch.randn(3, *head.expects().shape(1)[1:])
    captions = head.generate(tokens, max_new_tokens=6)
    assert len(captions) == 3 and all(isinstance(c, str) for c in captions)
    beams = head.generate(tokens, max_new_tokens=6, num_beams=2)
    assert len(beams) == 3


def test_blip_tokenize_starts_with_dec_and_masks_padding(hf_heads):
    head = hf_heads["caption"]
    t = head.tokenize(["a dog", "a man riding a horse"])
    assert (t["input_ids"][:, 0] == head.bos_token_id).all()
    assert t["labels"].shape[1] == t["input_ids"].shape[1] - 1
    assert (t["labels"][0] == -100).sum() == (t["attention_mask"][0] == 0).sum()


def test_missing_hf_source_is_a_clear_error(tmp_path):
    with pytest.raises(HeadError, match="no-such-head"):
        load_head(f"hf:{tmp_path / 'no-such-head'}")


def test_unsupported_model_type_is_a_clear_error(tmp_path):
    from transformers import BertConfig

    BertConfig(
        hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8
    ).save_pretrained(tmp_path)
    with pytest.raises(HeadError, match="'bert' is not a supported head"):
        load_head(str(tmp_path))


def test_unknown_spec_is_a_clear_error():
    with pytest.raises(HeadError, match="builtin:depth"):
        load_head("builtin:segmentation")
    with pytest.raises(HeadError, match="builtin-new:depth"):
        load_head("builtin-new:segmentation")
    with pytest.raises(HeadError, match="expected hf:"):
        load_head("no/such/dir")


@pytest.mark.parametrize("task", ["depth", "pose"])
def test_new_builtin_dense_heads_shapes_and_save_load(tmp_path, task):
    head = load_head(f"builtin-new:{task}")
    assert not head.has_teacher
    tokens = torch.randn(2, *head.expects().shape(1)[1:])
    out = head(tokens)
    if task == "depth":
        assert out.shape == (2, 128, 128) and (out >= 0).all() and head.output_kind == "relative-disparity"
    else:
        assert out.shape == (2, 17, 64, 48)
    head.trained = True
    save_builtin_head(head, tmp_path / "head")
    assert json.loads((tmp_path / "head" / "config.json").read_text())["trained"] is True
    again = load_head(str(tmp_path / "head"))
    torch.testing.assert_close(again(tokens), out)
    with pytest.raises(HeadError, match="no encoder of its own"):
        head.teacher(torch.randn(1, 3, 8, 8))


def test_new_builtin_caption_head_vocabulary_training_and_generation(tmp_path):
    with pytest.raises(HeadError, match="training captions"):
        load_head("builtin-new:caption")
    head = load_head("builtin-new:caption", captions=CAPTIONS)
    assert head.vocab[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"] and "horse" in head.vocab
    assert caption_words("A Man's dog, 2 cats.") == ["a", "man's", "dog", "2", "cats"]
    head.unfreeze()
    tokens = torch.randn(3, *head.expects().shape(1)[1:])
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    t = head.tokenize(CAPTIONS)
    losses = []
    for _ in range(30):
        logits = head(tokens, t["input_ids"], t["attention_mask"])
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), t["labels"].flatten(), ignore_index=-100
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    head.freeze()
    assert head.generate(tokens, max_new_tokens=10) == CAPTIONS  # memorised: greedy decoding recovers them
    head.trained = True
    save_builtin_head(head, tmp_path / "cap")
    again = load_head(str(tmp_path / "cap"))
    assert isinstance(again, BuiltinCaptionHead) and again.generate(tokens, max_new_tokens=10) == CAPTIONS


def test_vocabulary_is_ordered_by_frequency():
    vocab = build_vocabulary(["b a a", "c a b"])
    assert vocab[4:] == ["a", "b", "c"]
