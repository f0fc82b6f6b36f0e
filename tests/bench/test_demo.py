import json

from click.testing import CliRunner

from codec.cli import main


def test_demo_runs_end_to_end_and_reports_exact_decodes(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--encoder", "mini-hiera", "--encoder", "mini-sam2", "--resolution", "64",
            "--lambda", "0.5", "--lambda", "8", "--steps", "3", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    points = report["points"]
    assert [(p["encoder"], p["lmbda"]) for p in points] == [
        ("mini-hiera", 0.5), ("mini-hiera", 8.0), ("mini-sam2", 0.5), ("mini-sam2", 8.0)
    ]
    assert all(p["exact"] and p["bytes_per_image"] > 0 for p in points)
    assert report["random_init"] == ["mini-hiera", "mini-sam2"]
    assert len(list(out.glob("mini-hiera/codec-lambda0.5/streams/*.fcb"))) == 4
    # an existing output is never replaced without --force
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 3 and "--force" in again.output
