"""mini-sam2: SAM-style promptable-segmentation training of the sam2 package's own modules.

The model is a `SAM2Base` instantiated by hydra from the shipped config
(`probes/encoders/weights/mini-sam2.yaml`); training and evaluation use its
`image_encoder` (hieradet trunk + FpnNeck), `sam_prompt_encoder`,
`sam_mask_decoder` (TwoWayTransformer) and `no_mem_embed`, wired as
`SAM2Base.forward_image` / `_prepare_backbone_features` / `_forward_sam_heads`
do for a single image (high-res features through the decoder's conv_s0/conv_s1;
no_mem_embed added to the stride-16 features). The memory modules are unused.

Training (after SAM / SAM2): per image up to K instances; each gets one prompt,
either one positive point drawn uniformly inside the mask (3-mask output; the
segmentation loss takes the best of the three) or its box with ±10% jitter
(1-mask output). Loss = 20·focal + dice on the masks upsampled to the input,
+ MSE between predicted and actual IoU of every output mask, + BCE on the
object score (every prompt here hits an object). No iterative correction clicks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt

from .corpus import ImageSet, sample_batch, to_pixels
from .mae import lr_at

CONFIG_PATH = Path(__file__).resolve().parents[1] / "encoders" / "weights" / "mini-sam2.yaml"
SHIPPED_PREFIXES = ("image_encoder.", "sam_prompt_encoder.", "sam_mask_decoder.", "no_mem_embed")
MIN_AREA = 16  # pixels: smaller instances give no reliable prompt
PROMPTS_PER_IMAGE = 4


def build_sam2_model(seed: int, config_path: Path = CONFIG_PATH):
    """The whole SAM2Base of the mini config, built by the sam2 package through hydra (random weights)."""
    import sam2  # noqa: F401  (registers sam2's hydra config module; harmless here)
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    cfg = OmegaConf.load(config_path)
    OmegaConf.resolve(cfg)
    return instantiate(cfg.model, _recursive_=True)


def shipped_state(model) -> dict[str, torch.Tensor]:
    """The parts of the SAM2 checkpoint layout this recipe trains (official key names)."""
    return {
        k: v.detach().clone().contiguous()
        for k, v in model.state_dict().items()
        if k.startswith(SHIPPED_PREFIXES)
    }


def image_features(model, pixels: torch.Tensor):
    """(stride-16 image embedding, [high-res s0, s1]) as SAM2Base computes them for one image."""
    out = model.image_encoder(pixels)
    fpn = out["backbone_fpn"]
    s0 = model.sam_mask_decoder.conv_s0(fpn[0])
    s1 = model.sam_mask_decoder.conv_s1(fpn[1])
    return fpn[2] + model.no_mem_embed.view(1, -1, 1, 1), [s0, s1]


def decode(model, embedding, high_res, which, coords, labels, multimask: bool):
    """Masks (logits at 4× the embedding grid), IoU predictions and object scores for prompts on images
    `which` (an index into the batch's embeddings)."""
    sparse, dense = model.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=None)
    masks, iou, _, obj = model.sam_mask_decoder(
        image_embeddings=embedding[which],
        image_pe=model.sam_prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask,
        repeat_image=False,
        high_res_features=[h[which] for h in high_res],
    )
    return masks, iou, obj


def sample_prompts(labels: np.ndarray, rng: np.random.Generator, per_image: int = PROMPTS_PER_IMAGE):
    """Prompts from instance label maps: lists for point prompts and for box prompts of
    (image index, GT mask, coords P×2 (x, y), point labels P)."""
    points, boxes = [], []
    for b, label_map in enumerate(labels):
        ids = [k for k in np.unique(label_map) if k and (label_map == k).sum() >= MIN_AREA]
        for k in rng.permutation(ids)[:per_image]:
            mask = label_map == k
            ys, xs = np.nonzero(mask)
            if rng.random() < 0.5:
                j = rng.integers(len(xs))
                points.append((b, mask, np.array([[xs[j], ys[j]]], np.float32), np.array([1], np.float32)))
            else:
                x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
                jitter = rng.uniform(-0.1, 0.1, 4) * np.array([x1 - x0, x1 - x0, y1 - y0, y1 - y0])
                box = np.array([x0, y0, x1, y1], np.float32) + jitter.astype(np.float32)[[0, 2, 1, 3]]
                box = box.clip(0, mask.shape[1])
                boxes.append((b, mask, box.reshape(2, 2), np.array([2, 3], np.float32)))  # SAM2's box labels
    return points, boxes


def _stack(prompts, device):
    which = torch.tensor([p[0] for p in prompts], device=device)
    gt = torch.from_numpy(np.stack([p[1] for p in prompts])).float().to(device)
    coords = torch.from_numpy(np.stack([p[2] for p in prompts])).to(device)
    labels = torch.from_numpy(np.stack([p[3] for p in prompts])).to(device)
    return which, gt, coords, labels


def focal_loss(logits, target, alpha: float = 0.25, gamma: float = 2.0):
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.flatten(-2).mean(-1)


def dice_loss(logits, target):
    p = torch.sigmoid(logits).flatten(-2)
    t = target.flatten(-2)
    return 1 - (2 * (p * t).sum(-1) + 1) / (p.sum(-1) + t.sum(-1) + 1)


