"""Rate–distortion training of a feature codec on a set of features: loss = R + λ·D.

R is the model's estimated bits per feature element (−log2 likelihoods, Ballé et al. 2017),
D the MSE of the normalised features. The run checkpoints (safetensors + JSON) every
`checkpoint_every` steps and resumes from the last checkpoint; the data order and the
quantisation noise are functions of (seed, step), so a resumed run continues the same trajectory.
The entropy models' aux loss is optimised alongside, and the saved codec is always `update()`d.

A hyperprior with the integer hyper path (`hyper_path="integer"`, the default) is trained in two stages
unless `hyper_distill_steps=0`: the codec is first trained as a float hyperprior (float h_s, exactly the
`hyper_path="float64"` run of the same seed), then its g_a, h_a, g_s and entropy models are frozen and
the integer h_s is trained, quantisation-aware, to reproduce the float h_s: the loss is the KL divergence
(bits per feature element) from the float h_s's Gaussian (mean, scale ≥ the scale table's lower bound)
to the integer h_s's, on the training set's z (plus uniform noise). Joint quantisation-aware training of
the integer h_s (`hyper_distill_steps=0`, the recipe before) cost 11–16 % rate at λ = 12.5 on held-out
features; distilled, the integer codec is no larger than its float teacher (bench/RESULTS.md).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch

from .batching import batch_indices
from .checkpoint import CHECKPOINT_DIR, Checkpoint, step_seed
from .codec_dir import CONFIG, LoadedCodec, save_codec
from .devices import resolve_device
from .errors import InputError
from .levels import FeatureLevel
from .models import FeatureCodec, create_codec
from .models.hyperprior import SCALES_MIN, _pad4
from .models.packed import PACKED_KINDS, create_packed_codec
from .models.uniform import step_for_lambda
from .progress import progress as progress_bar

log = logging.getLogger(__name__)

DISTILL_LR = 1e-3  # Adam, cosine decay to 0 over the distillation steps


class TrainingError(InputError):
    """Inputs that make a run impossible (features, settings); the message names them. A checkpoint made
    with other settings raises `codec.checkpoint.CheckpointError`."""


class FeatureSet(Protocol):
    """What codec training reads: indexed items {level: C×H×W} and where they came from.

    `probes.encoders.FeatureCache` is one (the codec layer does not import it).
    """

    path: Path
    levels: Sequence[FeatureLevel]
    resolution: int
    encoder: str
    weights_id: str

    def __len__(self) -> int: ...

    def get(self, index: int, levels: Sequence[str] | None = None) -> dict[str, torch.Tensor]: ...


def rate_distortion(
    model: FeatureCodec, x: dict[str, torch.Tensor], out: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """(bits per feature element, MSE of normalised features) of one forward pass."""
    elements = sum(t.numel() for t in x.values())
    bits = sum(-torch.log2(lik).sum() for lik in out["likelihoods"].values()) if out["likelihoods"] else None
    rate = bits / elements if bits is not None else torch.zeros((), device=next(iter(x.values())).device)
    xn, xn_hat = model.normalization.normalize(x), model.normalization.normalize(out["x_hat"])
    distortion = sum(((xn_hat[k] - xn[k]) ** 2).sum() for k in xn) / elements
    return rate, distortion


def _batch(
    cache: FeatureSet, step: int, batch_size: int, levels: Sequence[str], seed: int
) -> dict[str, torch.Tensor]:
    # a feature set stored in blocks it wants read sequentially (`read_order`: block, window) gets batches of
    # codec.batching.buffered_order; others, item-wise permutations
    order = getattr(cache, "read_order", None) or {}
    items = [cache.get(i, levels) for i in batch_indices(step, batch_size, len(cache), seed, **order)]
    return {name: torch.stack([item[name] for item in items]).float() for name in levels}


class TrainingSteps:
    """The steps (a range: resume point to total) of a codec training run under a progress bar (`bar`, for
    its postfix), each yielded with its batch on `device` once the step's RNG is seeded from (seed, step):
    a resumed run draws the same noise and batches."""

    def __init__(self, cache: FeatureSet, levels, steps: range, batch_size, seed, device, desc, progress):
        self.seed, self.device = seed, device
        self.batch = lambda step: _batch(cache, step, batch_size, levels, seed)
        self.bar = progress_bar(steps, initial=steps.start, total=steps.stop, desc=desc, disable=not progress)

    def __iter__(self):
        for step in self.bar:
            torch.manual_seed(step_seed(self.seed, step))
            yield step, {k: v.to(self.device) for k, v in self.batch(step).items()}
        self.bar.close()


def _gaussian_kl_bits(
    mu_t: torch.Tensor, s_t: torch.Tensor, mu_s: torch.Tensor, s_s: torch.Tensor
) -> torch.Tensor:
    """Σ KL(N(mu_t, s_t²) ‖ N(mu_s, s_s²)) in bits: the expected extra rate of
    coding with the student's Gaussian."""
    kl = torch.log(s_s / s_t) + (s_t**2 + (mu_t - mu_s) ** 2) / (2 * s_s**2) - 0.5
    return kl.sum() / torch.log(torch.tensor(2.0))


