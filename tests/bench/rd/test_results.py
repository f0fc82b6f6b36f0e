"""Reading `featcodec eval` results and the demo's report.json into points and curves.

`eval_result` writes a result exactly as probes/evaluate.py's `evaluate_neck` returns it
(and `featcodec eval -o` saves it).
"""

from __future__ import annotations

import json

import pytest

from bench.rd import ResultsError, group_curves, load_results
from bench.rd.results import NECK_CLEAN, NECK_MATCHED, NECK_OTHER

LEVELS = {"stage1": (16, 4), "stage2": (32, 8), "stage3": (64, 16), "stage4": (128, 32)}
HEADS = {
    "depth": {
        "class": "DepthAnythingHead",
        "output_kind": "relative-disparity",
        "model_type": "depth_anything",
    },
    "pose": {"class": "VitPoseHead", "output_kind": "heatmaps", "model_type": "vitpose"},
    "caption": {"class": "BlipCaptionHead", "output_kind": "text", "model_type": "blip"},
}


def codec_dir(name: str, lmbda: float, kind: str = "hyperprior") -> dict:
    """The `codec` record of a result (CodecRoundTrip.describe_codec), before its bits are filled in."""
    sha = (name.encode().hex() * 64)[:64]
    return {
        "dir": f"/runs/{name}",
        "sha256": sha,
        "codec_id": sha[:16],
        "config_hash": sha[16:32],
        "kind": kind,
        "lambda": lmbda,
        "levels": ["stage3"],
    }


def eval_result(
    task: str,
    encoder: str,
    metrics: dict,
    *,
    codec: dict | None = None,
    bpp: float | None = None,
    trained_codec: dict | None = None,
    weights_id: str = "random-init",
    resolution: int = 64,
    layers: int = 2,
    data: str = "nyuv2:/data/nyu",
    kd: float = 0.0,
) -> dict:
    """A `featcodec eval` result, field for field as probes/evaluate.py writes it."""
    random_init = weights_id == "random-init"
    spec_levels = [{"name": n, "channels": c, "stride": s} for n, (c, s) in LEVELS.items()]
    grid = resolution // 16
    expects = {"grid": [grid, grid], "width": 32, "maps": 4, "cls_token": True}
    codec_record = None
    if codec is not None:
        images = 4
        bits = round(bpp * images * resolution**2)
        codec_record = {
            **codec,
            "bits": bits,
            "payload_bits": int(bits * 0.9),
            "images": images,
            "bpp": bits / (images * resolution**2),
            "payload_bpp": int(bits * 0.9) / (images * resolution**2),
        }
        bpp = codec_record["bpp"]
    return {
        "format": "featcodec-eval",
        "task": task,
        "metrics": metrics,
        "encoder": {
            "name": encoder,
            "weights_id": weights_id,
            "random_init": random_init,
            "checkpoint": None,
            "resolution": resolution,
            "spec": {
                "name": encoder,
                "source": "timm",
                "family": encoder.split("-")[0],
                "levels": spec_levels,
                "default_resolution": 64,
                "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225],
            },
        },
        "random_init": random_init,
        "neck": {
            "dir": f"/runs/neck-{encoder}-{task}",
            "config_sha256": "c" * 64,
            "weights_sha256": "e" * 64,
            "name": f"neck-{layers}L",
            "in_shapes": {"stage3": [64, grid, grid]},
            "out": expects,
            "layers": layers,
            "dim": 32,
            "heads": 4,
            "mlp_ratio": 4.0,
            "kd": kd,
            "after": None,
            "trained_on": {"spec": data, "split": None, "limit": None, "samples": 4},
            "trained_codec": trained_codec,
        },
        "head": {
            "spec": f"hf:/heads/{task}",
            **HEADS[task],
            "task": task,
            "expects": expects,
            "revision": None,
            "source": f"/heads/{task}",
            "source_sha256": "f" * 64,
        },
        "codec": codec_record,
        "bpp": bpp if codec is not None else None,
        "data": {"spec": data, "split": None, "limit": None, "samples": 4},
        "generation": {"max_new_tokens": 20, "num_beams": 1} if task == "caption" else None,
        "seconds": 0.5,
        "device": "cpu",
        "machine": "x86_64",
        "versions": {"python": "3.11.7", "featcodec": "0.1.0", "torch": "2.14.1", "timm": "1.0.31"},
    }


