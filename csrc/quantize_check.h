// Argument checks shared by the CPU and CUDA entry points of the featcodec ops.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <optional>

namespace featcodec {

inline bool is_native_float(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

// The kernels take means and scales either in y's dtype or in y's opmath dtype.
inline bool is_operand_dtype(at::ScalarType y, at::ScalarType other) {
  return other == y || other == at::toOpMathType(y);
}

inline void check_quantize_index_args(const at::Tensor& y, const std::optional<at::Tensor>& means,
                                      const at::Tensor& scales, const at::Tensor& table, double bound,
                                      std::optional<int64_t> clamp, c10::DeviceType device) {
  TORCH_CHECK(y.device().type() == device, "featcodec::quantize_index: y is on ", y.device());
  TORCH_CHECK(is_native_float(y.scalar_type()), "featcodec::quantize_index: unsupported y dtype ",
              y.scalar_type());
  TORCH_CHECK(y.is_contiguous(), "featcodec::quantize_index: y must be contiguous");
  TORCH_CHECK(scales.sizes() == y.sizes(), "featcodec::quantize_index: scales must have y's shape");
  TORCH_CHECK(scales.device() == y.device() && scales.is_contiguous(),
              "featcodec::quantize_index: scales must be contiguous and on y's device");
  TORCH_CHECK(is_operand_dtype(y.scalar_type(), scales.scalar_type()),
              "featcodec::quantize_index: scales dtype must be y's dtype or its opmath dtype, got ",
              scales.scalar_type());
  if (means.has_value()) {
    TORCH_CHECK(means->sizes() == y.sizes(), "featcodec::quantize_index: means must have y's shape");
    TORCH_CHECK(means->device() == y.device() && means->is_contiguous(),
                "featcodec::quantize_index: means must be contiguous and on y's device");
    TORCH_CHECK(is_operand_dtype(y.scalar_type(), means->scalar_type()),
                "featcodec::quantize_index: means dtype must be y's dtype or its opmath dtype, got ",
                means->scalar_type());
  }
  TORCH_CHECK(table.dim() == 1 && table.numel() >= 1 && table.numel() <= (1 << 30),
              "featcodec::quantize_index: scale_table must be a non-empty 1-D tensor");
  TORCH_CHECK(table.scalar_type() == at::kFloat && table.is_contiguous() && table.device() == y.device(),
              "featcodec::quantize_index: scale_table must be contiguous float32 on y's device");
  TORCH_CHECK(bound > 0, "featcodec::quantize_index: scale_bound must be positive");
  TORCH_CHECK(!clamp.has_value() || (*clamp >= 0 && *clamp <= 2147483647),
              "featcodec::quantize_index: clamp must be in [0, 2^31 - 1]");
}

inline void check_quantize_outputs(const at::Tensor& y, const at::Tensor& symbols, const at::Tensor& indexes) {
  for (const at::Tensor* t : {&symbols, &indexes}) {
    TORCH_CHECK(t->scalar_type() == at::kInt && t->is_contiguous() && t->sizes() == y.sizes() &&
                    t->device() == y.device(),
                "featcodec::quantize_index_out: symbols and indexes must be contiguous int32 with y's shape "
                "and device");
  }
}

inline void check_dequantize_args(const at::Tensor& symbols, const std::optional<at::Tensor>& means,
                                  at::ScalarType dtype, c10::DeviceType device) {
  TORCH_CHECK(symbols.device().type() == device, "featcodec::dequantize: symbols are on ", symbols.device());
  TORCH_CHECK(symbols.scalar_type() == at::kInt && symbols.is_contiguous(),
              "featcodec::dequantize: symbols must be contiguous int32");
  TORCH_CHECK(is_native_float(dtype), "featcodec::dequantize: unsupported dtype ", dtype);
  if (means.has_value()) {
    TORCH_CHECK(means->sizes() == symbols.sizes() && means->is_contiguous() &&
                    means->device() == symbols.device(),
                "featcodec::dequantize: means must be contiguous, with symbols' shape and device");
    TORCH_CHECK(means->scalar_type() == dtype, "featcodec::dequantize: dtype must be means' dtype");
  }
}

}  // namespace featcodec
