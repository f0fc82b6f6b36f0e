"""Rate cost of the integer-exact hyper path: the same hyperprior trained with `hyper_path="integer"` and
`"float64"` (same λ, steps, seed, data), scored on held-out features through real streams.

    .venv/bin/python -m bench.hyper_path_rate -o /tmp/hyper-rate [--lambdas 0.1,0.5,2.5] [--steps 2000]
    [--seeds 0]
        [--float-student] [--reuse] [--hyper-distill-steps N]

Features: the bundled `mini-hiera` encoder at 128 px on the synthetic world (`synthetic:depth`, train
split for training, test split held out). Rate = whole `.fcb` streams (`codec.pipeline.round_trip`,
headers included) and payload alone, in bits per feature element; distortion = MSE of the normalised
decoded features. Prints markdown tables (those in bench/RESULTS.md): per λ, and the BD-rate of the
integer path against float64 at equal MSE over the λ sweep (bench.rd.bdrate, pchip); writes `results.json`.

The integer codec is the float64 one of the same seed with its h_s distilled into the integer h_s
(codec.train, `--hyper-distill-steps`, default = `--steps`; 0 trains it jointly instead). As a control,
`--float-student` adds a row "float64-distilled": the float64 codec with a freshly initialised float h_s
distilled the same way (same steps, seed, batches), so that integer vs float64-distilled isolates the
integer network from the regularisation that distillation brings.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ENCODER, RESOLUTION, DATA = "mini-hiera", 128, "synthetic:depth"


def feature_cache(out: Path, split: str, limit: int, encoder_name: str = ENCODER):
    """The `encoder_name` features of `limit` images of DATA's `split` at RESOLUTION (made once, in `out`)."""
    from probes.data import open_dataset
    from probes.encoders import FeatureCache, create_encoder, extract_features

    folder = out / (f"features-{split}" if encoder_name == ENCODER else f"features-{encoder_name}-{split}")
    if (folder / "manifest.json").is_file():
        return FeatureCache(folder)
    dataset = open_dataset(DATA, split=split, limit=limit)
    images = out / f"images-{split}"
    images.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(len(dataset)):
        path = images / f"{i:06d}.png"
        dataset[i]["image"].save(path)
        paths.append(path)
    encoder = create_encoder(encoder_name, resolution=RESOLUTION)
    return extract_features(encoder, paths, folder, batch_size=8, progress=False)


def score(codec, cache, batch: int = 8) -> dict:
    """Bits per element (whole streams and payload) and normalised MSE over the held-out cache."""
    import torch

    from codec.pipeline import round_trip

    names = codec.model.level_names
    bits = payload = elements = 0
    squared = 0.0
    mse_per_image: list[float] = []
    exact = True
    for start in range(0, len(cache), batch):
        items = [cache.get(i, names) for i in range(start, min(start + batch, len(cache)))]
        x = {n: torch.stack([it[n] for it in items]).float() for n in names}
        trip = round_trip(codec, x, check=True)
        exact &= bool(trip.exact)
        bits += trip.bits
        payload += trip.payload_bits
        elements += sum(t.numel() for t in x.values())
        norm = codec.model.normalization
        xn, xn_hat = norm.normalize(x), norm.normalize(trip.features)
        per_item = sum(((xn_hat[k] - xn[k]) ** 2).flatten(1).sum(1) for k in xn)
        per_item_elements = sum(t[0].numel() for t in x.values())
        squared += float(per_item.sum())
        mse_per_image += (per_item / per_item_elements).tolist()
    return {
        "bits_per_element": bits / elements,
        "payload_bits_per_element": payload / elements,
        "mse": squared / elements,
        "mse_per_image": mse_per_image,  # the test images' own MSEs (in cache order), for image intervals
        "exact": exact,
        "elements": elements,
    }


def train_or_load(train, folder: Path, args, *, lmbda: float, seed: int, hparams: dict, **options):
    """(codec, training seconds): the codec in `folder` when `args.reuse` finds one there (seconds None),
    else one trained on `train` with the harness's schedule (args.steps, batch_size, lr)."""
    from codec.codec_dir import load_codec
    from codec.train import train_codec

    if args.reuse and (folder / "config.json").is_file():
        return load_codec(folder), None
    start = time.perf_counter()
    codec = train_codec(
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
        hparams=hparams,
        **options,
    )
    return codec, time.perf_counter() - start


