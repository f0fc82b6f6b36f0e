"""What each kind of step does, by calling the library function behind the matching CLI command.

    images   open_dataset → the images of a split, as files (`images.json` lists them)
    extract  create_encoder + extract_features        (featcodec extract)
    features write_neck_inputs: a task split's neck inputs once (fp16, on the neck's grid); clean necks and
             evaluations read them instead of running the encoder
    codec-set  train_variable_rate_codec: one gain-unit network for every λ (codec.variable_rate)
    codec    train_codec on the feature cache          (featcodec train-codec), or one rate of a codec-set,
    or a
             packed anchor at one QP (train_codec's packed path: nothing trained; featcodec train-codec --qp)
    streams  write_decoded_split: a split coded once per codec (its .fcb streams); decoded necks and evals
    decode them remote   write_decoded_split(image_codec=): a test split through remote inference once
    (pictures coded) neck     train_neck                                (featcodec train-neck)
    eval     evaluate_neck, clean or through a codec   (featcodec eval)
    zero-rate  evaluate_zero_rate: no features at all   (featcodec zero-rate)
    report   report_from_files over results.jsonl      (featcodec report)

`run_step` is a plain function of (step document, run directory), so any executor (in-process, a process
pool, a Ray worker) can run it; it returns a small JSON summary that the runner records in step.json.
A step run again over its own unfinished directory (after a kill, a preemption or a Ray retry) resumes:
extraction and neck inputs skip their complete shards, codec and neck training continue from their last
checkpoint (`codec.checkpoint`, saved every `checkpoint_minutes` / `checkpoint_steps` of the study), and the
other kinds, which are short, write their outputs again atomically.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from bench.names import SWEEP_RESULTS
from codec.errors import InputError

REPORT_DIR = "report"
STEP_FILE = "step.json"
SUMMARY = "summary.md"


def step_dir(run_dir: Path, step_id: str) -> Path:
    return Path(run_dir) / "steps" / step_id


def encoder_weights(weights: str) -> dict:
    """A study's `weights` → create_encoder's keyword arguments."""
    if weights == "random":
        return {"random_init": True}
    if weights == "pretrained":
        return {"pretrained": True}
    if weights == "default":
        return {}
    return {"checkpoint": weights}


def run_step(doc: dict, run_dir: str | Path, progress: bool = False) -> dict:
    """Run one step (its inputs are finished); returns the summary stored in step.json."""
    import torch

    if doc.get("threads"):  # the same thread count in every executor: float reductions then agree bit for bit
        torch.set_num_threads(int(doc["threads"]))
    run_dir = Path(run_dir)
    out = step_dir(run_dir, doc["id"])
    inputs = {role: [step_dir(run_dir, i) for i in ids] for role, ids in doc["inputs"].items()}
    check_reachable(doc, run_dir, inputs)
    out.mkdir(parents=True, exist_ok=True)
    s = {**doc["settings"], "checkpoint": _checkpointing(doc), "ranks": doc.get("ranks", 1)}
    with _step_lock(out):
        return {**_KINDS[doc["kind"]](s, inputs, out, run_dir, progress), "worker": _worker()}


@contextmanager
def _step_lock(out: Path):
    """One process at a time in a step's directory. A sweep killed with kill -9 can leave a worker of its pool
    finishing the step; the resumed sweep waits for it (the lock dies with its holder) and then resumes from
    what it left, instead of two processes writing one checkpoint."""
    import fcntl
    import logging

    with open(out / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logging.getLogger(__name__).info("%s: another process is running this step; waiting for it", out)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _worker() -> dict:
    """Where the step ran (step.json): host, process, and the Ray node when under Ray."""
    import os
    import socket
    import sys

    where = {"host": socket.gethostname(), "pid": os.getpid()}
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            where["ray_node"] = ray.get_runtime_context().get_node_id()
    return where


def _checkpointing(doc: dict) -> dict:
    """train_codec / TrainNeckOptions arguments: checkpoint every N steps (only at the end
    when unset) and every M minutes."""
    steps = doc["settings"].get("steps") or 1
    every = doc.get("checkpoint_steps") or steps
    minutes = doc.get("checkpoint_minutes")
    return {"checkpoint_every": max(1, every), "checkpoint_seconds": 60 * minutes if minutes else None}


class UnreachableError(InputError):
    """A step's worker cannot see what the step needs (data, checkpoints, heads, its inputs, the run dir)."""


