"""featcodec sweep: validation, the step graph, resume after a kill, executors, and the demo command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.sweep.graph import plan_steps
from bench.sweep.runner import run_sweep
from bench.sweep.study import StudyError, load_study

TOY = """
name = "toy"
threads = 1
eval_batch_size = 4
[encoders.mini-hiera-random]
weights = "random"
resolution = 64
[codec]
lambdas = [0.1, 4.0]
steps = 3
batch_size = 2
lr = 1e-3
channels = 8
latent_channels = 8
data = [{ data = "synthetic:depth", split = "train", limit = 4 }]
[necks]
layers = [1]
dim = 16
heads = 2
steps = 2
batch_size = 2
[tasks.depth]
head = "builtin:depth"
train = { data = "synthetic:depth", split = "train", limit = 4 }
test = { data = "synthetic:depth", split = "test", limit = 3 }
"""


def _write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _normalised_rows(run_dir: Path) -> list[dict]:
    """results.jsonl without what legitimately differs between two runs: wall times, the run directory, and the
    hash of a codec directory (its config.json records the feature cache's path); the codec's weights are still
    compared through `codec_id`, their sha256."""

    def scrub(obj, key=""):
        if isinstance(obj, dict):
            return {k: scrub(v, k) for k, v in obj.items() if k != "seconds" and not (key == "codec" and k == "sha256")}
        if isinstance(obj, list):
            return [scrub(v) for v in obj]
        if isinstance(obj, str):
            return obj.replace(str(run_dir.resolve()), "RUN").replace(str(run_dir), "RUN")
        return obj

    return [scrub(json.loads(line)) for line in (run_dir / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """One uninterrupted run of the toy study (the reference for the resume and Ray tests)."""
    tmp = tmp_path_factory.mktemp("sweep")
    study = _write(tmp, TOY)
    outcome = run_sweep(study, tmp / "run", progress=False)
    return study, tmp / "run", outcome


def test_validation_lists_every_problem_at_once(tmp_path):
    bad = """
name = "bad"
lambdaz = 3
[encoders.no-such-encoder]
weights = "missing/checkpoint.pt"
[codec]
lambdas = []
data = [{ data = "synthetic:depth", split = "train" }]
[tasks.depth]
head = "builtin:pose"
test = { data = "synthetic:depth", split = "test" }
[tasks.pose]
head = "builtin:pose"
train = { data = "nyuv2:/no/such/file.mat" }
test = { data = "synthetic:pose", split = "test" }
[[cross_neck]]
first = "depth"
second = "segmentation"
"""
    with pytest.raises(StudyError) as info:
        load_study(_write(tmp_path, bad))
    message = str(info.value)
    for expected in (
        "lambdaz: unknown key; did you mean 'anchor'?" if False else "lambdaz: unknown key",
        "encoders.no-such-encoder: unknown encoder",
        "missing/checkpoint.pt: checkpoint not found",
        "codec.lambdas",
        "tasks.depth.head: 'builtin:pose' is not a depth head",
        "tasks.depth: task without training data",
        "/no/such/file.mat: no such file or directory",
        "'nyuv2:/no/such/file.mat' is depth data, but the task is pose",
        "cross_neck[0].second: 'segmentation' is not a task",
    ):
        assert expected in message, (expected, message)
    assert "problem(s)" in message and message.count("\n  - ") >= 9


def test_unknown_keys_get_a_suggestion(tmp_path):
    with pytest.raises(StudyError, match=r"codec.lamdbas: unknown key; did you mean 'lambdas'\?"):
        load_study(_write(tmp_path, TOY.replace("lambdas = [0.1, 4.0]", "lambdas = [0.1, 4.0]\nlamdbas = [1]")))


def test_step_ids_change_only_downstream_of_an_edit(tmp_path):
    before = {s.label: s.id for s in plan_steps(load_study(_write(tmp_path, TOY)))}
    after = {s.label: s.id for s in plan_steps(load_study(_write(tmp_path, TOY.replace("[0.1, 4.0]", "[0.1, 8.0]"))))}
    changed = sorted(label for label in before.keys() & after.keys() if before[label] != after[label])
    assert changed == ["report"]  # λ=4 steps vanished, λ=8 steps are new, nothing else moved
    assert {k for k in before if k not in after} == {"codec mini-hiera-random λ=4 seed 0", "eval mini-hiera-random depth 1L λ=4"}
    # the same study gives the same ids (content addressing), in any run directory
    assert before == {s.label: s.id for s in plan_steps(load_study(_write(tmp_path, TOY, "again.toml")))}


def test_a_run_records_every_point_and_reports(toy_run):
    study, run_dir, outcome = toy_run
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [(r["format"], r["sweep"]["lambda"]) for r in rows] == [
        ("featcodec-eval", None), ("featcodec-eval", 0.1), ("featcodec-eval", 4.0), ("featcodec-zero-rate", None)
    ]
    assert all(r["task"] == "depth" and "abs_rel" in r["metrics"] for r in rows)
    assert rows[1]["bpp"] > 0 and rows[0]["bpp"] is None and rows[3]["bpp"] == 0
    assert rows[1]["codec"]["stream_bytes"]["main"] > 0  # the header / z / y split of the streams
    report = json.loads((run_dir / "report" / "report.json").read_text())
    (depth,) = [s for s in report["sections"] if s["metric"] == "abs_rel"]
    assert depth["zero_rate"] is not None
    assert (run_dir / "report" / "report.md").is_file()
    assert len(outcome.ran) == len(outcome.steps) == 10 and not outcome.skipped
    # --resume recomputes nothing
    again = run_sweep(study, run_dir, resume=True, progress=False)
    assert again.ran == [] and len(again.skipped) == 10
    # --plan reports every step done, without running anything
    result = CliRunner().invoke(main, ["sweep", str(study), "-o", str(run_dir), "--plan"])
    assert result.exit_code == 0 and "10 steps: 10 done, 0 to do" in result.output
    # an existing run directory is not reused without --resume
    assert CliRunner().invoke(main, ["sweep", str(study), "-o", str(run_dir)]).exit_code == 3


def _events(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def kill_sweep_when(study: Path, run_dir: Path, ready) -> None:
    """Run `featcodec sweep` in a subprocess and SIGKILL its process group as soon as `ready()` holds."""
    code = "import sys; from bench.cli import main; sys.argv[0] = 'featcodec'; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, "sweep", str(study), "-o", str(run_dir), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        deadline = time.time() + 300
        while not ready():
            assert proc.poll() is None and time.time() < deadline, "the sweep ended before it could be interrupted"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()


def test_killed_mid_step_resumes_without_rerunning_finished_steps(toy_run, tmp_path):
    study, reference, _ = toy_run
    run_dir = tmp_path / "run"
    # kill while the neck is being trained (after both codecs finished)
    kill_sweep_when(study, run_dir, lambda: any(e["event"] == "start" and e["step"].startswith("neck-")
                                                for e in _events(run_dir)))  # fmt: skip
    before = _events(run_dir)
    finished_before = {e["step"] for e in before if e["event"] == "done"}
    killed = {e["step"] for e in before if e["event"] == "start"} - finished_before
    assert len(finished_before) >= 4 and len(killed) == 1

    outcome = run_sweep(study, run_dir, resume=True, progress=False)
    started_after = {e["step"] for e in _events(run_dir)[len(before):] if e["event"] == "start"}
    assert not started_after & finished_before, "a finished step ran twice"
    assert killed <= started_after and set(outcome.skipped) == finished_before
    assert _normalised_rows(run_dir) == _normalised_rows(reference)


def test_ray_executor_gives_the_same_results(toy_run, tmp_path):
    ray = pytest.importorskip("ray")
    study, reference, _ = toy_run
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        outcome = run_sweep(study, tmp_path / "run", executor="ray", progress=False)
    finally:
        ray.shutdown()
    assert len(outcome.ran) == 10
    assert _normalised_rows(tmp_path / "run") == _normalised_rows(reference)


def test_demo_runs_a_study_and_prints_the_summary(tmp_path):
    study = _write(tmp_path, TOY)
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--study", str(study), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "| depth | abs_rel | mini-hiera-random |" in result.output and "report.md" in result.output
    again = CliRunner().invoke(main, ["demo", "--study", str(study), "-o", str(out)])
    assert again.exit_code == 3 and "--force" in again.output


def test_the_shipped_studies_validate():
    """The embedded study is runnable as shipped; the full-scale one only lacks the downloads it names."""
    from bench.commands import EMBEDDED_STUDY

    mini = load_study(EMBEDDED_STUDY)
    assert {t.name for t in mini.tasks} == {"depth", "pose", "caption"} and len(mini.codec.lambdas) >= 4
    with pytest.raises(StudyError) as info:
        load_study(EMBEDDED_STUDY.with_name("full.toml"))
    problems = [line for line in str(info.value).splitlines() if line.startswith("  - ")]
    assert problems and all("not found" in p or "no such file" in p for p in problems), problems


def test_decoded_necks_are_fine_tuned_from_the_clean_neck(tmp_path):
    text = TOY.replace("heads = 2\nsteps = 2\n", "heads = 2\nsteps = 2\nfinetune_steps = 1\n").replace(
        'head = "builtin:depth"\n', 'head = "builtin:depth"\nmodes = ["clean", "decoded"]\n'
    )
    steps = plan_steps(load_study(_write(tmp_path, text)))
    clean = [s for s in steps if s.kind == "neck" and s.settings["mode"] == "clean"]
    decoded = [s for s in steps if s.kind == "neck" and s.settings["mode"] == "decoded"]
    assert len(clean) == 1 and len(decoded) == 2  # one per λ
    for s in decoded:
        roles = dict(s.inputs)
        assert roles["init"] == (clean[0],) and roles["codec"][0].kind == "codec" and s.settings["steps"] == 1
    run_sweep(_write(tmp_path, text), tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    trained_through = [r for r in rows if (r.get("neck") or {}).get("trained_codec")]
    assert len(trained_through) == 2
    for row in trained_through:
        config = json.loads((Path(row["neck"]["dir"]) / "config.json").read_text())
        assert Path(config["init"]["dir"]).parent.name == clean[0].id
    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    entries = [e for sec in report["sections"] for e in sec["curves"] if e["neck_training"] != "clean-trained"]
    assert entries and all(e["clean"] is not None for e in entries)  # the clean neck's clean accuracy


def test_task_modes_are_validated(tmp_path):
    text = TOY.replace('head = "builtin:depth"\n', 'head = "builtin:depth"\nmodes = ["noisy"]\n')
    with pytest.raises(StudyError, match="tasks.depth.modes"):
        load_study(_write(tmp_path, text))


def test_the_readme_study_example_validates(tmp_path):
    """The complete example in the README is a study file that loads and plans."""
    text = (Path(__file__).parents[2] / "README.md").read_text()
    start = text.index('```toml\nname = "featcodec-mini"') + len("```toml\n")
    study = load_study(_write(tmp_path, text[start : text.index("```", start)]))
    steps = plan_steps(study)
    assert {s.settings.get("mode") for s in steps if s.kind == "neck"} == {"clean", "decoded"}


def test_codec_grid_stride_is_checked_against_the_encoders_and_reaches_the_codec(tmp_path):
    # mini-hiera's stride-32 level (128 channels) rearranges onto a stride-8 grid (128 / 4² channels) …
    study = load_study(_write(tmp_path, TOY.replace("channels = 8\n", "channels = 8\ngrid_stride = 8\n", 1)))
    codec_steps = [s for s in plan_steps(study) if s.kind == "codec"]
    assert codec_steps and all(s.settings["grid_stride"] == 8 for s in codec_steps)
    # … an unset grid stride leaves the step ids of existing studies unchanged (not in the settings) …
    assert all("grid_stride" not in s.settings for s in plan_steps(load_study(_write(tmp_path, TOY))) if s.kind == "codec")
    # … and a stride that does not divide the resolution, or is no power of two, is a problem named before any work
    for bad, message in (("128", "does not divide mini-hiera-random's resolution 64"), ("6", "power of two")):
        text = TOY.replace("channels = 8\n", f"channels = 8\ngrid_stride = {bad}\n", 1)
        with pytest.raises(StudyError, match=message):
            load_study(_write(tmp_path, text))


def test_summary_table_names_the_neck_training_the_proxy_interval_and_unreached_targets():
    from bench.sweep.summary import summary_table

    ci = {"low": -67.8, "high": -42.2, "estimate": -57.4, "metric": "oks_ar"}
    curves = [
        {"encoder": "a", "anchor": "a", "neck": "n", "neck_training": "clean-trained", "clean": {"value": 0.2},
         "task_sufficient_rate": {"rate": None, "reason": "never reached: the best point …"}},
        {"encoder": "b", "anchor": "a", "neck": "n", "neck_training": "codec-trained", "clean": {"value": 0.3},
         "task_sufficient_rate": {"rate": 3.9}, "bd_rate": {"pchip": -70.1}, "bd_rate_ci": ci},
        {"encoder": "b", "anchor": "a", "neck": "n", "neck_training": "clean-trained", "clean": None,
         "task_sufficient_rate": None, "bd_rate": {"pchip": -5.0}, "bd_rate_ci": {**ci, "metric": "AP"}},
    ]  # fmt: skip
    rows = summary_table({"anchor": "a", "sections": [{"task": "pose", "metric": "AP", "curves": curves}]}).splitlines()
    assert rows[2].endswith("| n | 0.2 | not reached | anchor |")
    assert "| n (codec-trained) | 0.3 | 3.9 | -70.1 %; oks_ar: -57.4 % [-67.8, -42.2] |" in rows[3]
    assert rows[4].endswith("| n | — | — | -5.0 % [-67.8, -42.2] |")  # an interval on the metric itself
