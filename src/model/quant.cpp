#include "model/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "support/check.h"
#include "support/fp16.h"

namespace sgl::model {
namespace {

inline float h2f(uint16_t h) { return fp16_to_fp32(h); }
inline uint16_t f2h(float f) { return fp32_to_fp16(f); }
inline int nearest(float x) { return static_cast<int>(std::nearbyint(x)); }
inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }
// round(x / scale) clamped to [lo, hi]; 0 when the scale is 0.
inline int quant_clamped(float x, float scale, int lo, int hi) {
  if (scale == 0.0f) return clampi(0, lo, hi);
  return clampi(nearest(x / scale), lo, hi);
}

template <typename Block>
const Block* blocks_of(const void* p) {
  return static_cast<const Block*>(p);
}
template <typename Block>
Block* blocks_of(void* p) {
  return static_cast<Block*>(p);
}

// ---- dequantization ----------------------------------------------------------------------

void dequant_q4_0(const void* src, float* y, int64_t nb) {
  const auto* b = blocks_of<BlockQ4_0>(src);
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(b[i].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((b[i].qs[j] & 0xF) - 8) * d;
      y[j + 16] = static_cast<float>((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequant_q4_1(const void* src, float* y, int64_t nb) {
  const auto* b = blocks_of<BlockQ4_1>(src);
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(b[i].d), m = h2f(b[i].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(b[i].qs[j] & 0xF) * d + m;
      y[j + 16] = static_cast<float>(b[i].qs[j] >> 4) * d + m;
    }
  }
}

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void dequant_q5_0(const void* src, float* y, int64_t nb) {
  const auto* b = blocks_of<BlockQ5_0>(src);
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(b[i].d);
    const uint32_t qh = load_u32(b[i].qh);
    for (int j = 0; j < 16; ++j) {
      const int q0 = (b[i].qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1) << 4);
      const int q1 = (b[i].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
      y[j] = static_cast<float>(q0 - 16) * d;
      y[j + 16] = static_cast<float>(q1 - 16) * d;
    }
  }
}

void dequant_q5_1(const void* src, float* y, int64_t nb) {
  const auto* b = blocks_of<BlockQ5_1>(src);
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(b[i].d), m = h2f(b[i].m);
    const uint32_t qh = load_u32(b[i].qh);
    for (int j = 0; j < 16; ++j) {
      const int q0 = (b[i].qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1) << 4);
      const int q1 = (b[i].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
      y[j] = static_cast<float>(q0) * d + m;
      y[j + 16] = static_cast<float>(q1) * d + m;
    }
  }
}

void dequant_q8_0(const void* src, float* y, int64_t nb) {
  const auto* b = blocks_of<BlockQ8_0>(src);
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

void dequant_q8_1(const void* src, float* y, int64_t nb) {
  const auto* b = blocks_of<BlockQ8_1>(src);
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

void dequant_q2_k(const void* src, float* y, int64_t nb) {
  const auto* b = blocks_of<BlockQ2_K>(src);
  for (int64_t i = 0; i < nb; ++i, y += kQKK) {
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    for (int e = 0; e < kQKK; ++e) {
      const int n = e / 128, j = (e % 128) / 32, l = e % 32;
      const int q = (b[i].qs[32 * n + l] >> (2 * j)) & 3;
      const uint8_t sc = b[i].scales[8 * n + 2 * j + (l >= 16)];
      y[e] = d * static_cast<float>(sc & 0xF) * static_cast<float>(q) -
             dmin * static_cast<float>(sc >> 4);
    }
  }
}

void dequant_q3_k(const void* src, float* y, int64_t nb) {
  const auto* b = blocks_of<BlockQ3_K>(src);
  for (int64_t i = 0; i < nb; ++i, y += kQKK) {
    const float d = h2f(b[i].d);
    for (int e = 0; e < kQKK; ++e) {
      const int n = e / 128, j = (e % 128) / 32, l = e % 32;
      const int low = (b[i].qs[32 * n + l] >> (2 * j)) & 3;
      const int hbit = (b[i].hmask[l] >> (4 * n + j)) & 1;
      const int sc = unpack_scale_q3_k(8 * n + 2 * j + (l >= 16), b[i].scales) - 32;
      y[e] = d * static_cast<float>(sc) * static_cast<float>(low + 4 * hbit - 4);
    }
  }
}

void dequant_q4_k(const void* src, float* y, int64_t nb) {
  const auto* b = blocks_of<BlockQ4_K>(src);
  for (int64_t i = 0; i < nb; ++i, y += kQKK) {
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    for (int c = 0; c < 4; ++c) {
      uint8_t sc0, m0, sc1, m1;
      unpack_scale_min_k4(2 * c, b[i].scales, &sc0, &m0);
      unpack_scale_min_k4(2 * c + 1, b[i].scales, &sc1, &m1);
      const float d0 = d * sc0, d1 = d * sc1, mm0 = dmin * m0, mm1 = dmin * m1;
      for (int l = 0; l < 32; ++l) {
        const uint8_t q = b[i].qs[32 * c + l];
        y[64 * c + l] = d0 * static_cast<float>(q & 0xF) - mm0;
        y[64 * c + 32 + l] = d1 * static_cast<float>(q >> 4) - mm1;
      }
    }
  }
}

void dequant_q5_k(const void* src, float* y, int64_t nb) {
  const auto* b = blocks_of<BlockQ5_K>(src);
  for (int64_t i = 0; i < nb; ++i, y += kQKK) {
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    for (int c = 0; c < 4; ++c) {
      uint8_t sc0, m0, sc1, m1;
      unpack_scale_min_k4(2 * c, b[i].scales, &sc0, &m0);
      unpack_scale_min_k4(2 * c + 1, b[i].scales, &sc1, &m1);
      const float d0 = d * sc0, d1 = d * sc1, mm0 = dmin * m0, mm1 = dmin * m1;
      for (int l = 0; l < 32; ++l) {
        const uint8_t q = b[i].qs[32 * c + l];
        const int h0 = (b[i].qh[l] >> (2 * c)) & 1, h1 = (b[i].qh[l] >> (2 * c + 1)) & 1;
        y[64 * c + l] = d0 * static_cast<float>((q & 0xF) | (h0 << 4)) - mm0;
        y[64 * c + 32 + l] = d1 * static_cast<float>((q >> 4) | (h1 << 4)) - mm1;
      }
    }
  }
}

void dequant_q6_k(const void* src, float* y, int64_t nb) {
  const auto* b = blocks_of<BlockQ6_K>(src);
  for (int64_t i = 0; i < nb; ++i, y += kQKK) {
    const float d = h2f(b[i].d);
    for (int e = 0; e < kQKK; ++e) {
      const int n = e / 128, k = (e % 128) / 32, l = e % 32;
      const uint8_t lbyte = b[i].ql[64 * n + l + 32 * (k & 1)];
      const int low = k < 2 ? (lbyte & 0xF) : (lbyte >> 4);
      const int high = (b[i].qh[32 * n + l] >> (2 * k)) & 3;
      const int sc = b[i].scales[8 * n + 2 * k + l / 16];
      y[e] = d * static_cast<float>(sc) * static_cast<float>((low | (high << 4)) - 32);
    }
  }
}

void dequant_q8_k(const void* src, float* y, int64_t nb) {
  const auto* b = blocks_of<BlockQ8_K>(src);
  for (int64_t i = 0; i < nb; ++i, y += kQKK) {
    for (int j = 0; j < kQKK; ++j) y[j] = b[i].d * static_cast<float>(b[i].qs[j]);
  }
}

// ---- quantization ------------------------------------------------------------------------

// The element of largest magnitude, with its sign (0 for an all-zero span).
float signed_absmax(const float* x, int n) {
  float amax = 0.0f, v = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      v = x[j];
    }
  }
  return v;
}

void quant_q4_0(const float* x, void* dst, int64_t nb) {
  auto* b = blocks_of<BlockQ4_0>(dst);
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    b[i].d = f2h(signed_absmax(x, kQK) / -8.0f);
    const float d = h2f(b[i].d);
    for (int j = 0; j < 16; ++j) {
      const int q0 = quant_clamped(x[j], d, -8, 7) + 8;
      const int q1 = quant_clamped(x[j + 16], d, -8, 7) + 8;
      b[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void minmax(const float* x, int n, float* lo, float* hi) {
  *lo = x[0];
  *hi = x[0];
  for (int j = 1; j < n; ++j) {
    *lo = std::min(*lo, x[j]);
    *hi = std::max(*hi, x[j]);
  }
}

void quant_q4_1(const float* x, void* dst, int64_t nb) {
  auto* b = blocks_of<BlockQ4_1>(dst);
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float lo, hi;
    minmax(x, kQK, &lo, &hi);
    b[i].d = f2h((hi - lo) / 15.0f);
    b[i].m = f2h(lo);
    const float d = h2f(b[i].d), m = h2f(b[i].m);
    for (int j = 0; j < 16; ++j) {
      const int q0 = quant_clamped(x[j] - m, d, 0, 15);
      const int q1 = quant_clamped(x[j + 16] - m, d, 0, 15);
      b[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void quant_q5_0(const float* x, void* dst, int64_t nb) {
  auto* b = blocks_of<BlockQ5_0>(dst);
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    b[i].d = f2h(signed_absmax(x, kQK) / -16.0f);
    const float d = h2f(b[i].d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const int q0 = quant_clamped(x[j], d, -16, 15) + 16;
      const int q1 = quant_clamped(x[j + 16], d, -16, 15) + 16;
      b[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>(q0 >> 4) << j;
      qh |= static_cast<uint32_t>(q1 >> 4) << (j + 16);
    }
    std::memcpy(b[i].qh, &qh, 4);
  }
}

void quant_q5_1(const float* x, void* dst, int64_t nb) {
  auto* b = blocks_of<BlockQ5_1>(dst);
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float lo, hi;
    minmax(x, kQK, &lo, &hi);
    b[i].d = f2h((hi - lo) / 31.0f);
    b[i].m = f2h(lo);
    const float d = h2f(b[i].d), m = h2f(b[i].m);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const int q0 = quant_clamped(x[j] - m, d, 0, 31);
      const int q1 = quant_clamped(x[j + 16] - m, d, 0, 31);
      b[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>(q0 >> 4) << j;
      qh |= static_cast<uint32_t>(q1 >> 4) << (j + 16);
    }
    std::memcpy(b[i].qh, &qh, 4);
  }
}

float absmax(const float* x, int n) {
  float a = 0.0f;
  for (int j = 0; j < n; ++j) a = std::max(a, std::fabs(x[j]));
  return a;
}

void quant_q8_0(const float* x, void* dst, int64_t nb) {
  auto* b = blocks_of<BlockQ8_0>(dst);
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    b[i].d = f2h(absmax(x, kQK) / 127.0f);
    const float d = h2f(b[i].d);
    for (int j = 0; j < kQK; ++j)
      b[i].qs[j] = static_cast<int8_t>(quant_clamped(x[j], d, -127, 127));
  }
}

void quant_q8_1(const float* x, void* dst, int64_t nb) {
  auto* b = blocks_of<BlockQ8_1>(dst);
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    b[i].d = f2h(absmax(x, kQK) / 127.0f);
    const float d = h2f(b[i].d);
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      b[i].qs[j] = static_cast<int8_t>(quant_clamped(x[j], d, -127, 127));
      sum += b[i].qs[j];
    }
    b[i].s = f2h(d * static_cast<float>(sum));
  }
}

void quant_q8_k(const float* x, void* dst, int64_t nb) {
  auto* b = blocks_of<BlockQ8_K>(dst);
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    b[i].d = absmax(x, kQKK) / 127.0f;
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int j = 16 * g; j < 16 * g + 16; ++j) {
        b[i].qs[j] = static_cast<int8_t>(quant_clamped(x[j], b[i].d, -127, 127));
        sum += b[i].qs[j];
      }
      b[i].bsums[g] = static_cast<int16_t>(sum);
    }
  }
}

// Per-group affine fit for the "scale and min" K formats: value ~= scale * q - min with
// q in [0, qmax], min >= 0 (so the group range always covers 0).
void fit_scale_min(const float* x, int n, int qmax, float* scale, float* min) {
  float lo, hi;
  minmax(x, n, &lo, &hi);
  lo = std::min(lo, 0.0f);
  *scale = (hi - lo) / static_cast<float>(qmax);
  *min = -lo;
}

void quant_q2_k(const float* x, void* dst, int64_t nb) {
  auto* b = blocks_of<BlockQ2_K>(dst);
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    float scale[16], mn[16], max_scale = 0.0f, max_min = 0.0f;
    for (int g = 0; g < 16; ++g) {
      fit_scale_min(x + 16 * g, 16, 3, &scale[g], &mn[g]);
      max_scale = std::max(max_scale, scale[g]);
      max_min = std::max(max_min, mn[g]);
    }
    b[i].d = f2h(max_scale / 15.0f);
    b[i].dmin = f2h(max_min / 15.0f);
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    int sc[16], mq[16];
    for (int g = 0; g < 16; ++g) {
      sc[g] = quant_clamped(scale[g], d, 0, 15);
      mq[g] = quant_clamped(mn[g], dmin, 0, 15);
      b[i].scales[g] = static_cast<uint8_t>(sc[g] | (mq[g] << 4));
    }
    std::memset(b[i].qs, 0, sizeof(b[i].qs));
    for (int e = 0; e < kQKK; ++e) {
      const int n = e / 128, j = (e % 128) / 32, l = e % 32;
      const int g = 8 * n + 2 * j + (l >= 16);
      const int q = quant_clamped(x[e] + dmin * static_cast<float>(mq[g]),
                                  d * static_cast<float>(sc[g]), 0, 3);
      b[i].qs[32 * n + l] |= static_cast<uint8_t>(q << (2 * j));
    }
  }
}

