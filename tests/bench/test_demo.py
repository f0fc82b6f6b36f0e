import json

from click.testing import CliRunner

from codec.cli import main


def test_demo_runs_end_to_end_and_reports_exact_decodes(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--encoder", "mini-hiera-random", "--encoder", "mini-sam2-random", "--resolution", "64",
            "--lambda", "0.5", "--lambda", "8", "--steps", "3", "--probe-steps", "2", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    points = report["points"]
    assert [(p["encoder"], p["lmbda"]) for p in points] == [
        ("mini-hiera-random", 0.5), ("mini-hiera-random", 8.0), ("mini-sam2-random", 0.5), ("mini-sam2-random", 8.0)
    ]
    assert all(p["exact"] and p["bytes_per_image"] > 0 for p in points)
    assert report["random_init"] == ["mini-hiera-random", "mini-sam2-random"]
    assert len(list(out.glob("mini-hiera-random/codec-lambda0.5/streams/*.fcb"))) == 4
    # the depth probe on synthetic:depth, clean and through every codec, feeds the rate–accuracy report
    assert sorted(p.name for p in out.glob("mini-sam2-random/eval-depth-*.json")) == [
        "eval-depth-clean.json", "eval-depth-codec-lambda0.5.json", "eval-depth-codec-lambda8.json"
    ]
    rate_accuracy = json.loads((out / "rate-accuracy" / "report.json").read_text())
    sections = {(s["task"], s["metric"]) for s in rate_accuracy["sections"]}
    assert {("features", "feature_mse"), ("depth", "abs_rel")} <= sections
    depth = next(s for s in rate_accuracy["sections"] if s["task"] == "depth")
    sam2 = next(c for c in depth["curves"] if c["label"] == "mini-sam2-random")
    # the two encoders' necks are the same architecture, so their curves are compared
    assert sam2["neck"] == "neck-2L d64" and not any("no mini-hiera-random curve" in n for n in sam2["bd_notes"])
    # an existing output is never replaced without --force
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 3 and "--force" in again.output
