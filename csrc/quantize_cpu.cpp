// CPU kernels of featcodec::quantize_index and featcodec::dequantize.
//
// One pass over y, means and scales (CompressAI makes one pass per scale-table entry plus
// several for the quantisation), chunks in parallel with at::parallel_for (OpenMP), loops kept
// branch-free so that the compiler can vectorise them.
//
// Scale indexing uses a bucket table keyed by the float's bit pattern (positive floats order like
// their bits): with buckets narrow enough to hold at most one table entry, the index is
// lut[bucket] + (table[lut[bucket]] < s) — two loads instead of a binary search. Tables where no
// such bucketing exists (duplicates, huge dynamic range) and float64 scales use the binary search.
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <atomic>
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#endif
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "quantize_check.h"
#include "quantize_common.h"

namespace featcodec {
namespace {

constexpr int64_t kGrain = 1 << 15;  // elements per parallel chunk
constexpr int64_t kMaxBuckets = 1 << 16;

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

// The largest value of T not above `limit` (float32 cannot hold 2^31 - 1).
template <typename T>
T largest_not_above(int32_t limit) {
  T f = static_cast<T>(limit);
  return static_cast<double>(f) > static_cast<double>(limit) ? std::nextafter(f, T(0)) : f;
}

// Scale-table lookup: index = #{j < L-1 : table[j] < s}.
//
// Positive floats order like their bit patterns, so `bits >> shift` buckets them; `shift` is the
// largest that puts consecutive table entries in distinct buckets. Then for s in bucket b:
//   index = lut[b] + (table[lut[b]] < s)
// with lut[b] = #{entries below the bucket}. `packed` stores the same per bucket in one int32,
// (lut[b] << shift) | low bits of the bucket's entry (all ones if none), plus a bucket below and
// one above the table, so the AVX2 path needs one gather: index = lo + (low bits of s > low).
struct ScaleIndexer {
  std::vector<float> table;  // table[0..n_cmp) then a +inf sentinel
  int32_t n_cmp = 0;         // the first L - 1 entries take part in the comparison
  bool use_lut = false;
  int shift = 31;
  int32_t key_min = 0;
  int32_t n_buckets = 1;
  std::vector<int32_t> lut{0};
  bool use_packed = false;
  uint32_t low_mask = 0;
  std::vector<int32_t> packed;  // n_buckets + 2 entries: below, buckets, above

