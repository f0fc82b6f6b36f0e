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
    """results.jsonl without what legitimately differs between two runs: wall times (`seconds`, `*_ms`), the
    run directory, and the hash of a codec directory (its config.json records the feature cache's path); the
    codec's
    weights are still compared through `codec_id`, their sha256."""

    def scrub(obj, key=""):
        if isinstance(obj, dict):
            return {
                k: scrub(v, k)
                for k, v in obj.items()
                if k != "seconds" and not k.endswith("_ms") and not (key == "codec" and k == "sha256")
            }
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
        load_study(
            _write(tmp_path, TOY.replace("lambdas = [0.1, 4.0]", "lambdas = [0.1, 4.0]\nlamdbas = [1]"))
        )


def test_step_ids_change_only_downstream_of_an_edit(tmp_path):
    before = {s.label: s.id for s in plan_steps(load_study(_write(tmp_path, TOY)))}
    after = {
        s.label: s.id
        for s in plan_steps(load_study(_write(tmp_path, TOY.replace("[0.1, 4.0]", "[0.1, 8.0]"))))
    }
    changed = sorted(label for label in before.keys() & after.keys() if before[label] != after[label])
    assert changed == ["report"]  # λ=4 steps vanished, λ=8 steps are new, nothing else moved
    assert {k for k in before if k not in after} == {
        "codec mini-hiera-random λ=4 seed 0",
        "eval mini-hiera-random depth 1L λ=4",
        "streams mini-hiera-random depth λ=4 seed 0",
    }
    # the same study gives the same ids (content addressing), in any run directory
    assert before == {s.label: s.id for s in plan_steps(load_study(_write(tmp_path, TOY, "again.toml")))}


def test_a_run_records_every_point_and_reports(toy_run):
    study, run_dir, outcome = toy_run
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [(r["format"], r["sweep"]["lambda"]) for r in rows] == [
        ("featcodec-eval", None),
        ("featcodec-eval", 0.1),
        ("featcodec-eval", 4.0),
        ("featcodec-zero-rate", None),
    ]
    assert all(r["task"] == "depth" and "abs_rel" in r["metrics"] for r in rows)
    assert rows[1]["bpp"] > 0 and rows[0]["bpp"] is None and rows[3]["bpp"] == 0
    assert rows[1]["codec"]["stream_bytes"]["main"] > 0  # the header / z / y split of the streams
    report = json.loads((run_dir / "report" / "report.json").read_text())
    (depth,) = [s for s in report["sections"] if s["metric"] == "abs_rel"]
    assert depth["zero_rate"] is not None
    assert (run_dir / "report" / "report.md").is_file()
    # 2 streams (the test split per codec), 2 features (the neck inputs of the train and the test split)
    assert len(outcome.ran) == len(outcome.steps) == 14 and not outcome.skipped
    # --resume recomputes nothing
    again = run_sweep(study, run_dir, resume=True, progress=False)
    assert again.ran == [] and len(again.skipped) == 14
    # --plan reports every step done, without running anything
    result = CliRunner().invoke(main, ["sweep", str(study), "-o", str(run_dir), "--plan"])
    assert result.exit_code == 0 and "14 steps: 14 done, 0 to do" in result.output
    # an existing run directory is not reused without --resume
    assert CliRunner().invoke(main, ["sweep", str(study), "-o", str(run_dir)]).exit_code == 3


