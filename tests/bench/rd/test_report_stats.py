"""The report's statistics: bootstrap CI from per-image scores, zero-rate point, stream bytes,
KD on/off and cross-neck tables (results as probes/evaluate.py writes them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.rd import build_report, load_results, write_report
from tests.bench.rd.test_results import codec_dir, eval_result, write

RATES = [0.0625, 0.125, 0.25, 0.5]
ABS_REL = np.array([0.30, 0.22, 0.18, 0.16])
N = 120  # test images
IDS = [f"{i:04d}" for i in range(N)]
RNG = np.random.default_rng(0)
HARDNESS = RNG.normal(0, 0.05, N)  # a hard image is hard for every encoder at every rate


def per_image(values: np.ndarray, name: str = "abs_rel", ids=IDS, **extra) -> dict:
    return {
        "ids": list(ids),
        "weights": None,
        "scores": {name: values.tolist()},
        "proxies": {},
        "note": "",
        **extra,
    }


def depth_point(encoder, i, scale, scores, tmp_path, tag="", **kw):
    result = eval_result(
        "depth",
        encoder,
        {"abs_rel": float(np.mean(scores)), "delta1": 0.5},
        codec=codec_dir(f"{encoder}-{tag}{i}", 2.0**i),
        bpp=RATES[i] * scale,
        **kw,
    )
    result["per_image"] = per_image(scores)
    result["codec"]["stream_bytes_per_image"] = {
        "header": 200.0,
        "hyper": 10.0 * (i + 1),
        "main": 100.0 * 2**i,
    }
    return write(tmp_path / f"{encoder}-{tag}{i}.json", result)


def report_of(files, **options):
    return build_report(load_results(files), anchor="hiera-tiny", **options)


def probes(report, section=0):
    return report.sections[section].probes


@pytest.fixture
def paired(tmp_path):
    """SAM2 scores what Hiera scores on every image (plus per-image noise), at 1.25× the bits."""
    files = []
    for i in range(4):
        hiera = ABS_REL[i] + HARDNESS + RNG.normal(0, 0.02, N)
        sam2 = ABS_REL[i] + HARDNESS + RNG.normal(0, 0.02, N)
        files.append(depth_point("hiera-tiny", i, 1.0, hiera, tmp_path))
        files.append(depth_point("sam2.1-hiera-tiny", i, 1.25, sam2, tmp_path))
    return files


def test_bd_rate_gets_a_seeded_bootstrap_interval(paired, tmp_path):
    report = report_of(paired, bootstrap=500, seed=3)
    hiera, sam2 = probes(report)
    est = sam2.bd_rate
    assert hiera.bd_rate is None and hiera.anchor == "hiera-tiny"  # the anchor itself
    assert est.score == "abs_rel" and est.images == N and est.covers == "test images only"
    # one seed: the estimate is the report's own PCHIP BD-rate of the seed's curves (metric = mean of scores)
    from bench.rd import bd_rate

    (sc_a,), (sc_b,) = hiera.seeds, sam2.seeds
    direct = bd_rate(
        [q.rate for q in sc_a.points],
        [q.metric for q in sc_a.points],
        [q.rate for q in sc_b.points],
        [q.metric for q in sc_b.points],
        higher_is_better=False,
    )
    assert est.value == pytest.approx(direct, abs=1e-9) and list(est.per_seed.values()) == [
        pytest.approx(direct)
    ]
    assert est.low < est.value < est.high and est.high - est.low < 60
    assert (
        report.interval["resamples"] == 500
        and report.interval["seed"] == 3
        and report.interval["level"] == 0.95
    )
    assert probes(report_of(paired, bootstrap=500, seed=3))[1].bd_rate == est  # seeded: the same interval
    write_report(report, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert f"[{est.low:+.1f}, {est.high:+.1f}]†" in md and "test images of ONE training seed" in md


def test_identical_per_image_scores_pin_the_interval_to_the_bits(tmp_path):
    files = []
    for i in range(4):
        scores = ABS_REL[i] + HARDNESS
        files.append(depth_point("hiera-tiny", i, 1.0, scores, tmp_path))
        files.append(depth_point("sam2.1-hiera-tiny", i, 1.25, scores, tmp_path))
    est = probes(report_of(files, bootstrap=200))[1].bd_rate
    assert est.low == pytest.approx(25.0, abs=1e-6) and est.high == pytest.approx(25.0, abs=1e-6)


def test_points_line_up_by_image_id_and_missing_scores_are_named(paired, tmp_path):
    # the last point of SAM2 lost two images and lists the others in another order: aligned by id
    last = json.loads(Path(paired[-1]).read_text())
    order = list(range(2, N))[::-1]
    last["per_image"] = per_image(
        np.asarray(last["per_image"]["scores"]["abs_rel"])[order], ids=[IDS[k] for k in order]
    )
    write(Path(paired[-1]), last)
    sam2 = probes(report_of(paired, bootstrap=100))[1]
    assert sam2.bd_rate.images == N - 2
    assert any(f"intervals over the {N - 2} images" in n for n in sam2.notes)
    del last["per_image"]
    write(Path(paired[-1]), last)
    sam2 = probes(report_of(paired, bootstrap=100))[1]
    assert sam2.bd_rate.low is None and any("no per-image scores" in n for n in sam2.notes)


def test_pose_ap_is_bootstrapped_through_its_per_image_proxy(tmp_path):
    files = []
    ap = [0.40, 0.55, 0.62, 0.65]
    for enc, gain in (("hiera-tiny", 0.0), ("sam2.1-hiera-tiny", 0.02)):
        for i in range(4):
            r = eval_result(
                "pose",
                enc,
                {"AP": ap[i] + gain, "oks_ar": ap[i] + gain},
                codec=codec_dir(f"p-{enc}-{i}", 2.0**i),
                bpp=RATES[i],
                data="coco-kpts:/a.json:/img",
            )
            scores = np.clip(ap[i] + gain + HARDNESS, 0, 1)
            r["per_image"] = per_image(scores, "oks_ar", weights=[2.0] * N, proxies={"AP": "oks_ar"})
            files.append(write(tmp_path / f"pose-{enc}-{i}.json", r))
    sam2 = probes(report_of(files, bootstrap=100))[1]
    assert sam2.bd_rate.score == "oks_ar" and sam2.bd_rate.value < 0
    # the proxy is a metric of its own too (higher is better), bootstrapped directly
    (section,) = report_of(files, bootstrap=100, metrics=["oks_ar"]).sections
    assert section.higher_is_better and section.probes[1].bd_rate.score == "oks_ar"


def test_zero_rate_record_joins_its_section(paired, tmp_path):
    zero = {
        "format": "featcodec-zero-rate",
        "task": "depth",
        "task_config": "DepthTask()",
        "bpp": 0.0,
        "predictor": "training-set mean depth map",
        "metrics": {"abs_rel": 0.41, "delta1": 0.3},
        "per_image": None,
        "data": {"spec": "nyuv2:/data/nyu", "split": None, "limit": None, "samples": 4},
        "train": {"spec": "nyuv2:/data/nyu", "split": "train", "limit": None, "samples": 795},
    }
    files = [*paired, write(tmp_path / "zero.json", zero)]
    report = report_of(files, bootstrap=0)
    (section,) = report.sections  # not a curve of its own
    assert [p.label for p in section.probes] == ["hiera-tiny", "sam2.1-hiera-tiny"]
    (zero_rate,) = section.zero_rate
    assert (zero_rate.value, zero_rate.predictor, zero_rate.task_config, zero_rate.source) == (
        0.41,
        "training-set mean depth map",
        "DepthTask()",
        str(tmp_path / "zero.json"),
    )
    write_report(report, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Zero rate (no features, 0 bits): abs_rel = 0.41 — training-set mean depth map." in md
    table = md.split("| encoder | neck |")[1].split("Stream bytes")[0]
    assert "⊘" not in table  # no coded point is worse than sending nothing (AbsRel ≤ 0.31 < 0.41)
    assert (tmp_path / "out" / "depth-abs_rel.png").stat().st_size > 1000


def test_stream_bytes_per_point_are_shown(paired, tmp_path):
    report = report_of(paired, bootstrap=0)
    point = probes(report)[0].seeds[0].points[2]
    assert point.stream_bytes == {"header": 200.0, "hyper": 30.0, "main": 400.0}
    md = Path(write_report(report, tmp_path / "out")[0]).read_text()
    assert "| hiera-tiny | — | hyperprior λ=4" in md
    assert "200.0 (32 %) | 30.0 (5 %) | 400.0 (63 %) | 630.0 |" in md


def test_kd_and_cross_neck_tables_pair_curves_of_the_same_encoder(paired, tmp_path):
    files = list(paired[1::2])  # SAM2's curve: no KD, no cross neck; in neither table
    for i in range(4):  # KD on: the same accuracy at 0.8× the bits; cross neck: at 1.5× the bits
        scores = ABS_REL[i] + HARDNESS
        files.append(depth_point("hiera-tiny", i, 1.0, scores, tmp_path, tag="direct"))
        files.append(depth_point("hiera-tiny", i, 0.8, scores, tmp_path, tag="kd", kd=0.5))
        path = depth_point("hiera-tiny", i, 1.5, scores, tmp_path, tag="x")
        r = json.loads(Path(path).read_text())
        r["neck"]["after"] = {"task": "pose", "dir": "/runs/neck-pose", "config_sha256": "d" * 64}
        files.append(write(Path(path), r))
    (section,) = report_of(files, bootstrap=100).sections
    (kd,) = section.kd_pairs
    assert (kd.encoder, kd.neck_off, kd.neck_on) == ("hiera-tiny", "neck-2L d32", "neck-2L d32 kd=0.5")
    assert kd.bd_rate.value == pytest.approx(-20.0, abs=0.1) and kd.bd_rate.images == N
    assert kd.bd_rate.high == pytest.approx(kd.bd_rate.value, abs=1e-9)  # same scores per image
    (cross,) = section.cross_neck_pairs
    assert (cross.neck_off, cross.neck_on, cross.what) == ("neck-2L d32", "neck-2L d32 after pose", "after")
    assert cross.bd_rate.value == pytest.approx(50.0, abs=0.1) and cross.bd_rate.low > 0
    md = Path(
        write_report(build_report(load_results(files), anchor="hiera-tiny", bootstrap=0), tmp_path / "o")[0]
    ).read_text()
    assert (
        "KD on/off" in md
        and "Cross-neck" in md
        and "| hiera-tiny | neck-2L d32 | neck-2L d32 after pose |" in md
    )
