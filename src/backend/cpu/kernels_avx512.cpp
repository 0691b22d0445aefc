// AVX-512 (F/BW/VL/DQ + VNNI) kernels. Compiled with a target pragma so the rest of the binary
// stays baseline x86-64; only called when isa.cpp has checked the CPU.
//
// 32-block formats: four weight blocks at a time become two vectors of 64 bytes (the first and
// the last 16 values of each block), multiplied with vpdpbusd against activations stored in the
// same order (kernel_table.h). Formats with a min (Q4_1, Q5_1) use unsigned weights x signed
// activations and add m * d_x * sum(x_q) in f32; the others use signed weights x activations
// biased by +128, with the bias removed exactly by an integer correction computed once per
// weight group.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "backend/cpu/kernel_table.h"
#include "model/quant.h"
#include "support/fp16.h"

#if defined(__x86_64__)

#include <immintrin.h>

#pragma GCC push_options
// GCC 12 intrinsic headers read _mm*_undefined_*() values and warn about it (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c,bmi,bmi2")

namespace sgl::backend::cpu::detail {
namespace {

// Horizontal reductions (fixed trees of shuffles and adds).
inline float hsum512(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));
  __m128 s = _mm512_castps512_ps128(v);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
inline float hmax512(__m512 v) {
  v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
  v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));
  __m128 s = _mm512_castps512_ps128(v);
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}
inline int32_t hsum512_epi32(__m512i v) {
  v = _mm512_add_epi32(v, _mm512_shuffle_i32x4(v, v, 0x4E));
  v = _mm512_add_epi32(v, _mm512_shuffle_i32x4(v, v, 0xB1));
  __m128i s = _mm512_castsi512_si128(v);
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

struct V {
  using T = __m512;
  static constexpr int W = 16;
  static T zero() { return _mm512_setzero_ps(); }
  static T set1(float v) { return _mm512_set1_ps(v); }
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static T load_f16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static T load_bf16(const uint16_t* p) {
    const __m512i w =
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
  static void store_f16(uint16_t* p, T v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                        _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  // Round to nearest even like sgl::fp32_to_bf16 (NaN stays a quiet NaN), bit for bit.
  static void store_bf16(uint16_t* p, T v) {
    const __m512i x = _mm512_castps_si512(v);
    const __m512i hi = _mm512_srli_epi32(x, 16);
    const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(x, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(r));
  }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static T sub(T a, T b) { return _mm512_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
  static T div(T a, T b) { return _mm512_div_ps(a, b); }
  static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T max(T a, T b) { return _mm512_max_ps(a, b); }
  static float reduce_add(T v) { return hsum512(v); }
  static float reduce_max(T v) { return hmax512(v); }
  static T exp(T x) {
    x = _mm512_min_ps(_mm512_max_ps(x, set1(kExpLo)), set1(kExpHi));
    const T n =
        _mm512_roundscale_ps(mul(x, set1(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    T r = _mm512_fnmadd_ps(n, set1(kExpC1), x);
    r = _mm512_fnmadd_ps(n, set1(kExpC2), r);
    T p = set1(kExpP0);
    p = fma(p, r, set1(kExpP1));
    p = fma(p, r, set1(kExpP2));
    p = fma(p, r, set1(kExpP3));
    p = fma(p, r, set1(kExpP4));
    p = fma(p, r, set1(kExpP5));
    const T y = add(fma(p, mul(r, r), r), set1(1.0f));
    const __m512i e =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return mul(y, _mm512_castsi512_ps(e));
  }
  // Lane j of the result is the sum of the 16 lanes of acc[j]: a transpose-and-add tree.
  static T hsum_w(const T* a) {
    T b[8];
    for (int i = 0; i < 8; ++i)
      b[i] = add(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                 _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    T c[4];
    for (int k = 0; k < 4; ++k)
      c[k] = add(_mm512_shuffle_ps(b[2 * k], b[2 * k + 1], 0x44),
                 _mm512_shuffle_ps(b[2 * k], b[2 * k + 1], 0xEE));
    const T e01 =
        add(_mm512_shuffle_f32x4(c[0], c[1], 0x44), _mm512_shuffle_f32x4(c[0], c[1], 0xEE));
    const T e23 =
        add(_mm512_shuffle_f32x4(c[2], c[3], 0x44), _mm512_shuffle_f32x4(c[2], c[3], 0xEE));
    return add(_mm512_shuffle_f32x4(e01, e23, 0x88), _mm512_shuffle_f32x4(e01, e23, 0xDD));
  }
};

int32_t ksum(const uint8_t* u, const int32_t* s_lanes, const int8_t* x) {
  __m512i acc = _mm512_setzero_si512();
  for (int c = 0; c < 4; ++c) {
    const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_load_si512(u + 64 * c),
                                          _mm512_loadu_si512(x + 64 * c));
    acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(p, _mm512_load_si512(s_lanes + 16 * c)));
  }
  return hsum512_epi32(acc);
}

#include "backend/cpu/kernels_generic.h"

// ---- activation quantization -------------------------------------------------------------------

constexpr int kGroup = 4;

void quantize_q8x32(const float* x, int64_t n_in, bool biased, uint8_t* out) {
  const Q8x32Layout lay = q8x32_layout(n_in);
  auto* qs = out + lay.qs_off;
  auto* dxb = reinterpret_cast<float*>(out + lay.dxb_off);
  auto* sx = reinterpret_cast<float*>(out + lay.sx_off);
  const __m128i bias = _mm_set1_epi8(biased ? static_cast<char>(0x80) : 0);
  const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  for (int64_t b = 0; b < lay.nb_pad; ++b) {
    uint8_t* lo = qs + (b / kGroup) * kGroup * 32 + (b % kGroup) * 16;
    uint8_t* hi = lo + kGroup * 16;
    if (b >= lay.nb) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(lo), bias);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(hi), bias);
      _mm_storeu_ps(dxb + 4 * b, _mm_setzero_ps());
      sx[b] = 0.0f;
      continue;
    }
    const __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
    const float amax = hmax512(_mm512_max_ps(_mm512_and_ps(x0, sign), _mm512_and_ps(x1, sign)));
    float d, id;
    q8_scale(amax, &d, &id);
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, vid));
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, vid));
    const int sum = hsum512_epi32(_mm512_add_epi32(q0, q1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(lo), _mm_xor_si128(_mm512_cvtepi32_epi8(q0), bias));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(hi), _mm_xor_si128(_mm512_cvtepi32_epi8(q1), bias));
    _mm_storeu_ps(dxb + 4 * b, _mm_set1_ps(d));
    sx[b] = d * static_cast<float>(sum);
  }
}