def write(path, obj) -> str:
    path.write_text(json.dumps(obj, indent=2))
    return str(path)


def test_a_codec_evaluation_becomes_a_rate_point(tmp_path):
    c = codec_dir("hp-1", 0.5)
    path = write(
        tmp_path / "r.json",
        eval_result("depth", "hiera-tiny", {"abs_rel": 0.2, "delta1": 0.7}, codec=c, bpp=0.25),
    )
    (p,) = load_results([path])
    assert p.source == path and not p.clean and p.task == "depth" and p.encoder == "hiera-tiny"
    assert p.rates["bpp"] == pytest.approx(0.25) and p.rates["payload_bpp"] == pytest.approx(0.225, rel=1e-3)
    assert p.metrics == {"abs_rel": 0.2, "delta1": 0.7}
    assert p.codec == f"hyperprior λ=0.5 {c['codec_id']}" and p.lmbda == 0.5
    assert p.neck == "neck-2L d32" and p.neck_training == NECK_CLEAN and p.head == "hf:/heads/depth"
    assert p.data == "nyuv2:/data/nyu"


def test_a_clean_evaluation_has_no_codec_and_no_rate(tmp_path):
    (p,) = load_results([write(tmp_path / "r.json", eval_result("pose", "sam2-trunk-tiny", {"AP": 0.6}))])
    assert p.clean and p.rates == {} and p.codec is None


def test_neck_training_is_told_apart(tmp_path):
    a, b = codec_dir("a", 1.0), codec_dir("b", 2.0)
    matched = eval_result("depth", "hiera-tiny", {"abs_rel": 0.2}, codec=a, bpp=0.1, trained_codec=a)
    other = eval_result("depth", "hiera-tiny", {"abs_rel": 0.2}, codec=a, bpp=0.1, trained_codec=b)
    points = load_results([write(tmp_path / "m.json", matched), write(tmp_path / "o.json", other)])
    assert [p.neck_training for p in points] == [NECK_MATCHED, NECK_OTHER]


def test_jsonl_files_hold_one_result_per_line(tmp_path):
    lines = [json.dumps(eval_result("depth", "hiera-tiny", {"abs_rel": 0.2 + i / 10})) for i in range(3)]
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(lines) + "\n\n")
    points = load_results([path])
    assert [p.source for p in points] == [f"{path}:1", f"{path}:2", f"{path}:3"]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r.pop("task"), "missing field 'task'"),
        (lambda r: r["encoder"].pop("name"), "missing field 'encoder.name'"),
        (lambda r: r.update(format="featcodec-neck"), "field 'format' is 'featcodec-neck'"),
        (lambda r: r["metrics"].update(AP="high"), "field 'metrics.AP' is 'high', expected a number"),
        (lambda r: r.update(bpp=None), "field 'bpp' is missing or null"),
        (lambda r: r.update(bpp=-1.0), "expected a positive number of bits"),
        (lambda r: r.update(codec=None), "field 'codec' is null"),
    ],
)
def test_malformed_results_name_the_file_and_field(tmp_path, mutate, message):
    result = eval_result("pose", "hiera-tiny", {"AP": 0.5}, codec=codec_dir("a", 1.0), bpp=0.5)
    mutate(result)
    path = write(tmp_path / "bad.json", result)
    with pytest.raises(ResultsError, match=message) as e:
        load_results([path])
    assert str(tmp_path / "bad.json") in str(e.value)