  ScaleIndexer(const float* t, int64_t L) {
    n_cmp = static_cast<int32_t>(L - 1);
    table.assign(t, t + n_cmp);
    table.push_back(std::numeric_limits<float>::infinity());
    use_lut = n_cmp == 0;  // a one-entry table: every index is 0 (lut{0}, table{inf})
    for (int sh = 31; sh >= 0 && n_cmp > 0; --sh) {
      bool distinct = true;
      for (int32_t j = 0; j + 1 < n_cmp && distinct; ++j) {
        distinct = (float_bits(table[j]) >> sh) < (float_bits(table[j + 1]) >> sh);
      }
      if (!distinct) {
        continue;
      }
      const int64_t kmin = float_bits(table[0]) >> sh;
      const int64_t kmax = float_bits(table[n_cmp - 1]) >> sh;
      if (kmax - kmin + 1 > kMaxBuckets) {
        return;  // any finer bucketing needs even more buckets: binary search
      }
      use_lut = true;
      shift = sh;
      key_min = static_cast<int32_t>(kmin);
      n_buckets = static_cast<int32_t>(kmax - kmin + 1);
      lut.resize(n_buckets);
      for (int32_t b = 0; b < n_buckets; ++b) {
        const uint32_t lo_bits = static_cast<uint32_t>((kmin + b) << sh);
        float lo_value;
        std::memcpy(&lo_value, &lo_bits, sizeof(lo_value));
        lut[b] = count_below(table.data(), n_cmp, lo_value);
      }
      break;
    }
    // The packed form needs room for the count above the low bits.
    if (use_lut && n_cmp > 0 && shift >= 1 && shift <= 30 && (static_cast<int64_t>(n_cmp) >> (31 - shift)) == 0) {
      use_packed = true;
      low_mask = (1u << shift) - 1;
      packed.assign(n_buckets + 2, 0);
      packed[0] = static_cast<int32_t>(low_mask);  // below the table: 0, never above
      for (int32_t b = 0; b < n_buckets; ++b) {
        const int32_t lo = lut[b];
        const uint32_t entry = float_bits(table[lo]);
        const bool inside = lo < n_cmp && static_cast<int64_t>(entry >> shift) == key_min + b;
        packed[b + 1] = static_cast<int32_t>((static_cast<uint32_t>(lo) << shift) | (inside ? entry & low_mask : low_mask));
      }
      packed[n_buckets + 1] = static_cast<int32_t>((static_cast<uint32_t>(n_cmp) << shift) | low_mask);
    }
  }
};

namespace baseline {
#include "quantize_cpu_kernels.h"
}  // namespace baseline

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FEATCODEC_HAVE_AVX2 1
// Same loops compiled for AVX2 (gathers, 8 float lanes), chosen at run time. Only functions
// defined below get the target, so no inline function of the torch headers is built for AVX2.
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#define FEATCODEC_VECTOR_ROUND
namespace avx2 {
#include "quantize_cpu_kernels.h"
}  // namespace avx2
#undef FEATCODEC_VECTOR_ROUND

namespace avx2 {
// Hand-vectorised hot path (float32 y, float32 or no means, float32 scales, packed bucket table):
// 8 lanes per step, one gather, no per-lane branches. Lanes that need saturation or set a status
// bit (NaN/Inf, |symbol| beyond int32) only mark the chunk, which is then recomputed by the
// generic loop above, so the exact semantics live in one place.
template <bool HAS_MEANS>
int32_t quantize_index_f32(const float* __restrict__ y, const float* __restrict__ m, const float* __restrict__ s,
                           int32_t* __restrict__ sym, int32_t* __restrict__ idx, int64_t begin, int64_t end,
                           const ScaleIndexer& ix, double bound, int32_t limit, bool clamped) {
  // Beyond exc_f, |round(d)| is an exception: Inf/NaN when clamping, else also beyond int32.
  const float exc_f = clamped ? std::numeric_limits<float>::max() : largest_not_above<float>(2147483647);
  const float limit_f = clamped ? static_cast<float>(limit) : exc_f;  // exact: checked by the caller
  const __m256 v_bound = _mm256_set1_ps(static_cast<float>(bound));
  const __m256 v_limit = _mm256_set1_ps(limit_f);
  const __m256 v_neg_limit = _mm256_set1_ps(-limit_f);
  const __m256 v_exc = _mm256_set1_ps(exc_f);
  const __m256 v_abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i v_inf_bits = _mm256_set1_epi32(0x7f800000);
  const __m128i v_shift = _mm_cvtsi32_si128(ix.shift);
  const __m256i v_key_off = _mm256_set1_epi32(ix.key_min - 1);
  const __m256i v_key_max = _mm256_set1_epi32(ix.n_buckets + 1);
  const __m256i v_zero = _mm256_setzero_si256();
  const __m256i v_low = _mm256_set1_epi32(static_cast<int32_t>(ix.low_mask));
  const int32_t* packed = ix.packed.data();
  __m256 exc = _mm256_setzero_ps();
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    __m256 d = _mm256_loadu_ps(y + i);
    if constexpr (HAS_MEANS) {
      d = _mm256_sub_ps(d, _mm256_loadu_ps(m + i));
    }
    const __m256 r = _mm256_round_ps(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    exc = _mm256_or_ps(exc, _mm256_cmp_ps(_mm256_and_ps(r, v_abs), v_exc, _CMP_NLE_UQ));
    const __m256 rc = _mm256_min_ps(_mm256_max_ps(r, v_neg_limit), v_limit);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(sym + i), _mm256_cvttps_epi32(rc));

    const __m256 sv = _mm256_loadu_ps(s + i);
    exc = _mm256_or_ps(exc, _mm256_cmp_ps(sv, sv, _CMP_UNORD_Q));
    // max(bound, s) keeps a NaN s; min_epu32 then turns any NaN's bits into +inf's: index L-1.
    const __m256i bits = _mm256_min_epu32(_mm256_castps_si256(_mm256_max_ps(v_bound, sv)), v_inf_bits);
    __m256i key = _mm256_sub_epi32(_mm256_srl_epi32(bits, v_shift), v_key_off);
    key = _mm256_min_epi32(_mm256_max_epi32(key, v_zero), v_key_max);
    const __m256i e = _mm256_i32gather_epi32(packed, key, 4);
    const __m256i above = _mm256_cmpgt_epi32(_mm256_and_si256(bits, v_low), _mm256_and_si256(e, v_low));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + i), _mm256_sub_epi32(_mm256_srl_epi32(e, v_shift), above));
  }
  if (_mm256_movemask_ps(exc) != 0) {
    return quantize_index_chunk<float, float, float, HAS_MEANS, true>(y, m, s, sym, idx, begin, end, ix, bound,
                                                                      limit, clamped);
  }
  return i < end ? quantize_index_chunk<float, float, float, HAS_MEANS, true>(y, m, s, sym, idx, i, end, ix, bound,
                                                                              limit, clamped)
                 : 0;
}
}  // namespace avx2
#pragma GCC pop_options
#endif

