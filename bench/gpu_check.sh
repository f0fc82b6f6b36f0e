#!/usr/bin/env bash
# The GPU checks (issue 21, and the CUDA tests) as one script for a lent device machine, run from the repo root:
#   bash bench/gpu_check.sh            # results under $OUT (default /tmp/gpu-out); STEPS="a b" for some steps
# Needs wheels for what the device image lacks in .whl/ (compressai's sdist builds there; see bench/RESULTS.md),
# and optionally .gpu_before/ = `git archive REV codec probes bench` to profile an earlier revision side by side.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
py=python3
if [ -d .whl ]; then
  $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  ls .whl/*.tar.gz >/dev/null 2>&1 && { $py -m pip install -q --no-index --no-deps --no-build-isolation \
    --no-cache-dir --target /tmp/site .whl/*.tar.gz > /tmp/sdist.log 2>&1 || { tail -20 /tmp/sdist.log; exit 1; }; }
  export PYTHONPATH=/tmp/site
fi
nvidia-smi -L; nproc; $py -c "import torch, timm; print(torch.__version__, timm.__version__)"
t0=$(date +%s)
MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0 $py setup.py build_ext --inplace > /tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
echo "build $(( $(date +%s) - t0 )) s"
# STEPS="profile_cuda bench_steps" runs only those steps (default: all)
step() { local name=$1 limit=$2; shift 2; local t=$(date +%s)
  case " ${STEPS:-$name} " in *" $name "*) ;; *) return 0 ;; esac
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; local rc=$?
  echo "== $name rc=$rc $(( $(date +%s) - t )) s"; tail -n "${TAIL:-25}" "$OUT/$name.log"; }
TAIL=15 step cuda_tests 200 $py -m pytest tests/codec -m cuda -q -rfE -p no:cacheprovider
TAIL=0 step profile_cuda 90 $py -m bench.profile_encode --device cuda --rounds 30 --adapter-ranks full,16 \
  --json "$OUT/profile_cuda.json"
TAIL=0 step profile_eager 90 env FEATCODEC_CUDA_GRAPHS=0 $py -m bench.profile_encode --device cuda --rounds 30
TAIL=0 step profile_groups3 90 $py -m bench.profile_encode --device cuda --rounds 30 --groups 3
if [ -d .gpu_before ]; then
  cp codec/_C*.so .gpu_before/codec/
  TAIL=0 step profile_before 90 env -C .gpu_before $py -m bench.profile_encode --device cuda --rounds 30
fi
TAIL=30 step bench_steps 150 $py -m pytest bench/test_bench_gpu_steps.py --benchmark-only -s -q -p no:cacheprovider \
  -k "codec_encode or codec_decode or sam2.1-hiera-tiny" --benchmark-columns=median,rounds
TAIL=30 step bench_encode 150 $py -m pytest bench/test_bench_encode.py --benchmark-only --bench-device cuda -s -q \
  -p no:cacheprovider --benchmark-columns=median,rounds
for f in "$OUT"/profile_*.log; do echo "== $(basename "$f")"; grep -A11 "^sam2.1" "$f" | grep -v "^---\|^ *Name"; done
