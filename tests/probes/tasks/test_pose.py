"""Pose: UDP heatmap encode/decode, weighted MSE, COCO keypoint AP (pycocotools OKS)."""

import numpy as np
import pytest
import torch

from probes.data import CropTransform, open_dataset
from probes.tasks import decode_heatmaps, encode_heatmaps, get_task, keypoint_ap
from tests.probes.fixtures import write_coco_keypoints

COCO_SIGMAS = (
    np.array(
        [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
    )
    / 10.0
)


@pytest.fixture
def coco(tmp_path):
    ann, img = write_coco_keypoints(tmp_path)
    return open_dataset(f"coco-kpts:{ann}:{img}")


def _gt_keypoints(ds, ann_id):
    return np.array(ds.coco.anns[ann_id]["keypoints"], dtype=float).reshape(17, 3)


def _gt_detections(ds, shift=None):
    dets = []
    for ann_id in (s["ann_id"] for s in ds.samples):
        k = _gt_keypoints(ds, ann_id)
        if shift is not None:
            k[:, 0] += shift(ds.coco.anns[ann_id])
        dets.append(
            {
                "image_id": ds.coco.anns[ann_id]["image_id"],
                "category_id": 1,
                "keypoints": k.reshape(-1).tolist(),
                "score": 1.0,
            }
        )
    return dets


@pytest.mark.parametrize(("refine", "tolerance"), [("quarter", 0.5), ("dark", 0.01)])
def test_heatmap_round_trip_recovers_keypoints(refine, tolerance):
    rng = np.random.default_rng(0)
    kpts = np.concatenate([rng.uniform(12, [180, 244], (17, 2)), np.full((17, 1), 2.0)], 1)
    maps, weights = encode_heatmaps(kpts, (256, 192), (64, 48), sigma=2.0)
    assert maps.shape == (17, 64, 48) and weights.tolist() == [1.0] * 17
    coords, maxvals = decode_heatmaps(maps[None], refine)
    in_heatmap = kpts[:, :2] * np.array([47 / 191, 63 / 255])
    assert np.abs(coords[0] - in_heatmap).max() < tolerance  # heatmap pixels
    assert (maxvals > 0.8).all()


def test_unlabelled_and_far_outside_keypoints_get_zero_weight():
    kpts = np.array([[10.0, 10.0, 2.0], [10.0, 10.0, 0.0], [-60.0, 10.0, 2.0], [10.0, 300.0, 1.0]])
    maps, weights = encode_heatmaps(kpts, (256, 192), (64, 48))
    assert weights.tolist() == [1.0, 0.0, 0.0, 0.0] and maps[1:].abs().sum() == 0


def test_targets_and_loss(coco):
    task = get_task("pose")
    samples = [coco[i] for i in range(len(coco))]
    t = task.make_targets(samples, (64, 48))
    assert t["heatmaps"].shape == (4, 17, 64, 48) and t["weights"].shape == (4, 17)
    assert t["weights"][1, 15:].tolist() == [0.0, 0.0]  # person 102's unlabelled ankles
    assert task.loss(t["heatmaps"], t) == 0
    noisy = t["heatmaps"].clone()
    noisy[1, 15] += 1.0  # a weight-0 keypoint does not count
    assert task.loss(noisy, t) == 0
    out = torch.zeros(4, 17, 64, 48, requires_grad=True)
    loss = task.loss(out, t)
    loss.backward()
    assert loss.item() == pytest.approx(((t["heatmaps"] ** 2) * t["weights"][..., None, None]).mean().item())
    assert out.grad.abs().sum() > 0


def test_sigma_scales_with_the_heatmap_width(coco):
    t = get_task("pose").make_targets([coco[0]], (32, 24))
    peak = t["heatmaps"][0, 0]
    assert peak.shape == (32, 24) and (peak > np.exp(-0.5)).sum() < 12  # σ = 1 at 24 wide


def test_gt_keypoints_as_detections_score_ap_one(coco):
    m = keypoint_ap(coco.coco, _gt_detections(coco), coco.image_ids)
    assert m["AP"] == 1.0 and m["AP50"] == 1.0 and m["AR"] == 1.0


def test_a_known_oks_scores_what_the_thresholds_say(coco):
    # Shift each labelled keypoint so that exp(-d²/(2·area·(2σ)²)) = 0.72: OKS 0.72 for every person,
    # above the thresholds 0.50..0.70 and below 0.75..0.95 → AP = 5/10, AP50 = 1, AP75 = 0.
    def shift(ann):
        return np.sqrt(-2 * np.log(0.72) * ann["area"] * (2 * COCO_SIGMAS) ** 2)

    m = keypoint_ap(coco.coco, _gt_detections(coco, shift), coco.image_ids)
    assert m["AP"] == pytest.approx(0.5) and m["AP50"] == 1.0 and m["AP75"] == 0.0


def test_no_detections_score_zero(coco):
    assert keypoint_ap(coco.coco, [], coco.image_ids)["AP"] == 0.0


@pytest.mark.parametrize("refine", ["quarter", "dark"])
def test_decoding_target_heatmaps_scores_perfectly(coco, refine):
    task = get_task("pose", refine=refine)
    samples = [coco[i] for i in range(len(coco))]
    heatmaps = task.make_targets(samples, (64, 48))["heatmaps"]
    dets = task.decode(heatmaps, samples)
    assert [d["image_id"] for d in dets] == [1, 1, 2, 3] and len(dets[0]["keypoints"]) == 51
    for d, s in zip(dets, samples, strict=True):
        gt = _gt_keypoints(coco, s["id"])
        labelled = gt[:, 2] > 0
        pred = np.array(d["keypoints"]).reshape(17, 3)
        # half a heatmap pixel, in image pixels
        bound = 0.5 * np.array(s["crop"].size) / np.array([47, 63])
        assert (np.abs(pred[labelled, :2] - gt[labelled, :2]) < bound).all()
    assert task.evaluate(dets, coco)["AP"] == 1.0


def test_score_is_the_mean_of_confident_maxima():
    crop = CropTransform.from_box([0, 0, 48, 64], (64, 48))
    hm = torch.zeros(1, 17, 16, 12)
    hm[0, :, 5, 5] = torch.tensor([0.9] * 8 + [0.5] * 8 + [0.1])
    (det,) = get_task("pose").decode(hm, [{"image_id": 7, "crop": crop}])
    assert det["score"] == pytest.approx(0.7) and det["category_id"] == 1
    assert det["keypoints"][2::3][-1] == pytest.approx(0.1)  # visibility slot holds the maximum


def test_crop_and_decoding_agree_with_hf_vitpose_processing():
    """Our crops and DARK decoding reproduce transformers' VitPoseImageProcessor (UDP + DARK)."""
    hf = pytest.importorskip("transformers.models.vitpose.image_processing_vitpose")
    box = [12.0, 30.0, 50.0, 90.0]
    center, scale = hf.box_to_center_and_scale(box, image_width=192, image_height=256)
    crop = CropTransform.from_box(box, (256, 192))
    assert np.allclose(crop.center, center) and np.allclose(crop.size, scale * 200, rtol=1e-6)

    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (120, 100, 3)).astype(np.float64)
    m = hf.get_warp_matrix(0.0, center * 2.0, np.array([191.0, 255.0]), scale * 200.0)
    theirs = hf.scipy_warp_affine(image, m, (256, 192))
    from PIL import Image

    ours = np.asarray(crop.warp(Image.fromarray(image.astype(np.uint8)))).astype(float)
    assert np.abs(ours - theirs).max() <= 0.501  # ours is rounded to uint8

    heatmaps = np.stack(
        [np.exp(-((np.mgrid[0:64, 0:48] - rng.uniform(5, 40, (2, 1, 1))) ** 2).sum(0) / 8) for _ in range(17)]
    )[None].astype(np.float32)
    heatmaps += rng.uniform(0, 0.05, heatmaps.shape).astype(np.float32)
    coords, maxvals = decode_heatmaps(torch.from_numpy(heatmaps), "dark")
    ref, ref_scores = hf.get_keypoint_predictions(heatmaps)
    ref = hf.post_dark_unbiased_data_processing(ref, heatmaps.copy(), kernel=11)
    assert np.allclose(coords, ref, atol=1e-4) and np.allclose(maxvals, ref_scores[..., 0])
    image_xy = hf.transform_preds(ref[0], center=center, scale=scale, output_size=[64, 48])
    assert np.allclose(crop.to_image(coords[0] * np.array([191 / 47, 255 / 63])), image_xy, atol=1e-3)


