"""`train_neck`: fit a neck (optionally a built-in head) so a frozen head solves its task on encoder features.

    samples ─► FeatureSource (encoder | cache | stored neck inputs) [─► codec round trip | decoded streams]
    ─► neck
                                                                        ─► frozen head ─► task loss
                                                                         │
    samples ─► head.preprocess ─► head.teacher ───────── KD: MSE(neck tokens, teacher tokens) · W

Loss = task loss + W·KD ("How Universal Are SAM2 Features?", PCS 2025: distilling
the head's own encoder features into the neck helps, most for the generalist
encoder). `after` freezes a first neck and trains a second on its output (the
cross-neck analysis). Training is resumable: the step, neck/head/optimizer
state and loss history are checkpointed atomically every `checkpoint_every`
steps, and batches are a pure function of (seed, step), so a resumed run sees
exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler

from codec.batching import batch_indices
from codec.checkpoint import CHECKPOINT_DIR, Checkpoint, step_seed
from codec.progress import progress as progress_bar
from probes.data import collate_samples
from probes.heads import FrozenHead, save_builtin_head, shipped_head_dir
from probes.heads.builtin import BuiltinHead
from probes.names import NECK_FORMAT, NECK_FORMAT_VERSION
from probes.necks import NECK_SIZES, CrossNeck, Neck

from .neck_dir import (
    HEAD_DIR,
    WEIGHTS,
    NeckDirError,
    load_neck,
    load_weights,
    read_neck_config,
    save_weights,
    write_neck_config,
)
from .objectives import open_task_data, task_loss
from .sources import FeatureSource, PrecomputedFeatures, sha256_dir, sha256_file

log = logging.getLogger(__name__)


@dataclass
class TrainNeckOptions:
    task: str
    head: str
    data: str
    encoder: str | None = None  # taken from the first neck with `after`
    checkpoint: str | None = None
    pretrained: bool = False
    random_init: bool = False
    features: str | None = None
    resolution: int | None = None
    levels: list[str] = field(default_factory=list)  # default: all levels of the encoder
    neck_layers: int = 2
    neck_dim: int = 256
    neck_heads: int = 8
    kd: float = 0.0
    codec: str | None = None
    # where the features come from when computed once elsewhere (the sweep's steps): stored neck inputs of the
    # training split (probes.neck_inputs), or its streams through `codec` (probes.streams), decoded here
    neck_inputs: str | None = None
    streams: str | None = None
    after: str | None = None
    init: str | None = None  # a neck directory whose trained weights this neck starts from (fine-tuning)
    train_head: bool = False
    split: str | None = None
    limit: int | None = None
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 0.05
    warmup_steps: int | None = None
    seed: int = 0
    checkpoint_every: int = 200
    checkpoint_seconds: float | None = None  # also checkpoint when this long has passed since the last one
    device: str = "cpu"
    workers: int = 0  # DataLoader processes decoding images
    progress: bool = True
    # Features (and KD teacher tokens) of every training sample computed once before the first step when
    # they fit in this many MiB and the run visits a sample more than once (0: always on the fly).
    feature_memory_mb: int = 2048

    def plan(self) -> dict:
        """The options a resumed run must share with the interrupted one."""
        d = asdict(self)
        for k in (
            "device",
            "workers",
            "progress",
            "checkpoint_every",
            "checkpoint_seconds",
            "feature_memory_mb",
            "neck_inputs",
            "streams",
        ):  # how, not what: the same features from any of these
            d.pop(k)
        return d


def neck_name(layers: int) -> str:
    return next((n for n, k in NECK_SIZES.items() if k == layers), f"neck-{layers}L")


class StepBatches(Sampler):
    """Batch sampler of steps `start`..`steps`-1 (for a DataLoader with workers decoding images).

    Under torchrun each of the `world` processes takes an interleaved shard of every global batch (rank r:
    items r, r + world, …), as DistributedSampler shards a dataset, so the ranks together see exactly the
    batches a single process would.
    """

    def __init__(
        self, start: int, steps: int, batch_size: int, n: int, seed: int, rank: int = 0, world: int = 1
    ):
        self.start, self.steps, self.batch_size, self.n, self.seed = start, steps, batch_size, n, seed
        self.rank, self.world = rank, world

    def __iter__(self):
        for step in range(self.start, self.steps):
            yield batch_indices(step, self.batch_size, self.n, self.seed)[self.rank :: self.world]

    def __len__(self) -> int:
        return max(0, self.steps - self.start)


def torchrun_command(ranks: int, module: str, *args: str) -> list[str]:
    """`python -m MODULE ARGS...` as `ranks` torchrun processes on this machine (each joins the process
    group in `distributed_context`)."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)]
    return [*launcher, "-m", module, *args]