void quantize_q8k(const float* x, int64_t n_in, uint8_t* out) {
  const Q8KLayout lay = q8k_layout(n_in);
  auto* qs = reinterpret_cast<int8_t*>(out + lay.qs_off);
  auto* dd = reinterpret_cast<float*>(out + lay.d_off);
  auto* bsum = reinterpret_cast<int16_t*>(out + lay.bsum_off);
  const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  for (int64_t sb = 0; sb < lay.nsb; ++sb) {
    const float* xb = x + sb * 256;
    __m512 m = _mm512_setzero_ps();
    for (int g = 0; g < 16; ++g)
      m = _mm512_max_ps(m, _mm512_and_ps(_mm512_loadu_ps(xb + 16 * g), sign));
    float d, id;
    q8_scale(hmax512(m), &d, &id);
    dd[sb] = d;
    const __m512 vid = _mm512_set1_ps(id);
    for (int g = 0; g < 16; ++g) {
      const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + 16 * g), vid));
      bsum[sb * 16 + g] = static_cast<int16_t>(hsum512_epi32(q));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + sb * 256 + 16 * g), _mm512_cvtepi32_epi8(q));
    }
  }
}

// ---- 32-block formats
// ----------------------------------------------------------------------------

// ---- loading four weight blocks ---------------------------------------------------------------
//
// A group of 4 blocks (4 * kBytes <= 144 bytes) is read as 64-byte windows and its fields are
// gathered with one vpermt2w each (every field of every format starts at an even offset). A
// short last group uses masked loads, so nothing past the row is touched and missing blocks read
// as zeros (d = m = 0: they add exactly nothing).

// Word indices for vpermt2w over a 128-byte window starting at group byte `start`: lane i takes
// the word at group byte offset off(i) (indices 0-31 the first 64 bytes, 32-63 the second).
struct WordIndex {
  alignas(64) uint16_t v[32];
};
template <class F>
constexpr WordIndex make_index(int start, F off) {
  WordIndex w{};
  for (int i = 0; i < 32; ++i) w.v[i] = static_cast<uint16_t>((off(i) - start) / 2);
  return w;
}

// The 128-byte window [start, start + 128) of a group; bytes at or past `valid` read as zero and
// are never loaded.
struct Window {
  __m512i a, b;
};
inline Window load_window(const uint8_t* g0, int start, int valid) {
  auto mask = [&](int from) -> __mmask64 {
    const int n = valid - from;
    if (n >= 64) return ~__mmask64{0};
    if (n <= 0) return 0;
    return (__mmask64{1} << n) - 1;
  };
  return {_mm512_maskz_loadu_epi8(mask(start), g0 + start),
          _mm512_maskz_loadu_epi8(mask(start + 64), g0 + start + 64)};
}
inline Window load_window_full(const uint8_t* g0, int start, int bytes) {
  // A full group of fewer than 128 bytes: the second window half ends at the group's end.
  if (bytes >= start + 128)
    return {_mm512_loadu_si512(g0 + start), _mm512_loadu_si512(g0 + start + 64)};
  return load_window(g0, start, bytes);
}
inline __m512i pick(const Window& w, const WordIndex& idx) {
  return _mm512_permutex2var_epi16(w.a, _mm512_load_si512(idx.v), w.b);
}

// Field offsets of each format (d is always at 0); kOffset: stored q minus this is the signed
// weight (formats without a min); kM < 0: no min.
struct Q4_0T {
  static constexpr int kBytes = 18, kM = -1, kQh = -1, kQs = 2, kBits = 4, kOffset = 8;
};
struct Q4_1T {
  static constexpr int kBytes = 20, kM = 2, kQh = -1, kQs = 4, kBits = 4, kOffset = 0;
};
struct Q5_0T {
  static constexpr int kBytes = 22, kM = -1, kQh = 2, kQs = 6, kBits = 5, kOffset = 16;
};
struct Q5_1T {
  static constexpr int kBytes = 24, kM = 2, kQh = 4, kQs = 8, kBits = 5, kOffset = 0;
};
struct Q8_0T {
  static constexpr int kBytes = 34, kM = -1, kQh = -1, kQs = 2, kBits = 8, kOffset = 0;
};
struct Q8_1T {
  static constexpr int kBytes = 36, kM = -1, kQh = -1, kQs = 4, kBits = 8, kOffset = 0;
};

