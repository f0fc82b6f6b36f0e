"""Rate cost of the cheaper analysis (`adapter_rank`, codec.models.transforms): the same hyperprior trained
with the full per-level adapters and with levels finer than the grid projected to `adapter_rank` channels
first (same λ, steps, seed, data; train-codec's defaults otherwise), scored on held-out features through
real streams.

    .venv/bin/python -m bench.adapter_rank_rate -o /tmp/adapter-rank [--analyses full,16,4]
        [--lambdas 0.5,2.5,12.5] [--seeds 0,1,2] [--steps 2000] [--encoder mini-sam2]

Features: a bundled mini encoder at 128 px on the synthetic world (`synthetic:depth`, train split for
training, test split held out; bench.hyper_path_rate's caches). mini-sam2's levels have SAM2's layout (an
FPN at strides 4, 8, 16, 64 channels each), so its stride-4 and stride-8 levels are the ones projected.
Rate = whole `.fcb` streams (headers included), distortion = MSE of the normalised decoded features
(bench.hyper_path_rate.score). First prints each level's per-pixel spectrum (`spectrum`: the variance share of
the top-k principal components of the standardised training features, k = each rank), the quick check of a
rank before any training. Prints per-λ rows and, per seed, the BD-rate of each rank against the full
analysis at equal MSE (pchip) and their mean with the study's interval (bench.rd.seeds.bd_rate_interval: the
seed-mean t interval plus the paired bootstrap of the test images, so it covers training seeds and test
images; not other data sets or encoders).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.hyper_path_rate import feature_cache, score, train_or_load


def spectrum(cache, ranks) -> dict[str, dict[int, float]]:
    """Per level: the share of the normalised features' per-pixel variance (each channel standardised, as the
    codec codes it) that the top-k principal components hold, for each k in `ranks`. The quick check of a
    rank: a projection to k channels can keep at most that share of a level."""
    import torch

    out = {}
    for level in cache.levels:
        x = torch.stack([cache.get(i, [level.name])[level.name] for i in range(len(cache))]).double()
        flat = x.permute(0, 2, 3, 1).reshape(-1, level.channels)
        flat = (flat - flat.mean(0)) / flat.std(0).clamp_min(1e-6)
        eigenvalues = torch.linalg.eigvalsh(flat.T @ flat / flat.shape[0]).flip(0).clamp_min(0)
        cumulative = eigenvalues.cumsum(0) / eigenvalues.sum()
        out[level.name] = {k: float(cumulative[min(k, level.channels) - 1]) for k in ranks}
    return out


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--encoder", default="mini-sam2")
    parser.add_argument(
        "--analyses",
        default="full,16,4",
        help="full (the default adapters) and ranks; BD-rates against full when it is among them "
        "(several invocations may train into one --out, a last one with --reuse scores them all)",
    )
    parser.add_argument("--lambdas", default="0.5,2.5,12.5")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--channels", type=int, default=None, help="N (default: the codec's, 128)")
    parser.add_argument("--latent-channels", type=int, default=None, help="M (default: the codec's, 192)")
    parser.add_argument("--train-images", type=int, default=96)
    parser.add_argument("--test-images", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="score codecs already in --out")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    train = feature_cache(args.out, "train", args.train_images, args.encoder)
    test = feature_cache(args.out, "test", args.test_images, args.encoder)
    size = {k: v for k, v in {"N": args.channels, "M": args.latent_channels}.items() if v is not None}
    variants = args.analyses.split(",")
    ranks = sorted({int(v) for v in variants if v != "full"})
    if ranks:
        print("\n| level (training features) | " + " | ".join(f"top {k}" for k in ranks) + " |")
        print("|---|" + "---|" * len(ranks))
        for name, shares in spectrum(train, ranks).items():
            print(f"| {name} | " + " | ".join(f"{100 * v:.1f} %" for v in shares.values()) + " |")
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for lmbda in [float(v) for v in args.lambdas.split(",")]:
            for variant in variants:
                rank = {} if variant == "full" else {"adapter_rank": int(variant)}
                codec, seconds = train_or_load(
                    train,
                    args.out / f"codec-{args.encoder}-{variant}-{lmbda:g}-{seed}",
                    args,
                    lmbda=lmbda,
                    seed=seed,
                    hparams={**size, **rank},
                )
                row = {
                    "analysis": variant,
                    "lambda": lmbda,
                    "seed": seed,
                    "train_s": seconds,
                    **score(codec, test),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    (args.out / f"results-{args.encoder}.json").write_text(json.dumps(rows, indent=1))
    print("\n| λ | seed | analysis | bits/element (streams) | MSE | rate vs full | MSE vs full |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        base = next(
            (
                r
                for r in rows
                if (r["lambda"], r["seed"], r["analysis"]) == (row["lambda"], row["seed"], "full")
            ),
            None,
        )
        versus = (
            f"{row['bits_per_element'] / base['bits_per_element'] - 1:+.2%} | "
            f"{row['mse'] / base['mse'] - 1:+.2%}"
            if base
            else "| "
        )
        print(
            f"| {row['lambda']:g} | {row['seed']} | {row['analysis']} | {row['bits_per_element']:.5f} | "
            f"{row['mse']:.5f} | {versus} |"
        )
    if len({r["lambda"] for r in rows}) >= 2 and "full" in variants:
        import numpy as np

        from bench.rd.seeds import bd_rate_interval

        seeds = sorted({r["seed"] for r in rows})
        print("\n| rank vs full | BD-rate per seed | estimate | 95 % interval | covers |")
        print("|---|---|---|---|---|")
        for variant in (v for v in variants if v != "full"):
            curves = {
                v: [
                    (
                        [r["bits_per_element"] for r in rows if (r["seed"], r["analysis"]) == (seed, v)],
                        np.array(
                            [r["mse_per_image"] for r in rows if (r["seed"], r["analysis"]) == (seed, v)]
                        ),
                    )
                    for seed in seeds
                ]
                for v in ("full", variant)
            }
            try:  # paired: seed s of the rank against seed s of the full analysis, on the same test images
                result = bd_rate_interval(
                    curves["full"], curves[variant], higher_is_better=False, seeds=[str(s) for s in seeds]
                )
            except ValueError as e:  # curves that do not overlap: said, not averaged
                print(f"| {variant} | no BD-rate: {e} | | | |")
                continue
            cells = ", ".join("n/a" if v is None else f"{v:+.2f} %" for v in result.per_seed.values())
            print(
                f"| {variant} | {cells} | {result.estimate:+.2f} % | "
                f"[{result.low:+.2f}, {result.high:+.2f}] % | {result.covers} |"
            )
    return rows


if __name__ == "__main__":
    main()
