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
  const uint32_t total = 1u << precision;
  row.assign(rows, Row{});
  cdf.clear();
  enc.clear();
  lut.clear();
  for (int k = 0; k < rows; ++k) {
    const int len = length[k];
    if (len < 2 || len > width) return "cdf_length of row " + std::to_string(k) + " outside [2, width]";
    // |offset| and max bounded so that v = s - offset wraps into [0, max) only for in-range values.
    if (offset_in[k] < -(1 << 30) || offset_in[k] > (1 << 30)) return "offset of row " + std::to_string(k) + " too large";
    const int32_t* c = cdf_in + static_cast<size_t>(k) * width;
    if (c[0] != 0 || static_cast<uint32_t>(c[len - 1]) != total)
      return "CDF row " + std::to_string(k) + " does not run from 0 to 2^precision";
    for (int v = 0; v + 1 < len; ++v)
      if (c[v + 1] <= c[v]) return "CDF row " + std::to_string(k) + " has an empty or negative bin";
    Row& r = row[k];
    r.offset = offset_in[k];
    r.max_value = static_cast<uint32_t>(len - 2);
    r.base = static_cast<uint32_t>(cdf.size());
    cdf.insert(cdf.end(), c, c + len);
    for (int v = 0; v + 1 < len; ++v) {  // rans_byte.h RansEncSymbolInit
      const uint32_t start = c[v], freq = c[v + 1] - c[v];
      EncSymbol e{};
      e.x_max = ((kLow >> precision) << 8) * freq;
      e.cmpl_freq = static_cast<uint16_t>(total - freq);
      if (freq < 2) {
        e.rcp_freq = ~0u;
        e.rcp_shift = 0;
        e.bias = start + total - 1;
      } else {
        uint32_t shift = 0;
        while (freq > (1u << shift)) ++shift;
        e.rcp_freq = static_cast<uint32_t>(((1ull << (shift + 31)) + freq - 1) / freq);
        e.rcp_shift = static_cast<uint16_t>(shift - 1);
        e.bias = start;
      }
      enc.push_back(e);
    }
    enc.push_back(EncSymbol{});  // keeps enc and cdf offsets equal (len entries per row)
    // About 4 buckets per bin: the decoder's forward scan from a bucket's first bin is short.
    int bits = 2;
    while ((1 << bits) < 4 * len && bits < std::min(precision, kLutMaxBits)) ++bits;
    bits = std::min(bits, precision);
    r.lut_shift = static_cast<uint32_t>(precision - bits);
    r.lut_base = static_cast<uint32_t>(lut.size());
    int v = 0;
    for (uint32_t bucket = 0; bucket < (1u << bits); ++bucket) {
      const uint32_t slot = bucket << r.lut_shift;
      while (static_cast<uint32_t>(c[v + 1]) <= slot) ++v;
      lut.push_back(static_cast<uint16_t>(v));  // v < len - 1 <= 2^16
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

// Renormalisation without a loop: a symbol step emits 0, 1 or 2 bytes (x < 2^31 and x_max >= 2^15
// since freq >= 1 and precision <= 16), a data-dependent count a loop branch would mispredict. Both
// bytes are stored; the second lies below the new ptr when only one is due and is overwritten by
// the next step or left outside the result (the buffer has 2 bytes per remaining symbol).
inline void put(uint32_t& x, uint8_t*& ptr, const EncSymbol& e) {
  const uint32_t n = static_cast<uint32_t>(x >= e.x_max) +
                     static_cast<uint32_t>(static_cast<uint64_t>(x) >= (static_cast<uint64_t>(e.x_max) << 8));
  ptr[-1] = static_cast<uint8_t>(x);
  ptr[-2] = static_cast<uint8_t>(x >> 8);
  ptr -= n;
  x >>= 8 * n;
  const uint32_t q = static_cast<uint32_t>((static_cast<uint64_t>(x) * e.rcp_freq) >> 32) >> e.rcp_shift;
  x = x + e.bias + q * e.cmpl_freq;
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
  const size_t need = kMaxEscapeBytes + kMaxBytesPerSymbol * i + 4 * kWays + 1;  // + format 2's lane byte
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

// Cold path; the state goes by value so that the hot loop's states can stay in registers.
__attribute__((noinline)) uint32_t put_escape(const Table& t, Out& out, size_t i, uint32_t x, int32_t s, int k) {
  reserve(out, i);
  const Row& r = t.row[k];
  const int64_t v = static_cast<int64_t>(s) - r.offset;
  const uint32_t max = r.max_value;
  const uint64_t raw = v < 0 ? static_cast<uint64_t>(-2 * v - 1) : static_cast<uint64_t>(2 * (v - max));
  int chunks = 0;
  while (chunks < kMaxBypassChunks && (raw >> (kBypassBits * chunks)) != 0) ++chunks;
  // Reverse of the decode order: chunks (most significant first), count, escape bin.
  for (int j = chunks - 1; j >= 0; --j)
    put_bits(x, out.ptr, static_cast<uint32_t>(raw >> (kBypassBits * j)) & ((1u << kBypassBits) - 1), kBypassBits);
  put_bits(x, out.ptr, static_cast<uint32_t>(chunks), kBypassBits);
  put(x, out.ptr, t.enc[r.base + max]);
  return x;
}

// Codes n >= 1 symbols on W interleaved states into out; `first` = the first byte (the final states),
// with at least one free byte in front of it.
template <int W>
std::string encode_lanes(const Table& t, const int32_t* symbols, const int32_t* indexes, size_t n, Out& out,
                         uint8_t*& first) {
  static_assert(W >= 1 && W <= kWays && (W & (W - 1)) == 0, "lanes: a power of two up to kWays");
  out.cap = kMaxBytesPerSymbol * n + 4 * kWays + 1;
  out.buf.reset(new uint8_t[out.cap]);
  out.ptr = out.buf.get() + out.cap;
  uint32_t st[W];
  for (auto& x : st) x = kLow;
  const uint32_t rows = static_cast<uint32_t>(t.rows);
  const Row* row = t.row.data();
  const EncSymbol* enc = t.enc.data();
  uint8_t* ptr = out.ptr;  // a local, so it stays in a register; synced around the (cold) escapes
  size_t bad = n;          // first out-of-table index seen
  // One symbol: a row and a bin lookup, a multiply for the division, at most two byte writes.
  auto step = [&](uint32_t& x, size_t i) __attribute__((always_inline)) {
    const uint32_t k = static_cast<uint32_t>(indexes[i]);
    if (k >= rows) {
      bad = i;
      return false;
    }
    const Row& r = row[k];
    // Wrapping subtraction: in [0, max) exactly when s - offset is (|offset| <= 2^30, max < 2^17).
    const uint32_t v = static_cast<uint32_t>(symbols[i]) - static_cast<uint32_t>(r.offset);
    if (v < r.max_value) {
      put(x, ptr, enc[r.base + v]);
    } else {
      out.ptr = ptr;
      x = put_escape(t, out, i, x, symbols[i], static_cast<int>(k));
      ptr = out.ptr;
    }
    return true;
  };
  size_t i = n;
  const size_t full = n - n % W;
  while (i > full) {  // the tail first: encoding runs backwards
    --i;
    if (!step(st[i & (W - 1)], i)) break;
  }
  if (bad == n) {
    while (i > 0) {
      i -= W;
      bool ok = true;
#pragma GCC unroll 8
      for (int j = W - 1; j >= 0; --j) ok &= step(st[j], i + j);
      if (!ok) break;
    }
  }
  if (bad != n) return "index " + std::to_string(indexes[bad]) + " at position " + std::to_string(bad) +
                       " outside the CDF table's " + std::to_string(t.rows) + " rows";
  const int states = static_cast<int>(std::min<size_t>(n, W));
  for (int j = states - 1; j >= 0; --j) {
    ptr -= 4;
    for (int b = 0; b < 4; ++b) ptr[b] = static_cast<uint8_t>(st[j] >> (8 * b));
  }
  first = ptr;
  return "";
}

}  // namespace

int lanes_for(size_t payload_bytes) {
  int lanes = kWays;
  while (lanes > 1 && payload_bytes < kBytesPerLane * static_cast<size_t>(lanes)) lanes /= 2;
  return lanes;
}

namespace {

// Format 1 (8 lanes) or, `sized`, format 2 (rans.h).
std::string encode_substream(const Table& t, const int32_t* symbols, const int32_t* indexes, size_t n,
                             std::vector<uint8_t>& result, bool sized) {
  result.clear();
  if (n == 0) return "";
  Out out;
  uint8_t* first = nullptr;
  std::string err = encode_lanes<kWays>(t, symbols, indexes, n, out, first);
  if (err.empty() && sized) {
    // The 8-lane payload is the estimate: the same symbols cost the same bytes on fewer lanes, give or
    // take the renormalisation's rounding. Small substreams are coded again on fewer lanes (cheap: few
    // bytes means mostly steps that emit none).
    const size_t states = std::min<size_t>(n, kWays);
    const int lanes = lanes_for(static_cast<size_t>(out.buf.get() + out.cap - first) - 4 * states);
    if (lanes == 4) err = encode_lanes<4>(t, symbols, indexes, n, out, first);
    if (lanes == 2) err = encode_lanes<2>(t, symbols, indexes, n, out, first);
    if (lanes == 1) err = encode_lanes<1>(t, symbols, indexes, n, out, first);
    *--first = static_cast<uint8_t>(__builtin_ctz(static_cast<unsigned>(lanes)));  // lane byte: log2(lanes)
  }
  if (err.empty()) result.assign(first, out.buf.get() + out.cap);
  return err;
}

}  // namespace

std::string encode(const Table& t, const int32_t* symbols, const int32_t* indexes, size_t n,
                   std::vector<uint8_t>& result) {
  return encode_substream(t, symbols, indexes, n, result, false);
}

std::string encode_sized(const Table& t, const int32_t* symbols, const int32_t* indexes, size_t n,
                         std::vector<uint8_t>& result) {
  return encode_substream(t, symbols, indexes, n, result, true);
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

// The same for a symbol step (x >= 2^7, so at most 2 bytes), without branches while 2 bytes remain:
// the byte count is data-dependent and unpredictable, and a mispredicted loop would serialise the
// interleaved states through the read pointer.
inline bool refill_symbol(uint32_t& x, const uint8_t*& p, const uint8_t* end) {
  if (end - p < 2) {
    In in{p, end};
    const bool ok = refill(x, in);
    p = in.p;
    return ok;
  }
  const uint32_t n = static_cast<uint32_t>(x < kLow) + static_cast<uint32_t>(x < (kLow >> 8));
  const uint32_t word = (static_cast<uint32_t>(p[0]) << 8) | p[1];
  x = static_cast<uint32_t>((static_cast<uint64_t>(x) << (8 * n)) | (word >> (8 * (2 - n))));
  p += n;
  return true;
}

inline bool get_bits(uint32_t& x, In& in, int bits, uint32_t& value) {
  value = x & ((1u << bits) - 1);
  x >>= bits;
  return refill(x, in);
}

struct Escape {
  const char* err;
  uint32_t x;
  int32_t symbol;
  const uint8_t* p;
};

// Cold path; takes and returns the state and pointer by value so that the hot loop's copies can
// stay in registers.
__attribute__((noinline)) Escape get_escape(const Row& r, const uint8_t* p, const uint8_t* end, uint32_t x) {
  In in{p, end};
  uint32_t chunks = 0;
  if (!get_bits(x, in, kBypassBits, chunks)) return {"stream ends inside an escape", x, 0, in.p};
  if (chunks > static_cast<uint32_t>(kMaxBypassChunks)) return {"escape with more than 9 bypass chunks", x, 0, in.p};
  uint64_t raw = 0;
  for (uint32_t j = 0; j < chunks; ++j) {
    uint32_t chunk = 0;
    if (!get_bits(x, in, kBypassBits, chunk)) return {"stream ends inside an escape", x, 0, in.p};
    raw |= static_cast<uint64_t>(chunk) << (kBypassBits * j);
  }
  const int64_t v = (raw & 1) ? -static_cast<int64_t>((raw + 1) >> 1)
                              : static_cast<int64_t>(raw >> 1) + r.max_value;
  const int64_t value = v + r.offset;
  if (value < INT32_MIN || value > INT32_MAX) return {"escaped symbol outside the int32 range", x, 0, in.p};
  return {nullptr, x, static_cast<int32_t>(value), in.p};
}

// Decodes n >= 1 symbols coded on W interleaved states.
template <int W>
std::string decode_lanes(const Table& t, const uint8_t* data, size_t size, const int32_t* indexes, size_t n,
                         int32_t* symbols) {
  const size_t states = std::min<size_t>(n, W);
  if (size < 4 * states)
    return "substream of " + std::to_string(size) + " bytes is shorter than its " + std::to_string(states) +
           " states";
  uint32_t st[W];
  for (size_t j = 0; j < W; ++j) {
    st[j] = kLow;
    if (j >= states) continue;
    const uint8_t* b = data + 4 * j;
    st[j] = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
    if (st[j] < kLow || st[j] >= (kLow << 8)) return "initial rANS state out of range";
  }
  const uint8_t* p = data + 4 * states;
  const uint8_t* const end = data + size;
  const uint32_t rows = static_cast<uint32_t>(t.rows);
  const int precision = t.precision;
  const uint32_t mask = (1u << precision) - 1;
  const Row* rowp = t.row.data();
  const uint32_t* cdf = t.cdf.data();
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
    const Row& r = rowp[k];
    const uint32_t slot = x & mask;
    const uint32_t* c = cdf + r.base;
    // The bucket's first bin, then forward: terminates because c[len - 1] = 2^precision > slot.
    uint32_t v = lut[r.lut_base + (slot >> r.lut_shift)];
    while (c[v + 1] <= slot) ++v;
    x = (c[v + 1] - c[v]) * (x >> precision) + slot - c[v];
    if (!refill_symbol(x, p, end)) {
      err = "truncated substream (ran out of bytes)";
      where = i;
      return false;
    }
    if (v < r.max_value) {
      symbols[i] = static_cast<int32_t>(v) + r.offset;
      return true;
    }
    const Escape e = get_escape(r, p, end, x);
    x = e.x;
    p = e.p;
    symbols[i] = e.symbol;
    if (e.err) {
      err = e.err;
      where = i;
      return false;
    }
    return true;
  };
  const size_t full = n - n % W;
  size_t i = 0;
  for (; i < full && !err; i += W) {
#pragma GCC unroll 8
    for (int j = 0; j < W; ++j)
      if (!step(st[j], i + j)) break;
  }
  for (; i < n && !err; ++i) step(st[i & (W - 1)], i);
  if (err) return std::string(err) + " at symbol " + std::to_string(where);
  for (size_t j = 0; j < states; ++j)
    if (st[j] != kLow) return "final rANS state differs from the initial state (corrupted or truncated substream)";
  if (p != end) return std::to_string(end - p) + " bytes left over after the last symbol";
  return "";
}

}  // namespace

std::string decode(const Table& t, const uint8_t* data, size_t size, const int32_t* indexes, size_t n,
                   int32_t* symbols) {
  if (n == 0) return size == 0 ? "" : "data for an empty message";
  return decode_lanes<kWays>(t, data, size, indexes, n, symbols);
}

std::string decode_sized(const Table& t, const uint8_t* data, size_t size, const int32_t* indexes, size_t n,
                         int32_t* symbols) {
  if (n == 0) return size == 0 ? "" : "data for an empty message";
  if (size == 0) return "substream of 0 bytes has no lane byte";
  switch (data[0]) {  // log2 of the lane count
    case 0: return decode_lanes<1>(t, data + 1, size - 1, indexes, n, symbols);
    case 1: return decode_lanes<2>(t, data + 1, size - 1, indexes, n, symbols);
    case 2: return decode_lanes<4>(t, data + 1, size - 1, indexes, n, symbols);
    case 3: return decode_lanes<8>(t, data + 1, size - 1, indexes, n, symbols);
    default: return "lane byte " + std::to_string(data[0]) + " is not log2 of 1, 2, 4 or 8 lanes";
  }
}

}  // namespace rans
}  // namespace featcodec