def check_reachable(doc: dict, run_dir: Path, inputs: dict[str, list[Path]]) -> None:
    """Before any work: every file the step names, its finished inputs and the run directory must be here.

    On a cluster each worker sees the shared filesystem at its own mounts; a step that cannot see them stops
    with one message naming everything missing, rather than failing an hour in.
    """
    import os
    import socket

    missing = []
    if not run_dir.is_dir() or not os.access(run_dir, os.W_OK):
        missing.append(f"run directory {run_dir} (not a writable directory here)")
    for role, dirs in inputs.items():
        missing += [f"input {role}: {d} (not finished)" for d in dirs if not (d / STEP_FILE).is_file()]
    for where, path in _named_files(doc["settings"]):
        if not Path(path).exists():
            missing.append(f"{where}: {path}")
    if missing:
        lines = "\n".join(f"  - {m}" for m in missing)
        raise UnreachableError(
            f"step {doc['id']} on {socket.gethostname()} (cwd {os.getcwd()}): cannot reach\n{lines}"
        )


def _named_files(settings: dict):
    """(setting, path) of every local file a step's settings name: data, encoder checkpoints, head folders."""
    for key in ("data", "train", "test"):
        spec = settings.get(key)
        spec = spec.get("data") if isinstance(spec, dict) else spec
        if isinstance(spec, str) and not spec.startswith("synthetic:"):
            for p in spec.split(":")[1:]:
                yield key, p
    weights = (settings.get("encoder") or {}).get("weights", "default")
    if weights not in ("default", "random", "pretrained"):
        yield "encoder.weights", weights
    head = settings.get("head", "")
    local = head[3:] if head.startswith("hf:") else head
    if local and not head.startswith(("builtin:", "builtin-new:")) and Path(local).is_absolute():
        yield "head", local
    elif head.startswith("hf:") and _hub_offline() and not _in_hub_cache(local):
        yield "head (hub cache, HF_HUB_OFFLINE set)", local


def _hub_offline() -> bool:
    import os

    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def _images(s: dict, inputs: dict, out: Path, run_dir: Path, progress: bool) -> dict:
    from codec.files import atomic_write_json
    from probes.data import open_dataset

    dataset = open_dataset(s["data"], split=s["split"], limit=s["limit"])
    folder = out / "images"
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(len(dataset)):
        sample = dataset[i]
        target = folder / f"{i:06d}.png"
        sample["image"].save(target)  # the image the task's encoder sees (pose: the person crop)
        paths.append(str(target))
    atomic_write_json(out / "images.json", paths)
    return {"images": len(paths)}


def _extract(s: dict, inputs: dict, out: Path, run_dir: Path, progress: bool) -> dict:
    from probes.encoders import create_encoder, extract_features

    paths = [p for d in inputs["images"] for p in json.loads((d / "images.json").read_text())]
    enc = s["encoder"]
    encoder = create_encoder(
        enc["name"], resolution=enc["resolution"], device=s["device"], **encoder_weights(enc["weights"])
    )
    # a rerun over this step's directory keeps the shards already written (extract_features resumes)
    crop = {"crop": s["crop"], "crops_per_image": s["crops_per_image"]} if s.get("crop") else {}
    cache = extract_features(
        encoder,
        paths,
        out / "features",
        batch_size=8,
        progress=progress,
        dtype=s.get("dtype", "float32"),
        **crop,
    )
    return {"features": len(cache), "weights_id": cache.weights_id}


def _split_through_encoder(s: dict, progress: bool) -> dict:
    """What the steps that run the study's encoder over one task split (features, streams, remote) pass on:
    the split (a step holds one, `train` or `test`), its task and head, the encoder and its weights."""
    enc, split = s["encoder"], s.get("test") or s["train"]
    return {
        "task": s["task"],
        "head": s["head"],
        "data": split["data"],
        "split": split["split"],
        "limit": split["limit"],
        "encoder": enc["name"],
        "resolution": enc["resolution"],
        "encoder_weights": encoder_weights(enc["weights"]),
        "batch_size": s["batch_size"],
        "device": s["device"],
        "progress": progress,
    }


def _features(s: dict, inputs: dict, out: Path, run_dir: Path, progress: bool) -> dict:
    from probes.neck_inputs import write_neck_inputs

    record = write_neck_inputs(
        out / "inputs", grid=s["grid"], neck_head=s.get("neck_head"), **_split_through_encoder(s, progress)
    )
    return {"samples": sum(len(shard["ids"]) for shard in record["shards"]), "grid": record["grid"]}


