// Loop bodies of the CPU kernels, compiled once per instruction set by quantize_cpu.cpp
// (no include guard on purpose: included twice, inside namespaces `baseline` and `avx2`).
//
// The loops are written for auto-vectorisation: no calls, no branches (selects only), 32-bit
// lanes throughout for float inputs, gathers for the bucket table.

#ifdef FEATCODEC_VECTOR_ROUND
// SSE4.1/AVX: nearbyint becomes a (vectorised) roundps in the default nearest-even mode.
inline float round_half_even(float x) { return std::nearbyint(x); }
inline double round_half_even(double x) { return std::nearbyint(x); }
#else
inline float round_half_even(float x) {
  // Without SSE4.1 nearbyint is a libm call: adding and subtracting 2^23 rounds in the default
  // (nearest-even) mode instead; larger magnitudes are already integral.
  const float magic = 8388608.0f;
  const float ax = std::fabs(x);
  const float r = std::copysign((ax + magic) - magic, x);
  return ax < magic ? r : x;
}

inline double round_half_even(double x) {
  const double magic = 4503599627370496.0;
  const double ax = std::fabs(x);
  const double r = std::copysign((ax + magic) - magic, x);
  return ax < magic ? r : x;
}
#endif

inline bool is_finite(float x) { return std::fabs(x) <= std::numeric_limits<float>::max(); }
inline bool is_finite(double x) { return std::fabs(x) <= std::numeric_limits<double>::max(); }

template <typename scalar_t, typename mean_t, typename scale_t, bool HAS_MEANS, bool USE_LUT>
int32_t quantize_index_chunk(const scalar_t* __restrict__ y, const mean_t* __restrict__ m,
                             const scale_t* __restrict__ s, int32_t* __restrict__ sym,
                             int32_t* __restrict__ idx, int64_t begin, int64_t end, const ScaleIndexer& ix,
                             double bound, int32_t limit, bool clamped) {
  using opmath_t = at::opmath_type<scalar_t>;
  using sopmath_t = at::opmath_type<scale_t>;
  const sopmath_t sbound = static_cast<sopmath_t>(bound);
  const opmath_t limit_f = largest_not_above<opmath_t>(limit);
  // |r| above this (the largest float below 2^31) does not fit in int32.
  const opmath_t int32_f = largest_not_above<opmath_t>(2147483647);
  const float* __restrict__ table = ix.table.data();
  const int32_t* __restrict__ lut = ix.lut.data();
  const int32_t n_cmp = ix.n_cmp, key_min = ix.key_min;
  const int32_t last_bucket = ix.n_buckets - 1;
  const uint32_t shift = static_cast<uint32_t>(ix.shift);
  int32_t bad_y = 0, bad_m = 0, bad_s = 0, overflow = 0;
  for (int64_t i = begin; i < end; ++i) {
    const opmath_t yf = static_cast<opmath_t>(y[i]);
    opmath_t d = yf;
    if constexpr (HAS_MEANS) {
      const opmath_t mf = static_cast<opmath_t>(m[i]);
      bad_m |= is_finite(mf) ? 0 : 1;
      d = static_cast<opmath_t>(static_cast<scalar_t>(yf - mf));  // in y's dtype, as `y -= means`
    }
    bad_y |= is_finite(yf) ? 0 : 1;
    const opmath_t r = round_half_even(d);
    overflow |= std::fabs(r) > int32_f ? 1 : 0;  // also +-inf
    sym[i] = to_symbol(r, limit_f, limit);

    sopmath_t sv = lower_bound_scale(static_cast<sopmath_t>(s[i]), sbound);
    bad_s |= sv == sv ? 0 : 1;
    // A NaN scale indexes like +inf (L - 1, as CompressAI); a select the vectoriser accepts.
    sv = sv == sv ? sv : std::numeric_limits<sopmath_t>::infinity();
    if constexpr (USE_LUT) {
      uint32_t bits;
      std::memcpy(&bits, &sv, sizeof(bits));
      int32_t key = static_cast<int32_t>(bits >> shift) - key_min;
      key = key < 0 ? 0 : key;
      key = key > last_bucket ? last_bucket : key;
      const int32_t lo = lut[key];
      idx[i] = lo + (table[lo] < sv ? 1 : 0);
    } else {
      idx[i] = count_below(table, n_cmp, sv);
    }
  }
  return (bad_y ? kStatusYNonfinite : 0) | (bad_m ? kStatusMeansNonfinite : 0) | (bad_s ? kStatusScalesNan : 0) |
         ((overflow && !clamped) ? kStatusSymbolOverflow : 0);
}

template <typename out_t, bool HAS_MEANS>
void dequantize_chunk(const int32_t* __restrict__ sym, const out_t* __restrict__ m, out_t* __restrict__ out,
                      int64_t begin, int64_t end) {
  using opmath_t = at::opmath_type<out_t>;
  for (int64_t i = begin; i < end; ++i) {
    // int -> float -> out_t, as PyTorch's int32 -> fp16/bf16 conversion (through float).
    const out_t v = static_cast<out_t>(static_cast<opmath_t>(sym[i]));
    if constexpr (HAS_MEANS) {
      out[i] = static_cast<out_t>(static_cast<opmath_t>(v) + static_cast<opmath_t>(m[i]));
    } else {
      out[i] = v;
    }
  }
}
