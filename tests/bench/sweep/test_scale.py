"""The study at scale: a plan that prices itself, resume inside a step after kill -9, paths that do not depend
on the working directory, workers that check what they can reach, and a two-node Ray cluster."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.sweep.estimate import COSTS, Calibration, data_size, estimate, op_key
from bench.sweep.graph import KINDS, plan_steps
from bench.sweep.runner import run_sweep
from bench.sweep.steps import UnreachableError, run_step
from bench.sweep.study import DataSplit, StudyError, load_study

from .test_sweep import TOY, _normalised_rows, _write, kill_sweep_when

FULL = Path(__file__).parents[3] / "bench" / "studies" / "full.toml"


def test_the_full_study_is_priced_without_its_data():
    result = CliRunner().invoke(main, ["sweep", str(FULL), "--plan", "--estimate"])
    assert result.exit_code == 0, result.output
    assert "GPU-hours" in result.output and "critical path" in result.output
    assert "795 (NYUv2 splits.mat trainNdxs)" in result.output  # a known size: the data is not here
    for kind in ("extract", "codec", "neck", "eval"):
        assert any(line.startswith(kind) for line in result.output.splitlines())


def test_the_full_study_as_planned_fits_200_gpu_hours_and_300_gb():
    """Each result computed once by the real planner: neck inputs in `features` steps, coded splits as
    streams,
    the codecs' features as fp16 crops."""
    study = load_study(FULL, require_data=False)
    steps = plan_steps(study)
    est = estimate(study, steps)
    assert est.device_hours <= 200 and est.scratch_bytes <= 300e9, est.table()
    kinds = {s.kind for s in steps}
    assert {"features", "streams"} <= kinds
    necks = [s for s in steps if s.kind == "neck"]
    assert all(s.input("features") or s.input("streams") for s in necks)  # no neck runs the encoder
    assert all(s.input("features") or s.input("streams") for s in steps if s.kind == "eval")
    # shared: one features step per (encoder, split, working grid), whatever the depth, KD weight or
    # cross-neck
    features = [s for s in steps if s.kind == "features"]
    assert len(features) == len(
        {
            (
                s.settings["encoder"]["name"],
                json.dumps(s.settings.get("train") or s.settings["test"], sort_keys=True),
                tuple(s.settings["grid"]),
            )
            for s in features
        }
    )


def test_every_step_kind_has_a_cost_function():
    assert set(KINDS) <= set(COSTS)


def test_data_sizes_come_from_the_index_a_declared_size_or_the_known_size(tmp_path):
    assert data_size(DataSplit("synthetic:depth:48", "test")) == (48, "the data's index")
    absent = f"nyuv2:{tmp_path}/nyu_depth_v2_labeled.mat"
    assert data_size(DataSplit(absent, "train")) == (795, "NYUv2 splits.mat trainNdxs")
    assert data_size(DataSplit(absent, "train", limit=100)) == (100, "NYUv2 splits.mat trainNdxs")
    assert data_size(DataSplit(f"nyuv2:{tmp_path}/mine.mat", size=321)) == (321, "declared size")
    with pytest.raises(Exception, match="size = N"):
        data_size(DataSplit(f"nyuv2:{tmp_path}/mine.mat"), where="tasks.depth.train")


def test_a_missing_cost_takes_the_nearest_calibrated_entry_scaled_by_pixels_and_batch():
    cal = Calibration(
        "cuda",
        {
            op_key("codec_train_step", encoder="e", resolution=512, batch=4): {"seconds": 1.0},
            op_key("codec_train_step", encoder="f", resolution=512, batch=4): {"seconds": 9.0},
        },
    )
    assert cal.seconds("codec_train_step", encoder="e", resolution=512, batch=4) == 1.0
    assert cal.seconds("codec_train_step", encoder="e", resolution=1024, batch=8) == pytest.approx(8.0)
    with pytest.raises(Exception, match="featcodec calibrate"):
        cal.seconds("neck_train_step", encoder="e")


def test_wall_time_replays_the_runners_schedule(tmp_path):
    study = load_study(_write(tmp_path, TOY))
    steps = plan_steps(study)
    est = estimate(study, steps, Calibration.shipped("cpu"), jobs=1)
    serial = est.wall_seconds(1)
    assert serial == pytest.approx(sum(c.seconds for c in est.costs.values()))
    assert est.critical_path()[0] <= est.wall_seconds(4) <= serial


