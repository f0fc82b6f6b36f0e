// CUDA kernels of featcodec::quantize_index and featcodec::dequantize (same semantics as the CPU
// kernels: csrc/quantize_common.h, codec/ops/reference.py).
//
// One grid-stride pass, 4 elements per thread with vectorised loads/stores when every pointer is
// aligned, the scale table in shared memory and a binary search per element (the kernel is bound
// by memory bandwidth, not by the ~6 shared-memory probes). Status bits are OR-reduced per warp
// and set with one atomicOr.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "quantize_check.h"
#include "quantize_common.h"

namespace featcodec {
namespace {

constexpr int kThreads = 256;
constexpr int kVec = 4;
constexpr int32_t kMaxSharedTable = 4096;  // entries (16 KiB); larger tables are read from global memory

template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

// The largest value of T not above `limit` (float32 cannot hold 2^31 - 1).
template <typename T>
T largest_not_above(int32_t limit) {
  T f = static_cast<T>(limit);
  return static_cast<double>(f) > static_cast<double>(limit) ? std::nextafter(f, T(0)) : f;
}

__device__ __forceinline__ bool finite(float x) { return fabsf(x) <= 3.402823466e38f; }
__device__ __forceinline__ bool finite(double x) { return fabs(x) <= 1.7976931348623157e308; }

template <typename scalar_t, typename mean_t, typename scale_t, bool HAS_MEANS>
struct QuantizeIndexOp {
  using opmath_t = at::opmath_type<scalar_t>;
  using sopmath_t = at::opmath_type<scale_t>;
  const float* table;
  int32_t n_cmp;
  sopmath_t bound;
  opmath_t limit_f;
  opmath_t int32_f;  // largest opmath_t below 2^31
  int32_t limit;
  bool clamped;

  __device__ __forceinline__ void operator()(scalar_t y, mean_t m, scale_t s, int32_t& sym, int32_t& idx,
                                             int32_t& st) const {
    const opmath_t yf = static_cast<opmath_t>(y);
    opmath_t d = yf;
    if constexpr (HAS_MEANS) {
      const opmath_t mf = static_cast<opmath_t>(m);
      st |= finite(mf) ? 0 : kStatusMeansNonfinite;
      d = static_cast<opmath_t>(static_cast<scalar_t>(yf - mf));  // in y's dtype, as `y -= means`
    }
    st |= finite(yf) ? 0 : kStatusYNonfinite;
    const opmath_t r = rint(d);  // round half to even
    st |= (!clamped && fabs(r) > int32_f) ? kStatusSymbolOverflow : 0;
    sym = to_symbol(r, limit_f, limit);
    sopmath_t sv = lower_bound_scale(static_cast<sopmath_t>(s), bound);
    st |= sv == sv ? 0 : kStatusScalesNan;
    sv = sv == sv ? sv : std::numeric_limits<sopmath_t>::infinity();  // NaN indexes as +inf: L - 1
    idx = count_below(table, n_cmp, sv);
  }
};

__device__ __forceinline__ void publish_status(int32_t st, int32_t* status) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    st |= __shfl_xor_sync(0xffffffffu, st, offset);
  }
  if ((threadIdx.x & 31) == 0 && st != 0) {
    atomicOr(status, st);
  }
}

template <typename scalar_t, typename mean_t, typename scale_t, bool HAS_MEANS, int VEC>
__global__ void __launch_bounds__(kThreads)
    quantize_index_kernel(const scalar_t* __restrict__ y, const mean_t* __restrict__ m,
                          const scale_t* __restrict__ s, int32_t* __restrict__ sym, int32_t* __restrict__ idx,
                          int64_t n, const float* __restrict__ table_g, QuantizeIndexOp<scalar_t, mean_t, scale_t, HAS_MEANS> op,
                          int32_t* __restrict__ status) {
  extern __shared__ float table_s[];
  if (op.n_cmp <= kMaxSharedTable) {
    for (int j = threadIdx.x; j < op.n_cmp; j += blockDim.x) {
      table_s[j] = table_g[j];
    }
    op.table = table_s;
  } else {
    op.table = table_g;
  }
  __syncthreads();
  int32_t st = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t n_packs = n / VEC;
  for (int64_t p = first; p < n_packs; p += stride) {
    const Pack<scalar_t, VEC> yv = reinterpret_cast<const Pack<scalar_t, VEC>*>(y)[p];
    const Pack<scale_t, VEC> sv = reinterpret_cast<const Pack<scale_t, VEC>*>(s)[p];
    Pack<mean_t, VEC> mv;
    if constexpr (HAS_MEANS) {
      mv = reinterpret_cast<const Pack<mean_t, VEC>*>(m)[p];
    }
    Pack<int32_t, VEC> symv, idxv;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      op(yv.v[k], HAS_MEANS ? mv.v[k] : mean_t(0), sv.v[k], symv.v[k], idxv.v[k], st);
    }
    reinterpret_cast<Pack<int32_t, VEC>*>(sym)[p] = symv;
    reinterpret_cast<Pack<int32_t, VEC>*>(idx)[p] = idxv;
  }
  for (int64_t i = n_packs * VEC + first; i < n; i += stride) {  // tail
    op(y[i], HAS_MEANS ? m[i] : mean_t(0), s[i], sym[i], idx[i], st);
  }
  publish_status(st, status);
}