// Windows and index vectors of one format.
template <class BT>
struct GroupLayout {
  static constexpr int B = BT::kBytes;
  // Nibble formats: all fields lie in the window at 0. 8-bit formats: the first halves of the
  // quants and the scales lie in the window at 0, the second halves in the window ending at 4B.
  static constexpr int kHiStart = BT::kBits == 8 ? 4 * B - 128 : 0;
  // Lane i: quant bytes 2(i % 8), 2(i % 8) + 1 of block i / 8 (first halves for 8-bit formats).
  static constexpr WordIndex kQsLo =
      make_index(0, [](int i) { return (i / 8) * B + BT::kQs + 2 * (i % 8); });
  static constexpr WordIndex kQsHi =
      make_index(kHiStart, [](int i) { return (i / 8) * B + BT::kQs + 16 + 2 * (i % 8); });
  // Lanes 0-15: d of block i / 4; lanes 16-31: m of block i % 4 (d again without a min).
  static constexpr WordIndex kScales = make_index(0, [](int i) {
    if (i < 16) return (i / 4) * B;
    return (i % 4) * B + (BT::kM >= 0 ? BT::kM : 0);
  });
  // Lanes 0-3: low 16 bits of qh of blocks 0-3; lanes 4-7: the high 16 bits.
  static constexpr WordIndex kQh = make_index(
      0, [](int i) { return (i % 4) * B + (BT::kQh >= 0 ? BT::kQh : 0) + (i % 8 >= 4 ? 2 : 0); });
};

// Four weight blocks, ready for every token of a tile.
struct Group4 {
  __m512i lo, hi;  // first / last 16 values of blocks 0..3 (16 bytes each)
  __m512i corr;    // -128 * sum of the signed weights per int32 lane (formats without a min)
  __m512 dg;       // d of block k in lanes 4k..4k+3
  __m128 m4;       // m of blocks 0..3 (formats with a min)
};

// valid: bytes of the group that exist (4 * kBytes unless it is a row's short last group).
template <class BT, bool kFull>
inline void load_group(const uint8_t* g0, int valid, Group4& g) {
  using L = GroupLayout<BT>;
  constexpr bool kHasMin = BT::kM >= 0;
  constexpr int kGroupBytes = 4 * BT::kBytes;
  const Window w0 = kFull ? load_window_full(g0, 0, kGroupBytes) : load_window(g0, 0, valid);
  if constexpr (BT::kBits == 8) {
    const Window w1 = kFull ? load_window_full(g0, L::kHiStart, kGroupBytes)
                            : load_window(g0, L::kHiStart, valid);
    g.lo = pick(w0, L::kQsLo);
    g.hi = pick(w1, L::kQsHi);
  } else {
    const __m512i v = pick(w0, L::kQsLo);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    g.lo = _mm512_and_si512(v, m4);
    g.hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    if constexpr (BT::kBits == 5) {
      const __m128i qh = _mm512_castsi512_si128(pick(w0, L::kQh));
      const __m512i b16 = _mm512_set1_epi8(16);
      g.lo = _mm512_mask_add_epi8(
          g.lo, _cvtu64_mask64(static_cast<uint64_t>(_mm_cvtsi128_si64(qh))), g.lo, b16);
      g.hi = _mm512_mask_add_epi8(
          g.hi, _cvtu64_mask64(static_cast<uint64_t>(_mm_extract_epi64(qh, 1))), g.hi, b16);
    }
    if constexpr (BT::kOffset != 0) {
      const __m512i off = _mm512_set1_epi8(BT::kOffset);
      g.lo = _mm512_sub_epi8(g.lo, off);
      g.hi = _mm512_sub_epi8(g.hi, off);
    }
  }
  if constexpr (!kHasMin) {
    const __m512i c128 = _mm512_set1_epi8(static_cast<char>(0x80));
    __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c128, g.lo);
    s = _mm512_dpbusd_epi32(s, c128, g.hi);
    g.corr = _mm512_sub_epi32(_mm512_setzero_si512(), s);
  }
  const __m512i sc = pick(w0, L::kScales);
  g.dg = _mm512_cvtph_ps(_mm512_castsi512_si256(sc));
  if constexpr (kHasMin) g.m4 = _mm_cvtph_ps(_mm512_extracti32x4_epi32(sc, 2));
}

inline float hsum128(__m128 v) {
  const __m128 s = _mm_add_ps(v, _mm_movehl_ps(v, v));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// Within each 128-bit chunk c of a and b: lane 0 = (a0 + a2) + (a1 + a3) of a's chunk c, lane 1
// the same of b's (the in-chunk part of hsum512 / hsum128).
[[gnu::always_inline]] inline __m512 hsum_lanes(__m512 a, __m512 b) {
  const __m512 w = _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x44), _mm512_shuffle_ps(a, b, 0xEE));
  return _mm512_add_ps(_mm512_shuffle_ps(w, w, 0x88), _mm512_shuffle_ps(w, w, 0xDD));
}
// hsum512 of eight vectors: lane 4c of the result is hsum512(v[c]), lane 4c + 1 hsum512(v[4 + c]),
// bit for bit (the same pairs are added in the same order).
[[gnu::always_inline]] inline __m512 hsum_pair(__m512 a, __m512 b) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
}
[[gnu::always_inline]] inline __m512 hsum_quad(__m512 x0, __m512 x1) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(x0, x1, 0x88), _mm512_shuffle_f32x4(x0, x1, 0xDD));
}
[[gnu::always_inline]] inline __m512 hsum8_chunks(__m512 v0, __m512 v1, __m512 v2, __m512 v3,
                                                  __m512 v4, __m512 v5, __m512 v6, __m512 v7) {
  return hsum_lanes(hsum_quad(hsum_pair(v0, v1), hsum_pair(v2, v3)),
                    hsum_quad(hsum_pair(v4, v5), hsum_pair(v6, v7)));
}