void quant_q3_k(const float* x, void* dst, int64_t nb) {
  auto* b = blocks_of<BlockQ3_K>(dst);
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    float scale[16], max_abs = 0.0f;
    for (int g = 0; g < 16; ++g) {
      scale[g] = signed_absmax(x + 16 * g, 16) / -4.0f;
      max_abs = std::max(max_abs, std::fabs(scale[g]));
    }
    b[i].d = f2h(max_abs / 31.0f);
    const float d = h2f(b[i].d);
    int sc[16];
    std::memset(b[i].scales, 0, sizeof(b[i].scales));
    for (int g = 0; g < 16; ++g) {
      sc[g] = quant_clamped(scale[g], d, -32, 31);
      const int biased = sc[g] + 32;
      if (g < 8) {
        b[i].scales[g] |= static_cast<uint8_t>(biased & 0xF);
      } else {
        b[i].scales[g - 8] |= static_cast<uint8_t>((biased & 0xF) << 4);
      }
      b[i].scales[8 + (g & 3)] |= static_cast<uint8_t>((biased >> 4) << (2 * (g >> 2)));
    }
    std::memset(b[i].qs, 0, sizeof(b[i].qs));
    std::memset(b[i].hmask, 0, sizeof(b[i].hmask));
    for (int e = 0; e < kQKK; ++e) {
      const int n = e / 128, j = (e % 128) / 32, l = e % 32;
      const int g = 8 * n + 2 * j + (l >= 16);
      const int u = quant_clamped(x[e], d * static_cast<float>(sc[g]), -4, 3) + 4;
      b[i].qs[32 * n + l] |= static_cast<uint8_t>((u & 3) << (2 * j));
      b[i].hmask[l] |= static_cast<uint8_t>((u >> 2) << (4 * n + j));
    }
  }
}

