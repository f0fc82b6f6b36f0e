// Sanitizer fuzz of the native rANS coder, substream formats 1 and 2 (not part of the extension: setup.py
// compiles csrc/*.cpp only). The encoder runs under ASan too (its branch-free steps store 2 bytes each).
//   g++ -std=c++17 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -Icsrc \
//       csrc/fuzz/rans_fuzz.cpp csrc/rans_coder.cpp -o /tmp/rans_fuzz && /tmp/rans_fuzz
// Valid streams must round-trip; mutated, truncated and random inputs must return an error or decode,
// never touch memory outside their exactly sized buffers (ASan would abort).
#include <cmath>
#include <cstdio>
#include <random>
#include "rans.h"
using namespace featcodec::rans;
int main() {
  std::mt19937 rng(1);
  // a Gaussian-ish table of 8 rows, 16-bit precision
  const int rows = 8, width = 40;
  std::vector<int32_t> cdf(rows * width, 0), len(rows), off(rows);
  for (int k = 0; k < rows; ++k) {
    int L = 5 + 4 * k; len[k] = L; off[k] = -(L - 2) / 2;
    int bins = L - 1; std::vector<double> p(bins); double s = 0;
    for (int v = 0; v < bins; ++v) { p[v] = std::exp(-0.5 * std::pow((v - bins / 2.0) / (1 + k), 2)) + 1e-3; s += p[v]; }
    int acc = 0; cdf[k * width] = 0;
    for (int v = 0; v < bins; ++v) { int f = std::max(1, (int)(p[v] / s * (65536 - bins))); acc += f; cdf[k * width + v + 1] = acc; }
    cdf[k * width + bins] = 65536;  // last bin takes the rest
    for (int v = bins - 1; v > 0 && cdf[k * width + v] >= cdf[k * width + v + 1]; --v) cdf[k * width + v] = cdf[k * width + v + 1] - 1;
  }
  Table t; std::string e = t.build(cdf.data(), rows, width, len.data(), off.data(), 16);
  if (!e.empty()) { printf("table: %s\n", e.c_str()); return 1; }
  long ok = 0, errs = 0, lanes[4] = {0, 0, 0, 0};
  for (int iter = 0; iter < 20000; ++iter) {
    const bool sized = iter % 2;  // format 2: lane byte, lanes from the coded size
    size_t n = iter % 40 == 1 ? rng() % 40000 : rng() % 300;  // long ones reach 2, 4 and 8 lanes
    std::vector<int32_t> sym(n), idx(n), out(n);
    for (size_t i = 0; i < n; ++i) { idx[i] = rng() % rows; sym[i] = (int32_t)(rng() % 9) - 4; if (rng() % 50 == 0) sym[i] = (int32_t)rng(); }
    std::vector<uint8_t> data;
    if (!(sized ? encode_sized : encode)(t, sym.data(), idx.data(), n, data).empty()) return 2;
    if (sized && n) lanes[data[0] & 3]++;
    if (!(sized ? decode_sized : decode)(t, data.data(), data.size(), idx.data(), n, out.data()).empty() || out != sym) {
      printf("roundtrip fail\n");
      return 3;
    }
    // mutate / truncate / random, each in an exactly sized heap buffer so ASan sees any overrun
    std::vector<uint8_t> bad = data;
    int mode = iter % 3;
    if (mode == 0 && !bad.empty()) for (int j = 0; j < 1 + (int)(rng() % 3); ++j) bad[rng() % bad.size()] ^= 1 << (rng() % 8);
    if (mode == 1) bad.resize(bad.empty() ? 0 : rng() % bad.size());
    if (mode == 2) { bad.resize(rng() % 400); for (auto& b : bad) b = rng(); }
    uint8_t* buf = new uint8_t[bad.size() ? bad.size() : 1];
    std::copy(bad.begin(), bad.end(), buf);
    std::string r = (sized ? decode_sized : decode)(t, buf, bad.size(), idx.data(), n, out.data());
    delete[] buf;
    (r.empty() ? ok : errs)++;
  }
  printf("ok: %ld decoded, %ld rejected; format 2 lanes 1/2/4/8: %ld/%ld/%ld/%ld\n", ok, errs, lanes[0], lanes[1],
         lanes[2], lanes[3]);
  return 0;
}
