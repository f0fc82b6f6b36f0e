// Schemas of featcodec's custom torch operators and the Python module stub of codec._C.
//
// Kernels: quantize_cpu.cpp (CPU), quantize_cuda.cu (CUDA). Fake kernels for torch.compile:
// codec/ops/_fake.py. Semantics: codec/ops/reference.py.
#include <Python.h>
#include <torch/library.h>

extern "C" {
extern PyMethodDef featcodec_rans_methods[];  // csrc/rans_python.cpp

// Importing codec._C runs the static TORCH_LIBRARY registrations below; the module's only functions
// are the native rANS coder's (plain CPython API, so no pybind11 is needed).
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  PyObject* m = PyModule_Create(&module_def);
  if (m && PyModule_AddFunctions(m, featcodec_rans_methods) < 0) {
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
}

TORCH_LIBRARY(featcodec, m) {
  // (symbols int32, indexes int32, status int32 scalar); status bits in quantize_common.h.
  // means: y's shape, dtype y's or float32 (float64 for float64 y); scales: y's shape, same rule.
  m.def(
      "quantize_index(Tensor y, Tensor? means, Tensor scales, Tensor scale_table, float scale_bound, "
      "int? clamp) -> (Tensor, Tensor, Tensor)");
  // The same into caller-owned int32 outputs of y's shape (reused buffers: no allocation, no page
  // faults on first touch); returns the status.
  m.def(
      "quantize_index_out(Tensor y, Tensor? means, Tensor scales, Tensor scale_table, float scale_bound, "
      "int? clamp, Tensor(a!) symbols, Tensor(b!) indexes) -> Tensor");
  // symbols int32; with means, dtype must be means' dtype (CompressAI adds in means' dtype).
  m.def("dequantize(Tensor symbols, Tensor? means, ScalarType dtype) -> Tensor");
}