def test_paths_are_absolute_against_the_study_file_whatever_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "studies" / "data").mkdir(parents=True)
    (tmp_path / "studies" / "data" / "nyu.mat").write_bytes(b"")
    (tmp_path / "studies" / "ckpt.safetensors").write_bytes(b"")
    text = TOY.replace('weights = "random"', 'weights = "ckpt.safetensors"').replace(
        'test = { data = "synthetic:depth", split = "test", limit = 3 }',
        'test = { data = "nyuv2:data/nyu.mat", split = "test" }',
    )
    study_file = _write(tmp_path / "studies", text)
    monkeypatch.chdir(tmp_path)  # neither the study's folder nor where its paths lead
    study = load_study("studies/study.toml")
    assert study.tasks[0].test.data == f"nyuv2:{tmp_path / 'studies' / 'data' / 'nyu.mat'}"
    assert study.encoders[0].weights == str(tmp_path / "studies" / "ckpt.safetensors")
    (tmp_path / "studies" / "data" / "nyu.mat").unlink()
    with pytest.raises(StudyError, match="nyu.mat: no such file"):
        load_study(study_file)
    assert load_study(study_file, require_data=False).tasks[0].test.data.endswith("nyu.mat")


def test_a_worker_that_cannot_reach_a_steps_files_stops_naming_them(tmp_path):
    (tmp_path / "steps").mkdir()
    doc = {
        "id": "eval-x",
        "kind": "eval",
        "inputs": {"neck": ["neck-unfinished"]},
        "settings": {"test": {"data": f"nyuv2:{tmp_path}/gone.mat", "split": "test", "limit": None}},
    }
    with pytest.raises(UnreachableError) as info:
        run_step(doc, tmp_path)
    assert "gone.mat" in str(info.value) and "neck-unfinished" in str(info.value)
    assert not (tmp_path / "steps" / "eval-x").exists()  # nothing started


LONG_NECK = TOY.replace("steps = 2\nbatch_size = 2\n[tasks", "steps = 120\nbatch_size = 2\n[tasks").replace(
    "threads = 1\n", "threads = 1\ncheckpoint_steps = 10\n"
)