def _training(s: dict, progress: bool) -> dict:
    """The keywords every training step hands its trainer: schedule, seed, device, checkpointing."""
    keys = ("steps", "batch_size", "lr", "seed", "device")
    return {**{k: s[k] for k in keys}, "progress": progress, **s["checkpoint"]}


def _codec_hparams(s: dict) -> dict:
    return {
        k: v
        for k, v in (
            ("N", s["channels"]),
            ("M", s["latent_channels"]),
            ("grid_stride", s.get("grid_stride")),
            ("adapter_rank", s.get("adapter_rank")),
        )
        if v is not None
    }


def _codec_set(s: dict, inputs: dict, out: Path, run_dir: Path, progress: bool) -> dict:
    from codec.variable_rate import train_variable_rate_codec
    from probes.encoders import FeatureCache

    codecs = train_variable_rate_codec(
        FeatureCache(inputs["features"][0] / "features"),
        [out / "codecs" / str(i) for i in range(len(s["lambdas"]))],
        lambdas=s["lambdas"],
        hparams=_codec_hparams(s),
        resume=True,
        **_training(s, progress),
    )
    return {"codec_ids": [c.codec_id for c in codecs]}


def _codec(s: dict, inputs: dict, out: Path, run_dir: Path, progress: bool) -> dict:
    import shutil

    from codec.codec_dir import read_codec_config
    from codec.train import train_codec
    from probes.encoders import FeatureCache

    if "trained" in inputs:  # one rate of a variable-rate codec-set: its exported directory
        shutil.copytree(inputs["trained"][0] / "codecs" / str(s["index"]), out / "codec", dirs_exist_ok=True)
        config = read_codec_config(out / "codec")
        return {
            "codec_id": config["codec_id"],
            **{k: v for k, v in config["training"].items() if k.startswith("last")},
        }

    if s.get("qp") is not None:  # a packed anchor (codec.models.packed): a codec directory, no training
        hparams = {"qp": s["qp"], **({"preset": s["preset"]} if s.get("preset") else {})}
        codec = train_codec(
            FeatureCache(inputs["features"][0] / "features"),
            out / "codec",
            lmbda=None,
            kind=s["model"],
            hparams=hparams,
            force=True,
        )
        return {"codec_id": codec.codec_id}
    hparams = _codec_hparams(s)
    if s["model"] == "uniform":
        hparams = {}
    codec = train_codec(
        FeatureCache(inputs["features"][0] / "features"),
        out / "codec",
        lmbda=s["lambda"],
        kind=s["model"],
        hparams=hparams,
        resume=True,
        **_training(s, progress),
    )
    return {
        "codec_id": codec.codec_id,
        **{k: v for k, v in codec.config["training"].items() if k.startswith("last")},
    }


def _neck(s: dict, inputs: dict, out: Path, run_dir: Path, progress: bool) -> dict:
    from probes.training import TrainNeckOptions, train_neck

    enc = s["encoder"]
    after = inputs.get("after")
    codec = inputs.get("codec")
    init = inputs.get("init")
    features, streams = inputs.get("features"), inputs.get("streams")
    weights = {} if after else encoder_weights(enc["weights"])
    opts = TrainNeckOptions(
        task=s["task"],
        head=s["head"],
        data=s["train"]["data"],
        split=s["train"]["split"],
        limit=s["train"]["limit"],
        encoder=enc["name"],
        resolution=enc["resolution"],
        neck_layers=s["layers"],
        neck_dim=s["dim"],
        neck_heads=s["heads"],
        kd=s["kd"],
        codec=str(codec[0] / "codec") if codec else None,
        after=str(after[0] / "neck") if after else None,
        init=str(init[0] / "neck") if init else None,
        neck_inputs=str(features[0] / "inputs") if features else None,
        streams=str(streams[0] / "decoded") if streams else None,
        train_head=s["train_head"],
        **_training(s, progress),
        **weights,
    )
    ranks = int(s["ranks"])
    if ranks > 1:  # one neck on several devices: torchrun ranks under DDP (bench/sweep/distributed.py)
        config = _train_neck_distributed(opts, out, ranks)
    else:
        config = train_neck(opts, out / "neck", resume=True)
    t = config["training"]
    return {"first_loss": t["first_loss"], "final_loss": t["final_loss"], "ranks": ranks}


