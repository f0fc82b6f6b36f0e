"""Run a study's step graph: resumable, content-addressed, on a local or a Ray executor.

    RUN_DIR/study.toml          the study file this run was last started with (a copy)
    RUN_DIR/plan.json           every step: id, kind, label, settings, input ids
    RUN_DIR/steps/<id>/         a step's artefacts; `step.json` (written last, atomically) marks it finished
    RUN_DIR/results.jsonl       one evaluated point per line (fsync'd as each eval finishes; rewritten in plan
                                order before the report, so a resumed run ends with the same file)
    RUN_DIR/events.jsonl        start / done / failed of every step run, with times (what ran, when)
    RUN_DIR/report/             featcodec report over results.jsonl

A step that was killed leaves a directory without step.json; the next run (or Ray's retry) runs the step
again over it, and the step resumes from what it left (its checkpoint, its complete shards: steps.py), so a
kill loses at most a checkpoint interval of the steps that were running; a partial step's directory is never
deleted. Finished steps are never recomputed: their ids depend only on their settings and inputs, so editing
the study file reruns exactly the steps whose ids changed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path

from bench.names import POINT_KINDS, SWEEP_FIELDS, SWEEP_RECORD, SWEEP_RESULTS, ZERO_RATE_SWEEP_FIELDS
from codec.errors import InputError
from codec.files import atomic_write_bytes, atomic_write_json
from codec.names import schema_record

from .graph import Step, plan_steps
from .steps import STEP_FILE, run_step, step_dir
from .study import Study, load_study

EXECUTORS = ("local", "ray")


class SweepError(RuntimeError):
    """A step failed; the message names it and where its artefacts are."""


@dataclass
class SweepOutcome:
    study: Study
    steps: list[Step]
    ran: list[str]  # ids of the steps this invocation ran
    skipped: list[str]  # ids found finished
    run_dir: Path

    @property
    def results(self) -> Path:
        return self.run_dir / SWEEP_RESULTS


def is_done(run_dir: Path, step: Step) -> bool:
    return (step_dir(run_dir, step.id) / STEP_FILE).is_file()


def plan_table(steps: list[Step], run_dir: Path) -> str:
    """`featcodec sweep --plan`: one line per step, done or to do, dependencies first."""
    lines = []
    for i, step in enumerate(steps, 1):
        status = "done " if is_done(run_dir, step) else "to do"
        lines.append(f"{i:4d}  {status}  {step.id}  {step.label}")
    done = sum(is_done(run_dir, s) for s in steps)
    lines.append(f"{len(steps)} steps: {done} done, {len(steps) - done} to do")
    return "\n".join(lines)


def _append_line(path: Path, obj: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(obj, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _result_row(run_dir: Path, study: Study, step: Step) -> dict:
    result = json.loads((step_dir(run_dir, step.id) / "result.json").read_text())
    if step.kind == "zero-rate":
        result[SWEEP_RECORD] = schema_record(
            ZERO_RATE_SWEEP_FIELDS,
            {
                "study": study.name,
                "step": step.id,
                "task": step.settings["task"],
                "test": step.settings["test"],
                "lambda": None,
            },
        )
        return result
    neck = step.input("neck")[0]
    codec = step.input("codec")
    streams = step.input("streams")
    after = neck.input("after")
    ns = neck.settings
    # a standard anchor's point: a packed codec step (its `qp`) or a remote-inference split (no codec step)
    packed = bool(codec) and codec[0].settings.get("qp") is not None
    remote = streams[0].settings if streams and streams[0].kind == "remote" else None
    anchor = (
        f"packed-{codec[0].settings['model']}"
        if packed
        else f"remote-{remote['image_codec']}"
        if remote
        else None
    )
    result[SWEEP_RECORD] = schema_record(
        SWEEP_FIELDS,
        {
            "study": study.name,
            "step": step.id,
            "neck_step": neck.id,
            "codec_step": codec[0].id if codec else None,
            "encoder": ns["encoder"],
            "task": ns["task"],
            "layers": ns["layers"],
            "kd": ns["kd"],
            "mode": ns["mode"],
            "seed": ns["seed"],
            "lambda": codec[0].settings.get("lambda") if codec else None,
            "after": after[0].settings["task"] if after else None,
            "test": step.settings["test"],
            "codec": study.codec.settings() | {"coder": study.codec.coder} if codec and not packed else None,
            "anchor": anchor,
            "anchor_point": codec[0].settings["qp"] if packed else remote["quality"] if remote else None,
        },
    )
    return result


def _write_results(run_dir: Path, study: Study, steps: list[Step]) -> None:
    """results.jsonl in plan order, holding every finished eval once (atomic rewrite)."""
    rows = [_result_row(run_dir, study, s) for s in steps if s.kind in POINT_KINDS and is_done(run_dir, s)]
    atomic_write_bytes(
        run_dir / SWEEP_RESULTS, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()
    )


class _Display:
    """Steps done / total and the current step: a bar on a terminal, one line per event in a log file."""

    def __init__(self, total: int, done: int, enabled: bool, stream=None):
        self.stream = stream or sys.stderr
        self.tty = enabled and self.stream.isatty()
        self.enabled = enabled
        self.total, self.done = total, done
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, initial=done, desc="sweep", unit="step", file=self.stream, position=0
            )

    @property
    def inner_progress(self) -> bool:
        return self.tty  # a step's own bar only where it can redraw in place

    def start(self, step: Step) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(step.label)
        elif self.enabled:
            print(f"[{self.done + 1}/{self.total}] {step.label} ({step.id}) …", file=self.stream, flush=True)

    def finish(self, step: Step, seconds: float) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled:
            print(
                f"[{self.done}/{self.total}] done: {step.label} in {seconds:.1f} s",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _inline_submit(fn: Callable, *args) -> Future:
    future: Future = Future()
    try:
        future.set_result(fn(*args))
    except BaseException as e:  # noqa: BLE001 - handed to the scheduler, which reports the step
        future.set_exception(e)
    return future


def run_sweep(
    study_path: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    plan_only: bool = False,
    executor: str = "local",
    jobs: int = 1,
    address: str | None = None,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
) -> SweepOutcome:
    """Validate the study, then run every step not yet finished; returns what ran and what was reused."""
    echo = echo or (lambda line: print(line, file=sys.stderr))
    study = load_study(study_path, require_data=not plan_only)  # a plan needs no downloads
    steps = plan_steps(study)
    run_dir = Path(run_dir).resolve()  # every worker, whatever its working directory, finds the same files
    if plan_only:
        echo(plan_table(steps, run_dir))
        return SweepOutcome(study, steps, [], [s.id for s in steps if is_done(run_dir, s)], run_dir)
    if executor not in EXECUTORS:
        raise InputError(f"--executor {executor!r}: choose from {', '.join(EXECUTORS)}")
    if run_dir.exists() and any(run_dir.iterdir()) and not resume:
        raise InputError(
            f"{run_dir}: exists and is not empty; pass --resume to continue it (finished steps are kept)"
        )
    (run_dir / "steps").mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run_dir / "study.toml", Path(study_path).read_bytes())
    atomic_write_json(run_dir / "plan.json", {"study": study.name, "steps": [s.to_dict() for s in steps]})

    done = {s.id for s in steps if is_done(run_dir, s)}
    skipped = list(done)
    _write_results(run_dir, study, steps)  # a killed run may have finished an eval without appending it
    display = _Display(len(steps), len(done), progress)
    events = run_dir / "events.jsonl"
    ran: list[str] = []
    pending = [s for s in steps if s.id not in done]
    running: dict[Future, tuple[Step, float]] = {}
    failure: tuple[Step, BaseException] | None = None
    pool = _make_pool(executor, jobs, address, study.resources)
    try:
        while pending or running:
            ready = [s for s in pending if all(d.id in done for d in s.dependencies)]
            # Ray queues tasks against its own resources; local pools take `jobs` steps at a time
            slots = len(ready) if executor == "ray" else (jobs if pool is not None else 1) - len(running)
            for step in ready[: max(0, slots)] if failure is None else []:
                pending.remove(step)
                if step.kind == "report":
                    _write_results(run_dir, study, steps)
                _append_line(
                    events, {"event": "start", "step": step.id, "label": step.label, "time": time.time()}
                )
                display.start(step)
                started = time.perf_counter()
                doc = step_document(step, study)
                if pool is None:
                    future = _inline_submit(run_step, doc, run_dir, display.inner_progress)
                else:
                    future = pool.submit(step, doc, run_dir)
                running[future] = (step, started)
            if not running:
                if failure is not None or not pending:
                    break
                raise SweepError("no step can run: the plan has a cycle (a bug)")  # pragma: no cover
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                step, started = running.pop(future)
                seconds = time.perf_counter() - started
                error = future.exception()
                if error is not None:
                    _append_line(
                        events,
                        {"event": "failed", "step": step.id, "error": repr(error), "time": time.time()},
                    )
                    failure = failure or (step, error)
                    continue
                summary = future.result()
                atomic_write_json(
                    step_dir(run_dir, step.id) / STEP_FILE,
                    {**step.to_dict(), "summary": summary, "seconds": round(seconds, 3)},
                )
                _append_line(
                    events, {"event": "done", "step": step.id, "seconds": seconds, "time": time.time()}
                )
                done.add(step.id)
                ran.append(step.id)
                display.finish(step, seconds)
                if step.kind in POINT_KINDS:
                    _append_line(run_dir / SWEEP_RESULTS, _result_row(run_dir, study, step))
    finally:
        display.close()
        if pool is not None:
            pool.shutdown()
    if failure is not None:
        step, error = failure
        if isinstance(error, InputError):
            raise InputError(f"step {step.label} ({step.id}): {error}") from error
        raise SweepError(
            f"step {step.label} ({step.id}) failed: {type(error).__name__}: {error}; "
            f"its partial artefacts are in {step_dir(run_dir, step.id)}"
        ) from error
    _write_results(run_dir, study, steps)
    return SweepOutcome(study, steps, ran, skipped, run_dir)


def step_document(step: Step, study: Study) -> dict:
    """What `run_step` gets: the step, and how the study runs it (none of which enters the step's id)."""
    ranks = study.resources.get(step.kind, {}).get("gpus", 1) if step.kind == "neck" else 1
    return {
        **step.to_dict(),
        "threads": study.threads,
        "checkpoint_minutes": study.checkpoint_minutes,
        "checkpoint_steps": study.checkpoint_steps,
        "ranks": max(1, int(ranks)),
    }  # a neck given several GPUs trains on all of them (torchrun ranks)


class _ProcessPool:
    """--executor local --jobs N: independent steps in N spawned processes (CUDA- and fork-safe)."""

    def __init__(self, jobs: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, step: Step, doc: dict, run_dir: Path) -> Future:
        return self.pool.submit(run_step, doc, str(run_dir), False)

    def shutdown(self) -> None:
        self.pool.shutdown()


class _RayPool:
    """--executor ray: each step a Ray task with its resource request, on a cluster or a local ray.init().

    No step depends on the driver's working directory or sys.path: paths are absolute (the study loader, the
    run directory), and every task carries this checkout's packages (runtime_env py_modules: codec, probes,
    bench, uploaded once per content hash), so a node imports the driver's code whatever it has installed.
    A task killed with its node is retried by Ray and resumes from the step's checkpoint (steps.py).
    """

    RETRIES = 3

    def __init__(self, address: str | None, resources: dict | None = None):
        try:
            import ray
        except ImportError as e:
            raise InputError("--executor ray needs Ray: pip install 'featcodec[ray]'") from e
        import bench
        import codec
        import probes

        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:  # (a caller that started Ray itself chose the job's runtime_env)
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                runtime_env={"py_modules": [codec, probes, bench], "excludes": ["__pycache__"]},
            )
        self.remote = ray.remote(run_step)
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        # a task runs on one node: it must fit the largest, not the cluster's sum
        self.gpu, self.cpus = (
            any(n.get("GPU") for n in nodes),
            max((n.get("CPU", 0) for n in nodes), default=1),
        )
        self.study_resources = resources or {}

    def submit(self, step: Step, doc: dict, run_dir: Path) -> Future:
        resources = step.resources(self.gpu, self.study_resources)
        resources["num_cpus"] = min(resources["num_cpus"], self.cpus)  # a step must fit a node
        return (
            self.remote.options(**resources, max_retries=self.RETRIES, retry_exceptions=False)
            .remote(doc, str(run_dir), False)
            .future()
        )

    def shutdown(self) -> None:
        if self.started:
            self.ray.shutdown()


def _make_pool(executor: str, jobs: int, address: str | None, resources: dict | None = None):
    if executor == "ray":
        return _RayPool(None if address in (None, "local") else address, resources)
    if jobs > 1:
        return _ProcessPool(jobs)
    return None