template <typename out_t, bool HAS_MEANS, int VEC>
__global__ void __launch_bounds__(kThreads)
    dequantize_kernel(const int32_t* __restrict__ sym, const out_t* __restrict__ m, out_t* __restrict__ out,
                      int64_t n) {
  using opmath_t = at::opmath_type<out_t>;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  auto one = [&](int32_t q, out_t mv) {
    // int -> float -> out_t, as PyTorch's int32 -> fp16/bf16 conversion (through float).
    const out_t v = static_cast<out_t>(static_cast<opmath_t>(q));
    if constexpr (HAS_MEANS) {
      return static_cast<out_t>(static_cast<opmath_t>(v) + static_cast<opmath_t>(mv));
    }
    return v;
  };
  const int64_t n_packs = n / VEC;
  for (int64_t p = first; p < n_packs; p += stride) {
    const Pack<int32_t, VEC> q = reinterpret_cast<const Pack<int32_t, VEC>*>(sym)[p];
    Pack<out_t, VEC> mv, o;
    if constexpr (HAS_MEANS) {
      mv = reinterpret_cast<const Pack<out_t, VEC>*>(m)[p];
    }
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      o.v[k] = one(q.v[k], HAS_MEANS ? mv.v[k] : out_t(0));
    }
    reinterpret_cast<Pack<out_t, VEC>*>(out)[p] = o;
  }
  for (int64_t i = n_packs * VEC + first; i < n; i += stride) {
    out[i] = one(sym[i], HAS_MEANS ? m[i] : out_t(0));
  }
}

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

int grid_size(int64_t work) {
  // (ATen/cuda/CUDAContext.h would give the device properties, but pulls in cuSPARSE/cuBLAS headers
  // that a bare CUDA toolkit may lack.)
  int device = 0, sms = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  // Enough resident blocks to saturate memory bandwidth; the grid-stride loop covers the rest.
  const int64_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(blocks, static_cast<int64_t>(sms) * 16)));
}

