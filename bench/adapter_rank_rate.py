"""Rate cost of the cheaper analysis (`adapter_rank`, codec.models.transforms): the same hyperprior trained
with the full per-level adapters and with levels finer than the grid projected to `adapter_rank` channels
first (same λ, steps, seed, data; train-codec's defaults otherwise), scored on held-out features through
real streams.

    .venv/bin/python -m bench.adapter_rank_rate -o /tmp/adapter-rank [--ranks 16,4] [--lambdas 0.5,2.5,12.5]
        [--seeds 0,1,2] [--steps 2000] [--encoder mini-sam2]

Features: a bundled mini encoder at 128 px on the synthetic world (`synthetic:depth`, train split for
training, test split held out; bench.hyper_path_rate's caches). mini-sam2's levels have SAM2's layout (an
FPN at strides 4, 8, 16, 64 channels each), so its stride-4 and stride-8 levels are the ones projected.
Rate = whole `.fcb` streams (headers included), distortion = MSE of the normalised decoded features
(bench.hyper_path_rate.score). Prints per-λ rows and, per seed, the BD-rate of each rank against the full
analysis at equal MSE (bench.rd.bdrate, pchip), then the mean over seeds with a t interval: the paired
comparison's noise is training-seed noise, and the seeds are what this varies (16 or 32 test images: the
interval does not cover other test sets).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bench.hyper_path_rate import feature_cache, score


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--encoder", default="mini-sam2")
    parser.add_argument("--ranks", default="16,4")
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

    from codec.codec_dir import load_codec
    from codec.train import train_codec

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    train = feature_cache(args.out, "train", args.train_images, args.encoder)
    test = feature_cache(args.out, "test", args.test_images, args.encoder)
    size = {k: v for k, v in {"N": args.channels, "M": args.latent_channels}.items() if v is not None}
    variants = ["full", *args.ranks.split(",")]
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for lmbda in [float(v) for v in args.lambdas.split(",")]:
            for variant in variants:
                rank = {} if variant == "full" else {"adapter_rank": int(variant)}
                folder = args.out / f"codec-{args.encoder}-{variant}-{lmbda:g}-{seed}"
                start = time.perf_counter()
                reused = args.reuse and (folder / "config.json").is_file()
                codec = (
                    load_codec(folder)
                    if reused
                    else train_codec(
                        train,
                        folder,
                        lmbda=lmbda,
                        steps=args.steps,
                        batch_size=args.batch_size,
                        lr=args.lr,
                        seed=seed,
                        progress=False,
                        force=True,
                        checkpoint_every=max(args.steps, 1),
                        hparams={**size, **rank},
                    )
                )
                row = {
                    "analysis": variant,
                    "lambda": lmbda,
                    "seed": seed,
                    "train_s": None if reused else time.perf_counter() - start,
                    **score(codec, test),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    (args.out / f"results-{args.encoder}.json").write_text(json.dumps(rows, indent=1))
    print("\n| λ | seed | analysis | bits/element (streams) | MSE | rate vs full | MSE vs full |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        base = next(
            r for r in rows if (r["lambda"], r["seed"], r["analysis"]) == (row["lambda"], row["seed"], "full")
        )
        print(
            f"| {row['lambda']:g} | {row['seed']} | {row['analysis']} | {row['bits_per_element']:.5f} | "
            f"{row['mse']:.5f} | {row['bits_per_element'] / base['bits_per_element'] - 1:+.2%} | "
            f"{row['mse'] / base['mse'] - 1:+.2%} |"
        )
    if len({r["lambda"] for r in rows}) >= 2:
        from scipy import stats

        from bench.rd.bdrate import bd_rate

        print("\n| rank vs full | BD-rate per seed | mean | 95 % t interval over seeds |")
        print("|---|---|---|---|")
        for variant in variants[1:]:
            per_seed = []
            for seed in sorted({r["seed"] for r in rows}):
                curve = {
                    v: [r for r in rows if r["seed"] == seed and r["analysis"] == v]
                    for v in ("full", variant)
                }
                per_seed.append(
                    bd_rate(
                        [r["bits_per_element"] for r in curve["full"]],
                        [r["mse"] for r in curve["full"]],
                        [r["bits_per_element"] for r in curve[variant]],
                        [r["mse"] for r in curve[variant]],
                        higher_is_better=False,
                    )
                )
            mean = statistics.fmean(per_seed)
            if len(per_seed) > 1:
                half = (
                    stats.t.ppf(0.975, len(per_seed) - 1) * statistics.stdev(per_seed) / len(per_seed) ** 0.5
                )
                interval = f"[{mean - half:+.2f}, {mean + half:+.2f}] %"
            else:
                interval = "(one seed)"
            cells = ", ".join(f"{v:+.2f} %" for v in per_seed)
            print(f"| {variant} | {cells} | {mean:+.2f} % | {interval} |")
    return rows


if __name__ == "__main__":
    main()