// One weight row times NT tokens. The per-token instruction sequence is the same for every NT,
// so a token's result does not depend on the tile it is in.
template <class BT, int NT>
[[gnu::always_inline]] inline void row_q32(const uint8_t* wrow, const Q8x32Layout& lay,
                                           const uint8_t* const* acts, float* out) {
  constexpr int B = BT::kBytes;
  constexpr bool kHasMin = BT::kM >= 0;
  __m512 facc[NT];
  __m128 macc[NT];
  for (int t = 0; t < NT; ++t) {
    facc[t] = _mm512_setzero_ps();
    macc[t] = _mm_setzero_ps();
  }
  Group4 g;
  auto tokens = [&](int64_t gi) {
    for (int t = 0; t < NT; ++t) {
      const uint8_t* a = acts[t];
      const __m512i xlo = _mm512_load_si512(a + lay.qs_off + gi * 128);
      const __m512i xhi = _mm512_load_si512(a + lay.qs_off + gi * 128 + 64);
      __m512i acc;
      if constexpr (kHasMin) {
        acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), g.lo, xlo);
        acc = _mm512_dpbusd_epi32(acc, g.hi, xhi);
      } else {
        acc = _mm512_dpbusd_epi32(g.corr, xlo, g.lo);
        acc = _mm512_dpbusd_epi32(acc, xhi, g.hi);
      }
      const __m512 dx = _mm512_load_ps(reinterpret_cast<const float*>(a + lay.dxb_off) + gi * 16);
      facc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_mul_ps(g.dg, dx), facc[t]);
      if constexpr (kHasMin) {
        const __m128 sx = _mm_load_ps(reinterpret_cast<const float*>(a + lay.sx_off) + gi * 4);
        macc[t] = _mm_fmadd_ps(g.m4, sx, macc[t]);
      }
    }
  };
  const int64_t nfull = lay.nb / 4;
  for (int64_t gi = 0; gi < nfull; ++gi) {
    load_group<BT, true>(wrow + gi * 4 * B, 4 * B, g);
    tokens(gi);
  }
  if (lay.nb % 4 != 0) {
    load_group<BT, false>(wrow + nfull * 4 * B, static_cast<int>(lay.nb % 4) * B, g);
    tokens(nfull);
  }
  if constexpr (NT == 8) {
    // Eight horizontal sums at once, with the same additions in the same order as hsum512 and
    // hsum128 (float addition is commutative), so the results equal those of the loop below.
    alignas(64) float tmp[16];
    _mm512_store_ps(
        tmp, hsum8_chunks(facc[0], facc[1], facc[2], facc[3], facc[4], facc[5], facc[6], facc[7]));
    if constexpr (kHasMin) {
      alignas(64) float tmpm[16];
      const __m512 ma = _mm512_insertf32x4(
          _mm512_insertf32x4(_mm512_insertf32x4(_mm512_castps128_ps512(macc[0]), macc[1], 1),
                             macc[2], 2),
          macc[3], 3);
      const __m512 mb = _mm512_insertf32x4(
          _mm512_insertf32x4(_mm512_insertf32x4(_mm512_castps128_ps512(macc[4]), macc[5], 1),
                             macc[6], 2),
          macc[7], 3);
      _mm512_store_ps(tmpm, hsum_lanes(ma, mb));
      for (int t = 0; t < NT; ++t) out[t] = tmp[(t % 4) * 4 + t / 4] + tmpm[(t % 4) * 4 + t / 4];
    } else {
      for (int t = 0; t < NT; ++t) out[t] = tmp[(t % 4) * 4 + t / 4];
    }
  } else {
    for (int t = 0; t < NT; ++t) {
      float s = hsum512(facc[t]);
      if constexpr (kHasMin) s += hsum128(macc[t]);
      out[t] = s;
    }
  }
}

template <class BT>
void matmul_q32(const MatmulArgs& a, int64_t r0, int64_t r1, int t0, int t1) {
  constexpr int kTile = 8;
  const Q8x32Layout lay = q8x32_layout(a.n_in);
  for (int tb = t0; tb < t1; tb += kTile) {
    const int nt = t1 - tb < kTile ? t1 - tb : kTile;
    const uint8_t* acts[kTile];
    for (int t = 0; t < nt; ++t) acts[t] = a.act + static_cast<size_t>(tb + t) * a.act_stride;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wrow = a.w + static_cast<size_t>(r) * a.w_stride;
      float out[kTile];
      switch (nt) {
        case 8:
          row_q32<BT, 8>(wrow, lay, acts, out);
          break;
        case 7:
          row_q32<BT, 7>(wrow, lay, acts, out);
          break;
        case 6:
          row_q32<BT, 6>(wrow, lay, acts, out);
          break;
        case 5:
          row_q32<BT, 5>(wrow, lay, acts, out);
          break;
        case 4:
          row_q32<BT, 4>(wrow, lay, acts, out);
          break;
        case 3:
          row_q32<BT, 3>(wrow, lay, acts, out);
          break;
        case 2:
          row_q32<BT, 2>(wrow, lay, acts, out);
          break;
        default:
          row_q32<BT, 1>(wrow, lay, acts, out);
          break;
      }
      for (int t = 0; t < nt; ++t) a.y[static_cast<size_t>(tb + t) * a.ldy + r] = out[t];
    }
  }
}