template <typename scalar_t, typename mean_t, typename scale_t, bool HAS_MEANS>
void launch_quantize_index(const at::Tensor& y, const std::optional<at::Tensor>& means, const at::Tensor& scales,
                           const at::Tensor& table, at::Tensor& sym, at::Tensor& idx, at::Tensor& status,
                           double bound, std::optional<int64_t> clamp) {
  using Op = QuantizeIndexOp<scalar_t, mean_t, scale_t, HAS_MEANS>;
  using opmath_t = typename Op::opmath_t;
  using sopmath_t = typename Op::sopmath_t;
  const int64_t n = y.numel();
  const int32_t limit = clamp.has_value() ? static_cast<int32_t>(*clamp) : 2147483647;
  Op op{nullptr,
        static_cast<int32_t>(table.numel() - 1),
        static_cast<sopmath_t>(bound),
        largest_not_above<opmath_t>(limit),
        largest_not_above<opmath_t>(2147483647),
        limit,
        clamp.has_value()};
  const scalar_t* yp = y.const_data_ptr<scalar_t>();
  const mean_t* mp = HAS_MEANS ? means->const_data_ptr<mean_t>() : nullptr;
  const scale_t* sp = scales.const_data_ptr<scale_t>();
  int32_t* symp = sym.mutable_data_ptr<int32_t>();
  int32_t* idxp = idx.mutable_data_ptr<int32_t>();
  const size_t shmem = op.n_cmp <= kMaxSharedTable ? static_cast<size_t>(op.n_cmp) * sizeof(float) : 0;
  const bool vec = aligned(yp, sizeof(scalar_t) * kVec) && aligned(sp, sizeof(scale_t) * kVec) &&
                   (!HAS_MEANS || aligned(mp, sizeof(mean_t) * kVec)) && aligned(symp, 4 * kVec) &&
                   aligned(idxp, 4 * kVec);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (vec) {
    quantize_index_kernel<scalar_t, mean_t, scale_t, HAS_MEANS, kVec><<<grid_size(n / kVec + 1), kThreads, shmem, stream>>>(
        yp, mp, sp, symp, idxp, n, table.const_data_ptr<float>(), op, status.mutable_data_ptr<int32_t>());
  } else {
    quantize_index_kernel<scalar_t, mean_t, scale_t, HAS_MEANS, 1><<<grid_size(n), kThreads, shmem, stream>>>(
        yp, mp, sp, symp, idxp, n, table.const_data_ptr<float>(), op, status.mutable_data_ptr<int32_t>());
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t, typename scale_t>
void launch_with_means(const at::Tensor& y, const std::optional<at::Tensor>& means, const at::Tensor& scales,
                       const at::Tensor& table, at::Tensor& sym, at::Tensor& idx, at::Tensor& status, double bound,
                       std::optional<int64_t> clamp) {
  using opmath_t = at::opmath_type<scalar_t>;
  if (!means.has_value()) {
    launch_quantize_index<scalar_t, scalar_t, scale_t, false>(y, means, scales, table, sym, idx, status, bound, clamp);
  } else if (means->scalar_type() == y.scalar_type()) {
    launch_quantize_index<scalar_t, scalar_t, scale_t, true>(y, means, scales, table, sym, idx, status, bound, clamp);
  } else {
    launch_quantize_index<scalar_t, opmath_t, scale_t, true>(y, means, scales, table, sym, idx, status, bound, clamp);
  }
}

at::Tensor quantize_index_out_cuda(const at::Tensor& y, const std::optional<at::Tensor>& means,
                                   const at::Tensor& scales, const at::Tensor& scale_table, double scale_bound,
                                   std::optional<int64_t> clamp, at::Tensor& sym, at::Tensor& idx) {
  check_quantize_index_args(y, means, scales, scale_table, scale_bound, clamp, c10::DeviceType::CUDA);
  check_quantize_outputs(y, sym, idx);
  const c10::cuda::CUDAGuard guard(y.device());
  at::Tensor status = at::zeros({}, y.options().dtype(at::kInt));
  if (y.numel() == 0) {
    return status;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, y.scalar_type(), "featcodec::quantize_index", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    if (scales.scalar_type() == y.scalar_type()) {
      launch_with_means<scalar_t, scalar_t>(y, means, scales, scale_table, sym, idx, status, scale_bound, clamp);
    } else {
      launch_with_means<scalar_t, opmath_t>(y, means, scales, scale_table, sym, idx, status, scale_bound, clamp);
    }
  });
  return status;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> quantize_index_cuda(const at::Tensor& y,
                                                                   const std::optional<at::Tensor>& means,
                                                                   const at::Tensor& scales,
                                                                   const at::Tensor& scale_table,
                                                                   double scale_bound, std::optional<int64_t> clamp) {
  at::Tensor sym = at::empty(y.sizes(), y.options().dtype(at::kInt));
  at::Tensor idx = at::empty(y.sizes(), y.options().dtype(at::kInt));
  at::Tensor status = quantize_index_out_cuda(y, means, scales, scale_table, scale_bound, clamp, sym, idx);
  return {sym, idx, status};
}

at::Tensor dequantize_cuda(const at::Tensor& symbols, const std::optional<at::Tensor>& means, at::ScalarType dtype) {
  check_dequantize_args(symbols, means, dtype, c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard guard(symbols.device());
  at::Tensor out = at::empty(symbols.sizes(), symbols.options().dtype(dtype));
  const int64_t n = symbols.numel();
  if (n == 0) {
    return out;
  }
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "featcodec::dequantize", [&] {
    const int32_t* sp = symbols.const_data_ptr<int32_t>();
    const scalar_t* mp = means.has_value() ? means->const_data_ptr<scalar_t>() : nullptr;
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    const bool vec = aligned(sp, 4 * kVec) && aligned(op, sizeof(scalar_t) * kVec) &&
                     (mp == nullptr || aligned(mp, sizeof(scalar_t) * kVec));
    if (mp != nullptr) {
      if (vec) {
        dequantize_kernel<scalar_t, true, kVec><<<grid_size(n / kVec + 1), kThreads, 0, stream>>>(sp, mp, op, n);
      } else {
        dequantize_kernel<scalar_t, true, 1><<<grid_size(n), kThreads, 0, stream>>>(sp, mp, op, n);
      }
    } else {
      if (vec) {
        dequantize_kernel<scalar_t, false, kVec><<<grid_size(n / kVec + 1), kThreads, 0, stream>>>(sp, mp, op, n);
      } else {
        dequantize_kernel<scalar_t, false, 1><<<grid_size(n), kThreads, 0, stream>>>(sp, mp, op, n);
      }
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(featcodec, CUDA, m) {
  m.impl("quantize_index", &quantize_index_cuda);
  m.impl("quantize_index_out", &quantize_index_out_cuda);
  m.impl("dequantize", &dequantize_cuda);
}

}  // namespace featcodec
