"""mini-hiera: masked-autoencoder pretraining with the official `hiera` package's MaskedAutoencoderHiera.

The model's `state_dict()` *is* the official MAE checkpoint layout (the
`model_state` of `mae_hiera_*.pth`), so the shipped file is that dict as
safetensors and loads through the same timm `checkpoint_filter_fn` path as a
downloaded MAE Hiera checkpoint. q_pool=2 as in the official `mae_hiera_*`
models (the decoder predicts 16×16-pixel patches); the encoder is used with
q_pool=3 (stride-32 stage 4), as the official fine-tuned Hiera is: pooling has
no parameters, so the weights are the same.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .corpus import ImageSet, sample_batch, to_pixels

RESOLUTION = 128
# the trunk: small enough to pretrain on 2 CPU cores in minutes; the timm / hieradet twins follow from it
TRUNK = {"embed_dim": 16, "num_heads": 1, "stages": (1, 2, 2, 1)}
MAE_CONFIG = {
    **TRUNK,
    "input_size": (RESOLUTION, RESOLUTION),
    "q_pool": 2,
    "decoder_embed_dim": 64,
    "decoder_depth": 1,
    "decoder_num_heads": 2,
}
MASK_RATIO = 0.6  # the official Hiera MAE ratio for images


def build_mae(seed: int):
    import warnings

    with warnings.catch_warnings():  # hiera imports timm.models.layers (deprecated path)
        warnings.simplefilter("ignore", FutureWarning)
        from hiera import MaskedAutoencoderHiera

    torch.manual_seed(seed)
    return MaskedAutoencoderHiera(**MAE_CONFIG)


def lr_at(step: int, steps: int, peak: float, warmup_frac: float = 0.1) -> float:
    """Linear warm-up then cosine decay to 5% of the peak."""
    warmup = max(1, int(steps * warmup_frac))
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


def make_optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "pos_embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "pos_embed" not in n)]
    groups = [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def mae_step(
    model, opt, corpus: ImageSet, step: int, steps: int, batch: int, lr: float, seed: int, device
) -> float:
    """One optimisation step; its randomness (batch, flips, masks) is a function of (seed, step)."""
    rng = np.random.default_rng([seed, 1, step])
    images, _ = sample_batch(corpus, batch, rng)
    x = to_pixels(images).to(device)
    torch.manual_seed(seed * 1_000_003 + step)  # MaskedAutoencoderHiera draws its masks from torch's RNG
    for group in opt.param_groups:
        group["lr"] = lr_at(step, steps, lr)
    model.train()
    loss = model(x, mask_ratio=MASK_RATIO)[0]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


@torch.no_grad()
def mae_eval(model, data: ImageSet, seed: int = 0, batch: int = 16, device="cpu") -> dict[str, float]:
    """Masked-patch loss (normalised-pixel targets) on `data` with fixed masks, and the mean predictor's
    loss on the same targets (predicting each patch's mean: 0 in normalised units, ≈ 1.0)."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    total = mean_total = 0.0
    n = 0
    for start in range(0, len(data), batch):
        x = to_pixels(data.images[start : start + batch]).to(device)
        num_units = math.prod(model.mask_spatial_shape)
        keep = int(num_units * (1 - MASK_RATIO))
        order = torch.rand(x.shape[0], num_units, generator=gen).argsort(1)
        mask = torch.zeros(x.shape[0], num_units, dtype=torch.bool)
        mask.scatter_(1, order[:, :keep], True)  # True = keep (visible), as Hiera's masks
        loss, _, label, _ = model(x, mask=mask.to(device))
        total += float(loss) * x.shape[0]
        mean_total += float((label**2).mean()) * x.shape[0]
        n += x.shape[0]
    return {"loss": total / n, "mean_predictor": mean_total / n}
