"""Monocular depth: targets, losses (MiDaS SSI, SILog, L1), and the NYUv2 metrics.

Heads declare `output_kind`:
- "relative-disparity" (Depth Anything, MiDaS): affine-invariant inverse depth.
  Training uses the scale-and-shift-invariant loss of MiDaS (Ranftl et al.
  2020, eq. 5 + gradient matching, α = 0.5) on 1/depth. Evaluation aligns each
  prediction to the ground truth by least squares in disparity space,
      (s, t) = argmin Σ_valid (s·d + t − 1/gt)²,
  then clips s·d + t to [1/max_depth, 1/min_depth] and inverts it to depth —
  MiDaS's and Depth Anything's relative-depth protocol.
- "metric-depth": metres. Training uses SILog (Eigen et al. 2014; λ = 0.85,
  ×10, as BTS / AdaBins / Depth Anything metric) or L1; evaluation clips the
  prediction to the depth range without alignment ("median" is available).

Metrics (Eigen et al. 2014) are computed per image on valid pixels
(gt in (min_depth, max_depth], plus the Eigen crop on 480×640 NYUv2
frames) and averaged over images: abs_rel, sq_rel, rmse, rmse_log, log10,
delta1/2/3 (fraction with max(p/g, g/p) < 1.25^k).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Task, per_image_scores, register_task

OUTPUT_KINDS = ("relative-disparity", "metric-depth")
ALIGNMENTS = ("scale-shift", "median", "none")
METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3")


# -- alignment and metrics (numpy, float64) -------------------------------------------------------


def fit_scale_shift(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Least-squares (s, t) minimising Σ_mask (s·pred + t − target)² (closed form, MiDaS)."""
    p = pred[mask].astype(np.float64)
    y = target[mask].astype(np.float64)
    a00, a01, a11 = (p * p).sum(), p.sum(), float(p.size)
    b0, b1 = (p * y).sum(), y.sum()
    det = a00 * a11 - a01 * a01
    if p.size < 2 or det <= 0:
        return 0.0, float(y.mean()) if y.size else 0.0
    return float((a11 * b0 - a01 * b1) / det), float((a00 * b1 - a01 * b0) / det)


def align_depth(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, align: str, depth_range: tuple[float, float]
) -> np.ndarray:
    """The prediction as depth in metres, aligned to `gt` on `mask` and clipped to `depth_range`."""
    lo, hi = depth_range
    pred = pred.astype(np.float64)
    if align == "scale-shift":  # pred is relative disparity
        s, t = fit_scale_shift(pred, 1.0 / np.where(mask, gt, 1.0), mask)
        disparity = np.clip(s * pred + t, 1.0 / hi, 1.0 / lo)
        return 1.0 / disparity
    if align == "median":  # pred is depth up to scale
        scale = np.median(gt[mask]) / max(np.median(pred[mask]), 1e-12)
        return np.clip(pred * scale, lo, hi)
    if align == "none":
        return np.clip(pred, lo, hi)
    raise ValueError(f"unknown depth alignment {align!r}; expected one of {', '.join(ALIGNMENTS)}")


def depth_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray | None = None,
    align: str = "none",
    depth_range: tuple[float, float] = (1e-3, 10.0),
) -> dict[str, float]:
    """Eigen et al. (2014) metrics of one image after alignment (see the module docstring)."""
    pred, gt = np.asarray(pred), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    valid = (gt > depth_range[0]) & (gt <= depth_range[1])
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    if not valid.any():
        raise ValueError("no valid ground-truth pixel to evaluate")
    p = align_depth(pred, gt, valid, align, depth_range)[valid]
    g = gt[valid]
    thresh = np.maximum(p / g, g / p)
    return {
        "abs_rel": float(np.mean(np.abs(p - g) / g)),
        "sq_rel": float(np.mean((p - g) ** 2 / g)),
        "rmse": float(np.sqrt(np.mean((p - g) ** 2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2))),
        "log10": float(np.mean(np.abs(np.log10(p) - np.log10(g)))),
        "delta1": float(np.mean(thresh < 1.25)),
        "delta2": float(np.mean(thresh < 1.25**2)),
        "delta3": float(np.mean(thresh < 1.25**3)),
    }