// ---- panel layout (Q4_1, Q8_0) ---------------------------------------------------------------
//
// 16 weight rows side by side (kernel_table.h): a 64-byte chunk holds 4 consecutive quants of
// each of the 16 rows, so vpdpbusd against the token's matching 4 activation bytes (broadcast)
// gives the 16 rows' partial dots in the 16 int32 lanes. A block costs per token 8 vpdpbusd and
// 3-4 float ops for 16 rows (one conversion, one scale product, one or two FMAs), and the
// unpacking of the weights is shared by the tile's tokens. Lane r computes exactly what
// matmul_panel_ref computes for row r (integer sums are exact in any order), so the result never
// depends on the tile size, the token's place in it or the row's place in its panel.

void quantize_q8blk(const float* x, int64_t n_in, uint8_t* out) {
  const Q8BlkLayout lay = q8blk_layout(n_in);
  auto* qs = reinterpret_cast<int8_t*>(out + lay.qs_off);
  auto* dd = reinterpret_cast<float*>(out + lay.d_off);
  auto* ss = reinterpret_cast<float*>(out + lay.s_off);
  auto* cc = reinterpret_cast<int32_t*>(out + lay.c_off);
  const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  for (int64_t b = 0; b < lay.nb; ++b) {
    const __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
    const float amax = hmax512(_mm512_max_ps(_mm512_and_ps(x0, sign), _mm512_and_ps(x1, sign)));
    float d, id;
    q8_scale(amax, &d, &id);
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, vid));
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, vid));
    const int sum = hsum512_epi32(_mm512_add_epi32(q0, q1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + 32 * b), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + 32 * b + 16), _mm512_cvtepi32_epi8(q1));
    dd[b] = _cvtsh_ss(_cvtss_sh(d, kRne));
    ss[b] = _cvtsh_ss(_cvtss_sh(d * static_cast<float>(sum), kRne));
    cc[b] = -128 * sum;
  }
}

constexpr int kPrefetchBlocks = 6;
// Tokens per tile: the unpacked weights (8 vectors), the scales and one accumulator per token
// stay in the 32 registers.
#ifndef SGL_PANEL_TILE
#define SGL_PANEL_TILE 16
#endif
constexpr int kPanelTile = SGL_PANEL_TILE;

// acc += u (unsigned bytes) . broadcast of the 4 signed bytes at p, with the broadcast folded into
// vpdpbusd's memory operand ({1to16}). GCC does not fold _mm512_set1_epi32(load) into vpdpbusd, and
// the separate vpbroadcastd costs an issue slot per vpdpbusd: with it the panel loop is limited by
// the front end (~2 uops per multiply-add instruction) rather than by the VNNI units.
inline __m512i dpbusd_bcast(__m512i acc, __m512i u, const int8_t* p) {
  asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(u), "m"(*reinterpret_cast<const int32_t*>(p)));
  return acc;
}

// One panel times NT tokens; out[t] gets the 16 rows' results for token t.
template <bool kQ41, int NT>
[[gnu::always_inline]] inline void panel_tile(const uint8_t* panel, const Q8BlkLayout& lay,
                                              const uint8_t* const* acts, __m512* out) {
  const int64_t nb = lay.nb;
  constexpr int kChunks = kQ41 ? 4 : 8;
  const auto* dw = reinterpret_cast<const uint16_t*>(panel);
  const uint16_t* mw = dw + nb * kPanelRows;
  const uint8_t* qs = panel + static_cast<size_t>(nb) * kPanelRows * (kQ41 ? 4 : 2);
  __m512 facc[NT];
  for (int t = 0; t < NT; ++t) facc[t] = _mm512_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = qs + static_cast<size_t>(b) * kChunks * 64;
    // The weights stream from DRAM when decoding: fetch kPrefetchBlocks ahead (past the panel's
    // end this runs into the next panel, which follows it; prefetches never fault).
#pragma GCC unroll 8
    for (int c = 0; c < kChunks; ++c)
      _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetchBlocks * kChunks * 64 + 64 * c),
                   _MM_HINT_T0);
    __m512i u[8];