def float_student(codec, train, args, seed: int):
    """The float64 codec with a fresh float h_s distilled from its own, as
    train-codec distils the integer one."""
    import torch

    from codec.codec_dir import save_codec
    from codec.models import create_codec
    from codec.train import distill_integer_hyper

    steps = args.steps if args.hyper_distill_steps is None else args.hyper_distill_steps
    torch.manual_seed(seed)
    student = create_codec(
        "hyperprior",
        train.levels,
        resolution=train.resolution,
        N=args.channels,
        M=args.latent_channels,
        hyper_path="float64",
    )
    distill_integer_hyper(codec.model, student, train, steps=steps, batch_size=args.batch_size, seed=seed)
    out = args.out / f"codec-float64-distilled-{codec.config['lambda']:g}-{seed}"
    return save_codec(
        student,
        out,
        encoder=codec.encoder,
        weights_id=codec.config["weights_id"],
        lmbda=codec.config["lambda"],
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--lambdas", default="0.1,0.5,2.5")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--latent-channels", type=int, default=48)
    parser.add_argument("--train-images", type=int, default=96)
    parser.add_argument("--test-images", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--float-student", action="store_true", help="add the float64-distilled control row")
    parser.add_argument(
        "--reuse", action="store_true", help="score codecs already in --out instead of training them"
    )
    parser.add_argument(
        "--hyper-distill-steps",
        type=int,
        default=None,
        help="integer path: distillation steps after float training (default: --steps; 0: joint QAT)",
    )
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    train = feature_cache(args.out, "train", args.train_images)
    test = feature_cache(args.out, "test", args.test_images)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for lmbda in [float(v) for v in args.lambdas.split(",")]:
            for path in ("float64", "integer"):
                codec, seconds = train_or_load(
                    train,
                    args.out / f"codec-{path}-{lmbda:g}-{seed}",
                    args,
                    lmbda=lmbda,
                    seed=seed,
                    hparams={"N": args.channels, "M": args.latent_channels, "hyper_path": path},
                    hyper_distill_steps=args.hyper_distill_steps,
                )
                row = {
                    "hyper_path": path,
                    "lambda": lmbda,
                    "seed": seed,
                    "train_s": seconds,
                    **score(codec, test),
                }
                row["loss"] = row["bits_per_element"] + lmbda * row["mse"]
                rows.append(row)
                print(json.dumps(row), flush=True)
                if path == "float64" and args.float_student:
                    row = {
                        "hyper_path": "float64-distilled",
                        "lambda": lmbda,
                        "seed": seed,
                        **score(float_student(codec, train, args, seed), test),
                    }
                    row["loss"] = row["bits_per_element"] + lmbda * row["mse"]
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    print(
        "\n| λ | seed | hyper path | bits/element (streams) | payload bits/element | MSE | R + λ·D | rate "
        "vs float64 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        base = next(
            r
            for r in rows
            if r["lambda"] == row["lambda"] and r["seed"] == row["seed"] and r["hyper_path"] == "float64"
        )
        ratio = row["bits_per_element"] / base["bits_per_element"] - 1
        print(
            f"| {row['lambda']:g} | {row['seed']} | {row['hyper_path']} | {row['bits_per_element']:.5f} | "
            f"{row['payload_bits_per_element']:.5f} | {row['mse']:.5f} | {row['loss']:.5f} | {ratio:+.2%} |"
        )
    if len({r["lambda"] for r in rows}) >= 2:
        from bench.rd.bdrate import bd_rate

        print("\n| seed | integer vs | BD-rate (streams) | (payload) |")
        print("|---|---|---|---|")
        references = [p for p in ("float64", "float64-distilled") if any(r["hyper_path"] == p for r in rows)]
        for seed in sorted({r["seed"] for r in rows}):
            curve = {
                p: [r for r in rows if r["seed"] == seed and r["hyper_path"] == p]
                for p in (*references, "integer")
            }
            for ref in references:
                bd = [
                    bd_rate(
                        [r[key] for r in curve[ref]],
                        [r["mse"] for r in curve[ref]],
                        [r[key] for r in curve["integer"]],
                        [r["mse"] for r in curve["integer"]],
                        higher_is_better=False,
                    )
                    for key in ("bits_per_element", "payload_bits_per_element")
                ]
                print(f"| {seed} | {ref} | {bd[0]:+.2f} % | {bd[1]:+.2f} % |")


if __name__ == "__main__":
    main()