def eval_crop_mask(shape: tuple[int, int], crop: tuple[int, int, int, int] | None) -> np.ndarray:
    """The Eigen crop (top, bottom, left, right) as a mask, on 480×640 frames only."""
    mask = np.ones(shape, dtype=bool)
    if crop is not None and tuple(shape) == (480, 640):
        top, bottom, left, right = crop
        mask[:] = False
        mask[top:bottom, left:right] = True
    return mask


# -- training losses (torch) -----------------------------------------------------------------------


def _scale_shift(pred: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    m = mask.to(pred.dtype)
    a00 = (m * pred * pred).sum((1, 2))
    a01 = (m * pred).sum((1, 2))
    a11 = m.sum((1, 2))
    b0 = (m * pred * target).sum((1, 2))
    b1 = (m * target).sum((1, 2))
    det = a00 * a11 - a01 * a01
    ok = det > 1e-12
    safe = torch.where(ok, det, torch.ones_like(det))
    s = torch.where(ok, (a11 * b0 - a01 * b1) / safe, torch.zeros_like(det))
    t = torch.where(ok, (a00 * b1 - a01 * b0) / safe, torch.zeros_like(det))
    return s, t


def _gradient_matching(residual: Tensor, mask: Tensor, scales: int = 4) -> Tensor:
    """MiDaS multi-scale gradient matching on the aligned residual."""
    total = residual.new_zeros(())
    for k in range(scales):
        step = 2**k
        r, m = residual[:, ::step, ::step], mask[:, ::step, ::step].to(residual.dtype)
        gx = (r[:, :, 1:] - r[:, :, :-1]).abs() * m[:, :, 1:] * m[:, :, :-1]
        gy = (r[:, 1:] - r[:, :-1]).abs() * m[:, 1:] * m[:, :-1]
        total = total + (gx.sum() + gy.sum()) / m.sum().clamp_min(1.0)
    return total


def ssi_loss(
    pred_disparity: Tensor, target_disparity: Tensor, mask: Tensor, grad_weight: float = 0.5
) -> Tensor:
    """Scale-and-shift-invariant MSE + α·gradient matching (Ranftl et al. 2020), batch-reduced as MiDaS."""
    s, t = _scale_shift(pred_disparity, target_disparity, mask)
    aligned = s[:, None, None] * pred_disparity + t[:, None, None]
    m = mask.to(pred_disparity.dtype)
    residual = (aligned - target_disparity) * m
    loss = (residual**2).sum() / (2 * m.sum().clamp_min(1.0))
    if grad_weight:
        loss = loss + grad_weight * _gradient_matching(residual, mask)
    return loss


def silog_loss(pred_depth: Tensor, target_depth: Tensor, mask: Tensor, lam: float = 0.85) -> Tensor:
    """Scale-invariant log loss (Eigen et al. 2014) in the BTS form 10·sqrt(E[g²] − λE[g]²)."""
    g = torch.log(pred_depth.clamp_min(1e-6)[mask]) - torch.log(target_depth[mask])
    if g.numel() == 0:
        return pred_depth.sum() * 0
    return 10.0 * torch.sqrt((g.pow(2).mean() - lam * g.mean().pow(2)).clamp_min(1e-12))


@register_task("depth")
class DepthTask(Task):
    def __init__(
        self,
        output_kind: str = "relative-disparity",
        *,
        metric_loss: str = "silog",
        align: str | None = None,
        depth_range: tuple[float, float] | None = None,
        grad_weight: float = 0.5,
    ):
        if output_kind not in OUTPUT_KINDS:
            raise ValueError(
                f"unknown depth output_kind {output_kind!r}; expected one of {', '.join(OUTPUT_KINDS)}"
            )
        if metric_loss not in ("silog", "l1"):
            raise ValueError(f"unknown metric depth loss {metric_loss!r}; expected silog or l1")
        self.output_kind = output_kind
        self.metric_loss = metric_loss
        self.align = align or ("scale-shift" if output_kind == "relative-disparity" else "none")
        if self.align not in ALIGNMENTS:
            raise ValueError(
                f"unknown depth alignment {self.align!r}; expected one of {', '.join(ALIGNMENTS)}"
            )
        self.depth_range = depth_range
        self.grad_weight = grad_weight

    def __repr__(self) -> str:
        return f"DepthTask(output_kind={self.output_kind!r}, align={self.align!r})"

    def make_targets(
        self, samples: Sequence[dict[str, Any]], output_shape: Sequence[int]
    ) -> dict[str, Tensor]:
        """GT depth resized (nearest, so invalid zeros never blend) to the H×W output grid + validity mask."""
        h, w = int(output_shape[-2]), int(output_shape[-1])
        depths = []
        for s in samples:
            d = torch.as_tensor(np.asarray(s["depth"], dtype=np.float32))[None, None]
            depths.append(F.interpolate(d, size=(h, w), mode="nearest-exact")[0, 0])
        depth = torch.stack(depths)
        lo, hi = self.depth_range or (0.0, float("inf"))
        mask = (depth > lo) & (depth <= hi) & torch.isfinite(depth)
        return {"depth": depth, "mask": mask}

    def loss(self, outputs: Tensor, targets: dict[str, Tensor]) -> Tensor:
        depth, mask = targets["depth"].to(outputs.device), targets["mask"].to(outputs.device)
        if outputs.shape != depth.shape:
            raise ValueError(f"depth outputs {tuple(outputs.shape)} and targets {tuple(depth.shape)} differ")
        if self.output_kind == "relative-disparity":
            disparity = torch.where(mask, 1.0 / depth.clamp_min(1e-6), torch.zeros_like(depth))
            return ssi_loss(outputs, disparity, mask, self.grad_weight)
        if self.metric_loss == "silog":
            return silog_loss(outputs, depth, mask)
        m = mask.to(outputs.dtype)
        return ((outputs - depth).abs() * m).sum() / m.sum().clamp_min(1.0)

    def decode(self, outputs: Tensor, samples: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each prediction resized (bilinear) to its ground truth's size, in the head's units."""
        preds = []
        for out, s in zip(outputs.detach().float().cpu(), samples, strict=True):
            h, w = np.asarray(s["depth"]).shape
            up = F.interpolate(out[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
            preds.append({"id": s["id"], "depth": up.numpy().astype(np.float32)})
        return preds

    def evaluate_per_image(
        self, predictions: Sequence[dict[str, Any]], dataset: Any
    ) -> tuple[dict[str, float], dict]:
        """Eigen metrics averaged over images, and each image's own (the mean of which they are)."""
        by_id = {p["id"]: p["depth"] for p in predictions}
        depth_range = self.depth_range or getattr(dataset, "depth_range", (1e-3, 10.0))
        crop = getattr(dataset, "eval_crop", None)
        per_image, seen, ids = [], set(), []
        for i in range(len(dataset)):
            if hasattr(dataset, "ground_truth"):  # skips decoding the image
                sample_id, gt = dataset.ground_truth(i)
            else:
                sample = dataset[i]
                sample_id, gt = sample["id"], sample["depth"]
            if sample_id not in by_id:
                raise ValueError(f"{dataset.source}: no prediction for sample {sample_id!r}")
            gt = np.asarray(gt)
            seen.add(sample_id)
            ids.append(sample_id)
            per_image.append(
                depth_metrics(by_id[sample_id], gt, eval_crop_mask(gt.shape, crop), self.align, depth_range)
            )
        extra = set(by_id) - seen
        if extra:
            raise ValueError(f"{dataset.source}: predictions for unknown sample(s) {sorted(extra)[:3]}")
        out = {k: float(np.mean([m[k] for m in per_image])) for k in METRICS}
        out["num_images"] = float(len(per_image))
        return out, per_image_scores(ids, {k: [m[k] for m in per_image] for k in METRICS})
