"""`featcodec calibrate --device cpu|cuda`: measure the per-operation costs `--plan --estimate` prices with.

Each operation is timed by running the real step (`steps.run_step`, the function every executor calls) at
two sizes and fitting a line: the slope is the cost per unit (per training step, per image), the intercept
the step's fixed start-up (loading a head, building an encoder, writing its directory). The steps are the
study's own (encoders at its resolutions, its codec and neck settings, its heads and data), shrunk: what is
unreachable here (a checkpoint or data not downloaded, a hub head offline) is measured with random weights
or skipped, and the shipped figure for it stays, labelled with its source.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from codec.files import atomic_write_json

from .estimate import Calibration, calibration_about, codec_attrs, neck_attrs, op_key
from .graph import Step, plan_steps
from .steps import STEP_FILE, run_step, step_dir
from .study import Study

log = logging.getLogger(__name__)


class _Bench:
    """Runs shrunk copies of a study's steps in a scratch run directory and records what they cost."""

    def __init__(self, study: Study, device: str, root: Path, echo: Callable[[str], None]):
        self.study, self.device, self.root, self.echo = study, device, root, echo
        self.ops: dict[str, dict] = {}
        self.source = ""
        self.count = 0
        (root / "steps").mkdir(parents=True, exist_ok=True)

    def run(self, step: Step, settings: dict, inputs: dict[str, list[str]]) -> tuple[str, float]:
        """Run `step` with `settings` on the finished steps `inputs`; (its scratch id, seconds)."""
        self.count += 1
        sid = f"{step.kind}-calibrate-{self.count}"
        doc = {
            "id": sid,
            "kind": step.kind,
            "settings": {**settings, "device": self.device},
            "inputs": inputs,
            "threads": self.study.threads,
        }
        # on the CPU, the step's CPU seconds (one torch thread: its time on one core, slowed by the
        # companions' use of shared cores and caches, but not by other jobs time-slicing the machine); on a
        # GPU, wall time
        clock = time.process_time if self.device == "cpu" else time.perf_counter
        started = clock()
        run_step(doc, self.root)
        seconds = clock() - started
        atomic_write_json(step_dir(self.root, sid) / STEP_FILE, doc)  # finished: an input for the next steps
        return sid, seconds

    def line(
        self, step, make: Callable[[int], tuple[dict, dict]], sizes: tuple[int, int]
    ) -> tuple[float, float, str]:
        """(intercept, slope, id of the larger run) of a step's time against a size; the small run twice (the
        faster counts), so a first call's imports and caches do not pass for a per-step cost."""
        small = min((self.run(step, *make(sizes[0])) for _ in range(2)), key=lambda r: r[1])
        runs = [small, self.run(step, *make(sizes[1]))]
        slope = max(0.0, (runs[1][1] - runs[0][1]) / (sizes[1] - sizes[0]))
        return max(0.0, runs[0][1] - slope * sizes[0]), slope, runs[1][0]

    def record(self, name: str, seconds: float, note: str = "", **attrs) -> None:
        self.ops[op_key(name, **attrs)] = {
            "seconds": seconds,
            "source": self.source + (f"; {note}" if note else ""),
        }
        self.echo(f"  {op_key(name, **attrs)}: {seconds:.4g} s")


def _first(steps: list[Step], kind: str, **match) -> Step | None:
    return next(
        (s for s in steps if s.kind == kind and all(s.settings.get(k) == v for k, v in match.items())), None
    )


def calibrate(
    study: Study,
    device: str,
    out: str | Path,
    *,
    base: Calibration | None = None,
    jobs: int = 2,
    echo: Callable[[str], None] = print,
) -> Calibration:
    """Measure the study's operations on `device` (on the CPU while `jobs - 1` other step-like loads run, as
    in a
    sweep with `--jobs`); write them over `base` (the shipped file) to `out`."""
    import torch

    if study.threads:
        torch.set_num_threads(study.threads)
    base = base or Calibration.shipped(device)
    steps = plan_steps(study)
    root = Path(tempfile.mkdtemp(prefix="featcodec-calibrate-"))
    bench = _Bench(study, device, root, echo)
    about = calibration_about(device)
    bench.source = (
        f"measured by featcodec calibrate on {about['machine']}, {about['date']}, study {study.name}"
    )
    try:
        with companions(jobs - 1 if device == "cpu" else 0):
            _measure(bench, study, steps, device, root, echo)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    about["jobs"] = jobs if device == "cpu" else 1
    merged = Calibration(device, {**base.ops, **bench.ops}, None, {**about, "based_on": str(base.path)})
    atomic_write_json(out, merged.to_doc())
    merged.path = Path(out)
    return merged


