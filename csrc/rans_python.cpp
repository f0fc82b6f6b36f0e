// Python face of the native rANS coder (codec._C.rans_*), used by codec/entropy/native.py.
//
// Plain CPython API rather than pybind11 or a torch op: the coder takes numpy int32 arrays through
// the buffer protocol (no tensor wrapping, no dispatcher), which keeps a call's fixed cost to a few
// microseconds, and the GIL is released while coding. Several substreams go in one call and are
// coded on std::threads.
#include <Python.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "rans.h"

namespace {

using featcodec::rans::Table;

constexpr const char* kCapsuleName = "featcodec.rans.Table";

// Owns a Py_buffer (released on scope exit).
struct Buffer {
  Py_buffer view{};
  bool held = false;
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : view(o.view), held(o.held) { o.held = false; }
  ~Buffer() {
    if (held) PyBuffer_Release(&view);
  }
  bool get(PyObject* obj, int flags) {
    if (PyObject_GetBuffer(obj, &view, flags) < 0) return false;
    held = true;
    return true;
  }
  size_t count() const { return static_cast<size_t>(view.len / (view.itemsize ? view.itemsize : 1)); }
};

bool get_int32(PyObject* obj, Buffer& b, bool writable, const char* what) {
  if (!b.get(obj, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0))) return false;
  const char* f = b.view.format ? b.view.format : "B";
  const bool int32 = b.view.itemsize == 4 && (!std::strcmp(f, "i") || !std::strcmp(f, "<i") || !std::strcmp(f, "=i"));
  if (!int32) {
    PyErr_Format(PyExc_ValueError, "%s must be a contiguous int32 array (got format %s)", what, f);
    return false;
  }
  return true;
}

// Runs f(0..count-1) on up to `threads` threads (the caller's thread included), dynamically
// scheduled because substreams can differ in size. Falls back to the calling thread if no thread
// can be started.
template <class F>
void parallel_for(size_t count, int threads, F&& f) {
  const size_t workers = std::min<size_t>(count, threads < 1 ? 1 : static_cast<size_t>(threads));
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < count;) f(i);
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < workers; ++t) {
    try {
      pool.emplace_back(work);
    } catch (const std::system_error&) {
      break;
    }
  }
  work();
  for (auto& th : pool) th.join();
}

Table* table_of(PyObject* capsule) {
  return static_cast<Table*>(PyCapsule_GetPointer(capsule, kCapsuleName));
}

void free_table(PyObject* capsule) { delete table_of(capsule); }

// rans_table(cdf int32[K, W], cdf_length int32[K], offset int32[K], precision) -> capsule
PyObject* rans_table(PyObject*, PyObject* args) {
  PyObject *cdf_obj, *len_obj, *off_obj;
  int precision;
  if (!PyArg_ParseTuple(args, "OOOi", &cdf_obj, &len_obj, &off_obj, &precision)) return nullptr;
  Buffer cdf, len, off;
  if (!get_int32(cdf_obj, cdf, false, "cdf") || !get_int32(len_obj, len, false, "cdf_length") ||
      !get_int32(off_obj, off, false, "offset"))
    return nullptr;
  if (cdf.view.ndim != 2 || len.count() != static_cast<size_t>(cdf.view.shape[0]) || off.count() != len.count()) {
    PyErr_SetString(PyExc_ValueError, "cdf must be [K, W] with cdf_length and offset of K entries");
    return nullptr;
  }
  auto* table = new Table();
  const std::string err = table->build(static_cast<const int32_t*>(cdf.view.buf), static_cast<int>(cdf.view.shape[0]),
                                       static_cast<int>(cdf.view.shape[1]), static_cast<const int32_t*>(len.view.buf),
                                       static_cast<const int32_t*>(off.view.buf), precision);
  if (!err.empty()) {
    delete table;
    PyErr_SetString(PyExc_ValueError, err.c_str());
    return nullptr;
  }
  PyObject* capsule = PyCapsule_New(table, kCapsuleName, free_table);
  if (!capsule) delete table;
  return capsule;
}

// Buffers for the i-th items of several equally long sequences.
bool gather(PyObject* seq_obj, const char* what, std::vector<Buffer>& out, size_t expected, bool int32,
            bool writable) {
  PyObject* seq = PySequence_Fast(seq_obj, what);
  if (!seq) return false;
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  if (static_cast<size_t>(n) != expected) {
    Py_DECREF(seq);
    PyErr_Format(PyExc_ValueError, "%s: expected %zu items, got %zd", what, expected, n);
    return false;
  }
  out.resize(n);
  bool ok = true;
  for (Py_ssize_t i = 0; i < n && ok; ++i) {
    PyObject* item = PySequence_Fast_GET_ITEM(seq, i);
    ok = int32 ? get_int32(item, out[i], writable, what) : out[i].get(item, PyBUF_C_CONTIGUOUS);
  }
  Py_DECREF(seq);
  return ok;
}

bool check_format(int format) {
  if (format == 1 || format == 2) return true;
  PyErr_Format(PyExc_ValueError, "substream format must be 1 or 2, not %d", format);
  return false;
}