def distributed_context(device: torch.device) -> tuple[int, int]:
    """(rank, world size): (0, 1) normally; under torchrun (WORLD_SIZE > 1) the process group is joined
    (gloo on CPU, NCCL on CUDA) and this process's rank returned."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def learning_rate(step: int, opts: TrainNeckOptions) -> float:
    """Linear warm-up then cosine decay to 10 % (a function of the step, so
    resume needs no scheduler state)."""
    warmup = opts.warmup_steps if opts.warmup_steps is not None else min(100, opts.steps // 10)
    if step < warmup:
        return opts.lr * (step + 1) / warmup
    t = (step - warmup) / max(1, opts.steps - warmup)
    return opts.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def teacher_tokens(head: FrozenHead, samples, device) -> torch.Tensor:
    """The head's own encoder tokens on the samples' images: the KD target."""
    pixels = torch.stack([head.preprocess(s["image"]) for s in samples]).to(device)
    return head.teacher(pixels)


def distillation_loss(
    tokens: torch.Tensor, head: FrozenHead, samples, device, memo: dict | None = None
) -> torch.Tensor:
    """MSE between the neck's tokens and the head's own encoder tokens on the same images (from `memo`,
    {sample id: tokens}, where precomputed)."""
    target = (
        torch.stack([memo[s["id"]] for s in samples])
        if memo is not None
        else teacher_tokens(head, samples, device)
    )
    return F.mse_loss(tokens, target)


def precompute(run: NeckRun, opts: TrainNeckOptions) -> dict | None:
    """Replace the run's feature source by PrecomputedFeatures (and return the KD targets by sample id,
    computed in the same pass) when every sample's features fit in opts.feature_memory_mb and the run visits
    a sample more than once. The choice depends on the options only (not on a resume point), so a resumed run
    computes
    what an uninterrupted one does."""
    from .sources import feature_bytes

    n = len(run.dataset)
    need = n * feature_bytes(run.source)
    if opts.kd:
        need += n * 4 * math.prod(run.head.expects().shape(1)[1:])
    if (
        not opts.feature_memory_mb
        or opts.steps * opts.batch_size <= n
        or need > opts.feature_memory_mb * 2**20
    ):
        return None
    log.info("precomputing the features of %d training samples (%.0f MiB)", n, need / 2**20)
    teacher = (lambda samples: teacher_tokens(run.head, samples, run.device)) if opts.kd else None
    run.source = PrecomputedFeatures(run.source, run.dataset, progress=opts.progress, targets=teacher)
    return run.source.targets


def stored_source(neck_inputs, streams, codec, levels, device) -> FeatureSource | None:
    """Features computed once by a study's steps: stored neck inputs, or a
    split's streams decoded by `codec`."""
    if neck_inputs and streams:
        raise ValueError("give stored neck inputs (clean) or a split's streams (decoded), not both")
    if neck_inputs:
        from probes.neck_inputs import NeckInputs

        return NeckInputs(neck_inputs, levels or None, device)
    if streams:
        from probes.streams import DecodedFeatures

        return DecodedFeatures(streams, levels or None, device, codec=codec)
    return None