def _measure(bench: _Bench, study: Study, steps: list[Step], device: str, root: Path, echo) -> None:
    from probes.data import open_dataset

    # images: written PNGs, per image
    images = next(s for s in steps if s.kind == "images")
    source = images.settings["data"].split(":")[0]

    def image_set(n):
        return {**images.settings, "limit": min(n, images.settings.get("limit") or n)}, {}

    a, b, image_id = bench.line(images, image_set, (8, 32))
    bench.record("step_start", a, kind="images")
    bench.record("image_write", b, source=source)
    files = json.loads((step_dir(root, image_id) / "images.json").read_text())
    bench.ops[op_key("image_bytes", source=source)] = {
        "seconds": sum(Path(f).stat().st_size for f in files) / len(files),
        "source": bench.source + "; bytes per image, not seconds",
    }
    small, _ = bench.run(images, *image_set(8))
    for enc in study.encoders:
        entry = dict(
            enc.to_dict(), weights="random" if enc.weights not in ("default", "random") else enc.weights
        )
        res = enc.resolution or _resolution(enc.name)
        echo(f"{enc.name} at {res} px")
        extract = _first(steps, "extract", encoder=enc.to_dict())
        # whole maps (no crops): the coding costs below are per whole image, and a codec step measured on them
        # is scaled to the crops by the estimate
        whole = {k: v for k, v in extract.settings.items() if k not in ("crop", "crops_per_image")}
        runs = [
            bench.run(extract, {**whole, "encoder": entry}, {"images": [i]}) for i in (small, small, image_id)
        ]
        runs = [min(runs[:2], key=lambda r: r[1]), runs[2]]
        slope = max(0.0, (runs[1][1] - runs[0][1]) / 24)
        bench.record("step_start", max(0.0, runs[0][1] - 8 * slope), kind="extract")
        bench.record(
            "encoder_forward",
            slope,
            "incl. decoding the image and writing its features",
            encoder=enc.name,
            resolution=res,
        )
        cache = runs[1][0]
        # the step that trains: a single-λ codec, or a variable-rate codec-set (training + distillation steps)
        codec = next(
            s
            for s in steps
            if s.kind in ("codec", "codec-set")
            and s.input("features") == (extract,)
            and "steps" in s.settings
        )  # (a packed anchor's codec step trains nothing)
        cs = codec.settings
        a, b, codec_id = bench.line(
            codec, lambda n, cs=cs, cache=cache: ({**cs, "steps": n}, {"features": [cache]}), (2, 22)
        )
        bench.record("step_start", a, kind="codec")
        bench.record(
            "codec_train_step",
            b,
            f"a {codec.kind} step, incl. the integer h_s distillation",
            encoder=enc.name,
            resolution=res,
            **codec_attrs(cs),
        )
        trained = step_dir(root, codec_id) / ("codecs/0" if codec.kind == "codec-set" else "codec")
        _coding(bench, trained, step_dir(root, cache) / "features", enc.name, res, cs["model"], device)
        for task in study.tasks:
            neck = _first(steps, "neck", task=task.name, encoder=enc.to_dict(), mode="clean")
            if neck is None:
                continue
            ns = {**neck.settings, "encoder": entry}
            try:
                n = len(
                    open_dataset(ns["train"]["data"], split=ns["train"]["split"], limit=ns["train"]["limit"])
                )
                first = (
                    n // ns["batch_size"] + 2
                )  # past one epoch: the features are computed once, as in the study
                a, b, neck_id = bench.line(
                    neck, lambda k, ns=ns: ({**ns, "steps": k, "kd": 0.0}, {}), (first, first + 40)
                )
            # any failure (a head or data not reachable here) keeps the shipped figure
            except Exception as e:
                echo(f"  {task.name} neck skipped ({type(e).__name__}: {e}); the shipped cost stays")
                continue
            forward = bench.ops[op_key("encoder_forward", encoder=enc.name, resolution=res)]["seconds"]
            bench.record("step_start", max(0.0, a - n * forward), kind="neck")
            attrs = dict(encoder=enc.name, resolution=res, **neck_attrs(ns))
            bench.record("neck_train_step", b, **attrs, batch=ns["batch_size"])
            if any(k for k in (task.kd or study.necks.kd)):
                _teacher(bench, task, device)
            evals = _first(steps, "eval", test=task.test.to_dict())
            es = evals.settings
            limit = es["test"]["limit"]
            sizes = (8, min(32, limit or 32))

            def test_set(k, es=es, neck_id=neck_id):
                return {**es, "test": {**es["test"], "limit": k}}, {"neck": [neck_id]}

            counts = [
                len(open_dataset(es["test"]["data"], split=es["test"]["split"], limit=k)) for k in sizes
            ]
            runs = [bench.run(evals, *test_set(k)) for k in (sizes[0], *sizes)]
            runs = [min(runs[:2], key=lambda r: r[1]), runs[2]]
            per = max(0.0, (runs[1][1] - runs[0][1]) / max(1, counts[1] - counts[0]))
            bench.record("step_start", max(0.0, runs[0][1] - counts[0] * per), kind="eval")
            bench.record("neck_eval", max(0.0, per - forward), **attrs)
    zero = next(s for s in steps if s.kind == "zero-rate")
    _, seconds = bench.run(zero, zero.settings, {})
    n = sum(
        len(
            open_dataset(
                zero.settings[k]["data"], split=zero.settings[k]["split"], limit=zero.settings[k]["limit"]
            )
        )
        for k in ("train", "test")
    )
    bench.record("zero_rate_sample", seconds / n, "the whole step over its samples")


