"""bench.adapter_rank_rate end to end at a toy size: codecs with and without adapter_rank trained per seed
and λ on mini-sam2 features, scored through real streams, with per-image MSEs for the interval, and a
--reuse run that scores the same codecs again without training."""

import json

import pytest

from bench.adapter_rank_rate import main, spectrum
from bench.hyper_path_rate import feature_cache


@pytest.mark.slow
def test_harness_trains_scores_and_reuses(tmp_path, capsys):
    args = ["-o", str(tmp_path), "--analyses", "full,4", "--lambdas", "0.5,50", "--seeds", "0,1"]
    args += ["--steps", "3", "--train-images", "4", "--test-images", "3", "--channels", "8"]
    args += ["--latent-channels", "12"]
    rows = main(args)
    assert len(rows) == 2 * 2 * 2 and all(r["train_s"] is not None and r["exact"] for r in rows)
    assert all(len(r["mse_per_image"]) == 3 and r["bits_per_element"] > 0 for r in rows)
    ranked = json.loads((tmp_path / "codec-mini-sam2-4-0.5-0" / "config.json").read_text())
    assert ranked["hparams"]["adapter_rank"] == 4
    out = capsys.readouterr().out
    assert "| rank vs full |" in out and "| 4 |" in out
    again = main([*args, "--reuse"])
    assert [r["bits_per_element"] for r in again] == [r["bits_per_element"] for r in rows]
    assert all(r["train_s"] is None for r in again)


def test_spectrum_shares_grow_to_one_with_the_rank(tmp_path):
    cache = feature_cache(tmp_path, "train", 3, "mini-sam2")
    shares = spectrum(cache, [1, 4, 16, 64, 1000])
    assert set(shares) == {"fpn0", "fpn1", "fpn2"}
    for by_rank in shares.values():
        values = list(by_rank.values())
        assert 0 < values[0] <= values[1] <= values[2] <= values[3] == pytest.approx(1.0)
        assert values[0] < 0.999 and values[4] == values[3]  # rank 1 keeps less than all; past C, all
