"""`featcodec report`: eval results (hand-written and real) → report.md/json + plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main
from tests.bench.rd.test_results import codec_dir, eval_result, write

RATES = [0.0625, 0.125, 0.25, 0.5]  # whole bits at 64 px × 4 images, like real streams
HIERA_ABS_REL = [0.30, 0.22, 0.18, 0.16]
HIERA_AP = [0.40, 0.55, 0.62, 0.65]
POSE_DATA = "coco-kpts:/coco/person_keypoints_val2017.json:/coco/val2017"


def run(*args):
    return CliRunner().invoke(main, ["report", *map(str, args)], catch_exceptions=False)


@pytest.fixture
def results(tmp_path):
    """Depth: SAM2 needs 1.25× Hiera's bits for the same AbsRel. Pose: SAM2
    is 0.02 AP better at every rate."""
    files = []

    def add(name, result):
        files.append(write(tmp_path / f"{name}.json", result))

    for i, (rate, abs_rel, ap) in enumerate(zip(RATES, HIERA_ABS_REL, HIERA_AP, strict=True)):
        for enc, scale in (("hiera-tiny", 1.0), ("sam2.1-hiera-tiny", 1.25)):
            c = codec_dir(f"{enc}-{i}", 2.0**i)
            add(
                f"depth-{enc}-{i}",
                eval_result("depth", enc, {"abs_rel": abs_rel, "delta1": 0.5}, codec=c, bpp=rate * scale),
            )
        for enc, gain in (("hiera-tiny", 0.0), ("sam2.1-hiera-tiny", 0.02)):
            c = codec_dir(f"pose-{enc}-{i}", 2.0**i)
            add(
                f"pose-{enc}-{i}",
                eval_result(
                    "pose",
                    enc,
                    {"AP": ap + gain, "APm": -1.0 if i == 0 else ap},
                    codec=c,
                    bpp=rate,
                    data=POSE_DATA,
                ),
            )
    for enc in ("hiera-tiny", "sam2.1-hiera-tiny"):
        add(f"depth-{enc}-clean", eval_result("depth", enc, {"abs_rel": 0.155, "delta1": 0.52}))
        add(f"pose-{enc}-clean", eval_result("pose", enc, {"AP": 0.66, "APm": 0.6}, data=POSE_DATA))
    return files


def test_report_states_bd_rate_and_task_sufficient_rate(tmp_path, results):
    out = tmp_path / "report"
    r = run(*results, "--anchor", "hiera-tiny", "-o", out)
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    assert report["format"] == "featcodec-report" and report["anchor"] == "hiera-tiny"
    depth, pose = report["sections"]
    assert (depth["task"], depth["metric"], depth["higher_is_better"]) == ("depth", "abs_rel", False)
    assert (pose["task"], pose["metric"], pose["higher_is_better"]) == ("pose", "AP", True)

    hiera, sam2 = depth["probes"]
    ((h0,), (s0,)) = hiera["seeds"], sam2["seeds"]  # one unnamed seed each
    assert [q["rate"] for q in h0["points"]] == pytest.approx(RATES)
    assert hiera["clean"]["value"] == pytest.approx(0.155) and hiera["bd_rate"] is None
    assert sam2["anchor"] == "hiera-tiny"
    assert sam2["bd_rate"]["value"] == pytest.approx(25.0, abs=1e-6)
    cubic = sam2["bd_rate_cubic"]["—"]
    assert cubic["value"] == pytest.approx(25.0, abs=1e-6) and cubic["reliable"]
    # target 0.155 / 0.95 is crossed between 0.25 bpp (AbsRel 0.18) and 0.5 bpp (0.16), linearly in log-rate
    t = (0.155 / 0.95 - 0.18) / (0.16 - 0.18)
    assert h0["task_sufficient_rate"]["rate"] == pytest.approx(0.25 * 2**t, rel=1e-9)
    assert s0["task_sufficient_rate"]["rate"] == pytest.approx(1.25 * 0.25 * 2**t, rel=1e-9)
    assert hiera["task_sufficient_rate"]["value"] == pytest.approx(0.25 * 2**t, rel=1e-9)

    p_hiera, p_sam2 = pose["probes"]
    assert p_sam2["bd_metric"]["value"] == pytest.approx(0.02, abs=1e-9)
    assert p_sam2["bd_rate"]["value"] < 0
    assert p_hiera["seeds"][0]["task_sufficient_rate"]["target"] == pytest.approx(0.627)

    md = (out / "report.md").read_text()
    assert "## depth: abs_rel (lower is better)" in md and "## pose: AP (higher is better)" in md
    assert "+25.0 %" in md and "| hiera-tiny |" in md and "anchor" in md
    for s in report["sections"]:
        assert (out / s["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == [
        "curves",
        "depth-abs_rel.png",
        "pose-AP.png",
        "report.json",
        "report.md",
    ]
    # one CompressAI-style results file per curve
    assert sorted(p.name for p in (out / "curves").iterdir()) == [
        "depth-hiera_tiny-neck_2L_d32.json",
        "depth-sam2_1_hiera_tiny-neck_2L_d32.json",
        "pose-hiera_tiny-neck_2L_d32.json",
        "pose-sam2_1_hiera_tiny-neck_2L_d32.json",
    ]
    curve = json.loads((out / "curves" / "depth-sam2_1_hiera_tiny-neck_2L_d32.json").read_text())
    assert curve["name"] == "sam2.1-hiera-tiny" and "depth" in curve["description"]
    assert curve["results"]["bpp"] == pytest.approx([1.25 * r for r in RATES])
    assert curve["results"]["abs_rel"] == HIERA_ABS_REL and curve["results"]["delta1"] == [0.5] * 4


def test_several_metrics_and_undefined_coco_values(tmp_path, results):
    out = tmp_path / "report"
    r = run(*results, "--metric", "APm", "--metric", "delta1", "-o", out)
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    assert [(s["task"], s["metric"]) for s in report["sections"]] == [("depth", "delta1"), ("pose", "APm")]
    pose = report["sections"][1]
    assert len(pose["probes"][0]["seeds"][0]["points"]) == 3  # the APm = -1 point is skipped, and said so
    assert any("APm = -1" in n for n in pose["notes"])
    assert (out / "pose-APm.png").is_file() and (out / "depth-delta1.png").is_file()


def test_report_refuses_to_overwrite_without_force(tmp_path, results):
    out = tmp_path / "report"
    assert run(*results, "-o", out).exit_code == 0
    before = (out / "report.json").read_text()
    r = run(*results, "--fraction", "0.9", "-o", out)
    assert r.exit_code == 3 and "--force" in r.output and "report.md" in r.output
    assert (out / "report.json").read_text() == before
    r = run(*results, "--fraction", "0.9", "--force", "-o", out)
    assert r.exit_code == 0, r.output
    assert json.loads((out / "report.json").read_text())["fraction"] == 0.9


def test_report_never_overwrites_its_inputs(tmp_path, results):
    path = write(tmp_path / "report.json", eval_result("depth", "hiera-tiny", {"abs_rel": 0.2}))
    r = run(*results, path, "--force", "-o", tmp_path)
    assert r.exit_code == 3 and "is an input of this report" in r.output
    assert json.loads(Path(path).read_text())["format"] == "featcodec-eval"


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"format": "featcodec-eval", "task": ', "bad.json: not valid JSON"),
        ('{"format": "featcodec-eval", "task": "depth"}', "bad.json: missing field 'metrics'"),
        (
            '{"points": [{"encoder": "hiera-tiny", "lmbda": 1, "bpp": 0.5}]}',
            "bad.json: not a `featcodec eval` result",
        ),
        ("[1, 2]", "bad.json[0]: expected a JSON object"),
    ],
)
def test_malformed_inputs_exit_3_naming_the_file(tmp_path, content, message):
    (tmp_path / "bad.json").write_text(content)
    r = run(tmp_path / "bad.json", "-o", tmp_path / "out")
    assert r.exit_code == 3, r.output
    assert message in r.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--anchor", "vit-huge"], 3, "--anchor vit-huge: no such encoder"),
        (["--metric", "BLEU-4"], 3, "--metric BLEU-4: in none of the results"),
        (["--rate", "payload_bpp", "--metric", "nope", "--direction", "nope=sideways"], 2, "METRIC=higher"),
        (["--fraction", "1.5"], 2, "1.5"),
    ],
)
def test_bad_options(tmp_path, results, args, code, message):
    r = run(*results, *args, "-o", tmp_path / "out")
    assert r.exit_code == code, r.output
    assert message in r.output


def test_unknown_metric_direction_is_asked_for(tmp_path):
    path = write(
        tmp_path / "r.json",
        eval_result("depth", "hiera-tiny", {"si_log": 12.0}, codec=codec_dir("a", 1), bpp=0.3),
    )
    r = run(path, "--metric", "si_log", "-o", tmp_path / "out")
    assert r.exit_code == 3 and "--direction" in r.output
    r = run(path, "--metric", "si_log", "--direction", "si_log=lower", "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output


def test_real_eval_results_through_uniform_codecs(tmp_path):
    """train-neck → eval (clean and through three uniform codecs) for two encoders → report."""
    from codec.codec_dir import save_codec
    from codec.models import create_codec
    from probes.encoders import get_spec
    from probes.heads.tiny import save_tiny_head
    from tests.probes.fixtures import ON_CPU, TINY_NECK, cli_flags, write_nyu_folder

    data = f"nyuv2:{write_nyu_folder(tmp_path / 'nyu')}"
    head = save_tiny_head("depth", tmp_path / "head")
    cli = CliRunner()
    results = []
    for enc in ("mini-hiera-random", "mini-sam2-random"):
        neck = tmp_path / f"neck-{enc}"
        r = cli.invoke(
            main,
            [
                "train-neck",
                *cli_flags({**TINY_NECK, "encoder": enc}),
                *ON_CPU,
                "--task",
                "depth",
                "--head",
                str(head),
                "--data",
                data,
                "--level",
                "stage4",
                "--steps",
                "2",
                "-o",
                str(neck),
            ],
        )
        assert r.exit_code == 0, r.output
        codecs = [None]
        for step in (0.1, 0.5, 2.0):
            codec = tmp_path / f"codec-{enc}-{step}"
            save_codec(
                create_codec("uniform", get_spec(enc), levels=["stage4"], resolution=64, step=step),
                codec,
                encoder=enc,
                weights_id="random-init",
                lmbda=step,
            )
            codecs.append(codec)
        for codec in codecs:
            out = tmp_path / f"eval-{enc}-{codec.name if codec else 'clean'}.json"
            extra = ["--codec", str(codec)] if codec else []
            r = cli.invoke(
                main,
                [
                    "eval",
                    "--neck",
                    str(neck),
                    "--data",
                    data,
                    *extra,
                    "--device",
                    "cpu",
                    "--workers",
                    "0",
                    "-o",
                    str(out),
                ],
            )
            assert r.exit_code == 0, r.output
            results.append(out)
    # what evaluate_neck records for the report: per-image scores, and the byte split of every stream
    coded = json.loads(results[1].read_text())
    assert coded["per_image"]["ids"] == json.loads(results[0].read_text())["per_image"]["ids"]
    assert sum(coded["per_image"]["scores"]["abs_rel"]) / coded["data"]["samples"] == pytest.approx(
        coded["metrics"]["abs_rel"]
    )
    split = coded["codec"]["stream_bytes"]  # uniform codec: no hyper-latent, the x.* payload is main
    assert split["hyper"] == 0 and split["main"] > 0 and 8 * sum(split.values()) == coded["codec"]["bits"]
    r = run(*results, "--anchor", "mini-hiera-random", "--bootstrap", "200", "-o", tmp_path / "report")
    assert r.exit_code == 0, r.output
    (section,) = json.loads((tmp_path / "report" / "report.json").read_text())["sections"]
    assert section["task"] == "depth" and section["metric"] == "abs_rel"
    hiera, sam2 = section["probes"]
    assert (hiera["label"], sam2["label"]) == ("mini-hiera-random", "mini-sam2-random")
    for probe in (hiera, sam2):
        (seed,) = probe["seeds"]
        assert seed["seed"] == 0  # train-neck's default seed, recorded by eval
        rates = [q["rate"] for q in seed["points"]]
        assert len(rates) == 3 and all(r > 0 for r in rates) and rates == sorted(rates)
        assert probe["clean"]["value"] is not None and probe["neck"] == "neck-1L d32"
        assert probe["task_sufficient_rate"] is not None
    # random networks: the curves may be flat or may not overlap, but the delta is a number or a stated reason
    assert sam2["anchor"] == "mini-hiera-random"
    value = (sam2["bd_rate"] or {}).get("value")
    assert (value is not None and math.isfinite(value)) or sam2["notes"]
    assert all(q["stream_bytes"]["main"] > 0 for q in hiera["seeds"][0]["points"])