bool env_is_one(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && std::strcmp(v, "1") == 0;
}

// FEATCODEC_NO_AVX2=1 forces the baseline loops (to compare them, or on a misdetecting CPU).
bool cpu_has_avx2() {
#ifdef FEATCODEC_HAVE_AVX2
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          __builtin_cpu_supports("f16c") && !env_is_one("FEATCODEC_NO_AVX2");
  return has;
#else
  return false;
#endif
}

template <typename scalar_t, typename mean_t, typename scale_t, bool HAS_MEANS>
int32_t run_quantize_index(const at::Tensor& y, const std::optional<at::Tensor>& means,
                           const at::Tensor& scales, at::Tensor& sym, at::Tensor& idx,
                           const ScaleIndexer& ix, double bound, int32_t limit, bool clamped) {
  const scalar_t* yp = y.const_data_ptr<scalar_t>();
  const mean_t* mp = HAS_MEANS ? means->const_data_ptr<mean_t>() : nullptr;
  const scale_t* sp = scales.const_data_ptr<scale_t>();
  int32_t* symp = sym.mutable_data_ptr<int32_t>();
  int32_t* idxp = idx.mutable_data_ptr<int32_t>();
  // The bucket table only applies to float comparisons (float64 scales are compared in double).
  const bool lut = ix.use_lut && std::is_same_v<at::opmath_type<scale_t>, float>;
  auto chunk = lut ? &baseline::quantize_index_chunk<scalar_t, mean_t, scale_t, HAS_MEANS, true>
                   : &baseline::quantize_index_chunk<scalar_t, mean_t, scale_t, HAS_MEANS, false>;
#ifdef FEATCODEC_HAVE_AVX2
  if (cpu_has_avx2()) {
    chunk = lut ? &avx2::quantize_index_chunk<scalar_t, mean_t, scale_t, HAS_MEANS, true>
                : &avx2::quantize_index_chunk<scalar_t, mean_t, scale_t, HAS_MEANS, false>;
    if constexpr (std::is_same_v<scalar_t, float> && std::is_same_v<mean_t, float> &&
                  std::is_same_v<scale_t, float>) {
      const bool limit_exact = !clamped || static_cast<double>(static_cast<float>(limit)) == limit;
      if (ix.use_packed && limit_exact && !env_is_one("FEATCODEC_NO_INTRINSICS")) {
        chunk = &avx2::quantize_index_f32<HAS_MEANS>;
      }
    }
  }
#endif
  std::atomic<int32_t> status{0};
  at::parallel_for(0, y.numel(), kGrain, [&](int64_t begin, int64_t end) {
    const int32_t st = chunk(yp, mp, sp, symp, idxp, begin, end, ix, bound, limit, clamped);
    status.fetch_or(st, std::memory_order_relaxed);
  });
  return status.load();
}