// Packs eight 6-bit scales and mins into the 12-byte Q4_K/Q5_K layout.
void pack_scale_min_k4(const int* sc, const int* mn, uint8_t* out) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<uint8_t>((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
  }
}

// Shared by Q4_K (qmax 15) and Q5_K (qmax 31): fills d, dmin, scales and the levels L[256].
void quant_k_scale_min(const float* x, int qmax, uint16_t* d_out, uint16_t* dmin_out,
                       uint8_t* scales, int* levels) {
  float scale[8], mn[8], max_scale = 0.0f, max_min = 0.0f;
  for (int g = 0; g < 8; ++g) {
    fit_scale_min(x + 32 * g, 32, qmax, &scale[g], &mn[g]);
    max_scale = std::max(max_scale, scale[g]);
    max_min = std::max(max_min, mn[g]);
  }
  *d_out = f2h(max_scale / 63.0f);
  *dmin_out = f2h(max_min / 63.0f);
  const float d = h2f(*d_out), dmin = h2f(*dmin_out);
  int sc[8], mq[8];
  for (int g = 0; g < 8; ++g) {
    sc[g] = quant_clamped(scale[g], d, 0, 63);
    mq[g] = quant_clamped(mn[g], dmin, 0, 63);
  }
  pack_scale_min_k4(sc, mq, scales);
  for (int e = 0; e < kQKK; ++e) {
    const int g = e / 32;
    levels[e] = quant_clamped(x[e] + dmin * static_cast<float>(mq[g]),
                              d * static_cast<float>(sc[g]), 0, qmax);
  }
}