def mask_iou(logits, target):
    pred = (logits > 0).float().flatten(-2)
    t = target.flatten(-2)
    inter = (pred * t).sum(-1)
    return inter / (pred.sum(-1) + t.sum(-1) - inter).clamp(min=1)


def sam_loss(masks, iou_pred, obj, gt) -> tuple[torch.Tensor, dict]:
    """masks M×K×h×w logits, gt M×H×W: SAM's loss, best-of-K for the segmentation terms."""
    logits = F.interpolate(masks, size=gt.shape[-2:], mode="bilinear", align_corners=False)
    target = gt[:, None].expand_as(logits)
    seg = 20 * focal_loss(logits, target) + dice_loss(logits, target)  # M×K
    best = seg.argmin(1)
    seg_loss = seg.gather(1, best[:, None]).mean()
    with torch.no_grad():
        actual_iou = mask_iou(logits, target)
    iou_loss = F.mse_loss(iou_pred, actual_iou)
    obj_loss = F.binary_cross_entropy_with_logits(obj.squeeze(-1), torch.ones_like(obj.squeeze(-1)))
    total = seg_loss + iou_loss + obj_loss
    return total, {"seg": float(seg_loss.detach()), "iou": float(iou_loss.detach())}


def make_sam_optimizer(model, lr: float, trunk_lr: float | None) -> torch.optim.Optimizer:
    """AdamW over the trained parts; `trunk_lr=None` freezes the trunk (the frozen-trunk baseline)."""
    trunk = list(model.image_encoder.trunk.parameters())
    trunk_ids = {id(p) for p in trunk}
    rest = [
        p for n, p in model.named_parameters() if n.startswith(SHIPPED_PREFIXES) and id(p) not in trunk_ids
    ]
    groups = [{"params": rest, "lr": lr, "base_lr": lr}]
    if trunk_lr is None:
        model.image_encoder.trunk.requires_grad_(False)
    else:
        groups.append({"params": trunk, "lr": trunk_lr, "base_lr": trunk_lr})
    return torch.optim.AdamW(groups, weight_decay=0.01)


def sam_step(
    model,
    opt,
    corpus: ImageSet,
    step: int,
    steps: int,
    batch: int,
    seed: int,
    device,
    freeze_trunk: bool = False,
) -> dict:
    rng = np.random.default_rng([seed, 2, step])
    images, labels = sample_batch(corpus, batch, rng)
    points, boxes = sample_prompts(labels, rng)
    for group in opt.param_groups:
        group["lr"] = lr_at(step, steps, group["base_lr"])
    model.train()
    if freeze_trunk:
        model.image_encoder.trunk.eval()
    embedding, high_res = image_features(model, to_pixels(images).to(device))
    losses, parts, count = [], {}, 0
    for prompts, multimask in ((points, True), (boxes, False)):
        if not prompts:
            continue
        which, gt, coords, point_labels = _stack(prompts, device)
        masks, iou, obj = decode(model, embedding, high_res, which, coords, point_labels, multimask)
        loss, part = sam_loss(masks, iou, obj, gt)
        losses.append(loss * len(prompts))
        count += len(prompts)
        parts = {k: parts.get(k, 0.0) + v * len(prompts) for k, v in part.items()}
    total = torch.stack(losses).sum() / count
    opt.zero_grad(set_to_none=True)
    total.backward()
    opt.step()
    return {"loss": float(total.detach()), **{k: v / count for k, v in parts.items()}}


def center_point(mask: np.ndarray) -> np.ndarray:
    """The mask pixel farthest from its boundary: a deterministic, unambiguous one-point prompt."""
    dist = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(dist), dist.shape)
    return np.array([[x, y]], np.float32)


@torch.no_grad()
def one_point_miou(model, data: ImageSet, batch: int = 16, device="cpu") -> dict[str, float]:
    """One centre-point prompt per instance (area ≥ MIN_AREA), 3-mask output, keep the mask with the
    highest predicted IoU (SAM's single-click protocol): mean IoU over instances, overall and per renderer."""
    from ..data.synthetic.corpus import RENDERERS

    model.eval()
    ious, kinds = [], []
    for start in range(0, len(data), batch):
        images = data.images[start : start + batch]
        labels = data.labels[start : start + batch]
        embedding, high_res = image_features(model, to_pixels(images).to(device))
        prompts = []
        for b, label_map in enumerate(labels):
            for k in np.unique(label_map):
                mask = label_map == k
                if k and mask.sum() >= MIN_AREA:
                    prompts.append((b, mask, center_point(mask), np.array([1], np.float32)))
                    kinds.append(int(data.renderer[start + b]))
        if not prompts:
            continue
        which, gt, coords, point_labels = _stack(prompts, device)
        masks, iou_pred, _ = decode(model, embedding, high_res, which, coords, point_labels, True)
        logits = F.interpolate(masks, size=gt.shape[-2:], mode="bilinear", align_corners=False)
        chosen = logits[torch.arange(len(prompts)), iou_pred.argmax(1)]
        ious.append(mask_iou(chosen, gt).cpu())
    iou = torch.cat(ious).numpy()
    kinds = np.asarray(kinds)
    out = {"mIoU": float(iou.mean()), "instances": int(len(iou))}
    for t, name in enumerate(RENDERERS):
        if (kinds == t).any():
            out[f"mIoU_{name}"] = float(iou[kinds == t].mean())
    return out