#pragma GCC unroll 8
    for (int c = 0; c < kChunks; ++c) {
      const __m512i v = _mm512_loadu_si512(blk + 64 * c);
      if constexpr (kQ41) {
        u[c] = _mm512_and_si512(v, low4);
        u[c + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
      } else {
        u[c] = v;
      }
    }
    const __m512 d =
        _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(dw + b * kPanelRows)));
    __m512 m = _mm512_setzero_ps();
    if constexpr (kQ41)
      m = _mm512_cvtph_ps(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mw + b * kPanelRows)));
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) {
      const uint8_t* a = acts[t];
      const int8_t* x = reinterpret_cast<const int8_t*>(a + lay.qs_off) + 32 * b;
      const __m512i init =
          kQ41 ? _mm512_setzero_si512()
               : _mm512_set1_epi32(reinterpret_cast<const int32_t*>(a + lay.c_off)[b]);
      // Two dependency chains per token (integer sums are exact in any order): one chain of 8
      // vpdpbusd per token leaves too few independent chains in the scheduler to keep both
      // VNNI ports busy.
      __m512i e = init, o = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int k = 0; k < 8; k += 2) {
        e = dpbusd_bcast(e, u[k], x + 4 * k);
        o = dpbusd_bcast(o, u[k + 1], x + 4 * k + 4);
      }
      const __m512i acc = _mm512_add_epi32(e, o);
      const float dx = reinterpret_cast<const float*>(a + lay.d_off)[b];
      facc[t] =
          _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_mul_ps(d, _mm512_set1_ps(dx)), facc[t]);
      if constexpr (kQ41) {
        const float sx = reinterpret_cast<const float*>(a + lay.s_off)[b];
        facc[t] = _mm512_fmadd_ps(m, _mm512_set1_ps(sx), facc[t]);
      }
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = facc[t];
}

template <bool kQ41, int NT>
void panel_tiles(const MatmulArgs& a, const Q8BlkLayout& lay, const uint8_t* panel, int tb, int t1,
                 __mmask16 mask, int64_t p0) {
  for (; tb + NT <= t1; tb += NT) {
    const uint8_t* acts[NT];
    for (int t = 0; t < NT; ++t) acts[t] = a.act + static_cast<size_t>(tb + t) * a.act_stride;
    __m512 out[NT];
    panel_tile<kQ41, NT>(panel, lay, acts, out);
    for (int t = 0; t < NT; ++t)
      _mm512_mask_storeu_ps(a.y + static_cast<size_t>(tb + t) * a.ldy + p0, mask, out[t]);
  }
  if constexpr (NT > 1) {
    if (tb < t1) {
      const int rest = t1 - tb;
      if (rest >= NT / 2 + (NT % 2)) {
        panel_tiles<kQ41, NT / 2 + NT % 2>(a, lay, panel, tb, t1, mask, p0);
      } else {
        panel_tiles<kQ41, NT / 2>(a, lay, panel, tb, t1, mask, p0);
      }
    }
  }
}

template <bool kQ41>
void matmul_panel(const MatmulArgs& a, int64_t r0, int64_t r1, int t0, int t1) {
  const Q8BlkLayout lay = q8blk_layout(a.n_in);
  for (int64_t p0 = r0; p0 < r1; p0 += kPanelRows) {
    const uint8_t* panel = a.w + static_cast<size_t>(p0 / kPanelRows) * a.w_stride;
    const int nr = r1 - p0 < kPanelRows ? static_cast<int>(r1 - p0) : kPanelRows;
    const __mmask16 mask = static_cast<__mmask16>((1u << nr) - 1);
    panel_tiles<kQ41, kPanelTile>(a, lay, panel, t0, t1, mask, p0);
  }
}

// ---- K formats ----------------------------------------------------------------------------------
//
// A super-block is unpacked in registers to 256 quants in natural order (four vectors of 64) plus
// int16 scales; per token, vpdpbusd gives int32 sums of 4 products, vpackssdw packs two such
// vectors to int16 (|sum| <= 4 * 63 * 127 fits), and vpdpwssd multiplies by the scales and sums.
// The integer result equals the generic ksum exactly and the f32 epilogue is the generic one, so
// K-quant matmuls are bit-identical to the other ISAs.

// Word w of 128-bit lane L of packs(dot(u[2p]), dot(u[2p + 1])) sums values of group
// 8p + 4 * (w >= 4) + L (16 values per group).
constexpr WordIndex make_pair_index(int p) {
  WordIndex w{};
  for (int i = 0; i < 32; ++i) {
    const int lane = i / 8, word = i % 8;
    w.v[i] = static_cast<uint16_t>(8 * p + (word >= 4 ? 4 : 0) + lane);
  }
  return w;
}
constexpr WordIndex kPair0 = make_pair_index(0);
constexpr WordIndex kPair1 = make_pair_index(1);
// Group g's scale and min for Q4_K/Q5_K from words [sc0..sc7, m0..m7]: sub-block g / 2.
constexpr WordIndex kK4Scale = make_index(0, [](int i) { return 2 * ((i % 16) / 2); });
constexpr WordIndex kK4Min = make_index(0, [](int i) { return 2 * (8 + (i % 16) / 2); });

struct KBlock {
  __m512i u[4];      // quants of values 64c .. 64c + 63
  __m512i s01, s23;  // int16 scales matching the packed dots
  __m256i t;         // int16 min coefficients per group (negated for same-A-B formats)
  float a, b;
};

inline __m512i nibbles_lo(__m512i v) { return _mm512_and_si512(v, _mm512_set1_epi8(0x0F)); }
inline __m512i nibbles_hi(__m512i v) {
  return _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0F));
}

inline void k_set_scales(__m256i s16, KBlock& k) {
  const __m512i s = _mm512_zextsi256_si512(s16);
  k.s01 = _mm512_permutexvar_epi16(_mm512_load_si512(kPair0.v), s);
  k.s23 = _mm512_permutexvar_epi16(_mm512_load_si512(kPair1.v), s);
}

