"""The standard's anchors in a study and its report: seedless anchor steps, their
own curves, BD-rates against them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.rd.report import build_report
from bench.rd.results import eval_point
from bench.sweep.graph import plan_steps
from bench.sweep.runner import run_sweep
from bench.sweep.study import StudyError, load_study

from .test_sweep import TOY, _write

ANCHORS = """
[anchors.hevc]
qps = [40, 51]
preset = "ultrafast"
[anchors.remote-jpeg]
qualities = [4, 31]
"""


def test_anchor_tables_are_validated_against_the_standards(tmp_path):
    bad = (
        TOY + "[anchors.h264]\nqps = [30]\n[anchors.hevc]\nqps = [30, 60]\nqualities = "
        "[2]\n[anchors.remote-jpeg]\nqps = [3]\n"
    )
    with pytest.raises(StudyError) as e:
        load_study(_write(tmp_path, bad))
    message = str(e.value)
    assert "anchors.h264: unknown anchor; choose from vvc, hevc, av1, remote-vvc" in message
    assert "anchors.hevc.qps: [60]: hevc QPs are integers in [0, 51]" in message
    assert "anchors.hevc.qualities: not an option of packed anchors (use qps)" in message
    assert "anchors.remote-jpeg.qualities: give a non-empty list" in message


def test_anchor_steps_have_no_seed_and_serve_every_seeds_clean_neck(tmp_path):
    study = load_study(
        _write(tmp_path, TOY.replace('name = "toy"', 'name = "toy"\nseeds = [0, 1]') + ANCHORS)
    )
    steps = plan_steps(study)
    packed = [s for s in steps if s.kind == "codec" and "qp" in s.settings]
    assert sorted(s.settings["qp"] for s in packed) == [40, 51] and all(
        "seed" not in s.settings for s in packed
    )
    remote = [s for s in steps if s.kind == "remote"]
    assert sorted(s.settings["quality"] for s in remote) == [4, 31] and {
        s.settings["image_codec"] for s in remote
    } == {"jpeg"}
    evals = [s for s in steps if s.kind == "eval"]
    through_remote = [e for e in evals if e.input("streams") and e.input("streams")[0].kind == "remote"]
    through_packed = [e for e in evals if e.input("codec") and e.input("codec")[0] in packed]
    assert len(through_remote) == len(through_packed) == 4  # 2 points × 2 seeds' necks, one split coded once
    assert {e.input("neck")[0].settings["seed"] for e in through_remote} == {0, 1}
    assert len({s.id for s in steps if s.kind == "streams" and s.input("codec")[0] in packed}) == 2


def _row(encoder: str, seed: int, rate: float | None, value: float, codec: dict | None) -> dict:
    """A `featcodec eval` result on 6 images whose per-image abs_rel all equal `value` (noise-free)."""
    ids = [f"im{i}" for i in range(6)]
    return {
        "format": "featcodec-eval",
        "task": "depth",
        "metrics": {"abs_rel": value},
        "per_image": {"ids": ids, "scores": {"abs_rel": [value] * 6}},
        "encoder": {"name": encoder, "weights_id": f"w-{encoder}", "resolution": 64},
        "neck": {"name": "neck-1L", "dim": 16, "seed": seed},
        "head": {"spec": "builtin:depth"},
        "data": {"spec": "synthetic:depth", "split": "test"},
        "codec": codec,
        "bpp": rate,
        "complexity": None
        if codec is None
        else {
            "encoder_kmac_per_pixel": 2.0 if codec["kind"] == "hyperprior" else 0.0,
            "decoder_kmac_per_pixel": 1.0,
            "encode_ms": 3.0,
            "decode_ms": 1.5,
        },
    }


def _points(with_anchors: bool):
    """Two encoders, two seeds; learned curves abs_rel = 0.3 − 0.05·ln(bpp / 0.1) (the specialist's at 1.5×
    the
    bits); the packed anchor reaches the learned accuracy at 2× its bits, remote inference at 0.5×."""
    rows, rates = [], np.array([0.1, 0.2, 0.4, 0.8])
    for encoder, factor in (("gen", 1.0), ("spec", 1.5)):
        for seed in (0, 1):
            rows.append(_row(encoder, seed, None, 0.12, None))
            for lmbda, r in zip((1, 2, 3, 4), rates, strict=True):
                accuracy = 0.3 - 0.05 * np.log(r / 0.1) - 0.001 * seed
                learned = {"kind": "hyperprior", "lambda": lmbda, "codec_id": f"{encoder}{seed}{lmbda}"}
                rows.append(_row(encoder, seed, r * factor, accuracy, learned))
                if with_anchors:
                    packed = {
                        "kind": "hevc",
                        "lambda": None,
                        "qp": 30 + lmbda,
                        "anchor": "packed-hevc",
                        "codec_id": f"{encoder}-hevc{lmbda}",
                    }
                    remote = {"kind": "remote-jpeg", "anchor": "remote-jpeg", "quality": lmbda}
                    rows.append(_row(encoder, seed, 2 * r * factor, accuracy, packed))
                    rows.append(_row(encoder, seed, 0.5 * r * factor, accuracy, remote))
    return [eval_point(r, f"row{i}") for i, r in enumerate(rows)]


def test_learned_vs_anchor_bd_rates_and_anchors_stay_out_of_probes_and_verdicts():
    options = dict(anchor="gen", bootstrap=50, seed=0)
    plain, anchored = build_report(_points(False), **options), build_report(_points(True), **options)
    (section,) = anchored.sections
    assert [p.codec_family for p in section.probes] == ["learned", "learned"]  # anchors are no probes
    assert [(p.label, p.codec_family) for p in section.standard_anchors] == [
        ("gen", "packed-hevc"),
        ("gen", "remote-jpeg"),
        ("spec", "packed-hevc"),
        ("spec", "remote-jpeg"),
    ]
    versus = {(c.encoder, c.family): c.bd_rate for c in section.versus_standard}
    for encoder in ("gen", "spec"):  # seed by seed, then across seeds: exact on noise-free curves
        assert versus[(encoder, "packed-hevc")].value == pytest.approx(-50.0, abs=1e-6)
        assert versus[(encoder, "remote-jpeg")].value == pytest.approx(100.0, abs=1e-6)
        assert set(versus[(encoder, "packed-hevc")].per_seed) == {"0", "1"}
    # the learned comparisons and the verdicts are exactly those of the same results without anchors
    assert [p.bd_rate for p in section.probes] == [p.bd_rate for p in plain.sections[0].probes]
    assert [(v.outcome, [e.estimate for e in v.evidence]) for v in anchored.verdicts] == [
        (v.outcome, [e.estimate for e in v.evidence]) for v in plain.verdicts
    ]
    rows = {(r.encoder, r.family): r for r in section.complexity}
    assert rows[("gen", "learned")].encoder_kmac_per_pixel == 2.0 and rows[("gen", "packed-hevc")].points == 4
    assert rows[("spec", "remote-jpeg")].encoder_kmac_per_pixel == 0.0


def test_a_toy_sweep_reports_its_packed_and_remote_anchors(tmp_path):
    study = _write(tmp_path, TOY + ANCHORS)
    run_sweep(study, tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    kinds = [(r.get("codec") or {}).get("kind") for r in rows]
    assert kinds.count("hevc") == 2 and kinds.count("remote-jpeg") == 2
    remote = [r for r in rows if (r.get("codec") or {}).get("kind") == "remote-jpeg"]
    assert all(
        r["bpp"] > 0 and r["sweep"]["anchor"] == "remote-jpeg" and r["complexity"]["encode_ms"] > 0
        for r in remote
    )
    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    (section,) = report["sections"]
    assert [p["codec_family"] for p in section["probes"]] == ["learned"]
    assert sorted(p["codec_family"] for p in section["standard_anchors"]) == ["packed-hevc", "remote-jpeg"]
    assert {r["family"] for r in section["complexity"]} == {"learned", "packed-hevc", "remote-jpeg"}
    markdown = (tmp_path / "run" / "report" / "report.md").read_text()
    assert (
        "Learned codec vs the standard's anchors" in markdown
        and "| encoder | codec family | codec |" in markdown
    )