def distill_integer_hyper(
    teacher: FeatureCodec,
    student: FeatureCodec,
    cache: FeatureSet,
    *,
    steps: int,
    batch_size: int,
    seed: int,
    lr: float = DISTILL_LR,
    progress: bool = False,
    checkpoint: Checkpoint | None = None,
) -> float:
    """Train `student`'s integer h_s to reproduce `teacher`'s float h_s; every other weight is copied, frozen.

    A float-path student (`hyper_path="float64"`) is trained the same way, its scales through the
    GaussianConditional's lower bound (a control: bench.hyper_path_rate --float-student).

    Inputs are the training set's z (the teacher's g_a and h_a in eval mode, quantised as in coding) plus
    uniform noise in [−½, ½); the loss is the Gaussian KL from the teacher's (mean, scale) of y to the
    student's, in bits per feature element. Returns the last batch's loss. With `checkpoint`, the student's
    h_s and its optimizer are saved as it is due and a run resumes from the last save.
    """
    shared = {k: v for k, v in teacher.state_dict().items() if not k.startswith("h_s.")}
    missing, unexpected = student.load_state_dict(shared, strict=False)
    if unexpected or any(not k.startswith("h_s.") for k in missing):
        raise TrainingError(f"integer h_s distillation: models differ beyond h_s ({unexpected or missing})")
    if steps == 0:
        return 0.0
    teacher.eval()
    names = teacher.level_names
    dev = next(teacher.parameters()).device
    student.to(dev)
    z_hats, grid, per_item = [], None, 0
    with torch.no_grad():
        for start in range(0, len(cache), batch_size):
            items = [cache.get(i, names) for i in range(start, min(start + batch_size, len(cache)))]
            x = {n: torch.stack([it[n] for it in items]).float().to(dev) for n in names}
            y = teacher.g_a(teacher.normalization.normalize(x))
            _, z_hat = teacher._quantize_z(teacher.h_a(_pad4(y)))
            z_hats.append(z_hat.cpu())  # on the CPU: a large training set's z need not fit the device
            grid, per_item = tuple(y.shape[-2:]), sum(t[0].numel() for t in x.values())
    z_hats = torch.cat(z_hats)
    student.train()
    params = list(student.h_s.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    start = 0
    if checkpoint is not None and checkpoint.exists:
        start, _ = checkpoint.load({"h_s": student.h_s}, {"optimizer": optimizer})
        # the schedule is a function of the step: rebuilt at the restored one (its state: the optimizer's lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, last_epoch=start - 1)
    loss = torch.zeros(())
    bar = progress_bar(
        range(start, steps), initial=start, total=steps, desc="distil integer h_s", disable=not progress
    )
    for step in bar:
        torch.manual_seed(step_seed(seed, step, stream=1))
        z = z_hats[torch.randint(0, len(z_hats), (batch_size,))].to(dev)
        z = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        with torch.no_grad():
            s_t, mu_t = teacher._training_parameters(z, grid)
        s_s, mu_s = student._training_parameters(z, grid)
        if student.hyper_path != "integer":  # the float h_s's scales: LowerBound, gradient passes upwards
            s_s = student.gaussian_conditional.lower_bound_scale(s_s)
        loss = _gaussian_kl_bits(mu_t, s_t.clamp_min(SCALES_MIN), mu_s, s_s) / (batch_size * per_item)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        bar.set_postfix(KL=f"{loss.item():.5f}b/el")
        if checkpoint is not None and step + 1 < steps and checkpoint.due(step + 1):
            checkpoint.save(step + 1, {"h_s": student.h_s}, {"optimizer": optimizer})
    bar.close()
    student.eval()
    return float(loss.detach())


def train_codec(
    features: FeatureSet,
    out_dir: str | os.PathLike,
    *,
    lmbda: float
    | None,  # None only for a packed anchor (codec.models.packed), whose rate point is hparams["qp"]
    kind: str = "hyperprior",
    levels: Sequence[str] | None = None,
    steps: int = 2000,
    batch_size: int = 8,
    lr: float = 1e-4,
    aux_lr: float = 1e-3,
    device: str = "cpu",
    resume: bool = False,
    force: bool = False,
    checkpoint_every: int = 100,
    checkpoint_seconds: float | None = None,  # also checkpoint when this long has passed since the last one
    seed: int = 0,
    hparams: dict | None = None,  # the model's; a hyperprior gets hyper_path="integer" unless it names one
    hyper_distill_steps: int
    | None = None,  # integer h_s: distillation steps after float training (None: = steps)
    norm_items: int = 256,
    progress: bool = True,
) -> LoadedCodec:
    """Train a codec of `kind` on `features` (e.g. a
    `probes.encoders.FeatureCache`) and save it to `out_dir`."""
    if kind in PACKED_KINDS:  # a standard anchor: nothing to train
        return create_packed_codec(features, out_dir, kind=kind, levels=levels, hparams=hparams, force=force)
    if lmbda is None:
        raise TrainingError(f"a {kind} codec needs lambda")
    if lmbda <= 0 or steps < 0 or batch_size < 1 or checkpoint_every < 1 or (hyper_distill_steps or 0) < 0:
        raise TrainingError(
            "lambda must be > 0, steps >= 0, batch_size >= 1, checkpoint_every >= 1, hyper_distill_steps >= 0"
        )
    cache = features
    if len(cache) == 0:
        raise TrainingError(f"feature cache {cache.path} holds no features")
    out_dir = Path(out_dir)
    ckpt = out_dir / CHECKPOINT_DIR
    if (out_dir / CONFIG).exists() and not (force or resume):
        raise FileExistsError(
            f"{out_dir} already holds a codec; pass --force to overwrite or --resume to continue"
        )
    dev = resolve_device(device)
    hparams = dict(hparams or {})
    if kind == "uniform":
        hparams.setdefault("step", step_for_lambda(lmbda))
    if kind == "hyperprior":
        hparams.setdefault("hyper_path", "integer")  # exact on any device (codec.models.integer)
    # integer h_s by distillation: train the float hyperprior first (see the module docstring)
    distill = kind == "hyperprior" and hparams["hyper_path"] == "integer" and hyper_distill_steps != 0
    torch.manual_seed(seed)  # the initial weights are part of the run's plan too
    model = create_codec(
        kind,
        cache.levels,
        levels=levels,
        resolution=cache.resolution,
        **({**hparams, "hyper_path": "float64"} if distill else hparams),
    )
    level_names = model.level_names
    plan = {
        "kind": kind,
        "lambda": lmbda,
        "levels": level_names,
        "hparams": model.hparams(),
        "batch_size": batch_size,
        "lr": lr,
        "aux_lr": aux_lr,
        "seed": seed,
        "encoder": cache.encoder,
        "weights_id": cache.weights_id,
        "resolution": cache.resolution,
    }
    if (
        distill
    ):  # the checkpoint holds the float stage; the default (= steps) is recorded as such, so steps may grow
        plan.update(
            hparams={**plan["hparams"], "hyper_path": "integer"},
            hyper_distill_steps="steps" if hyper_distill_steps is None else hyper_distill_steps,
        )
    main_params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    optimizers = {}
    if main_params:
        optimizers["optimizer"] = torch.optim.Adam(main_params, lr=lr)
    if aux_params:
        optimizers["aux_optimizer"] = torch.optim.Adam(aux_params, lr=aux_lr)

    start = 0
    checkpoint = Checkpoint(ckpt, plan, every_steps=checkpoint_every, every_seconds=checkpoint_seconds)
    if resume and checkpoint.exists:
        model.to(dev)  # first: the optimizers' state is loaded onto their parameters' device
        start, _ = checkpoint.load({"model": model}, optimizers)
        log.info("resuming %s from step %d of %d", out_dir, start, steps)
    else:
        n_fit = min(norm_items, len(cache))
        fit = (
            {
                name: torch.stack(
                    [cache.get(i, level_names)[name] for i in range(a, min(a + 8, n_fit))]
                ).float()
                for name in level_names
            }
            for a in range(0, n_fit, 8)
        )
        model.normalization.fit(fit)
        model.to(dev)

    rate = distortion = torch.zeros(())
    if kind != "uniform" and start < steps:
        model.train()
        desc = f"train-codec {kind} λ={lmbda:g}"
        batches = TrainingSteps(
            cache, level_names, range(start, steps), batch_size, seed, dev, desc, progress
        )
        for step, x in batches:
            for opt in optimizers.values():
                opt.zero_grad(set_to_none=True)
            out = model(x)
            rate, distortion = rate_distortion(model, x, out)
            loss = rate + lmbda * distortion
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"loss became {loss.item()} at step {step}; lower --lr or check the features"
                )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(main_params, 1.0)
            optimizers["optimizer"].step()
            if "aux_optimizer" in optimizers:
                model.aux_loss().backward()
                optimizers["aux_optimizer"].step()
            batches.bar.set_postfix(R=f"{rate.item():.4f}b/el", D=f"{distortion.item():.4f}")
            if step + 1 < steps and checkpoint.due(step + 1):
                checkpoint.save(step + 1, {"model": model}, optimizers)
    model.eval()
    checkpoint.save(max(steps, start), {"model": model}, optimizers)
    extra = {
        "training": {
            "steps": max(steps, start),
            "batch_size": batch_size,
            "lr": lr,
            "seed": seed,
            "features": str(cache.path),
            "items": len(cache),
            "last_rate_bits_per_element": float(rate.detach()),
            "last_mse": float(distortion.detach()),
        }
    }
    if distill:
        n = max(steps, start) if hyper_distill_steps is None else hyper_distill_steps
        torch.manual_seed(seed)
        student = create_codec(kind, cache.levels, levels=levels, resolution=cache.resolution, **hparams)
        # its own checkpoint: the float stage's stays as it ended (the teacher a resumed distillation reloads)
        stage = Checkpoint(
            ckpt / "distill",
            {**plan, "distill_steps": n},
            every_steps=checkpoint_every,
            every_seconds=checkpoint_seconds,
        )
        # a distillation of another length (its cosine schedule differs) or left by a run started over is
        # redone
        if not (resume and stage.same_plan()):
            shutil.rmtree(stage.directory, ignore_errors=True)
        kl = distill_integer_hyper(
            model,
            student,
            cache,
            steps=n,
            batch_size=batch_size,
            seed=seed,
            progress=progress,
            checkpoint=stage,
        )
        extra["training"]["hyper_distillation"] = {
            "steps": n,
            "lr": DISTILL_LR,
            "last_kl_bits_per_element": kl,
        }
        model = student
    return save_codec(
        model.cpu(), out_dir, encoder=cache.encoder, weights_id=cache.weights_id, lmbda=lmbda, extra=extra
    )