void quant_q4_k(const float* x, void* dst, int64_t nb) {
  auto* b = blocks_of<BlockQ4_K>(dst);
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    int L[kQKK];
    quant_k_scale_min(x, 15, &b[i].d, &b[i].dmin, b[i].scales, L);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l)
        b[i].qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
  }
}

void quant_q5_k(const float* x, void* dst, int64_t nb) {
  auto* b = blocks_of<BlockQ5_K>(dst);
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    int L[kQKK];
    quant_k_scale_min(x, 31, &b[i].d, &b[i].dmin, b[i].scales, L);
    std::memset(b[i].qh, 0, sizeof(b[i].qh));
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
        b[i].qs[32 * c + l] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
        b[i].qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
      }
    }
  }
}

void quant_q6_k(const float* x, void* dst, int64_t nb) {
  auto* b = blocks_of<BlockQ6_K>(dst);
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    float scale[16], max_abs = 0.0f;
    for (int g = 0; g < 16; ++g) {
      scale[g] = signed_absmax(x + 16 * g, 16) / -32.0f;
      max_abs = std::max(max_abs, std::fabs(scale[g]));
    }
    b[i].d = f2h(max_abs / 127.0f);
    const float d = h2f(b[i].d);
    int sc[16];
    for (int g = 0; g < 16; ++g) {
      sc[g] = quant_clamped(scale[g], d, -128, 127);
      b[i].scales[g] = static_cast<int8_t>(sc[g]);
    }
    std::memset(b[i].ql, 0, sizeof(b[i].ql));
    std::memset(b[i].qh, 0, sizeof(b[i].qh));
    for (int e = 0; e < kQKK; ++e) {
      const int n = e / 128, k = (e % 128) / 32, l = e % 32;
      const int g = 8 * n + 2 * k + l / 16;
      const int u = quant_clamped(x[e], d * static_cast<float>(sc[g]), -32, 31) + 32;
      b[i].ql[64 * n + l + 32 * (k & 1)] |= static_cast<uint8_t>((u & 0xF) << (k < 2 ? 0 : 4));
      b[i].qh[32 * n + l] |= static_cast<uint8_t>((u >> 4) << (2 * k));
    }
  }
}

}  // namespace

