"""Instance masks of every synthetic source, and the synthetic:mix corpus's seeds
(disjoint from every probe split)."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from probes.data import DatasetError, open_dataset
from probes.data.synthetic.corpus import PRETRAIN_STREAM, RENDERERS, corpus_seed
from probes.data.synthetic.people import sample_people_scene
from probes.data.synthetic.rooms import SURFACES
from probes.data.synthetic.world import SPLITS, WORLD_SEED, image_rng


@pytest.mark.parametrize("task", ["depth", "pose", "caption"])
def test_every_source_yields_disjoint_instance_masks_with_classes(task):
    ds = open_dataset(f"synthetic:{task}:3", split="val")
    for i in range(3):
        inst = ds.instances(i)
        assert inst.masks.dtype == bool and inst.masks.shape[1:] == (144, 192) and len(inst) >= 1
        assert (inst.masks.sum(0) <= 1).all(), "an image's instances never overlap"
        assert all(m.any() for m in inst.masks)
        assert inst.classes and all(isinstance(c, str) for c in inst.classes)


def test_room_instances_are_the_ray_cast_objects_and_surfaces():
    ds = open_dataset("synthetic:depth:2")
    render = ds.render(0)
    inst = ds.instances(0)
    objects = [k for k in range(len(render.room.objects)) if (render.surface == len(SURFACES) + k).any()]
    assert inst.classes[: len(objects)] == [render.room.objects[k].kind for k in objects]
    assert set(inst.classes) <= {"sphere", "box", "floor", "ceiling", "wall"}
    assert inst.masks.sum(0).all(), "every pixel of a room belongs to an object or a surface"


def test_people_instances_are_the_coco_silhouettes():
    ds = open_dataset("synthetic:pose:4", split="test")
    for i, image_id in enumerate(ds.image_ids):
        inst = ds.instances(i)
        people = [m for m, c in zip(inst.masks, inst.classes, strict=True) if c == "person"]
        anns = ds.coco.imgToAnns[image_id]
        decoded = [mask_utils.decode(a["segmentation"]).astype(bool) for a in anns]
        # every annotated person is one of the instance masks, pixel for pixel
        assert all(any(np.array_equal(d, m) for m in people) for d in decoded)
        scene = sample_people_scene(image_rng("pose", "test", i), (144, 192))
        assert inst.classes.count("crate") == (scene.crate is not None)


def test_shape_instances_cover_the_shapes_colours():
    ds = open_dataset("synthetic:caption:2", split="test")
    inst = ds.instances(0)
    image = np.asarray(ds[0]["image"]).astype(int)
    background = image[~inst.masks.any(0)].mean(0)
    for m in inst.masks:
        assert np.abs(image[m].mean(0) - background).sum() > 30, "a mask lies on a shape, not on background"


def test_mix_corpus_draws_all_renderers_with_masks():
    ds = open_dataset("synthetic:mix:6")
    assert len(ds) == 6 and [ds[i]["task"] for i in range(6)] == list(RENDERERS) * 2
    s = ds[0]
    assert s["image"].size == (128, 128) and s["masks"].shape[1:] == (128, 128) and len(s["classes"]) >= 1
    assert len(open_dataset("synthetic:mix")) == 3000
    with pytest.raises(DatasetError, match="one split"):
        open_dataset("synthetic:mix:4", split="test")
    with pytest.raises(DatasetError, match="positive number"):
        open_dataset("synthetic:mix:0")


def test_corpus_seeds_are_disjoint_from_every_probe_split():
    corpus = {tuple(corpus_seed(i)[1]) for i in range(3000)}
    probe = {(WORLD_SEED, t, s, i) for t in range(3) for s in range(len(SPLITS)) for i in range(10_000)}
    assert not corpus & probe and PRETRAIN_STREAM not in range(len(SPLITS))
    # and, on pixels: no corpus image is an image of any probe split at the same size
    mix = open_dataset("synthetic:mix:9", image_size=(144, 192))
    corpus_pixels = {np.asarray(mix[i]["image"]).tobytes() for i in range(9)}
    for task in ("depth", "caption"):
        for split in SPLITS:
            ds = open_dataset(f"synthetic:{task}:3", split=split)
            assert not corpus_pixels & {np.asarray(ds[i]["image"]).tobytes() for i in range(3)}