def _events(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def kill_sweep_when(study: Path, run_dir: Path, ready) -> None:
    """Run `featcodec sweep` in a subprocess and SIGKILL its process group as soon as `ready()` holds."""
    code = "import sys; from bench.cli import main; sys.argv[0] = 'featcodec'; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "sweep", str(study), "-o", str(run_dir), "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 300
        while not ready():
            assert proc.poll() is None and time.time() < deadline, (
                "the sweep ended before it could be interrupted"
            )
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()


def test_killed_mid_step_resumes_without_rerunning_finished_steps(toy_run, tmp_path):
    study, reference, _ = toy_run
    run_dir = tmp_path / "run"
    # kill while the neck is being trained (after both codecs finished)
    kill_sweep_when(
        study,
        run_dir,
        lambda: any(e["event"] == "start" and e["step"].startswith("neck-") for e in _events(run_dir)),
    )
    before = _events(run_dir)
    finished_before = {e["step"] for e in before if e["event"] == "done"}
    killed = {e["step"] for e in before if e["event"] == "start"} - finished_before
    assert len(finished_before) >= 4 and len(killed) == 1

    outcome = run_sweep(study, run_dir, resume=True, progress=False)
    started_after = {e["step"] for e in _events(run_dir)[len(before) :] if e["event"] == "start"}
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
    assert len(outcome.ran) == 14
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
        (streams,) = roles["streams"]  # its training split coded once by that codec, decoded by the neck
        assert streams.input("codec") == roles["codec"] and streams.settings["train"] == s.settings["train"]
    assert dict(clean[0].inputs)["features"][0].kind == "features"  # the clean neck reads stored neck inputs
    run_sweep(_write(tmp_path, text), tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    trained_through = [r for r in rows if (r.get("neck") or {}).get("trained_codec")]
    assert len(trained_through) == 2
    for row in trained_through:
        config = json.loads((Path(row["neck"]["dir"]) / "config.json").read_text())
        assert Path(config["init"]["dir"]).parent.name == clean[0].id
    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    probes = [p for sec in report["sections"] for p in sec["probes"] if p["neck_training"] != "clean-trained"]
    assert probes and all(p["clean"] is not None for p in probes)  # the clean neck's clean accuracy


def test_task_modes_are_validated(tmp_path):
    text = TOY.replace('head = "builtin:depth"\n', 'head = "builtin:depth"\nmodes = ["noisy"]\n')
    with pytest.raises(StudyError, match="tasks.depth.modes"):
        load_study(_write(tmp_path, text))


def test_the_readme_study_example_validates(tmp_path):
    """The complete example in the README is a study file that loads and plans."""
    text = (Path(__file__).parents[3] / "README.md").read_text()
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
    assert all(
        "grid_stride" not in s.settings
        for s in plan_steps(load_study(_write(tmp_path, TOY)))
        if s.kind == "codec"
    )
    # … and a stride that does not divide the resolution, or is no power of two, is a problem named before
    # any work
    for bad, message in (("128", "does not divide mini-hiera-random's resolution 64"), ("6", "power of two")):
        text = TOY.replace("channels = 8\n", f"channels = 8\ngrid_stride = {bad}\n", 1)
        with pytest.raises(StudyError, match=message):
            load_study(_write(tmp_path, text))


def test_codec_adapter_rank_reaches_the_codec_and_is_checked(tmp_path):
    from bench.sweep.steps import _codec_hparams

    study = load_study(_write(tmp_path, TOY.replace("channels = 8\n", "channels = 8\nadapter_rank = 4\n", 1)))
    codec_steps = [s for s in plan_steps(study) if s.kind == "codec"]
    assert codec_steps and all(_codec_hparams(s.settings)["adapter_rank"] == 4 for s in codec_steps)
    assert all("adapter_rank" not in s.settings for s in plan_steps(load_study(_write(tmp_path, TOY))))
    for bad in ("0", '"4"'):
        text = TOY.replace("channels = 8\n", f"channels = 8\nadapter_rank = {bad}\n", 1)
        with pytest.raises(StudyError, match="codec.adapter_rank"):
            load_study(_write(tmp_path, text))


def test_summary_table_names_the_neck_training_the_proxy_score_and_unreached_targets():
    from bench.rd.markdown import summary_table
    from bench.rd.records import Estimate, Probe, Report, Section

    def probe(label, training, clean, tsr, bd=None):
        return Probe(
            label,
            label,
            "w",
            128,
            "n",
            "n",
            training,
            "h",
            None,
            None,
            [],
            clean=clean,
            task_sufficient_rate=tsr,
            anchor="a",
            bd_rate=bd,
        )

    seeds = {"0": 1.0, "1": 2.0, "2": 3.0}
    never = Estimate(None, per_seed=dict.fromkeys(seeds))
    bd = Estimate(-57.4, -67.8, -42.2, per_seed={"0": -50.0, "1": -60.0, "2": -62.0}, score="oks_ar")
    probes = [
        probe("a", "clean-trained", Estimate(0.2, 0.1, 0.3, per_seed=seeds), never),
        probe("b", "codec-trained", Estimate(0.3), Estimate(3.9, 3.0, 5.0, per_seed=seeds), bd),
        probe("b", "clean-trained", None, None, Estimate(-5.0, -7.0, -3.0, score="AP")),
    ]
    report = Report(
        "featcodec-report",
        3,
        [],
        "bpp",
        0.95,
        "a",
        ["0", "1", "2"],
        {"method": "m", "level": 0.95, "resamples": 10, "seed": 0},
        [Section("pose", "d", "AP", True, "p.png", probes)],
        [],
        [],
        [],
    )
    rows = summary_table(report).splitlines()
    assert "across 3 training seeds" in rows[0]
    table = [r for r in rows if r.startswith("| pose")]
    assert table[0].endswith("| n | 0.2 [0.1, 0.3] | not reached | anchor | — |")
    assert (
        "| n (codec-trained) | 0.3 | 3.9 [3, 5] | -57.4 % [-67.8, -42.2] (oks_ar) | -50.0, -60.0, -62.0 |"
        in table[1]
    )
    assert table[2].endswith(
        "| n | — | — (no clean eval) | -5.0 % [-7.0, -3.0] | — |"
    )  # on the metric itself


def test_an_eval_through_a_streams_step_scores_what_a_fresh_round_trip_scores(toy_run):
    """Computed once: the decoded test split gives the metrics, per-image
    scores and bits of encoding it again."""
    from probes.evaluate import evaluate_neck

    study, run_dir, outcome = toy_run
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["format"] == "featcodec-eval" and r["sweep"]["lambda"] == 4.0)
    codec_dir = run_dir / "steps" / row["sweep"]["codec_step"] / "codec"
    fresh = evaluate_neck(
        row["neck"]["dir"],
        "synthetic:depth",
        split="test",
        limit=3,
        codec=str(codec_dir),
        coder=row["codec"]["coder"],
        batch_size=4,
        progress=False,
    )
    assert fresh["metrics"] == row["metrics"] and fresh["per_image"] == row["per_image"]
    assert fresh["bpp"] == row["bpp"] and fresh["codec"]["stream_bytes"] == row["codec"]["stream_bytes"]
    streams = [s for s in outcome.steps if s.kind == "streams"]
    assert len(streams) == 2 and all(
        len(list((run_dir / "steps" / s.id / "decoded" / "streams").iterdir())) == 3 for s in streams
    )  # one real .fcb per test image


def test_seeds_and_a_variable_rate_codec_give_per_seed_curves_and_verdicts(tmp_path):
    text = TOY.replace('name = "toy"', 'name = "toy"\nseeds = [0, 1]').replace(
        "lambdas = [0.1, 4.0]", "lambdas = [0.1, 4.0]\nvariable_rate = true"
    )
    study = load_study(_write(tmp_path, text))
    steps = plan_steps(study)
    sets = [s for s in steps if s.kind == "codec-set"]
    assert len(sets) == 2 and {s.settings["seed"] for s in sets} == {0, 1}  # one network per seed, both λ
    assert all(dict(s.inputs)["trained"][0].kind == "codec-set" for s in steps if s.kind == "codec")
    run_sweep(study.path, tmp_path / "run", progress=False)
    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    (depth,) = [s for s in report["sections"] if s["metric"] == "abs_rel"]
    (probe,) = depth["probes"]
    assert [c["seed"] for c in probe["seeds"]] == [0, 1] and all(
        len(c["points"]) == 2 for c in probe["seeds"]
    )
    assert probe["clean"]["covers"] == "training seeds and test images" and set(
        probe["clean"]["per_seed"]
    ) == {"0", "1"}
    assert report["seeds"] == ["0", "1"] and [v["finding"] for v in report["verdicts"]] == [
        "a",
        "b",
        "c",
        "d",
    ]
    assert all(v["outcome"] == "not measured" for v in report["verdicts"])  # one encoder: nothing to compare
    summary = (tmp_path / "run" / "report" / "summary.md").read_text()
    assert "across 2 training seeds" in summary and "| finding | verdict |" in summary


def test_every_features_step_of_the_embedded_study_matches_its_necks_grid(tmp_path):
    """A cross-neck's features step stores the encoder's maps on the FIRST neck's grid, which may differ
    from the second task's own (mini: the depth neck works on 8×8, pose's on 16×16): every neck's features
    step must be on the grid the neck works on, and the step must store that grid. write_neck_inputs settles
    the grid before encoding anything, so two samples suffice here."""
    from bench.commands import EMBEDDED_STUDY
    from bench.sweep.graph import neck_grid
    from probes.neck_inputs import write_neck_inputs

    plan = plan_steps(load_study(EMBEDDED_STUDY))
    for neck in (s for s in plan if s.kind == "neck" and s.input("features")):
        (features,) = neck.input("features")
        after = neck.input("after")
        head = after[0].settings["head"] if after else neck.settings["head"]
        assert features.settings["grid"] == neck_grid(neck.settings["encoder"], head), neck.label
    steps = [s for s in plan if s.kind == "features"]
    pose_grids = {tuple(s.settings["grid"]) for s in steps if s.settings["task"] == "pose"}
    assert len(pose_grids) == 2  # the direct pose necks' grid and the depth→pose cross-neck's
    for k, step in enumerate(steps):
        s = step.settings
        split = s.get("train") or s["test"]
        record = write_neck_inputs(
            tmp_path / str(k),
            task=s["task"],
            head=s["head"],
            data=split["data"],
            split=split["split"],
            limit=2,
            encoder=s["encoder"]["name"],
            resolution=s["encoder"]["resolution"],
            grid=s["grid"],
            neck_head=s.get("neck_head"),
        )
        assert record["grid"] == s["grid"]


def test_keep_decoded_streams_give_the_same_points_without_decoding_again(toy_run, tmp_path):
    """keep_decoded = true: the streams steps also store their decoded features and every reader takes them
    instead of decoding: the same metrics, per-image scores and bits as decoding the streams (the toy run)."""
    from probes.streams import DecodedFeatures

    _, run_dir, _ = toy_run
    study = _write(tmp_path, TOY.replace("eval_batch_size = 4", "eval_batch_size = 4\nkeep_decoded = true"))
    outcome = run_sweep(study, tmp_path / "run", progress=False)

    def points(run):
        rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
        return sorted(
            (
                r["sweep"]["lambda"] or 0.0,
                r["bpp"],
                json.dumps(r["metrics"], sort_keys=True),
                json.dumps(r["per_image"], sort_keys=True),
            )
            for r in rows
            if r["format"] == "featcodec-eval"
        )

    assert points(tmp_path / "run") == points(run_dir)
    streams = [s for s in outcome.steps if s.kind == "streams"]
    assert streams and all(
        DecodedFeatures(tmp_path / "run" / "steps" / s.id / "decoded").codec is None for s in streams
    )
