"""One network for every λ: a variable-rate hyperprior with gain units (Cui et al., CVPR 2021).

    x ─► g_a ─► y ─► ×gain[i] ─► y_i ─► h_a ─► z ─► Q/EB ─► h_s ─► (scales, means) of y_i
                                 y_i ─► Q ─► ŷ_i ─► ÷gain[i] ─► g_s ─► x̂

A rate index i ∈ [0, K) selects a channel-wise gain vector (M values, learned on a log scale, initialised at
√(λ_i / λ_ref), the step a uniform quantiser would take for that λ): every λ of a sweep shares g_a, h_a, h_s,
g_s and the entropy models, and only the gains differ. One training run serves K rates, and the whole sweep
stays one deterministic result instead of K.

Training: every batch holds K groups of samples, group i weighted by λ_i; the loss of a sample is
(R + λ_i·D)/(1 + λ_i), which has the same minimiser as R + λ_i·D for that sample and keeps the K terms of a
batch on one scale for the shared weights.

Export: gain i folds exactly into g_a's last convolution (its output rows ×gain) and g_s's first one (its
input columns ÷gain), so each rate leaves as an ordinary `hyperprior` codec directory — the bitstream, the
coders and every consumer are unchanged. With the integer hyper path, each exported codec's integer h_s is
then distilled from the shared float h_s on that rate's own z (`codec.train.distill_integer_hyper`), as
train-codec does.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from . import ops
from .checkpoint import CHECKPOINT_DIR, Checkpoint
from .codec_dir import CONFIG, CodecLoadError, LoadedCodec, load_codec, read_codec_config, save_codec
from .devices import resolve_device
from .models import create_codec
from .models.hyperprior import _pad4
from .train import DISTILL_LR, FeatureSet, TrainingError, TrainingSteps, distill_integer_hyper

VARIABLE_RATE = "gain-units"  # recorded in each exported codec's config


class GainUnits(nn.Module):
    """K channel-wise gain vectors on the latent (log-parameterised, so a gain stays positive)."""

    def __init__(self, lambdas: Sequence[float], channels: int):
        super().__init__()
        ref = math.exp(sum(math.log(v) for v in lambdas) / len(lambdas))  # geometric mean
        init = torch.tensor([0.5 * math.log(v / ref) for v in lambdas]).unsqueeze(1).repeat(1, channels)
        self.log_gain = nn.Parameter(init)

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        """B rate indexes → B×M×1×1 gains."""
        return self.log_gain[index].exp()[:, :, None, None]


def gained_forward(model, gains: torch.Tensor, x: dict[str, torch.Tensor]) -> dict:
    """The hyperprior's training forward (float h_s, noisy z, STE-rounded y) with per-sample gains on y."""
    model.grid_of(x)
    y = model.g_a(model.normalization.normalize(x)) * gains
    z = model.h_a(_pad4(y))
    z_hat, z_likelihoods = model.entropy_bottleneck(z)
    scales, means = model._training_parameters(z_hat, y.shape[-2:])
    _, y_likelihoods = model.gaussian_conditional(y, scales, means)
    y_hat = ops.ste_round(y, means)
    x_hat = model.normalization.denormalize(model.g_s(y_hat / gains))
    return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}