// Q4_K / Q5_K scales and mins: 12 bytes -> words [sc0..sc7, m0..m7].
inline __m256i unpack_k4_scales(const uint8_t* p) {
  uint32_t u0, u1, u2;
  std::memcpy(&u0, p, 4);
  std::memcpy(&u1, p + 4, 4);
  std::memcpy(&u2, p + 8, 4);
  const uint32_t sc_lo = u0 & 0x3f3f3f3f, m_lo = u1 & 0x3f3f3f3f;
  const uint32_t sc_hi = (u2 & 0x0f0f0f0f) | (((u0 >> 6) & 0x03030303) << 4);
  const uint32_t m_hi = ((u2 >> 4) & 0x0f0f0f0f) | (((u1 >> 6) & 0x03030303) << 4);
  return _mm256_cvtepu8_epi16(_mm_setr_epi32(static_cast<int>(sc_lo), static_cast<int>(sc_hi),
                                             static_cast<int>(m_lo), static_cast<int>(m_hi)));
}

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// The four natural-order quant vectors of a 128-byte Q4_K-style nibble array: byte l of 32-byte
// chunk c holds value 64c + l (low nibble) and 64c + 32 + l (high nibble).
inline void unpack_nibble_chunks(const uint8_t* qs, __m512i* u) {
  for (int h = 0; h < 2; ++h) {
    const __m512i q = _mm512_loadu_si512(qs + 64 * h);
    const __m512i lo = nibbles_lo(q), hi = nibbles_hi(q);
    u[2 * h] = _mm512_shuffle_i64x2(lo, hi, 0x44);
    u[2 * h + 1] = _mm512_shuffle_i64x2(lo, hi, 0xEE);
  }
}

struct Q4_KT {
  static constexpr int kBytes = 144;
  static constexpr bool kSameAB = false;
  static void unpack(const uint8_t* blk, KBlock& k) {
    k.a = _cvtsh_ss(load_u16(blk));
    k.b = _cvtsh_ss(load_u16(blk + 2));
    const __m512i w = _mm512_zextsi256_si512(unpack_k4_scales(blk + 4));
    k_set_scales(_mm512_castsi512_si256(_mm512_permutexvar_epi16(_mm512_load_si512(kK4Scale.v), w)),
                 k);
    k.t = _mm512_castsi512_si256(_mm512_permutexvar_epi16(_mm512_load_si512(kK4Min.v), w));
    unpack_nibble_chunks(blk + 16, k.u);
  }
};

struct Q5_KT {
  static constexpr int kBytes = 176;
  static constexpr bool kSameAB = false;
  static void unpack(const uint8_t* blk, KBlock& k) {
    k.a = _cvtsh_ss(load_u16(blk));
    k.b = _cvtsh_ss(load_u16(blk + 2));
    const __m512i w = _mm512_zextsi256_si512(unpack_k4_scales(blk + 4));
    k_set_scales(_mm512_castsi512_si256(_mm512_permutexvar_epi16(_mm512_load_si512(kK4Scale.v), w)),
                 k);
    k.t = _mm512_castsi512_si256(_mm512_permutexvar_epi16(_mm512_load_si512(kK4Min.v), w));
    unpack_nibble_chunks(blk + 48, k.u);
    // Fifth bit: value 64c + l takes bit 2c of qh[l], value 64c + 32 + l bit 2c + 1.
    const __m512i h =
        _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16)));
    const __m512i one = _mm512_set1_epi8(1);
    for (int c = 0; c < 4; ++c) {
      const __m512i shift = _mm512_inserti64x4(_mm512_set1_epi16(static_cast<short>(2 * c)),
                                               _mm256_set1_epi16(static_cast<short>(2 * c + 1)), 1);
      const __m512i bit = _mm512_and_si512(_mm512_srlv_epi16(h, shift), one);
      k.u[c] = _mm512_or_si512(k.u[c], _mm512_slli_epi16(bit, 4));
    }
  }
};

struct Q6_KT {
  static constexpr int kBytes = 210;
  static constexpr bool kSameAB = true;
  static void unpack(const uint8_t* blk, KBlock& k) {
    k.a = k.b = _cvtsh_ss(load_u16(blk + 208));
    const __m256i s16 =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)));
    k_set_scales(s16, k);
    k.t = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(s16, 5));  // -32 * s
    const __m512i m3 = _mm512_set1_epi8(3);
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(blk + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h)));
      // Values 128h + 32k + l: high bits 2k of qh[32h + l]; k = 0, 1 in u[2h], 2, 3 in u[2h + 1].
      for (int v = 0; v < 2; ++v) {
        const __m512i shift =
            _mm512_inserti64x4(_mm512_set1_epi16(static_cast<short>(4 * v)),
                               _mm256_set1_epi16(static_cast<short>(4 * v + 2)), 1);
        const __m512i high =
            _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, shift), m3), 4);
        k.u[2 * h + v] = _mm512_or_si512(v == 0 ? nibbles_lo(ql) : nibbles_hi(ql), high);
      }
    }
  }
};