def test_a_neck_step_killed_midway_resumes_from_its_checkpoint_to_the_same_result(tmp_path, caplog):
    study = _write(tmp_path, LONG_NECK)
    reference = run_sweep(study, tmp_path / "reference", progress=False)
    run_dir = tmp_path / "run"
    kill_sweep_when(
        study, run_dir, lambda: bool(list(run_dir.glob("steps/neck-*/neck/checkpoint/state.json")))
    )
    (state,) = run_dir.glob("steps/neck-*/neck/checkpoint/state.json")
    killed_at = json.loads(state.read_text())["step"]
    assert 0 < killed_at < 120 and not (state.parents[2] / "step.json").exists()

    caplog.set_level("INFO", logger="probes.training.loop")
    run_sweep(study, run_dir, resume=True, progress=False)
    resumed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resuming")]
    assert (
        len(resumed) == 1 and int(resumed[0].split("at step ")[1].split()[0]) == killed_at
    )  # not from step 0
    assert _normalised_rows(run_dir) == _normalised_rows(reference.run_dir)
    neck = state.parents[1] / "weights.safetensors"
    assert neck.read_bytes() == (reference.run_dir / neck.relative_to(run_dir)).read_bytes()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(condition, what: str, nodes: list, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while not condition():
        dead = [n.args[2] for n in nodes if n.poll() is not None]
        assert not dead and time.time() < deadline, f"{what}: Ray node exited or timed out ({dead})"
        time.sleep(0.2)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_two_node_ray_cluster_gives_the_local_executors_results(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    study = _write(
        tmp_path,
        TOY + "\n[resources.codec]\ncpus = 1\n[resources.neck]\ncpus = 1\n"
        "[resources.eval]\ncpus = 1\n[resources.extract]\ncpus = 1\n",
    )
    local = run_sweep(study, tmp_path / "local", progress=False)
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"RAY_AUTH_MODE": "disabled"}
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    short = Path(
        tempfile.mkdtemp(prefix="fc-ray-", dir="/tmp")
    )  # Ray's socket paths must stay under 108 bytes
    nodes: list[subprocess.Popen] = []
    try:
        for name, args in (
            ("head", ["--head", f"--port={port}", "--include-dashboard=false"]),
            ("worker", [f"--address=127.0.0.1:{port}"]),
        ):
            cwd = tmp_path / name  # each node its own working directory and temp dir
            cwd.mkdir()
            nodes.append(
                subprocess.Popen(
                    [
                        str(ray_bin),
                        "start",
                        *args,
                        "--num-cpus=1",
                        f"--temp-dir={short / name}",
                        "--disable-usage-stats",
                        "--block",
                    ],
                    cwd=cwd,
                    env=env,
                    start_new_session=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            if name == "head":
                _wait(lambda: _listening(port), "the head's GCS port", nodes)
        import ray

        ray.init(address=f"127.0.0.1:{port}", log_to_driver=False, configure_logging=False)
        _wait(lambda: sum(n["Alive"] for n in ray.nodes()) == 2, "the worker node joining", nodes)
        ray.shutdown()  # run_sweep connects itself, with this checkout's packages as the job's py_modules
        outcome = run_sweep(
            study, tmp_path / "ray", executor="ray", address=f"127.0.0.1:{port}", progress=False
        )
    finally:
        for node in nodes:  # only the processes these two `ray start`s started (their own sessions)
            os.killpg(node.pid, signal.SIGKILL)
            node.wait()
        shutil.rmtree(short, ignore_errors=True)
    assert len(outcome.ran) == len(local.ran)
    assert _normalised_rows(tmp_path / "ray") == _normalised_rows(tmp_path / "local")
    where = [
        json.loads(p.read_text())["summary"]["worker"] for p in (tmp_path / "ray").glob("steps/*/step.json")
    ]
    assert len({w.get("ray_node") for w in where}) == 2  # both nodes ran steps


def test_calibrate_measures_the_studys_own_steps_into_a_file_the_estimate_reads(tmp_path):
    from bench.sweep.calibrate import calibrate

    study = load_study(_write(tmp_path, TOY))
    out = tmp_path / "calibration.json"
    calibration = calibrate(study, "cpu", out, jobs=1, echo=lambda line: None)
    measured = {k for k, v in calibration.ops.items() if v["source"].startswith("measured")}
    for name in (
        "encoder_forward",
        "codec_train_step",
        "codec_encode",
        "codec_decode",
        "neck_train_step",
        "neck_eval",
    ):
        assert any(k.startswith(name + "[") and "mini-hiera-random" in k for k in measured), name
    again = Calibration.load(out)
    assert again.ops == calibration.ops
    assert estimate(study, plan_steps(study), again).total_hours > 0


def test_a_neck_given_two_devices_trains_on_both_ranks_to_the_single_process_neck(tmp_path):
    """resources.neck.gpus = 2: the neck step launches two torchrun ranks (gloo on the CPU) under DDP."""
    from safetensors.torch import load_file

    from bench.sweep.runner import step_document

    study = load_study(_write(tmp_path, TOY + "\n[resources.neck]\ngpus = 2\n"))
    (neck,) = [s for s in plan_steps(study) if s.kind == "neck"]  # a clean neck: its input is a features step
    doc = step_document(neck, study)
    assert doc["ranks"] == 2
    (features,) = neck.input("features")
    weights = []
    for ranks in (1, 2):
        inputs = tmp_path / str(ranks) / "steps" / features.id
        inputs.mkdir(parents=True)
        run_step(step_document(features, study), tmp_path / str(ranks))
        (inputs / "step.json").write_text("{}")  # finished, as the runner marks it
        assert run_step({**doc, "ranks": ranks}, tmp_path / str(ranks))["ranks"] == ranks
        weights.append(
            load_file(str(tmp_path / str(ranks) / "steps" / neck.id / "neck" / "weights.safetensors"))
        )
    a, b = weights
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4  # DDP's half-batch gradients, summed


def test_a_step_waits_for_another_process_still_running_it(tmp_path):
    """A worker orphaned by a killed sweep may still hold a step: the resumed
    run waits for it, never races it."""
    import fcntl
    import threading

    from bench.sweep.steps import _step_lock

    out = tmp_path / "steps" / "neck-x"
    out.mkdir(parents=True)
    order = []
    with open(out / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)

        def second():
            with _step_lock(out):
                order.append("second")

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        order.append("first done")
        fcntl.flock(held, fcntl.LOCK_UN)
    thread.join(10)
    assert order == ["first done", "second"]


def test_codec_crops_reach_the_extract_step_and_are_checked_against_the_encoders(tmp_path):
    study = load_study(
        _write(tmp_path, TOY.replace("channels = 8\n", "channels = 8\ncrop = 32\ncrops_per_image = 3\n", 1))
    )
    (extract,) = [s for s in plan_steps(study) if s.kind == "extract"]
    assert extract.settings | {"dtype": "float16", "crop": 32, "crops_per_image": 3} == extract.settings
    with pytest.raises(StudyError, match="coarsest stride 32"):
        load_study(_write(tmp_path, TOY.replace("channels = 8\n", "channels = 8\ncrop = 48\n", 1)))
