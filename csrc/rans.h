// featcodec's native entropy coder: 8-way interleaved rANS over CompressAI-style 16-bit CDF tables.
//
// Why by hand: constriction holds the GIL for the whole call (substreams on threads do not overlap)
// and CompressAI's rans64 goes through Python lists symbol by symbol; this coder takes the numpy
// buffers directly, runs without the GIL and codes independent substreams on std::threads.
//
// Format of one substream (normative copy in docs/bitstream.md, "coder = native"):
//   * n = 0 symbols: zero bytes.
//   * otherwise S = min(n, 8) final states, u32 little-endian (state j first), then the renormalisation
//     bytes in the order the decoder reads them.
// Symbol i is coded with state (i mod 8). Each state is a 32-bit rANS state in [2^23, 2^31)
// (Giesen's rans_byte: byte-wise renormalisation, L = 2^23) starting at L; the decoder requires every
// state to be back at L and every byte consumed at the end, so truncation and most corruptions fail.
// A symbol s with table row k has value v = s - offset[k]; 0 <= v < max[k] = cdf_length[k] - 2 is coded
// with frequency cdf[k][v+1] - cdf[k][v] at the table precision; any other value codes the escape bin
// max[k] and then, through the same state, CompressAI's bypass scheme computed in 64 bits (so every
// int32 codes): raw = -2v - 1 (v < 0) or 2(v - max) (v >= max); a 4-bit count c in [0, 9] of 4-bit
// chunks, then the chunks of raw, least significant first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace featcodec {
namespace rans {

constexpr int kWays = 8;                      // interleaved states (a power of two)
constexpr uint32_t kLow = 1u << 23;           // L: states live in [L, 256 L)
constexpr int kBypassBits = 4;                // CompressAI's bypass_precision
constexpr int kMaxBypassChunks = 9;           // ceil(33 / 4): raw < 2^33 for every int32 symbol
constexpr int kMaxBytesPerSymbol = 2;         // one coding step emits at most 2 bytes (freq >= 1)
constexpr int kMaxEscapeBytes = 2 + 1 + kMaxBypassChunks;  // escape bin + count + chunks, bytes bound
constexpr int kLutMaxBits = 12;               // decoder buckets per row: at most 2^12

// Per table row: where its bins are and how to find a slot's bin.
struct Row {
  int32_t offset;
  uint32_t max_value;  // escape bin value (cdf_length - 2)
  uint32_t base;       // first entry of the row in Table::cdf and Table::enc
  uint32_t lut_base;   // first bucket of the row in Table::lut
  uint32_t lut_shift;  // slot >> lut_shift = bucket
  uint32_t pad[3];
};

// Encoder constants of one bin (Giesen's rans_byte RansEncSymbol): division by the frequency
// becomes a multiply and shift.
struct EncSymbol {
  uint32_t x_max;      // renormalise while x >= x_max
  uint32_t rcp_freq;   // fixed-point reciprocal of freq
  uint32_t bias;
  uint16_t cmpl_freq;  // 2^precision - freq
  uint16_t rcp_shift;
};

// A validated CDF table prepared for coding (immutable; shared by threads).
struct Table {
  int rows = 0;
  int precision = 16;
  std::vector<Row> row;
  std::vector<uint32_t> cdf;      // concatenated rows, cdf_length[k] entries each, 0 .. 2^precision
  std::vector<EncSymbol> enc;     // bin v of row k at row[k].base + v
  std::vector<uint16_t> lut;      // bin containing each bucket's first slot

  // From CompressAI's arrays (cdf [rows, width] row-major). Returns an error message or "".
  std::string build(const int32_t* cdf_in, int rows_in, int width, const int32_t* length,
                    const int32_t* offset_in, int precision_in);
};

// Substream format 1 (coder "native"): always kWays lanes, no lane byte.
// Encodes n symbols (row indexes[i] each) into out (cleared first). Returns "" or an error (an index
// outside the table): inputs are the caller's, so this is a usage error, not a stream error.
std::string encode(const Table& t, const int32_t* symbols, const int32_t* indexes, size_t n,
                   std::vector<uint8_t>& out);

// Decodes n symbols from data[0, size); every read is bounds-checked. Returns "" or what is wrong
// with the stream (an index outside the table is reported too, prefixed "index").
std::string decode(const Table& t, const uint8_t* data, size_t size, const int32_t* indexes, size_t n,
                   int32_t* symbols);

// Substream format 2 (coder "native2"): a lane byte log2(W), W in {1, 2, 4, 8}, then format 1's layout
// on W lanes (symbol i on state i mod W, min(n, W) final states). The encoder codes on 8 lanes and keeps
// them when the payload after the states is at least kBytesPerLane bytes per lane, else halves the lanes
// until it is (or one is left) and codes again: the states then cost at most 4 / kBytesPerLane (0.5 %)
// of the payload, and a near-empty substream 1 + 4 bytes.
constexpr size_t kBytesPerLane = 800;
int lanes_for(size_t payload_bytes);
std::string encode_sized(const Table& t, const int32_t* symbols, const int32_t* indexes, size_t n,
                         std::vector<uint8_t>& out);
std::string decode_sized(const Table& t, const uint8_t* data, size_t size, const int32_t* indexes, size_t n,
                         int32_t* symbols);

}  // namespace rans
}  // namespace featcodec
