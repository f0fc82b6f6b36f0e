"""A study expanded into steps: images → extract → codec → streams → neck → eval →
report, with each result computed once:

    features  the neck inputs of a task split (encoder, split, the neck's working grid): read by every clean
    neck
              (any depth, KD weight, seed; the cross-necks reading through a first neck of the same grid) and
              every clean evaluation, instead of running the encoder
    streams   a split (train or test) coded once per codec: its decoded-mode necks and every evaluation
    through the
              codec decode these streams instead of encoding again

The standard's anchors (`[anchors.KIND]`) join without seed or training: a packed anchor is one `codec` step
per (encoder, kind, QP) with `streams` steps per task test split, exactly like a learned codec; remote
inference is one `remote` step per (encoder, image codec, quality, task test split) that writes the same
decoded-split format. Every clean neck (of every seed) is then scored through them by an `eval` that reads
those decoded features.

A step's id is a hash of its kind, its settings and its inputs' ids, so the same work always has the
same id (in any run directory: the cache is content-addressed) and an edit to the study file changes the
ids of exactly the steps it affects and of everything downstream of them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property

from .study import AnchorPlan, EncoderEntry, Study, TaskPlan

KINDS = (
    "images",
    "extract",
    "features",
    "codec-set",
    "codec",
    "streams",
    "remote",
    "neck",
    "eval",
    "zero-rate",
    "report",
)
# what a step asks of a Ray cluster by default (CPUs; a GPU for these kinds where the cluster has one); a
# study's [resources.KIND] tables override them (cpus, gpus, memory in GiB)
_CPUS = {
    "images": 1,
    "extract": 2,
    "features": 2,
    "codec-set": 2,
    "codec": 2,
    "streams": 2,
    "remote": 2,
    "neck": 2,
    "eval": 2,
    "zero-rate": 1,
    "report": 1,
}
_GPU_KINDS = ("extract", "codec-set", "codec", "streams", "remote", "features", "neck", "eval")

# Token grids of the hub heads the shipped studies name (read from their configs: image size / patch size),
# so a plan made offline knows a neck's working grid; a built-in head is asked (it ships with featcodec).
HUB_HEAD_TOKENS = {
    "hf:depth-anything/Depth-Anything-V2-Small-hf": 37 * 37,  # 518 px / 14
    "hf:usyd-community/vitpose-base-simple": 16 * 12,  # 256×192 px / 16
    "hf:Salesforce/blip-image-captioning-base": 24 * 24,  # 384 px / 16
}


def neck_grid(encoder: EncoderEntry | dict, head: str) -> list[int] | None:
    """The working grid of a neck on `encoder` for `head` (probes.necks.anchor_grid), or None where the head's
    token grid is not known without loading it (another hub head): the
    `features` step then finds it itself."""
    from probes.encoders import get_spec
    from probes.necks import anchor_grid

    tokens = HUB_HEAD_TOKENS.get(head)
    if tokens is None and head.startswith(("builtin:", "builtin-new:")):
        import math

        from codec.errors import InputError
        from probes.heads import load_head

        try:
            tokens = math.prod(load_head(head).expects().grid)
        except InputError:  # builtin-new:caption builds its vocabulary from the data first
            tokens = None
    if tokens is None:
        return None
    enc = encoder if isinstance(encoder, dict) else encoder.to_dict()
    return list(anchor_grid(get_spec(enc["name"]).shapes(enc.get("resolution")), tokens))


@dataclass(frozen=True, eq=False)
class Step:
    kind: str
    settings: dict
    inputs: tuple[tuple[str, tuple[Step, ...]], ...] = ()  # (role, steps), e.g. ("codec", (codec_step,))
    label: str = field(default="", compare=False)

    @cached_property
    def id(self) -> str:
        doc = {
            "kind": self.kind,
            "settings": self.settings,
            "inputs": {role: [s.id for s in steps] for role, steps in self.inputs},
        }
        canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        return f"{self.kind}-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"

    def __eq__(self, other) -> bool:
        return isinstance(other, Step) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def input(self, role: str) -> tuple[Step, ...]:
        for r, steps in self.inputs:
            if r == role:
                return steps
        return ()

    @property
    def dependencies(self) -> list[Step]:
        return [s for _, steps in self.inputs for s in steps]

    def resources(self, gpu: bool, study: dict | None = None) -> dict:
        """Ray's options for this step: the defaults above, then the study's `resources` for its kind."""
        request = (study or {}).get(self.kind, {})
        out = {
            "num_cpus": request.get("cpus", _CPUS.get(self.kind, 1)),
            "num_gpus": request.get("gpus", 1 if gpu and self.kind in _GPU_KINDS else 0),
        }
        if request.get("memory"):
            out["memory"] = int(request["memory"] * 2**30)
        return out

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "settings": self.settings,
            "inputs": {role: [s.id for s in steps] for role, steps in self.inputs},
        }


def plan_steps(study: Study) -> list[Step]:
    """Every step of the study, dependencies first (a deterministic order: the study file's)."""
    order: dict[str, Step] = {}

    def add(step: Step) -> Step:
        order.setdefault(step.id, step)
        return order[step.id]

    device = study.device
    image_steps = tuple(
        add(Step("images", split.to_dict(), label=f"images {split.data} {split.split or ''}".strip()))
        for split in study.codec.data
    )
    evals: list[Step] = []
    for enc in study.encoders:
        extract = add(
            Step(
                "extract",
                {"encoder": enc.to_dict(), "device": device, **study.codec.extract_settings()},
                (("images", image_steps),),
                label=f"extract {enc.name}",
            )
        )
        anchors = _anchor_points(add, study, enc, extract)  # no seed: shared by every seed's necks
        for seed in study.seeds:
            codecs = _codec_steps(add, study, enc, extract, seed)
            for task in study.tasks:
                for layers in study.necks.layers:
                    for kd in task.kd if task.kd is not None else study.necks.kd:
                        for mode in task.modes or study.necks.modes:
                            # the standard's anchors are scored through the direct necks (no KD): what the
                            # learned-vs-anchor table compares
                            evals += _neck_evals(
                                add, study, enc, task, layers, kd, mode, seed, codecs, () if kd else anchors
                            )
            for first, second in study.cross_neck:
                t1 = next(t for t in study.tasks if t.name == first)
                t2 = next(t for t in study.tasks if t.name == second)
                for layers in study.necks.layers:
                    first_neck = add(_neck_step(add, study, enc, t1, layers, 0.0, seed, None, None))
                    cross = add(_neck_step(add, study, enc, t2, layers, 0.0, seed, None, first_neck))
                    evals += [add(_eval_step(study, t2, cross, c, add)) for c in (None, *codecs)]
    for task in study.tasks:  # every curve's 0-bit point: the best prediction made without any features
        evals.append(
            add(
                Step(
                    "zero-rate",
                    {
                        "task": task.name,
                        "head": task.head,
                        "train": task.train.to_dict(),
                        "test": task.test.to_dict(),
                    },
                    label=f"zero-rate {task.name}",
                )
            )
        )
    report = Step(
        "report",
        {"anchor": study.anchor, "study": study.name},
        (("evals", tuple(dict.fromkeys(evals))),),
        label="report",
    )
    add(report)
    return list(order.values())


def _codec_steps(add, study: Study, enc: EncoderEntry, extract: Step, seed: int) -> list[Step]:
    """One codec per λ: each trained alone, or (codec.variable_rate) exported from one gain-unit network
    trained once for every λ (a `codec-set` step; each `codec` step then copies its rate's directory)."""
    device, lambdas = study.device, study.codec.lambdas
    if not study.codec.variable_rate:
        return [
            add(
                Step(
                    "codec",
                    {**study.codec.settings(), "lambda": lmbda, "seed": seed, "device": device},
                    (("features", (extract,)),),
                    label=f"codec {enc.name} λ={lmbda:g} seed {seed}",
                )
            )
            for lmbda in lambdas
        ]
    trained = add(
        Step(
            "codec-set",
            {**study.codec.settings(), "lambdas": list(lambdas), "seed": seed, "device": device},
            (("features", (extract,)),),
            label=f"codec-set {enc.name} ×{len(lambdas)} λ seed {seed}",
        )
    )
    return [
        add(
            Step(
                "codec",
                {"lambda": lmbda, "index": i, "seed": seed},
                (("trained", (trained,)),),
                label=f"codec {enc.name} λ={lmbda:g} seed {seed}",
            )
        )
        for i, lmbda in enumerate(lambdas)
    ]


def _anchor_points(add, study: Study, enc: EncoderEntry, extract: Step) -> list:
    """The standard's anchor points of one encoder: a packed anchor's `codec` step per QP (train_codec's
    packed path: nothing is trained), and a remote anchor's `AnchorPlan` with one quality per point (its
    `remote` steps
    are per task split, made by `_eval_step`)."""
    out: list = []
    for anchor in study.anchors:
        for point in anchor.points:
            if anchor.remote:
                out.append(AnchorPlan(anchor.kind, (point,)))
                continue
            settings = {
                "model": anchor.kind,
                "qp": int(point),
                "preset": anchor.preset,
                "device": study.device,
            }
            out.append(
                add(
                    Step(
                        "codec",
                        settings,
                        (("features", (extract,)),),
                        label=f"codec {enc.name} {anchor.kind} qp={point}",
                    )
                )
            )
    return out


def _codec_name(codec: Step) -> str:
    """A codec step's rate point in labels: `λ=0.5 seed 0` (learned) or `hevc qp=37` (packed anchor)."""
    if codec.settings.get("qp") is not None:
        return f"{codec.settings['model']} qp={codec.settings['qp']}"
    return f"λ={codec.settings['lambda']:g} seed {codec.settings['seed']}"


def _remote_step(study: Study, enc: EncoderEntry, task: TaskPlan, anchor: AnchorPlan) -> Step:
    """The task's test split through remote inference once: pictures coded, the
    encoder run on the decoded ones."""
    quality = anchor.points[0]
    return Step(
        "remote",
        {
            "task": task.name,
            "head": task.head,
            "test": task.test.to_dict(),
            "encoder": enc.to_dict(),
            "image_codec": anchor.standard,
            "quality": quality,
            "batch_size": study.eval_batch_size,
            "device": study.device,
        },
        label=f"remote {enc.name} {task.name} {anchor.standard} q={quality:g}",
    )


def _features_step(study: Study, enc: EncoderEntry, task: TaskPlan, role: str, neck_head: str) -> Step:
    """The task's `role` split (train | test) through the encoder once, stored as a neck for `neck_head`
    reads it
    (the first neck's head for a cross-neck); necks of the same working grid share it."""
    split = task.train if role == "train" else task.test
    grid = neck_grid(enc, neck_head)
    settings = {
        "task": task.name,
        "head": task.head,
        role: split.to_dict(),
        "encoder": enc.to_dict(),
        "grid": grid,
        "batch_size": study.eval_batch_size,
        "device": study.device,
    }
    if grid is None:  # found by the step from the neck's head
        settings["neck_head"] = neck_head
    where = "×".join(map(str, grid)) if grid else f"for {neck_head}"
    return Step("features", settings, label=f"features {enc.name} {task.name} {role} {where}")


def _neck_head(neck: Step) -> str:
    """The head whose working grid a neck's encoder features go to: its own, or
    its first neck's (cross-neck)."""
    after = neck.input("after")
    return after[0].settings["head"] if after else neck.settings["head"]


def _neck_step(
    add,
    study: Study,
    enc: EncoderEntry,
    task: TaskPlan,
    layers: int,
    kd: float,
    seed: int,
    codec: Step | None,
    after: Step | None,
    init: Step | None = None,
) -> Step:
    """A neck trained on the task's training split: clean (reading a `features` step) or decoded (reading the
    split's `streams` through `codec`)."""
    settings = {
        **study.necks.settings(),
        "task": task.name,
        "head": task.head,
        "train": task.train.to_dict(),
        "layers": layers,
        "kd": kd,
        "seed": seed,
        "encoder": enc.to_dict(),
        "device": study.device,
        "train_head": task.train_head,
        "mode": "decoded" if codec is not None else "clean",
    }
    if init is not None:  # fine-tuned from the clean neck `init`
        settings["steps"] = study.necks.finetune_steps
    inputs = []
    if codec is not None:
        inputs += [("codec", (codec,)), ("streams", (add(_streams_step(study, enc, task, codec, "train")),))]
    else:
        neck_head = after.settings["head"] if after is not None else task.head
        inputs.append(("features", (add(_features_step(study, enc, task, "train", neck_head)),)))
    if after is not None:
        inputs.append(("after", (after,)))
    if init is not None:
        inputs.append(("init", (init,)))
    label = (
        f"neck {enc.name} {task.name} {layers}L"
        + (f" kd={kd:g}" if kd else "")
        + (f" on {after.settings['task']}-neck" if after else "")
        + (" (decoded)" if codec else "")
    )
    return Step("neck", settings, tuple(inputs), label=label)


def _streams_step(study: Study, enc: EncoderEntry, task: TaskPlan, codec: Step, role: str = "test") -> Step:
    """The task's `role` split coded once by `codec`: every neck trained or scored
    through it decodes these streams."""
    split = task.train if role == "train" else task.test
    settings = {
        "task": task.name,
        "head": task.head,
        role: split.to_dict(),
        "encoder": enc.to_dict(),
        "coder": study.codec.coder,
        "batch_size": study.eval_batch_size,
        "device": study.device,
    }
    if study.keep_decoded:  # only when set: the ids of studies without it stay as they were
        settings["keep_decoded"] = True
    return Step(
        "streams",
        settings,
        (("codec", (codec,)),),
        label=f"streams {enc.name} {task.name}{' train' if role == 'train' else ''} {_codec_name(codec)}",
    )


def _eval_step(study: Study, task: TaskPlan, neck: Step, codec: Step | AnchorPlan | None, add) -> Step:
    """A neck scored clean (through a `features` step), through a codec's streams, or (an AnchorPlan) through
    a
    remote-inference split."""
    enc = EncoderEntry(**neck.settings["encoder"])
    if isinstance(codec, AnchorPlan):
        inputs = [("neck", (neck,)), ("streams", (add(_remote_step(study, enc, task, codec)),))]
        label = f"{codec.kind} q={codec.points[0]:g}"
    elif codec is None:
        inputs = [
            ("neck", (neck,)),
            ("features", (add(_features_step(study, enc, task, "test", _neck_head(neck))),)),
        ]
        label = "clean"
    else:
        inputs = [
            ("neck", (neck,)),
            ("codec", (codec,)),
            ("streams", (add(_streams_step(study, enc, task, codec)),)),
        ]
        label = _codec_name(codec).removesuffix(f" seed {codec.settings.get('seed')}")
    label = f"eval {neck.label.removeprefix('neck ')} {label}"
    return Step(
        "eval",
        {
            "test": task.test.to_dict(),
            "batch_size": study.eval_batch_size,
            "device": study.device,
            "coder": study.codec.coder,
        },
        tuple(inputs),
        label=label,
    )


def _neck_evals(add, study, enc, task, layers, kd, mode, seed, codecs, anchors=()) -> list[Step]:
    if mode == "clean":  # a clean neck: also through every standard anchor (decoded necks are per learned λ)
        neck = add(_neck_step(add, study, enc, task, layers, kd, seed, None, None))
        return [add(_eval_step(study, task, neck, c, add)) for c in (None, *codecs, *anchors)]
    out = []
    # decoded: one neck per λ on that codec's decoded features, fine-tuned from the clean neck
    # (necks.finetune_steps) or trained from scratch (finetune_steps = 0)
    init = (
        add(_neck_step(add, study, enc, task, layers, kd, seed, None, None))
        if study.necks.finetune_steps
        else None
    )
    for c in codecs:
        neck = add(_neck_step(add, study, enc, task, layers, kd, seed, c, None, init))
        out.append(add(_eval_step(study, task, neck, c, add)))
    return out