def test_per_image_oks_scores_follow_the_thresholds(coco):
    """OKS 0.72 for every person (as above): oks = 0.72, oks_ar = 5/10 passed; one person missed scores 0."""

    def shift(ann):
        return np.sqrt(-2 * np.log(0.72) * ann["area"] * (2 * COCO_SIGMAS) ** 2)

    dets = _gt_detections(coco, shift)
    for d, s in zip(dets, coco.samples, strict=True):
        d["ann_id"] = s["ann_id"]
    metrics, per = get_task("pose").evaluate_per_image(dets, coco)
    assert metrics["AP"] == pytest.approx(0.5) and metrics["oks"] == pytest.approx(0.72)
    assert per["ids"] == ["1", "2", "3"] and per["weights"] == [2.0, 1.0, 1.0]  # image 1 holds two persons
    assert per["scores"]["oks_ar"] == pytest.approx([0.5, 0.5, 0.5]) and per["proxies"]["AP"] == "oks_ar"
    _, per = get_task("pose").evaluate_per_image(dets[1:], coco)  # the first person of image 1: no detection
    assert per["scores"]["oks"][0] == pytest.approx(0.36) and per["scores"]["oks_ar"][0] == pytest.approx(
        0.25
    )


def test_decoded_detections_carry_their_person(coco):
    task = get_task("pose")
    samples = [coco[i] for i in range(len(coco))]
    dets = task.decode(task.make_targets(samples, (64, 48))["heatmaps"], samples)
    assert [d["ann_id"] for d in dets] == [s["ann_id"] for s in coco.samples]
    metrics, per = task.evaluate_per_image(dets, coco)
    assert metrics["AP"] == 1.0 and min(per["scores"]["oks"]) > 0.9
    weights = np.array(per["weights"])
    assert metrics["oks_ar"] == pytest.approx(weights @ per["scores"]["oks_ar"] / weights.sum())