class NeckRun:
    """Everything one training run builds: data, features, head, neck; shared with evaluation."""

    def __init__(self, opts: TrainNeckOptions):
        from .sources import build_feature_source

        self.opts = opts
        device = torch.device(opts.device)
        self.first_config = read_neck_config(opts.after) if opts.after else None
        if self.first_config is not None:
            enc = self.first_config["encoder"]
            if opts.encoder and opts.encoder != enc["name"]:
                raise NeckDirError(
                    f"--after {opts.after}: its neck reads encoder {enc['name']!r}, not --encoder "
                    f"{opts.encoder!r}"
                )
            opts.encoder = enc["name"]
            opts.levels = list(self.first_config["levels"])
            if not (opts.checkpoint or opts.random_init or opts.features or opts.pretrained):
                opts.checkpoint, opts.features = enc.get("checkpoint"), enc.get("features")
                recorded = bool(opts.checkpoint or opts.features)
                opts.pretrained = str(enc.get("weights_id", "")).startswith("pretrained:") and not recorded
                opts.random_init = bool(enc.get("random_init")) and not recorded
            opts.resolution = opts.resolution or enc.get("resolution")
        if not opts.encoder and not opts.features:
            raise ValueError("give --encoder (with --checkpoint or --random-init) or --features")
        self.head, self.dataset = open_task_data(
            opts.task, opts.head, opts.data, opts.split, opts.limit, device
        )
        if isinstance(self.head, BuiltinHead) and not self.head.trained and not opts.train_head:
            raise ValueError(
                f"head {opts.head!r} is a new, untrained built-in head: pass --train-head to train it with "
                "the neck, "
                "or pass the head directory of a trained one"
            )
        if opts.train_head and not isinstance(self.head, BuiltinHead):
            raise ValueError("--train-head only applies to built-in heads (pretrained heads stay frozen)")
        if opts.kd and not self.head.has_teacher:
            raise ValueError(
                f"--kd needs a head with its own encoder (a pretrained head); {opts.head!r} has none"
            )
        self.source: FeatureSource = stored_source(
            opts.neck_inputs, opts.streams, opts.codec, opts.levels, device
        ) or build_feature_source(
            encoder=opts.encoder,
            checkpoint=opts.checkpoint,
            random_init=opts.random_init,
            pretrained=opts.pretrained,
            features=opts.features,
            resolution=opts.resolution,
            levels=opts.levels,
            dataset=self.dataset,
            device=device,
            codec=opts.codec,
        )
        opts.levels = list(self.source.levels)
        spec = self.head.expects()
        kw = dict(layers=opts.neck_layers, dim=opts.neck_dim, heads=opts.neck_heads)
        if opts.after:
            first, _ = load_neck(opts.after, device)
            self.neck: torch.nn.Module = CrossNeck(first, Neck(CrossNeck.second_in_shapes(first), spec, **kw))
            self.trainable = self.neck.second
        else:
            self.neck = Neck(self.source.levels, spec, **kw)
            self.trainable = self.neck
        if hasattr(self.source, "check_neck"):  # stored neck inputs: averaged onto this neck's grid
            self.source.check_neck(self.neck)
        self.init_config = None
        if opts.init:  # fine-tune: start from another neck of the same shape (e.g. the clean neck)
            self.init_config = read_neck_config(opts.init)
            if {k: v for k, v in self.init_config["neck"].items() if k != "name"} != self.trainable.config():
                raise NeckDirError(
                    f"--init {opts.init}: its neck {self.init_config['neck']} is not this run's "
                    f"{self.trainable.config()}"
                )
            if (
                self.init_config["encoder"].get("name") != opts.encoder
                or self.init_config["task"] != opts.task
            ):
                raise NeckDirError(
                    f"--init {opts.init}: a {self.init_config['task']} neck on "
                    f"{self.init_config['encoder'].get('name')}, not {opts.task} on {opts.encoder}"
                )
            load_weights(self.trainable, Path(opts.init) / WEIGHTS)
        self.neck.to(device)
        if opts.train_head:
            self.head.unfreeze()
        self.device = device

    def config(self) -> dict:
        opts = self.opts
        head = self.head.describe()
        if isinstance(self.head, BuiltinHead):
            head["trained_here"] = bool(opts.train_head)
            if opts.train_head:
                head["dir"] = HEAD_DIR
            elif opts.head.startswith("builtin:"):  # shipped: reloaded by spec, its exact files recorded
                head["dir"] = None
                head["source_sha256"] = sha256_dir(shipped_head_dir(self.head.task))
            else:
                head["dir"] = str(Path(opts.head).resolve())
        else:
            local = Path(opts.head[3:] if opts.head.startswith("hf:") else opts.head)
            if local.is_dir():  # a local checkpoint: record where and exactly what
                head["source"] = str(local.resolve())
                head["source_sha256"] = sha256_dir(local)
        codec = None
        if opts.codec:
            keep = ("dir", "sha256", "codec_id", "config_hash", "kind", "lambda", "levels")
            codec = {k: v for k, v in self.source.describe_codec().items() if k in keep}
        after = None
        if opts.after:
            after = {
                "dir": str(Path(opts.after).resolve()),
                "task": self.first_config["task"],
                "config_sha256": sha256_file(Path(opts.after) / "config.json"),
            }
        from codec.files import package_versions

        return {
            "format": NECK_FORMAT,
            "format_version": NECK_FORMAT_VERSION,
            "task": opts.task,
            "encoder": self.source.describe(),
            "levels": list(self.source.levels),
            "neck": {"name": neck_name(opts.neck_layers), **self.trainable.config()},
            "head": head,
            "kd": opts.kd,
            "codec": codec,
            "after": after,
            "init": None
            if self.init_config is None
            else {
                "dir": str(Path(self.opts.init).resolve()),
                "config_sha256": sha256_file(Path(self.opts.init) / "config.json"),
            },
            "data": {
                "spec": opts.data,
                "split": opts.split,
                "limit": opts.limit,
                "samples": len(self.dataset),
            },
            "train": opts.plan(),
            "versions": package_versions(),
        }