// rans_encode(table, [symbols int32], [indexes int32], threads, format=1) -> [bytes]
PyObject* rans_encode(PyObject*, PyObject* args) {
  PyObject *capsule, *sym_obj, *idx_obj;
  int threads, format = 1;
  if (!PyArg_ParseTuple(args, "OOOi|i", &capsule, &sym_obj, &idx_obj, &threads, &format) || !check_format(format))
    return nullptr;
  const Table* table = table_of(capsule);
  if (!table) return nullptr;
  const Py_ssize_t count = PySequence_Size(sym_obj);
  if (count < 0) return nullptr;
  std::vector<Buffer> symbols, indexes;
  if (!gather(sym_obj, "symbols", symbols, count, true, false) || !gather(idx_obj, "indexes", indexes, count, true, false))
    return nullptr;
  for (Py_ssize_t i = 0; i < count; ++i) {
    if (symbols[i].count() != indexes[i].count()) {
      PyErr_Format(PyExc_ValueError, "substream %zd: %zu symbols but %zu indexes", i, symbols[i].count(),
                   indexes[i].count());
      return nullptr;
    }
  }
  std::vector<std::vector<uint8_t>> out(count);
  std::vector<std::string> errors(count);
  Py_BEGIN_ALLOW_THREADS
  parallel_for(count, threads, [&](size_t i) {
    try {
      errors[i] = (format == 2 ? featcodec::rans::encode_sized : featcodec::rans::encode)(
          *table, static_cast<const int32_t*>(symbols[i].view.buf), static_cast<const int32_t*>(indexes[i].view.buf),
          symbols[i].count(), out[i]);
    } catch (const std::bad_alloc&) {
      errors[i] = "out of memory";
    }
  });
  Py_END_ALLOW_THREADS
  for (Py_ssize_t i = 0; i < count; ++i) {
    if (!errors[i].empty()) {
      PyErr_Format(errors[i] == "out of memory" ? PyExc_MemoryError : PyExc_ValueError, "substream %zd: %s", i,
                   errors[i].c_str());
      return nullptr;
    }
  }
  PyObject* result = PyList_New(count);
  if (!result) return nullptr;
  for (Py_ssize_t i = 0; i < count; ++i) {
    PyObject* b = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(out[i].data()), out[i].size());
    if (!b) {
      Py_DECREF(result);
      return nullptr;
    }
    PyList_SET_ITEM(result, i, b);
  }
  return result;
}

// rans_decode(table, [data bytes], [indexes int32], [out int32, writable], threads, format=1) -> None | str
// A malformed stream is not an exception here: the message is returned and codec/entropy/native.py
// raises BitstreamError with it (argument errors raise ValueError).
PyObject* rans_decode(PyObject*, PyObject* args) {
  PyObject *capsule, *data_obj, *idx_obj, *out_obj;
  int threads, format = 1;
  if (!PyArg_ParseTuple(args, "OOOOi|i", &capsule, &data_obj, &idx_obj, &out_obj, &threads, &format) ||
      !check_format(format))
    return nullptr;
  const Table* table = table_of(capsule);
  if (!table) return nullptr;
  const Py_ssize_t count = PySequence_Size(data_obj);
  if (count < 0) return nullptr;
  std::vector<Buffer> data, indexes, out;
  if (!gather(data_obj, "data", data, count, false, false) || !gather(idx_obj, "indexes", indexes, count, true, false) ||
      !gather(out_obj, "out", out, count, true, true))
    return nullptr;
  for (Py_ssize_t i = 0; i < count; ++i) {
    if (out[i].count() != indexes[i].count()) {
      PyErr_Format(PyExc_ValueError, "substream %zd: output of %zu symbols for %zu indexes", i, out[i].count(),
                   indexes[i].count());
      return nullptr;
    }
  }
  std::vector<std::string> errors(count);
  Py_BEGIN_ALLOW_THREADS
  parallel_for(count, threads, [&](size_t i) {
    try {
      errors[i] = (format == 2 ? featcodec::rans::decode_sized : featcodec::rans::decode)(
                                          *table, static_cast<const uint8_t*>(data[i].view.buf),
                                          static_cast<size_t>(data[i].view.len),
                                          static_cast<const int32_t*>(indexes[i].view.buf), indexes[i].count(),
                                          static_cast<int32_t*>(out[i].view.buf));
    } catch (const std::bad_alloc&) {
      errors[i] = "out of memory";
    }
  });
  Py_END_ALLOW_THREADS
  for (Py_ssize_t i = 0; i < count; ++i) {
    if (errors[i] == "out of memory") return PyErr_NoMemory();
    if (errors[i].rfind("index outside", 0) == 0) {  // the caller's indexes, not the stream
      PyErr_Format(PyExc_ValueError, "substream %zd: %s", i, errors[i].c_str());
      return nullptr;
    }
    if (!errors[i].empty()) return PyUnicode_FromFormat("substream %zd: %s", i, errors[i].c_str());
  }
  Py_RETURN_NONE;
}

}  // namespace

extern "C" {
PyMethodDef featcodec_rans_methods[] = {
    {"rans_table", rans_table, METH_VARARGS, "Prepared CDF table (capsule) for the native rANS coder."},
    {"rans_encode", rans_encode, METH_VARARGS, "Encode substreams: (table, [symbols], [indexes], threads, format=1) -> [bytes]."},
    {"rans_decode", rans_decode, METH_VARARGS,
     "Decode substreams into out arrays: (table, [data], [indexes], [out], threads, format=1) -> None or error message."},
    {nullptr, nullptr, 0, nullptr},
};
}