def per_sample_rate_distortion(
    model, x: dict[str, torch.Tensor], out: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """B-vectors of (bits per feature element, normalised MSE), as
    `codec.train.rate_distortion` per sample."""
    elements = sum(t[0].numel() for t in x.values())
    bits = sum(-torch.log2(lik).flatten(1).sum(1) for lik in out["likelihoods"].values())
    xn, xn_hat = model.normalization.normalize(x), model.normalization.normalize(out["x_hat"])
    distortion = sum(((xn_hat[k] - xn[k]) ** 2).flatten(1).sum(1) for k in xn) / elements
    return bits / elements, distortion


def fold_gain(model, gain: torch.Tensor):
    """A copy of `model` whose g_a ends ×gain and whose g_s starts ÷gain (exact: both are linear there)."""
    folded = copy.deepcopy(model)
    last, first = folded.g_a.trunk[-1], folded.g_s.trunk[0]
    with torch.no_grad():
        last.weight.mul_(gain.view(-1, 1, 1, 1))
        last.bias.mul_(gain)
        first.weight.div_(gain.view(1, -1, 1, 1))
    return folded


def train_variable_rate_codec(
    features: FeatureSet,
    out_dirs: Sequence[str | os.PathLike],
    *,
    lambdas: Sequence[float],
    steps: int = 2000,
    batch_size: int = 8,
    lr: float = 1e-4,
    aux_lr: float = 1e-3,
    device: str = "cpu",
    force: bool = False,
    resume: bool = False,
    checkpoint_dir: str | os.PathLike | None = None,  # default: beside the first output directory
    checkpoint_every: int = 100,
    checkpoint_seconds: float | None = None,
    seed: int = 0,
    hparams: dict | None = None,
    hyper_distill_steps: int | None = None,  # per exported rate (None: steps // len(lambdas))
    norm_items: int = 256,
    progress: bool = True,
) -> list[LoadedCodec]:
    """Train one gain-unit hyperprior for every λ of `lambdas` and export one codec directory per λ."""
    lambdas = [float(v) for v in lambdas]
    if len(lambdas) < 2 or any(v <= 0 for v in lambdas) or len(set(lambdas)) != len(lambdas):
        raise TrainingError(f"a variable-rate codec needs ≥ 2 distinct positive λ, got {lambdas}")
    if len(out_dirs) != len(lambdas):
        raise TrainingError(f"{len(lambdas)} λ but {len(out_dirs)} output directories")
    if batch_size < len(lambdas) or steps < 0:
        raise TrainingError(f"batch_size must be ≥ the number of λ ({len(lambdas)}) and steps ≥ 0")
    if len(features) == 0:
        raise TrainingError(f"feature cache {features.path} holds no features")
    out_dirs = [Path(d) for d in out_dirs]
    taken = [str(d) for d in out_dirs if (d / CONFIG).exists()]
    if taken and not (force or resume):
        raise FileExistsError(f"{', '.join(taken)}: already hold a codec; pass --force to overwrite")
    dev = resolve_device(device)
    hparams = dict(hparams or {})
    hyper_path = hparams.pop("hyper_path", "integer")
    torch.manual_seed(seed)
    model = create_codec(
        "hyperprior", features.levels, resolution=features.resolution, **{**hparams, "hyper_path": "float64"}
    )
    gains = GainUnits(lambdas, model.M)
    names = model.level_names
    n_fit = min(norm_items, len(features))
    model.normalization.fit(
        {
            n: torch.stack([features.get(i, names)[n] for i in range(a, min(a + 8, n_fit))]).float()
            for n in names
        }
        for a in range(0, n_fit, 8)
    )
    model.to(dev)
    gains.to(dev)
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")] + list(gains.parameters())
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    optimizer, aux_optimizer = torch.optim.Adam(main, lr=lr), torch.optim.Adam(aux, lr=aux_lr)
    optimizers = {"optimizer": optimizer, "aux_optimizer": aux_optimizer}
    plan = {
        "variable_rate": VARIABLE_RATE,
        "lambdas": lambdas,
        "batch_size": batch_size,
        "lr": lr,
        "aux_lr": aux_lr,
        "seed": seed,
        "hparams": {**hparams, "hyper_path": hyper_path},
        "encoder": features.encoder,
        "weights_id": features.weights_id,
        "resolution": features.resolution,
    }
    checkpoint = Checkpoint(
        checkpoint_dir or out_dirs[0].parent / CHECKPOINT_DIR,
        plan,
        every_steps=checkpoint_every,
        every_seconds=checkpoint_seconds,
    )
    start = 0
    if force:
        shutil.rmtree(checkpoint.directory, ignore_errors=True)
    elif resume and checkpoint.exists:
        start, _ = checkpoint.load({"model": model, "gains": gains}, optimizers)
    lam = torch.tensor(lambdas, device=dev)
    index = torch.arange(batch_size, device=dev) % len(lambdas)  # the batch's samples are in seeded order
    rate = distortion = torch.zeros(len(lambdas))
    model.train()
    desc = f"train-codec variable-rate ×{len(lambdas)}"
    batches = TrainingSteps(features, names, range(start, steps), batch_size, seed, dev, desc, progress)
    for step, x in batches:
        optimizer.zero_grad(set_to_none=True)
        aux_optimizer.zero_grad(set_to_none=True)
        out = gained_forward(model, gains(index), x)
        r, d = per_sample_rate_distortion(model, x, out)
        loss = ((r + lam[index] * d) / (1 + lam[index])).mean()
        if not torch.isfinite(loss):
            raise TrainingError(f"loss became {loss.item()} at step {step}; lower the learning rate")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main, 1.0)
        optimizer.step()
        model.aux_loss().backward()
        aux_optimizer.step()
        with torch.no_grad():
            rate = torch.zeros(len(lambdas), device=dev).index_add_(0, index, r) / torch.bincount(index)
            distortion = torch.zeros(len(lambdas), device=dev).index_add_(0, index, d) / torch.bincount(index)
        batches.bar.set_postfix(R=f"{rate.mean().item():.4f}b/el", D=f"{distortion.mean().item():.4f}")
        if step + 1 < steps and checkpoint.due(step + 1):
            checkpoint.save(step + 1, {"model": model, "gains": gains}, optimizers)
    model.eval()
    checkpoint.save(max(steps, start), {"model": model, "gains": gains}, optimizers)
    distill = hyper_path == "integer"
    n_distill = (steps // len(lambdas)) if hyper_distill_steps is None else hyper_distill_steps
    codecs = []
    for i, (lmbda, out_dir) in enumerate(zip(lambdas, out_dirs, strict=True)):
        # resuming: a rate exported by an earlier run of this same plan is kept, so a kill during the per-rate
        # distillations redoes at most one of them (each is its own unit of work, saved atomically)
        done = _exported(out_dir, plan, lmbda, i, steps, n_distill if distill else None) if resume else None
        if done is not None:
            codecs.append(done)
            continue
        gain = gains.log_gain[i].detach().exp()
        teacher = fold_gain(model, gain)
        training = {
            "steps": steps,
            "batch_size": batch_size,
            "lr": lr,
            "seed": seed,
            "features": str(features.path),
            "items": len(features),
            "last_rate_bits_per_element": float(rate[i]),
            "last_mse": float(distortion[i]),
            "plan_hash": _plan_hash(plan),
            "variable_rate": {
                "method": VARIABLE_RATE,
                "lambdas": lambdas,
                "index": i,
                "gain_mean": float(gain.mean()),
                "gain_min": float(gain.min()),
                "gain_max": float(gain.max()),
            },
        }
        if distill:
            torch.manual_seed(seed)
            student = create_codec(
                "hyperprior",
                features.levels,
                resolution=features.resolution,
                **{**hparams, "hyper_path": "integer"},
            )
            kl = distill_integer_hyper(
                teacher,
                student,
                features,
                steps=n_distill,
                batch_size=batch_size,
                seed=seed * 101 + i,
                progress=progress,
            )
            training["hyper_distillation"] = {
                "steps": n_distill,
                "lr": DISTILL_LR,
                "last_kl_bits_per_element": kl,
            }
            teacher = student
        codecs.append(
            save_codec(
                teacher.cpu(),
                out_dir,
                encoder=features.encoder,
                weights_id=features.weights_id,
                lmbda=lmbda,
                extra={"training": training},
            )
        )
    return codecs


def _plan_hash(plan: dict) -> str:
    return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _exported(out_dir: Path, plan: dict, lmbda: float, index: int, steps: int, distill_steps: int | None):
    """The codec an earlier run of the same plan exported for rate `index`, or
    None (absent, partial, other)."""
    try:
        config = read_codec_config(out_dir)
    except (CodecLoadError, OSError):
        return None
    training = config.get("training") or {}
    same = (
        config.get("lambda") == lmbda
        and training.get("plan_hash") == _plan_hash(plan)
        and training.get("steps") == steps
        and (training.get("variable_rate") or {}).get("index") == index
        and (training.get("hyper_distillation") or {}).get("steps") == distill_steps
    )
    return load_codec(out_dir) if same else None