bool can_dequantize(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
    case GgmlType::kF16:
    case GgmlType::kBF16:
    case GgmlType::kF64:
    case GgmlType::kQ4_0:
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_0:
    case GgmlType::kQ5_1:
    case GgmlType::kQ8_0:
    case GgmlType::kQ8_1:
    case GgmlType::kQ2_K:
    case GgmlType::kQ3_K:
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
    case GgmlType::kQ6_K:
    case GgmlType::kQ8_K:
      return true;
    default:
      return false;
  }
}

bool can_quantize(GgmlType type) { return can_dequantize(type) && type != GgmlType::kF64; }

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  const auto& traits = ggml_type_traits(type);
  SGL_CHECK(n >= 0 && n % traits.block_size == 0,
            "dequantize_row: n is not a whole number of blocks");
  const int64_t nb = n / traits.block_size;
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
      return;
    }
    case GgmlType::kBF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
      return;
    }
    case GgmlType::kF64: {
      const auto* s = static_cast<const double*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case GgmlType::kQ4_0:
      return dequant_q4_0(src, dst, nb);
    case GgmlType::kQ4_1:
      return dequant_q4_1(src, dst, nb);
    case GgmlType::kQ5_0:
      return dequant_q5_0(src, dst, nb);
    case GgmlType::kQ5_1:
      return dequant_q5_1(src, dst, nb);
    case GgmlType::kQ8_0:
      return dequant_q8_0(src, dst, nb);
    case GgmlType::kQ8_1:
      return dequant_q8_1(src, dst, nb);
    case GgmlType::kQ2_K:
      return dequant_q2_k(src, dst, nb);
    case GgmlType::kQ3_K:
      return dequant_q3_k(src, dst, nb);
    case GgmlType::kQ4_K:
      return dequant_q4_k(src, dst, nb);
    case GgmlType::kQ5_K:
      return dequant_q5_k(src, dst, nb);
    case GgmlType::kQ6_K:
      return dequant_q6_k(src, dst, nb);
    case GgmlType::kQ8_K:
      return dequant_q8_k(src, dst, nb);
    default:
      SGL_CHECK(false, "dequantize_row: unsupported type");
  }
}

