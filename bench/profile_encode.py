"""Where a codec encode's time goes (issue 21): SAM2.1-tiny's FPN features of one image, an updated
default-size hyperprior (integer hyper path), `encode_features` under torch.profiler.

    python -m bench.profile_encode --device cuda --resolution 1024 --json out.json
    python -m bench.profile_encode --device cpu --adapter-ranks full,16   # two analyses side by side

Prints the medians of the encoder forward and of the codec encode (each synchronised, side by side in one
run), then the `featcodec.encode.*` ranges of `HyperpriorCodec.compress` (CPU wall time inside each range
and, on a GPU, the device time of its kernels; on a GPU the kernels run asynchronously, so the range that
first waits for them, `to_host`, carries their CPU wall time), then the top operators by self device and self
CPU time. Random-init weights: the weights do not change the cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch
from torch.profiler import ProfilerActivity, profile

from codec.codec_dir import load_codec, save_codec
from codec.models import create_codec
from codec.pipeline import encode_features
from probes.encoders import create_encoder


def _median_ms(fn, rounds: int, device: str) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--encoder", default="sam2.1-hiera-tiny")
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--groups", type=int, default=None, help="y's channel groups (default: auto, as featcodec encode)"
    )
    parser.add_argument(
        "--adapter-ranks",
        default="full",
        help="comma-separated codec analyses measured side by side: full (the default adapters) or a rank "
        "(adapter_rank: levels finer than the grid projected first); the first one is profiled",
    )
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    device = args.device
    encoder = create_encoder(args.encoder, random_init=True, resolution=args.resolution, device=device)
    codecs = {}
    for label in args.adapter_ranks.split(","):
        rank = None if label == "full" else int(label)
        torch.manual_seed(0)
        model = create_codec(
            "hyperprior", encoder.spec, resolution=args.resolution, hyper_path="integer", adapter_rank=rank
        )
        with tempfile.TemporaryDirectory() as tmp:
            save_codec(model, tmp, encoder=args.encoder, weights_id=encoder.weights_id, lmbda=1.0)
            codecs[label] = load_codec(tmp, device=device)
    codec = next(iter(codecs.values()))
    pixels = torch.randn(1, 3, args.resolution, args.resolution, device=device)
    with torch.no_grad():
        features = {k: v.clone() for k, v in encoder(pixels).items()}

        def forward():
            encoder(pixels)

        def encode(codec=codec):
            return encode_features(codec, features, groups=args.groups)

        for _ in range(3):  # warm-up: cuDNN autotuning, the CDF-table cache, the coder's thread pool
            forward()
            for other in codecs.values():
                encode(other)
        result = {
            "device": device,
            "encoder": args.encoder,
            "resolution": args.resolution,
            "rounds": args.rounds,
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
            "encoder_forward_ms": _median_ms(forward, args.rounds, device),
            "codec_encode_ms": _median_ms(encode, args.rounds, device),
            "groups": args.groups,
            "stream_bytes": len(encode()[0]),
            "cuda_graphs": device == "cuda" and os.environ.get("FEATCODEC_CUDA_GRAPHS", "1") != "0",
        }
        result["codec_share"] = result["codec_encode_ms"] / result["encoder_forward_ms"]
        result["analyses"] = {}
        for label, other in codecs.items():  # in turn with the forward, so drift hits each alike
            ms = _median_ms(lambda other=other: encode(other), args.rounds, device)
            result["analyses"][label] = {"codec_encode_ms": ms}
        forward_ms = _median_ms(forward, args.rounds, device)
        for entry in result["analyses"].values():
            entry["share"] = entry["codec_encode_ms"] / (0.5 * (forward_ms + result["encoder_forward_ms"]))
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
        n = 5
        with profile(activities=activities) as prof:
            for _ in range(n):
                encode()
            if device == "cuda":
                torch.cuda.synchronize()
    events = prof.key_averages()
    ranges = {}
    for e in events:
        if e.key.startswith("featcodec."):
            entry = ranges.setdefault(e.key, {"cpu_ms": 0.0, "device_ms": 0.0})
            entry["cpu_ms"] += e.cpu_time_total / 1e3 / n
            entry["device_ms"] += getattr(e, "device_time_total", 0.0) / 1e3 / n
    result["ranges"] = ranges
    print(
        f"\n{args.encoder} {args.resolution}px on {device} ({result['gpu'] or 'CPU'}), torch "
        f"{torch.__version__}"
    )
    print(
        f"encoder forward {result['encoder_forward_ms']:.2f} ms, codec encode "
        f"{result['codec_encode_ms']:.2f} ms "
        f"= {100 * result['codec_share']:.1f} % of the forward (medians of {args.rounds}); "
        f"groups {args.groups or 'auto'}, CUDA graphs {result['cuda_graphs']}, "
        f"stream {result['stream_bytes']} B"
    )
    for label, entry in result["analyses"].items():
        print(
            f"analysis {label:>5}: codec encode {entry['codec_encode_ms']:.2f} ms "
            f"= {100 * entry['share']:.1f} % of the forward (mean of its two medians)"
        )
    print("\nrange                              CPU wall ms   device ms  (per encode)")
    for key, entry in sorted(ranges.items()):
        print(f"{key:34s} {entry['cpu_ms']:11.3f} {entry['device_ms']:11.3f}")
    sort = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
    result["top_device"] = events.table(sort_by=sort, row_limit=15)
    result["top_cpu"] = events.table(sort_by="self_cpu_time_total", row_limit=15) if device == "cuda" else ""
    print(result["top_device"])
    print(result["top_cpu"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
