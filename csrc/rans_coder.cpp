// Interleaved rANS coder (format and rationale in rans.h and docs/bitstream.md).
#include <algorithm>
#include <memory>

#include "rans.h"

namespace featcodec {
namespace rans {

static_assert((kWays & (kWays - 1)) == 0, "kWays must be a power of two");

std::string Table::build(const int32_t* cdf_in, int rows_in, int width, const int32_t* length,
                         const int32_t* offset_in, int precision_in) {
  if (rows_in < 1) return "CDF table has no rows";
  if (width < 2) return "CDF table rows are shorter than 2 entries";
  // x_max = ((L >> precision) << 8) * freq must stay below 2^32 and the renormalisation must
  // leave room for the slot: 16 bits is CompressAI's precision and the format's maximum.
  if (precision_in < 1 || precision_in > 16) return "CDF precision must be in [1, 16]";
  rows = rows_in;
  precision = precision_in;
  const int lut_bits = std::min(precision, kLutBits);
  lut_shift = precision - lut_bits;
  const uint32_t total = 1u << precision;
  offset.assign(offset_in, offset_in + rows);
  max_value.resize(rows);
  base.resize(rows);
  cdf.clear();
  lut.assign(static_cast<size_t>(rows) << lut_bits, 0);
  for (int k = 0; k < rows; ++k) {
    const int len = length[k];
    if (len < 2 || len > width) return "cdf_length of row " + std::to_string(k) + " outside [2, width]";
    // |offset| and max bounded so that v = s - offset wraps into [0, max) only for in-range values.
    if (offset[k] < -(1 << 30) || offset[k] > (1 << 30)) return "offset of row " + std::to_string(k) + " too large";
    const int32_t* row = cdf_in + static_cast<size_t>(k) * width;
    if (row[0] != 0 || static_cast<uint32_t>(row[len - 1]) != total)
      return "CDF row " + std::to_string(k) + " does not run from 0 to 2^precision";
    for (int v = 0; v + 1 < len; ++v)
      if (row[v + 1] <= row[v]) return "CDF row " + std::to_string(k) + " has an empty or negative bin";
    max_value[k] = static_cast<uint32_t>(len - 2);
    base[k] = static_cast<uint32_t>(cdf.size());
    cdf.insert(cdf.end(), row, row + len);
    // Bucket b holds the bin containing slot b << lut_shift; the decoder scans forward from it.
    uint16_t* l = lut.data() + (static_cast<size_t>(k) << lut_bits);
    int v = 0;
    for (uint32_t b = 0; b < (1u << lut_bits); ++b) {
      const uint32_t slot = b << lut_shift;
      while (static_cast<uint32_t>(row[v + 1]) <= slot) ++v;
      l[b] = static_cast<uint16_t>(v);  // v < len - 1 <= 2^16
    }
  }
  return "";
}

namespace {

struct Out {
  std::unique_ptr<uint8_t[]> buf;
  size_t cap = 0;
  uint8_t* ptr = nullptr;  // next byte is written at *--ptr
};

inline void put(uint32_t& x, uint8_t*& ptr, uint32_t start, uint32_t freq, int precision) {
  const uint32_t x_max = ((kLow >> precision) << 8) * freq;
  while (x >= x_max) {
    *--ptr = static_cast<uint8_t>(x);
    x >>= 8;
  }
  x = ((x / freq) << precision) + (x % freq) + start;
}

inline void put_bits(uint32_t& x, uint8_t*& ptr, uint32_t value, int bits) {
  const uint32_t x_max = (kLow >> bits) << 8;
  while (x >= x_max) {
    *--ptr = static_cast<uint8_t>(x);
    x >>= 8;
  }
  x = (x << bits) | value;
}

// Grows the buffer (keeping the written tail at its end) so that symbol i can take an escape
// and the i symbols before it their worst case.
void reserve(Out& out, size_t i) {
  const size_t need = kMaxEscapeBytes + kMaxBytesPerSymbol * i + 4 * kWays;
  const size_t room = static_cast<size_t>(out.ptr - out.buf.get());
  if (room >= need) return;
  const size_t used = out.cap - room;
  const size_t cap = std::max(2 * out.cap, used + need);
  std::unique_ptr<uint8_t[]> grown(new uint8_t[cap]);
  std::memcpy(grown.get() + cap - used, out.ptr, used);
  out.buf = std::move(grown);
  out.cap = cap;
  out.ptr = out.buf.get() + cap - used;
}

__attribute__((noinline)) void put_escape(const Table& t, Out& out, size_t i, uint32_t& x, int32_t s, int k) {
  reserve(out, i);
  const int64_t v = static_cast<int64_t>(s) - t.offset[k];
  const uint32_t max = t.max_value[k];
  const uint64_t raw = v < 0 ? static_cast<uint64_t>(-2 * v - 1) : static_cast<uint64_t>(2 * (v - max));
  int chunks = 0;
  while (chunks < kMaxBypassChunks && (raw >> (kBypassBits * chunks)) != 0) ++chunks;
  // Reverse of the decode order: chunks (most significant first), count, escape bin.
  for (int j = chunks - 1; j >= 0; --j)
    put_bits(x, out.ptr, static_cast<uint32_t>(raw >> (kBypassBits * j)) & ((1u << kBypassBits) - 1), kBypassBits);
  put_bits(x, out.ptr, static_cast<uint32_t>(chunks), kBypassBits);
  const uint32_t* row = t.cdf.data() + t.base[k];
  put(x, out.ptr, row[max], row[max + 1] - row[max], t.precision);
}

}  // namespace

std::string encode(const Table& t, const int32_t* symbols, const int32_t* indexes, size_t n,
                   std::vector<uint8_t>& result) {
  result.clear();
  if (n == 0) return "";
  Out out;
  out.cap = kMaxBytesPerSymbol * n + 4 * kWays;
  out.buf.reset(new uint8_t[out.cap]);
  out.ptr = out.buf.get() + out.cap;
  uint32_t st[kWays];
  for (auto& x : st) x = kLow;
  const uint32_t rows = static_cast<uint32_t>(t.rows);
  const int precision = t.precision;
  const uint32_t* cdf = t.cdf.data();
  const uint32_t* base = t.base.data();
  const uint32_t* max_value = t.max_value.data();
  const int32_t* offset = t.offset.data();
  size_t bad = n;  // first out-of-table index seen
  // One symbol; the hot path is the table lookup, one division and at most two byte writes.
  auto step = [&](uint32_t& x, size_t i) __attribute__((always_inline)) {
    const uint32_t k = static_cast<uint32_t>(indexes[i]);
    if (k >= rows) {
      bad = i;
      return false;
    }
    // Wrapping subtraction: in [0, max) exactly when s - offset is (|offset| <= 2^30, max < 2^17).
    const uint32_t v = static_cast<uint32_t>(symbols[i]) - static_cast<uint32_t>(offset[k]);
    if (v < max_value[k]) {
      const uint32_t* row = cdf + base[k] + v;
      put(x, out.ptr, row[0], row[1] - row[0], precision);
    } else {
      put_escape(t, out, i, x, symbols[i], static_cast<int>(k));
    }
    return true;
  };
  size_t i = n;
  const size_t full = n - n % kWays;
  while (i > full) {  // the tail first: encoding runs backwards
    --i;
    if (!step(st[i & (kWays - 1)], i)) break;
  }
  if (bad == n) {
    while (i > 0) {
      i -= kWays;
      bool ok = true;
#pragma GCC unroll 8
      for (int j = kWays - 1; j >= 0; --j) ok &= step(st[j], i + j);
      if (!ok) break;
    }
  }
  if (bad != n) return "index " + std::to_string(indexes[bad]) + " at position " + std::to_string(bad) +
                       " outside the CDF table's " + std::to_string(t.rows) + " rows";
  const int states = static_cast<int>(std::min<size_t>(n, kWays));
  for (int j = states - 1; j >= 0; --j) {
    out.ptr -= 4;
    for (int b = 0; b < 4; ++b) out.ptr[b] = static_cast<uint8_t>(st[j] >> (8 * b));
  }
  result.assign(out.ptr, out.buf.get() + out.cap);
  return "";
}

namespace {

struct In {
  const uint8_t* p;
  const uint8_t* end;
};

inline bool refill(uint32_t& x, In& in) {
  while (x < kLow) {
    if (in.p == in.end) return false;
    x = (x << 8) | *in.p++;
  }
  return true;
}

inline bool get_bits(uint32_t& x, In& in, int bits, uint32_t& value) {
  value = x & ((1u << bits) - 1);
  x >>= bits;
  return refill(x, in);
}

__attribute__((noinline)) const char* get_escape(const Table& t, In& in, uint32_t& x, int k, int32_t& s) {
  uint32_t chunks = 0;
  if (!get_bits(x, in, kBypassBits, chunks)) return "stream ends inside an escape";
  if (chunks > static_cast<uint32_t>(kMaxBypassChunks)) return "escape with more than 9 bypass chunks";
  uint64_t raw = 0;
  for (uint32_t j = 0; j < chunks; ++j) {
    uint32_t chunk = 0;
    if (!get_bits(x, in, kBypassBits, chunk)) return "stream ends inside an escape";
    raw |= static_cast<uint64_t>(chunk) << (kBypassBits * j);
  }
  const int64_t v = (raw & 1) ? -static_cast<int64_t>((raw + 1) >> 1)
                              : static_cast<int64_t>(raw >> 1) + t.max_value[k];
  const int64_t value = v + t.offset[k];
  if (value < INT32_MIN || value > INT32_MAX) return "escaped symbol outside the int32 range";
  s = static_cast<int32_t>(value);
  return nullptr;
}

}  // namespace

std::string decode(const Table& t, const uint8_t* data, size_t size, const int32_t* indexes, size_t n,
                   int32_t* symbols) {
  if (n == 0) return size == 0 ? "" : "data for an empty message";
  const size_t states = std::min<size_t>(n, kWays);
  if (size < 4 * states)
    return "substream of " + std::to_string(size) + " bytes is shorter than its " + std::to_string(states) +
           " states";
  uint32_t st[kWays];
  for (size_t j = 0; j < kWays; ++j) {
    st[j] = kLow;
    if (j >= states) continue;
    const uint8_t* b = data + 4 * j;
    st[j] = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
    if (st[j] < kLow || st[j] >= (kLow << 8)) return "initial rANS state out of range";
  }
  In in{data + 4 * states, data + size};
  const uint32_t rows = static_cast<uint32_t>(t.rows);
  const int precision = t.precision;
  const uint32_t mask = (1u << precision) - 1;
  const int lut_bits = precision - t.lut_shift;
  const int lut_shift = t.lut_shift;
  const uint32_t* cdf = t.cdf.data();
  const uint32_t* base = t.base.data();
  const uint32_t* max_value = t.max_value.data();
  const int32_t* offset = t.offset.data();
  const uint16_t* lut = t.lut.data();
  const char* err = nullptr;
  size_t where = 0;
  auto step = [&](uint32_t& x, size_t i) __attribute__((always_inline)) {
    const uint32_t k = static_cast<uint32_t>(indexes[i]);
    if (k >= rows) {
      err = "index outside the CDF table";
      where = i;
      return false;
    }
    const uint32_t slot = x & mask;
    const uint32_t* row = cdf + base[k];
    // The bucket's first bin, then forward: terminates because row[len - 1] = 2^precision > slot.
    uint32_t v = lut[(static_cast<size_t>(k) << lut_bits) + (slot >> lut_shift)];
    while (row[v + 1] <= slot) ++v;
    x = (row[v + 1] - row[v]) * (x >> precision) + slot - row[v];
    if (!refill(x, in)) {
      err = "truncated substream (ran out of bytes)";
      where = i;
      return false;
    }
    if (v < max_value[k]) {
      symbols[i] = static_cast<int32_t>(v) + offset[k];
    } else if (const char* e = get_escape(t, in, x, static_cast<int>(k), symbols[i])) {
      err = e;
      where = i;
      return false;
    }
    return true;
  };
  const size_t full = n - n % kWays;
  size_t i = 0;
  for (; i < full && !err; i += kWays) {
#pragma GCC unroll 8
    for (int j = 0; j < kWays; ++j)
      if (!step(st[j], i + j)) break;
  }
  for (; i < n && !err; ++i) step(st[i & (kWays - 1)], i);
  if (err) return std::string(err) + " at symbol " + std::to_string(where);
  for (size_t j = 0; j < states; ++j)
    if (st[j] != kLow) return "final rANS state differs from the initial state (corrupted or truncated substream)";
  if (in.p != in.end)
    return std::to_string(in.end - in.p) + " bytes left over after the last symbol";
  return "";
}

}  // namespace rans
}  // namespace featcodec