void quantize_row(GgmlType type, const float* src, void* dst, int64_t n) {
  const auto& traits = ggml_type_traits(type);
  SGL_CHECK(n >= 0 && n % traits.block_size == 0,
            "quantize_row: n is not a whole number of blocks");
  const int64_t nb = n / traits.block_size;
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
      return;
    }
    case GgmlType::kBF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_bf16(src[i]);
      return;
    }
    case GgmlType::kQ4_0:
      return quant_q4_0(src, dst, nb);
    case GgmlType::kQ4_1:
      return quant_q4_1(src, dst, nb);
    case GgmlType::kQ5_0:
      return quant_q5_0(src, dst, nb);
    case GgmlType::kQ5_1:
      return quant_q5_1(src, dst, nb);
    case GgmlType::kQ8_0:
      return quant_q8_0(src, dst, nb);
    case GgmlType::kQ8_1:
      return quant_q8_1(src, dst, nb);
    case GgmlType::kQ2_K:
      return quant_q2_k(src, dst, nb);
    case GgmlType::kQ3_K:
      return quant_q3_k(src, dst, nb);
    case GgmlType::kQ4_K:
      return quant_q4_k(src, dst, nb);
    case GgmlType::kQ5_K:
      return quant_q5_k(src, dst, nb);
    case GgmlType::kQ6_K:
      return quant_q6_k(src, dst, nb);
    case GgmlType::kQ8_K:
      return quant_q8_k(src, dst, nb);
    default:
      SGL_CHECK(false, "quantize_row: unsupported type");
  }
}

}  // namespace sgl::model
