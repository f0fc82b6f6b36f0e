"""The whole mini-encoder recipe: corpus → mini-hiera (MAE) → mini-sam2 (SAM) +
frozen-trunk baseline → evaluation.

    out/corpus-3000-128px.npz          the rendered synthetic:mix corpus (cache)
    out/mae.ckpt.pt, sam.ckpt.pt, ...  training checkpoints (every CKPT_EVERY steps; --resume continues)
    out/mini-hiera.safetensors         official MAE Hiera keys (model_state of mae_hiera_*.pth)
    out/mini-sam2.safetensors          official SAM2 keys: image_encoder.*, sam_prompt_encoder.*,
                                       sam_mask_decoder.*, no_mem_embed
    out/baseline-frozen-trunk.safetensors  mini-hiera trunk (frozen) + the same neck/decoder, same steps
    out/report.json                    losses, evaluation, wall times, machine

Every random draw is a function of (SEED, stage, step), so a run resumed from
a checkpoint continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from codec.progress import progress as progress_bar

from .corpus import held_out_images, load_or_render_corpus
from .mae import MAE_CONFIG, RESOLUTION, build_mae, mae_eval, mae_step, make_optimizer
from .mapping import hieradet_trunk_config, mae_to_hieradet
from .sam import build_sam2_model, make_sam_optimizer, one_point_miou, sam_step, shipped_state

log = logging.getLogger(__name__)

SEED = 0
CKPT_EVERY = 25


@dataclass(frozen=True)
class Recipe:
    corpus_images: int = 6000
    mae_steps: int = 2000
    mae_batch: int = 32
    mae_lr: float = 2e-3
    sam_steps: int = 2000
    sam_batch: int = 8
    sam_lr: float = 1e-3
    sam_trunk_lr: float = 3e-4
    eval_per_task: int = 16  # held-out images per renderer (probe test split)

    def scaled(self, scale: float) -> Recipe:
        """Fewer (or more) steps and images, e.g. 0.01 for a smoke test."""
        return Recipe(
            corpus_images=max(12, int(self.corpus_images * scale)),
            mae_steps=max(2, int(self.mae_steps * scale)),
            mae_batch=self.mae_batch if scale >= 0.1 else 8,
            mae_lr=self.mae_lr,
            sam_steps=max(2, int(self.sam_steps * scale)),
            sam_batch=self.sam_batch if scale >= 0.1 else 4,
            sam_lr=self.sam_lr,
            sam_trunk_lr=self.sam_trunk_lr,
            eval_per_task=self.eval_per_task if scale >= 0.1 else 2,
        )


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def _atomic_safetensors(tensors: dict, path: Path, metadata: dict) -> None:
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    tmp.replace(path)


def _train(
    name: str, model, opt, steps: int, step_fn: Callable[[int], dict | float], out: Path, resume: bool
) -> tuple[list[float], float]:
    """Run `step_fn(step)` for steps, checkpointing model + optimiser; returns (losses, seconds)."""
    ckpt = out / f"{name}.ckpt.pt"
    losses: list[float] = []
    start, seconds = 0, 0.0
    if resume and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start, losses, seconds = int(state["step"]), list(state["losses"]), float(state["seconds"])
        log.info("%s: resuming at step %d/%d", name, start, steps)
    bar = progress_bar(total=steps, initial=start, desc=name)
    t0 = time.perf_counter() - seconds
    for step in range(start, steps):
        result = step_fn(step)
        loss = result["loss"] if isinstance(result, dict) else result
        losses.append(loss)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        if (step + 1) % CKPT_EVERY == 0 or step + 1 == steps:
            _atomic_torch_save(
                {
                    "model": model.state_dict(),
                    "opt": opt.state_dict(),
                    "step": step + 1,
                    "losses": losses,
                    "seconds": time.perf_counter() - t0,
                },
                ckpt,
            )
    bar.close()
    return losses, time.perf_counter() - t0


def _summary(losses: list[float], window: int = 20) -> dict:
    w = max(1, min(window, len(losses) // 4 or 1))
    return {"first": sum(losses[:w]) / w, "last": sum(losses[-w:]) / w, "steps": len(losses)}


def run_recipe(
    out: Path, *, recipe: Recipe = Recipe(), device: str = "cpu", resume: bool = False, evaluate: bool = True
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / "report.json"
    report = json.loads(report_path.read_text()) if resume and report_path.is_file() else {}
    report.update({"recipe": asdict(recipe), "seed": SEED, "machine": _machine()})
    t_start = time.perf_counter()

    bar = progress_bar(total=recipe.corpus_images, desc="corpus")
    t0 = time.perf_counter()
    corpus = load_or_render_corpus(out, recipe.corpus_images, RESOLUTION, bar)
    bar.close()
    report["corpus"] = {"images": len(corpus), "seconds": time.perf_counter() - t0, "spec": "synthetic:mix"}

    # -- mini-hiera: MAE -------------------------------------------------------------------------
    hiera_path = out / "mini-hiera.safetensors"
    if not (resume and hiera_path.is_file() and "mae" in report):
        mae = build_mae(SEED).to(device)
        opt = make_optimizer(mae, recipe.mae_lr)
        losses, seconds = _train(
            "mae",
            mae,
            opt,
            recipe.mae_steps,
            lambda s: mae_step(
                mae, opt, corpus, s, recipe.mae_steps, recipe.mae_batch, recipe.mae_lr, SEED, device
            ),
            out,
            resume,
        )
        _atomic_safetensors(
            mae.state_dict(),
            hiera_path,
            {"format": "pt", "layout": "hiera-mae model_state", "config": json.dumps(MAE_CONFIG)},
        )
        report["mae"] = {"loss": _summary(losses), "seconds": seconds}
        report_path.write_text(json.dumps(report, indent=2))
    mae_state = load_file(str(hiera_path))

    # -- mini-sam2 (trunk from mini-hiera, trained) and the frozen-trunk baseline ----------------------
    trunk_state = mae_to_hieradet(mae_state)
    for name, freeze, path in (
        ("sam", False, out / "mini-sam2.safetensors"),
        ("baseline", True, out / "baseline-frozen-trunk.safetensors"),
    ):
        if resume and path.is_file() and name in report:
            continue
        model = build_sam2_model(SEED).to(device)
        model.image_encoder.trunk.load_state_dict(trunk_state, strict=True)
        opt = make_sam_optimizer(model, recipe.sam_lr, None if freeze else recipe.sam_trunk_lr)
        losses, seconds = _train(
            name,
            model,
            opt,
            recipe.sam_steps,
            lambda s, m=model, o=opt, f=freeze: sam_step(
                m, o, corpus, s, recipe.sam_steps, recipe.sam_batch, SEED, device, freeze_trunk=f
            ),
            out,
            resume,
        )
        _atomic_safetensors(
            shipped_state(model),
            path,
            {"format": "pt", "layout": "sam2 {'model': ...}", "frozen_trunk": str(freeze)},
        )
        report[name] = {"loss": _summary(losses), "seconds": seconds}
        report_path.write_text(json.dumps(report, indent=2))

    if evaluate:
        report["evaluation"] = evaluate_outputs(out, per_task=recipe.eval_per_task, device=device)
    report["total_seconds_this_run"] = time.perf_counter() - t_start
    report_path.write_text(json.dumps(report, indent=2))
    return report


def evaluate_outputs(out: Path, *, per_task: int = 16, device: str = "cpu") -> dict:
    """Held-out evidence (probe *test* split images of all three renderers, 128 px):
    MAE loss of mini-hiera vs the same network at random init vs the mean predictor, and one-point mIoU
    of mini-sam2 vs the frozen-trunk baseline."""
    t0 = time.perf_counter()
    data = held_out_images(per_task, RESOLUTION)
    trained = build_mae(SEED)
    trained.load_state_dict(load_file(str(out / "mini-hiera.safetensors")))
    random_init = build_mae(SEED)  # the recipe's own initialisation: same seed, no training
    result = {"held_out": {"split": "test", "images": len(data), "per_renderer": per_task}}
    m_trained, m_random = (
        mae_eval(trained.to(device), data, device=device),
        mae_eval(random_init.to(device), data, device=device),
    )
    result["mae_loss"] = {
        "mini-hiera": m_trained["loss"],
        "random-init": m_random["loss"],
        "mean-predictor": m_trained["mean_predictor"],
    }
    for name, file in (
        ("mini-sam2", "mini-sam2.safetensors"),
        ("baseline-frozen-trunk", "baseline-frozen-trunk.safetensors"),
    ):
        model = build_sam2_model(SEED)
        missing, unexpected = model.load_state_dict(load_file(str(out / file)), strict=False)
        assert not unexpected and all(not k.startswith(("image_encoder", "sam_")) for k in missing)
        result.setdefault("one_point_miou", {})[name] = one_point_miou(model.to(device), data, device=device)
    result["seconds"] = time.perf_counter() - t0
    return result


def _machine() -> dict:
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_avg": load,
        "platform": platform.platform(),
        "torch": torch.__version__,
    }


def check_trunk_config() -> None:
    """The shipped yaml's trunk is the hieradet twin of the MAE trunk (fails loudly if they drift)."""
    from omegaconf import OmegaConf

    from .sam import CONFIG_PATH

    trunk = OmegaConf.to_container(OmegaConf.load(CONFIG_PATH).model.image_encoder.trunk)
    trunk.pop("_target_")
    expected = hieradet_trunk_config(MAE_CONFIG, RESOLUTION)
    if trunk != expected:
        raise ValueError(f"{CONFIG_PATH}: trunk {trunk} is not the mini-hiera twin {expected}")
