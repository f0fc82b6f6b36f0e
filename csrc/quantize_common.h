// Semantics shared by the CPU and CUDA kernels of featcodec's quantisation ops.
//
// The specification is codec/ops/reference.py (bit-identical to CompressAI's
// GaussianConditional.quantize(y, "symbols", means) and .build_indexes(scales)):
//   d      = y - means, computed in float32/float64 opmath and rounded back to y's dtype
//            (this is what PyTorch's `outputs -= means` does for fp16/bf16);
//   symbol = saturate(round_half_even(d))   (NaN -> 0, beyond +-limit -> +-limit);
//   s      = max(scale, bound)               (NaN propagates, like torch.max);
//   index  = #{j < L-1 : table[j] < s}, or L-1 for a NaN s.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define FC_HD __host__ __device__ __forceinline__
#else
#define FC_HD inline
#endif

namespace featcodec {

// Status bits returned to Python (codec/ops/reference.py: STATUS_*).
constexpr int32_t kStatusYNonfinite = 1;
constexpr int32_t kStatusMeansNonfinite = 2;
constexpr int32_t kStatusScalesNan = 4;
constexpr int32_t kStatusSymbolOverflow = 8;

// round(d) saturated to [-limit, limit] (NaN -> 0) in r's own width, branch-free: `limit_f` is the
// largest value of T not above limit (float32 cannot hold 2^31 - 1), so an integral r above
// limit_f is above limit too.
template <typename T>
FC_HD int32_t to_symbol(T r, T limit_f, int32_t limit) {
  const T r0 = r == r ? r : T(0);
  const T r1 = r0 < -limit_f ? -limit_f : (r0 > limit_f ? limit_f : r0);
  int32_t v = static_cast<int32_t>(r1);
  v = r > limit_f ? limit : v;
  v = r < -limit_f ? -limit : v;
  return v;
}

// The lower bound of CompressAI's LowerBound (torch.max: a NaN scale stays NaN, -inf becomes the bound).
template <typename T>
FC_HD T lower_bound_scale(T s, T bound) {
  return s < bound ? bound : s;
}

// Branch-light binary search: number of entries of the sorted table[0..n) strictly below s.
template <typename T>
FC_HD int32_t count_below(const float* table, int32_t n, T s) {
  int32_t lo = 0;
  while (n > 0) {
    const int32_t half = n >> 1;
    const bool below = static_cast<T>(table[lo + half]) < s;
    lo = below ? lo + half + 1 : lo;
    n = below ? n - half - 1 : half;
  }
  return lo;
}

}  // namespace featcodec
