"""2-D human pose (17 COCO keypoints), top-down: Gaussian heatmaps in, COCO keypoint AP out.

Targets follow ViTPose's configs (mmpose `TopDownGenerateTarget`, UDP
encoding, Huang et al. 2020): for a keypoint at crop pixel p, the heatmap
(64×48 for a 256×192 crop) holds exp(−|x − μ|² / 2σ²) with
μ = p·(hm − 1)/(crop − 1) and σ = 2 (scaled with the heatmap width);
unlabelled keypoints, and those whose Gaussian lies wholly outside the
map, get weight 0. The loss is the weighted heatmap MSE (mmpose
`KeypointMSELoss`, use_target_weight).

Decoding takes each map's argmax and refines it by a quarter pixel towards
the higher neighbour (HRNet / mmpose "default" post-processing; `refine="dark"`
is DARK, Zhang et al. 2020, exactly as HF's `VitPoseImageProcessor` post-processes:
Gaussian modulation then a Taylor step on the log-heatmap), maps it back through the sample's
`CropTransform`, and scores the person as mmpose does: mean of the keypoint maxima above 0.2 (GT boxes have
box score 1). Metrics: COCO keypoint AP/AR from `pycocotools.cocoeval.COCOeval`
(iouType "keypoints", OKS with the COCO sigmas), on the dataset's images.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pycocotools.cocoeval import COCOeval, Params
from scipy.ndimage import gaussian_filter
from torch import Tensor

from .base import Task, per_image_scores, register_task

NUM_KEYPOINTS = 17
SIGMA = 2.0  # at a 48-pixel-wide heatmap (ViTPose 64×48)
SCORE_THRESHOLD = 0.2  # mmpose `vis_thr` for rescoring
DARK_RADIUS = 5  # HF ViTPose post-processing kernel 11
COCO_STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
OKS_SIGMAS = Params(iouType="keypoints").kpt_oks_sigmas  # COCO's per-keypoint σ, as COCOeval uses them
OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # COCO's AP/AR thresholds


def encode_heatmaps(
    keypoints: np.ndarray,
    crop_size: tuple[int, int],
    heatmap_size: tuple[int, int],
    sigma: float = SIGMA,
) -> tuple[Tensor, Tensor]:
    """UDP Gaussian heatmaps (K×h×w) and keypoint weights (K) of one person in crop coordinates."""
    kpts = torch.as_tensor(np.asarray(keypoints, dtype=np.float32))
    (crop_h, crop_w), (h, w) = crop_size, heatmap_size
    mu_x = kpts[:, 0] * (w - 1) / (crop_w - 1)
    mu_y = kpts[:, 1] * (h - 1) / (crop_h - 1)
    xs = torch.arange(w, dtype=torch.float32)
    ys = torch.arange(h, dtype=torch.float32)
    gx = torch.exp(-((xs[None, :] - mu_x[:, None]) ** 2) / (2 * sigma**2))
    gy = torch.exp(-((ys[None, :] - mu_y[:, None]) ** 2) / (2 * sigma**2))
    heatmaps = gy[:, :, None] * gx[:, None, :]
    reach = 3 * sigma
    inside = (mu_x + reach >= 0) & (mu_x - reach <= w - 1) & (mu_y + reach >= 0) & (mu_y - reach <= h - 1)
    weights = ((kpts[:, 2] > 0) & inside).float()
    return heatmaps * weights[:, None, None], weights


def decode_heatmaps(heatmaps: Tensor, refine: str = "quarter") -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (B×K×2, heatmap pixels) and their maxima (B×K) from B×K×h×w heatmaps."""
    hm = heatmaps.detach().float().cpu().numpy()
    b, k, h, w = hm.shape
    flat = hm.reshape(b, k, -1)
    idx = flat.argmax(-1)
    maxvals = np.take_along_axis(flat, idx[..., None], -1)[..., 0]
    coords = np.stack([idx % w, idx // w], -1).astype(np.float64)
    px, py = coords[..., 0].astype(int), coords[..., 1].astype(int)
    bi, ki = np.meshgrid(np.arange(b), np.arange(k), indexing="ij")
    if refine == "quarter":
        inner = (px > 0) & (px < w - 1) & (py > 0) & (py < h - 1)
        xp, xm = np.clip(px + 1, 0, w - 1), np.clip(px - 1, 0, w - 1)
        yp, ym = np.clip(py + 1, 0, h - 1), np.clip(py - 1, 0, h - 1)
        dx = hm[bi, ki, py, xp] - hm[bi, ki, py, xm]
        dy = hm[bi, ki, yp, px] - hm[bi, ki, ym, px]
        coords += 0.25 * np.stack([np.sign(dx), np.sign(dy)], -1) * inner[..., None]
    elif refine == "dark":
        # As HF's VitPoseImageProcessor (kernel 11): modulate with a σ = 0.8 Gaussian, clip to
        # [0.001, 50], take the log, one Newton step from the argmax on edge-padded differences.
        smooth = gaussian_filter(hm, sigma=0.8, radius=DARK_RADIUS, axes=(-2, -1))
        logh = np.pad(np.log(np.clip(smooth, 1e-3, 50.0)), ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")

        def at(dy_: int, dx_: int) -> np.ndarray:
            return logh[bi, ki, py + 1 + dy_, px + 1 + dx_]

        dx = 0.5 * (at(0, 1) - at(0, -1))
        dy = 0.5 * (at(1, 0) - at(-1, 0))
        dxx = at(0, 1) - 2 * at(0, 0) + at(0, -1)
        dyy = at(1, 0) - 2 * at(0, 0) + at(-1, 0)
        dxy = 0.5 * (at(1, 1) - at(0, 1) - at(1, 0) + 2 * at(0, 0) - at(0, -1) - at(-1, 0) + at(-1, -1))
        hessian = np.stack([np.stack([dxx, dxy], -1), np.stack([dxy, dyy], -1)], -2)
        hessian = np.linalg.inv(hessian + np.finfo(np.float32).eps * np.eye(2))
        coords -= np.einsum("bkmn,bkn->bkm", hessian, np.stack([dx, dy], -1))
    elif refine != "none":
        raise ValueError(f"unknown heatmap refinement {refine!r}; expected quarter, dark or none")
    coords[maxvals <= 0] = 0.0  # mmpose zeroes keypoints whose map has no positive peak
    return coords, maxvals


def keypoint_ap(
    coco_gt: Any, detections: Sequence[dict[str, Any]], image_ids: Sequence[int]
) -> dict[str, float]:
    """COCO keypoint AP/AR (OKS) of `detections` (COCO results format) on `image_ids`.

    Entries are pycocotools' `stats`; -1 means the dataset has no person in that area range.
    """
    if not detections:
        return dict.fromkeys(COCO_STATS, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes([dict(d) for d in detections])
        ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        ev.params.imgIds = sorted(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(COCO_STATS, ev.stats, strict=True)}


def person_oks(gt_keypoints: np.ndarray, areas: np.ndarray, pred_xy: np.ndarray) -> np.ndarray:
    """OKS of each person's prediction (N×17×2, image pixels) with its own ground truth (N×17×3, area N).

    pycocotools' `computeOks`: mean over labelled keypoints of exp(−d² / (2·area·(2σ)²)).
    """
    gt = np.asarray(gt_keypoints, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 3)
    d2 = ((np.asarray(pred_xy, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2) - gt[..., :2]) ** 2).sum(-1)
    e = d2 / (2 * OKS_SIGMAS) ** 2 / (np.asarray(areas, dtype=np.float64)[:, None] + np.spacing(1)) / 2
    labelled = gt[..., 2] > 0
    return (np.exp(-e) * labelled).sum(-1) / np.maximum(labelled.sum(-1), 1)


def pose_per_image(samples: Sequence[dict[str, Any]], detections: Sequence[dict[str, Any]]) -> dict:
    """Per-image OKS scores of top-down detections (one per ground-truth person, matched by `ann_id`).

    Per person: `oks` (its prediction against its own ground truth) and `oks_ar`, the fraction of
    COCO's ten OKS thresholds 0.50:0.05:0.95 it passes. COCO AP ranks detections by score across
    the dataset and has no per-image form; with ground-truth boxes every person has one detection,
    so the person-mean of `oks_ar` is COCO AR (up to greedy matching in crowds) and stands in for AP
    and AR when the report bootstraps. Per image: the mean over its persons, weighted by their count.
    """
    by_ann = {d["ann_id"]: d for d in detections if "ann_id" in d}
    gt = np.stack([np.asarray(s["ann"]["keypoints"], dtype=np.float64) for s in samples]).reshape(
        -1, NUM_KEYPOINTS, 3
    )
    areas = np.array([float(s["ann"]["area"]) for s in samples])
    pred = np.zeros((len(samples), NUM_KEYPOINTS, 2))
    found = np.zeros(len(samples), dtype=bool)  # a person without a detection scores OKS 0
    for i, s in enumerate(samples):
        d = by_ann.get(s["ann_id"])
        if d is not None:
            pred[i] = np.asarray(d["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)[:, :2]
            found[i] = True
    oks = person_oks(gt, areas, pred) * found
    passed = (oks[:, None] >= OKS_THRESHOLDS[None, :]).mean(1)
    image_of = np.array([s["image_id"] for s in samples])
    images, inverse, counts = np.unique(image_of, return_inverse=True, return_counts=True)
    per = {k: np.bincount(inverse, weights=v) / counts for k, v in (("oks", oks), ("oks_ar", passed))}
    return per_image_scores(
        images.tolist(),
        per,
        weights=counts.tolist(),
        proxies={"AP": "oks_ar", "AR": "oks_ar"},
        note="per image: mean over its persons (weight: persons); oks_ar = fraction of OKS thresholds "
        "0.50:0.05:0.95 passed, whose person-mean is COCO AR",
    )


@register_task("pose")
class PoseTask(Task):
    def __init__(
        self,
        *,
        sigma: float | None = None,
        refine: str = "quarter",
        score_threshold: float = SCORE_THRESHOLD,
    ):
        self.sigma = sigma  # None: 2 px at a 48-wide heatmap, scaled with the width
        self.refine = refine
        self.score_threshold = score_threshold

    def __repr__(self) -> str:
        return f"PoseTask(refine={self.refine!r})"

    def _sigma(self, heatmap_w: int) -> float:
        return self.sigma if self.sigma is not None else SIGMA * heatmap_w / 48

    def make_targets(
        self, samples: Sequence[dict[str, Any]], output_shape: Sequence[int]
    ) -> dict[str, Tensor]:
        """Heatmaps B×17×h×w and weights B×17 for a head whose heatmaps are h×w."""
        h, w = int(output_shape[-2]), int(output_shape[-1])
        maps, weights = [], []
        for s in samples:
            m, wt = encode_heatmaps(s["keypoints"], s["crop"].crop_size, (h, w), self._sigma(w))
            maps.append(m)
            weights.append(wt)
        return {"heatmaps": torch.stack(maps), "weights": torch.stack(weights)}

    def loss(self, outputs: Tensor, targets: dict[str, Tensor]) -> Tensor:
        target, weight = targets["heatmaps"].to(outputs.device), targets["weights"].to(outputs.device)
        if outputs.shape != target.shape:
            raise ValueError(f"heatmaps {tuple(outputs.shape)} and targets {tuple(target.shape)} differ")
        return (((outputs - target) ** 2) * weight[:, :, None, None]).mean()

    def decode(self, outputs: Tensor, samples: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """COCO keypoint detections {"image_id", "category_id": 1, "keypoints": [51], "score"}."""
        coords, maxvals = decode_heatmaps(outputs, self.refine)
        h, w = outputs.shape[-2:]
        dets = []
        for c, v, s in zip(coords, maxvals, samples, strict=True):
            crop = s["crop"]
            crop_h, crop_w = crop.crop_size
            in_crop = c * np.array([(crop_w - 1) / (w - 1), (crop_h - 1) / (h - 1)])
            xy = crop.to_image(in_crop)
            confident = v > self.score_threshold
            score = float(v[confident].mean()) if confident.any() else 0.0
            kpts = np.concatenate([xy, v[:, None]], 1).reshape(-1)
            dets.append(
                {
                    "image_id": int(s["image_id"]),
                    "ann_id": s.get("id"),  # the person it was cropped for: per-person OKS (pose_per_image)
                    "category_id": 1,
                    "keypoints": [float(x) for x in kpts],
                    "score": score,
                }
            )
        return dets

    def evaluate_per_image(
        self, predictions: Sequence[dict[str, Any]], dataset: Any
    ) -> tuple[dict[str, float], dict | None]:
        """COCO keypoint AP/AR, plus the person-means of `oks` and `oks_ar` and their per-image scores."""
        if not hasattr(dataset, "coco"):
            raise ValueError(
                f"{getattr(dataset, 'source', dataset)}: pose evaluation needs a COCO keypoints dataset"
            )
        metrics = keypoint_ap(dataset.coco, predictions, dataset.image_ids)
        samples = getattr(dataset, "samples", None)
        if not samples:
            return metrics, None
        per_image = pose_per_image(samples, predictions)
        weights = np.asarray(per_image["weights"])
        for name in ("oks", "oks_ar"):
            metrics[name] = float(np.dot(weights, per_image["scores"][name]) / weights.sum())
        return metrics, per_image