template <class KT, int NT>
inline void row_k(const uint8_t* wrow, const Q8KLayout& lay, const uint8_t* const* acts,
                  float* out) {
  float acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  KBlock k;
  for (int64_t sb = 0; sb < lay.nsb; ++sb) {
    KT::unpack(wrow + sb * KT::kBytes, k);
    for (int t = 0; t < NT; ++t) {
      const uint8_t* a = acts[t];
      const int8_t* x = reinterpret_cast<const int8_t*>(a + lay.qs_off) + sb * 256;
      __m512i d[4];
      for (int c = 0; c < 4; ++c)
        d[c] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), k.u[c], _mm512_loadu_si512(x + 64 * c));
      __m512i iacc =
          _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_packs_epi32(d[0], d[1]), k.s01);
      iacc = _mm512_dpwssd_epi32(iacc, _mm512_packs_epi32(d[2], d[3]), k.s23);
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(
          reinterpret_cast<const int16_t*>(a + lay.bsum_off) + sb * 16));
      const float dx = reinterpret_cast<const float*>(a + lay.d_off)[sb];
      const float da = k.a * dx;
      if constexpr (KT::kSameAB) {
        iacc = _mm512_dpwssd_epi32(iacc, _mm512_zextsi256_si512(bs), _mm512_zextsi256_si512(k.t));
        acc[t] = __builtin_fmaf(da, static_cast<float>(hsum512_epi32(iacc)), acc[t]);
      } else {
        const int32_t isum = hsum512_epi32(iacc);
        const __m256i mv = _mm256_dpwssd_epi32(_mm256_setzero_si256(), bs, k.t);
        __m128i m = _mm_add_epi32(_mm256_castsi256_si128(mv), _mm256_extracti128_si256(mv, 1));
        m = _mm_add_epi32(m, _mm_unpackhi_epi64(m, m));
        m = _mm_add_epi32(m, _mm_shuffle_epi32(m, 0xB1));
        const int32_t imin = _mm_cvtsi128_si32(m);
        acc[t] = __builtin_fmaf(da, static_cast<float>(isum), acc[t]);
        acc[t] = __builtin_fmaf(-(k.b * dx), static_cast<float>(imin), acc[t]);
      }
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = acc[t];
}

template <class KT>
void matmul_kq(const MatmulArgs& a, int64_t r0, int64_t r1, int t0, int t1) {
  constexpr int kTile = 8;
  const Q8KLayout lay = q8k_layout(a.n_in);
  for (int tb = t0; tb < t1; tb += kTile) {
    const int nt = t1 - tb < kTile ? t1 - tb : kTile;
    const uint8_t* acts[kTile];
    for (int t = 0; t < nt; ++t) acts[t] = a.act + static_cast<size_t>(tb + t) * a.act_stride;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wrow = a.w + static_cast<size_t>(r) * a.w_stride;
      float out[kTile];
      switch (nt) {
        case 8:
          row_k<KT, 8>(wrow, lay, acts, out);
          break;
        case 7:
          row_k<KT, 7>(wrow, lay, acts, out);
          break;
        case 6:
          row_k<KT, 6>(wrow, lay, acts, out);
          break;
        case 5:
          row_k<KT, 5>(wrow, lay, acts, out);
          break;
        case 4:
          row_k<KT, 4>(wrow, lay, acts, out);
          break;
        case 3:
          row_k<KT, 3>(wrow, lay, acts, out);
          break;
        case 2:
          row_k<KT, 2>(wrow, lay, acts, out);
          break;
        default:
          row_k<KT, 1>(wrow, lay, acts, out);
          break;
      }
      for (int t = 0; t < nt; ++t) a.y[static_cast<size_t>(tb + t) * a.ldy + r] = out[t];
    }
  }
}

KernelTable make_table() {
  using model::GgmlType;
  KernelTable kt;
  kt.isa = Isa::kAvx512;
  kt.q8x32_group = kGroup;
  fill_generic(&kt);
  auto set = [&](GgmlType type, ActKind kind, MatmulKernel fn) {
    kt.act_kind[static_cast<int>(type)] = kind;
    kt.matmul[static_cast<int>(type)] = fn;
  };
  set(GgmlType::kQ4_0, ActKind::kQ8x32Biased, &matmul_q32<Q4_0T>);
  set(GgmlType::kQ4_1, ActKind::kQ8x32, &matmul_q32<Q4_1T>);
  set(GgmlType::kQ5_0, ActKind::kQ8x32Biased, &matmul_q32<Q5_0T>);
  set(GgmlType::kQ5_1, ActKind::kQ8x32, &matmul_q32<Q5_1T>);
  set(GgmlType::kQ8_0, ActKind::kQ8x32Biased, &matmul_q32<Q8_0T>);
  set(GgmlType::kQ8_1, ActKind::kQ8x32Biased, &matmul_q32<Q8_1T>);
  set(GgmlType::kQ4_K, ActKind::kQ8K, &matmul_kq<Q4_KT>);
  set(GgmlType::kQ5_K, ActKind::kQ8K, &matmul_kq<Q5_KT>);
  set(GgmlType::kQ6_K, ActKind::kQ8K, &matmul_kq<Q6_KT>);
  kt.quantize_q8x32 = &quantize_q8x32;
  kt.quantize_q8k = &quantize_q8k;
  kt.quantize_q8blk = &quantize_q8blk;
  kt.matmul_panel[static_cast<int>(GgmlType::kQ4_1)] = &matmul_panel<true>;
  kt.matmul_panel[static_cast<int>(GgmlType::kQ8_0)] = &matmul_panel<false>;
  kt.native_panels = true;
  return kt;
}

}  // namespace

const KernelTable& avx512_kernels() {
  static const KernelTable table = make_table();
  return table;
}

}  // namespace sgl::backend::cpu::detail

#pragma GCC diagnostic pop
#pragma GCC pop_options

#endif  // __x86_64__