def _train_neck_distributed(opts, out: Path, ranks: int) -> dict:
    import dataclasses
    import os
    import subprocess
    import sys

    import torch

    from codec.files import atomic_write_json
    from probes.training import read_neck_config, torchrun_command

    options = out / "neck-options.json"
    atomic_write_json(options, {**dataclasses.asdict(opts), "progress": False})
    # the ranks import the code this process runs (a Ray worker's py_modules included), and share its threads
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "MASTER_ADDR": "127.0.0.1",
        "OMP_NUM_THREADS": str(torch.get_num_threads()),
    }
    launched = subprocess.run(
        torchrun_command(ranks, "bench.sweep.distributed", str(options), str(out / "neck")),
        env=env,
        capture_output=True,
        text=True,
    )
    if launched.returncode:
        raise RuntimeError(f"torchrun with {ranks} ranks failed:\n{launched.stderr[-4000:]}")
    return read_neck_config(out / "neck")


def _streams(s: dict, inputs: dict, out: Path, run_dir: Path, progress: bool) -> dict:
    from probes.streams import write_decoded_split

    record = write_decoded_split(
        out / "decoded",
        codec=inputs["codec"][0] / "codec",
        coder=s["coder"],
        keep_decoded=s.get("keep_decoded", False),
        **_split_through_encoder(s, progress),
    )
    return {"images": len(record["ids"]), "bpp": record["codec"]["bpp"]}


def _remote(s: dict, inputs: dict, out: Path, run_dir: Path, progress: bool) -> dict:
    from probes.streams import write_decoded_split

    record = write_decoded_split(
        out / "decoded",
        image_codec=s["image_codec"],
        image_quality=s["quality"],
        **_split_through_encoder(s, progress),
    )
    return {"images": len(record["ids"]), "bpp": record["codec"]["bpp"]}


def _eval(s: dict, inputs: dict, out: Path, run_dir: Path, progress: bool) -> dict:
    from codec.files import atomic_write_json
    from probes.evaluate import evaluate_neck

    codec, streams, features = inputs.get("codec"), inputs.get("streams"), inputs.get("features")
    result = evaluate_neck(
        inputs["neck"][0] / "neck",
        s["test"]["data"],
        split=s["test"]["split"],
        limit=s["test"]["limit"],
        codec=str(codec[0] / "codec") if codec else None,
        coder=s["coder"],
        batch_size=s["batch_size"],
        device=s["device"],
        progress=progress,
        decoded=streams[0] / "decoded" if streams else None,
        neck_inputs=features[0] / "inputs" if features else None,
    )
    atomic_write_json(out / "result.json", result)
    return {"metrics": result["metrics"], "bpp": result["bpp"]}


def _zero_rate(s: dict, inputs: dict, out: Path, run_dir: Path, progress: bool) -> dict:
    from codec.files import atomic_write_json
    from probes.evaluate import evaluate_zero_rate
    from probes.heads import load_head

    # scored as the task's heads are scored (a depth head's output kind decides the alignment)
    head = load_head(s["head"]) if s["task"] != "caption" else None
    options = {"output_kind": head.output_kind} if head is not None and s["task"] == "depth" else {}
    result = evaluate_zero_rate(
        s["task"],
        s["train"]["data"],
        s["test"]["data"],
        train_split=s["train"]["split"],
        split=s["test"]["split"],
        train_limit=s["train"]["limit"],
        limit=s["test"]["limit"],
        task_options=options,
    )
    atomic_write_json(out / "result.json", result)
    return {"metrics": result["metrics"]}


def _report(s: dict, inputs: dict, out: Path, run_dir: Path, progress: bool) -> dict:
    from bench.rd import report_from_files
    from bench.rd.markdown import summary_table
    from codec.files import atomic_write_bytes

    report = report_from_files(
        [run_dir / SWEEP_RESULTS], run_dir / REPORT_DIR, anchor=s["anchor"], force=True
    )
    # what `featcodec demo` prints: the verdicts and the across-seed table, by the report's own formatters
    atomic_write_bytes(run_dir / REPORT_DIR / SUMMARY, summary_table(report).encode())
    return {
        "sections": len(report.sections),
        "verdicts": {v.finding: v.outcome for v in report.verdicts},
        "dir": str(run_dir / REPORT_DIR),
    }


_KINDS = {
    "images": _images,
    "extract": _extract,
    "features": _features,
    "codec-set": _codec_set,
    "codec": _codec,
    "streams": _streams,
    "remote": _remote,
    "neck": _neck,
    "eval": _eval,
    "zero-rate": _zero_rate,
    "report": _report,
}