def train_neck(
    opts: TrainNeckOptions, out_dir: str | os.PathLike, *, resume: bool = False, force: bool = False
) -> dict:
    """Train a neck into `out_dir`; returns its config (with the loss history summary)."""
    out_dir = Path(out_dir)
    config_path = out_dir / "config.json"
    checkpoint = Checkpoint(
        out_dir / CHECKPOINT_DIR,
        opts.plan(),
        every_steps=opts.checkpoint_every,
        every_seconds=opts.checkpoint_seconds,
    )
    if out_dir.exists() and not force:
        if resume and not checkpoint.exists and not config_path.is_file():
            log.info("--resume: nothing to resume in %s, starting", out_dir)
        elif not resume and (checkpoint.exists or config_path.is_file()):
            raise NeckDirError(
                f"{out_dir}: already holds a neck or a run; pass --resume to continue or --force"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    if force:  # start over: what the old run left must not be mistaken for this one's
        for stale in (config_path, out_dir / WEIGHTS):
            stale.unlink(missing_ok=True)
        shutil.rmtree(checkpoint.directory, ignore_errors=True)

    torch.manual_seed(opts.seed)  # the same initial weights on every rank
    run = NeckRun(opts)
    rank, world = distributed_context(run.device)
    if world > 1 and opts.batch_size % world:
        raise ValueError(
            f"--batch-size {opts.batch_size} must be a multiple of the {world} torchrun processes"
        )
    params = [p for p in run.trainable.parameters()]
    if opts.train_head:
        params += list(run.head.parameters())
    optimizer = torch.optim.AdamW(params, lr=opts.lr, weight_decay=opts.weight_decay)
    modules = {"neck": run.trainable, **({"head": run.head} if opts.train_head else {})}
    start, losses = 0, []
    if resume and checkpoint.exists and not force:
        start, extra = checkpoint.load(modules, {"optimizer": optimizer})
        losses = list(extra.get("losses", []))
        log.info("resuming %s at step %d of %d", out_dir, start, opts.steps)

    def save(step: int) -> None:
        if not rank:  # rank 0 writes; the others hold the same weights
            checkpoint.save(step, modules, {"optimizer": optimizer}, {"losses": losses})

    kd_targets = precompute(run, opts)
    run.trainable.train()
    neck = run.neck
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # DDP averages the neck's gradients over the ranks (equal shards: the gradient of the global batch's
        # mean loss); a head trained with the neck is outside the DDP module, so its gradients are averaged
        # by hand in the same way.
        neck = DistributedDataParallel(
            run.neck, device_ids=[run.device.index] if run.device.type == "cuda" else None
        )
    rng = random.Random(opts.seed)
    sampler = StepBatches(start, opts.steps, opts.batch_size, len(run.dataset), opts.seed, rank, world)
    if isinstance(run.source, PrecomputedFeatures):  # labels in memory too: no image is decoded again
        loader = run.source.batches(sampler)
    else:
        loader = DataLoader(
            run.dataset, batch_sampler=sampler, collate_fn=collate_samples, num_workers=opts.workers
        )
    bar = progress_bar(
        loader,
        desc=f"train-neck {opts.task}",
        unit="step",
        disable=not opts.progress,
        initial=start,
        total=opts.steps,
    )
    for step, samples in enumerate(bar, start=start):
        rng.seed(step_seed(opts.seed, step))  # caption choice: a function of the step too
        torch.manual_seed(
            step_seed(opts.seed, step)
        )  # and any draw of torch's, so a resumed run is the same run
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, opts)
        tokens = neck(run.source.features(samples))
        loss_task = task_loss(opts.task, run.head, tokens, samples, rng)
        loss = loss_task
        record = {"step": step + 1, "task": loss_task.item()}
        if opts.kd:
            loss_kd = distillation_loss(tokens, run.head, samples, run.device, kd_targets)
            loss = loss + opts.kd * loss_kd
            record["kd"] = loss_kd.item()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"train-neck: loss became {loss.item()} at step {step + 1}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if world > 1:
            _average_over_ranks(record, loss, list(run.head.parameters()) if opts.train_head else [])
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        record.setdefault("loss", loss.item())
        losses.append(record)
        bar.set_postfix(loss=f"{record['loss']:.4f}")
        if step + 1 < opts.steps and checkpoint.due(step + 1):
            save(step + 1)
    bar.close()

    save(opts.steps)
    if opts.train_head:
        run.head.trained = True
        run.head.freeze()
    config = run.config()
    config["training_features"] = (
        "precomputed" if isinstance(run.source, PrecomputedFeatures) else "on the fly"
    )
    tail = losses[-max(1, len(losses) // 10) :]
    config["training"] = {
        "steps": opts.steps,
        "first_loss": losses[0]["loss"] if losses else None,
        "final_loss": sum(r["loss"] for r in tail) / len(tail) if tail else None,
        "losses": losses,
    }
    if opts.codec:
        config["codec"]["train_bpp"] = run.source.bits_per_pixel
    if rank == 0:  # rank 0 writes the neck directory; the other ranks hold the same weights
        save_weights(run.trainable, out_dir / WEIGHTS)
        if opts.train_head:
            save_builtin_head(run.head, out_dir / HEAD_DIR)
        write_neck_config(out_dir, config)
    if world > 1:
        torch.distributed.barrier()
    return config


def _average_over_ranks(record: dict, loss: torch.Tensor, extra_params: list) -> None:
    """The global batch's loss for the record, and DDP's gradient averaging for parameters outside DDP."""
    import torch.distributed as dist

    world = dist.get_world_size()
    total = loss.detach().clone()
    dist.all_reduce(total)
    record["loss"] = total.item() / world
    for p in extra_params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world