def test_invalid_json_and_foreign_files_name_the_file(tmp_path):
    (tmp_path / "broken.json").write_text('{"format": "featcodec-eval", ')
    with pytest.raises(ResultsError, match=r"broken.json: not valid JSON"):
        load_results([tmp_path / "broken.json"])
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(ResultsError, match=r"other.json: not a `featcodec eval` result"):
        load_results([tmp_path / "other.json"])
    (tmp_path / "rep.json").write_text('{"format": "featcodec-report"}')
    with pytest.raises(ResultsError, match="is a featcodec report"):
        load_results([tmp_path / "rep.json"])
    (tmp_path / "old.json").write_text('{"points": [{"encoder": "hiera-tiny", "lmbda": 1, "bpp": 0.5}]}')
    with pytest.raises(
        ResultsError, match=r"old.json: not a `featcodec eval` result"
    ):  # the removed demo format
        load_results([tmp_path / "old.json"])


def test_curves_group_by_encoder_neck_and_take_clean_accuracy_from_clean_trained_necks(tmp_path):
    a = codec_dir("a", 1.0)
    results = [
        eval_result("depth", "hiera-tiny", {"abs_rel": 0.25}, codec=a, bpp=0.1),
        eval_result("depth", "hiera-tiny", {"abs_rel": 0.2}),  # clean baseline
        eval_result("depth", "hiera-tiny", {"abs_rel": 0.22}, codec=a, bpp=0.1, trained_codec=a),  # retrained
        eval_result(
            "depth", "hiera-tiny", {"abs_rel": 0.3}, trained_codec=a
        ),  # codec-trained neck, clean: no baseline
        eval_result("depth", "hiera-tiny", {"abs_rel": 0.3}, codec=a, bpp=0.1, layers=4),  # another neck
        eval_result("depth", "sam2-trunk-tiny", {"abs_rel": 0.3}, codec=a, bpp=0.1),
        eval_result("pose", "hiera-tiny", {"AP": 0.3}, codec=a, bpp=0.1, data="coco-kpts:/a.json:/img"),
    ]
    points = load_results([write(tmp_path / f"{i}.json", r) for i, r in enumerate(results)])
    groups, notes = group_curves(points)
    assert list(groups) == [("depth", "nyuv2:/data/nyu"), ("pose", "coco-kpts:/a.json:/img")]
    depth = groups[("depth", "nyuv2:/data/nyu")]
    summary = [
        (c.encoder, c.neck, c.neck_training, len(c.points), [p.metrics["abs_rel"] for p in c.clean])
        for c in depth
    ]
    assert summary == [
        ("hiera-tiny", "neck-2L d32", NECK_CLEAN, 1, [0.2]),
        ("hiera-tiny", "neck-2L d32", NECK_MATCHED, 1, [0.2]),
        ("hiera-tiny", "neck-4L d32", NECK_CLEAN, 1, []),
        ("sam2-trunk-tiny", "neck-2L d32", NECK_CLEAN, 1, []),
    ]
    assert len(notes) == 1 and "3.json" in notes[0] and "no clean baseline" in notes[0]


def test_a_clean_only_probe_still_shows_as_a_curve(tmp_path):
    points = load_results([write(tmp_path / "c.json", eval_result("pose", "hiera-tiny", {"AP": 0.6}))])
    groups, _ = group_curves(points)
    (curve,) = groups[("pose", "nyuv2:/data/nyu")]
    assert curve.points == [] and len(curve.clean) == 1


def test_encoder_labels_tell_weights_apart(tmp_path):
    results = [
        eval_result("depth", "hiera-tiny", {"abs_rel": 0.2}, weights_id="a" * 64),
        eval_result("depth", "hiera-tiny", {"abs_rel": 0.2}, weights_id="random-init"),
        eval_result("depth", "sam2-trunk-tiny", {"abs_rel": 0.2}),
    ]
    groups, _ = group_curves(load_results([write(tmp_path / f"{i}.json", r) for i, r in enumerate(results)]))
    labels = [c.label for c in groups[("depth", "nyuv2:/data/nyu")]]
    assert labels == ["hiera-tiny [aaaaaaaaaaaa]", "hiera-tiny [random-init]", "sam2-trunk-tiny"]