def _resolution(name: str) -> int:
    from probes.encoders import get_spec

    return get_spec(name).default_resolution


def _coding(
    bench: _Bench, codec_dir: Path, cache_dir: Path, encoder: str, res: int, model: str, device: str
) -> None:
    """codec_encode / codec_decode per image: the trained (shrunk) codec on 8 cached items."""
    import torch

    from codec.codec_dir import load_codec
    from codec.pipeline import decode_streams, encode_features
    from probes.encoders import FeatureCache

    codec = load_codec(codec_dir, device=device)
    cache = FeatureCache(cache_dir)
    items = [cache.get(i, codec.model.level_names) for i in range(min(8, len(cache)))]
    x = {k: torch.stack([it[k] for it in items]).float().to(device) for k in codec.model.level_names}
    encode_features(codec, x)  # warm-up
    started = time.perf_counter()
    streams = encode_features(codec, x)
    encode = (time.perf_counter() - started) / len(items)
    started = time.perf_counter()
    decode_streams(codec, streams, device=device)
    decode = (time.perf_counter() - started) / len(items)
    bench.record("codec_encode", encode, encoder=encoder, resolution=res, model=model)
    bench.record("codec_decode", decode, encoder=encoder, resolution=res, model=model)
    bench.ops[op_key("stream_bits_per_pixel")] = {
        "seconds": 8 * sum(map(len, streams)) / len(streams) / res**2,
        "source": bench.source + "; bits per pixel of a shrunk codec's streams, not seconds",
    }


def _teacher(bench: _Bench, task, device: str) -> None:
    """head_teacher: the head's own encoder on one image (the KD target)."""
    import torch
    from PIL import Image

    from probes.heads import load_head

    head = load_head(task.head, device=device)
    pixels = torch.stack([head.preprocess(Image.new("RGB", (256, 256))) for _ in range(8)]).to(device)
    head.teacher(pixels)
    started = time.perf_counter()
    head.teacher(pixels)
    bench.record("head_teacher", (time.perf_counter() - started) / 8, head=task.head)


def _workload(iterations: int = 40) -> float:
    """A step-like CPU load on one torch thread (convolutions forward and backward); its seconds."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.GELU(), torch.nn.Conv2d(64, 64, 3, padding=1)
    )
    x = torch.randn(8, 64, 32, 32)
    started = time.perf_counter()
    for _ in range(iterations):
        net(x).square().mean().backward()
    return time.perf_counter() - started


def _busy(stop) -> None:
    while not stop.is_set():
        _workload(4)


@contextmanager
def companions(count: int):
    """`count` processes each keeping one core busy with step-like work, as the other steps of a sweep run
    with
    `--jobs count + 1` do: costs measured meanwhile are the costs of a step sharing the machine that way (on a
    2-vCPU VM two steps do not each run at full speed; shared caches and memory bandwidth)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    processes = [context.Process(target=_busy, args=(stop,), daemon=True) for _ in range(count)]
    for p in processes:
        p.start()
    try:
        yield
    finally:
        stop.set()
        for p in processes:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