template <typename scalar_t, typename scale_t>
int32_t run_with_means(const at::Tensor& y, const std::optional<at::Tensor>& means, const at::Tensor& scales,
                       at::Tensor& sym, at::Tensor& idx, const ScaleIndexer& ix, double bound, int32_t limit,
                       bool clamped) {
  using opmath_t = at::opmath_type<scalar_t>;
  if (!means.has_value()) {
    return run_quantize_index<scalar_t, scalar_t, scale_t, false>(y, means, scales, sym, idx, ix, bound, limit,
                                                                  clamped);
  }
  if (means->scalar_type() == y.scalar_type()) {
    return run_quantize_index<scalar_t, scalar_t, scale_t, true>(y, means, scales, sym, idx, ix, bound, limit,
                                                                 clamped);
  }
  return run_quantize_index<scalar_t, opmath_t, scale_t, true>(y, means, scales, sym, idx, ix, bound, limit,
                                                               clamped);
}

at::Tensor quantize_index_out_cpu(const at::Tensor& y, const std::optional<at::Tensor>& means,
                                  const at::Tensor& scales, const at::Tensor& scale_table, double scale_bound,
                                  std::optional<int64_t> clamp, at::Tensor& sym, at::Tensor& idx) {
  check_quantize_index_args(y, means, scales, scale_table, scale_bound, clamp, c10::DeviceType::CPU);
  check_quantize_outputs(y, sym, idx);
  at::Tensor status = at::zeros({}, y.options().dtype(at::kInt));
  if (y.numel() == 0) {
    return status;
  }
  const ScaleIndexer ix(scale_table.const_data_ptr<float>(), scale_table.numel());
  const int32_t limit = clamp.has_value() ? static_cast<int32_t>(*clamp) : 2147483647;
  const bool clamped = clamp.has_value();
  int32_t st = 0;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, y.scalar_type(), "featcodec::quantize_index", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    if (scales.scalar_type() == y.scalar_type()) {
      st = run_with_means<scalar_t, scalar_t>(y, means, scales, sym, idx, ix, scale_bound, limit, clamped);
    } else {
      st = run_with_means<scalar_t, opmath_t>(y, means, scales, sym, idx, ix, scale_bound, limit, clamped);
    }
  });
  status.fill_(st);
  return status;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> quantize_index_cpu(const at::Tensor& y,
                                                                  const std::optional<at::Tensor>& means,
                                                                  const at::Tensor& scales,
                                                                  const at::Tensor& scale_table, double scale_bound,
                                                                  std::optional<int64_t> clamp) {
  at::Tensor sym = at::empty(y.sizes(), y.options().dtype(at::kInt));
  at::Tensor idx = at::empty(y.sizes(), y.options().dtype(at::kInt));
  at::Tensor status = quantize_index_out_cpu(y, means, scales, scale_table, scale_bound, clamp, sym, idx);
  return {sym, idx, status};
}

at::Tensor dequantize_cpu(const at::Tensor& symbols, const std::optional<at::Tensor>& means,
                          at::ScalarType dtype) {
  check_dequantize_args(symbols, means, dtype, c10::DeviceType::CPU);
  at::Tensor out = at::empty(symbols.sizes(), symbols.options().dtype(dtype));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "featcodec::dequantize", [&] {
    const int32_t* sp = symbols.const_data_ptr<int32_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    const scalar_t* mp = means.has_value() ? means->const_data_ptr<scalar_t>() : nullptr;
    auto chunk = mp != nullptr ? &baseline::dequantize_chunk<scalar_t, true>
                               : &baseline::dequantize_chunk<scalar_t, false>;
#ifdef FEATCODEC_HAVE_AVX2
    if (cpu_has_avx2()) {
      chunk = mp != nullptr ? &avx2::dequantize_chunk<scalar_t, true> : &avx2::dequantize_chunk<scalar_t, false>;
    }
#endif
    at::parallel_for(0, symbols.numel(), kGrain,
                     [&](int64_t begin, int64_t end) { chunk(sp, mp, op, begin, end); });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(featcodec, CPU, m) {
  m.impl("quantize_index", &quantize_index_cpu);
  m.impl("quantize_index_out", &quantize_index_out_cpu);
  m.impl("dequantize", &dequantize_cpu);
}

}  // namespace featcodec
