// Internal: the AVX2 kernels, textually included by kernels_avx2.cpp (kVnni = false) and
// kernels_avx2_vnni.cpp (kVnni = true) inside their anonymous namespace and target pragma. The
// two variants differ only in how an unsigned x signed byte dot product is summed into int32
// lanes (vpdpbusd vs vpmaddubsw + vpmaddwd); both are exact for the operand ranges used here,
// so their results are bit-identical.
//
// 32-block formats: two weight blocks at a time become two 32-byte vectors (the first and the
// last 16 values of each block). Signed weights use the sign trick (|w| x sign(x, w)) against
// signed activations, so maddubs never saturates (|w| <= 128, |x| <= 127).

inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
  if constexpr (kVnni) {
    return _mm256_dpbusd_avx_epi32(acc, u, s);
  } else {
    return _mm256_add_epi32(acc,
                            _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
  }
}

inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

inline float hmax256(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}

inline int32_t hsum256_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

struct V {
  using T = __m256;
  static constexpr int W = 8;
  static T zero() { return _mm256_setzero_ps(); }
  static T set1(float v) { return _mm256_set1_ps(v); }
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static T load_f16(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static T load_bf16(const uint16_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static void store_f16(uint16_t* p, T v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                     _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  // Round to nearest even like sgl::fp32_to_bf16 (NaN stays a quiet NaN), bit for bit.
  static void store_bf16(uint16_t* p, T v) {
    const __m256i x = _mm256_castps_si256(v);
    const __m256i hi = _mm256_srli_epi32(x, 16);
    const __m256i lsb = _mm256_and_si256(hi, _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(
        _mm256_add_epi32(x, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    r = _mm256_blendv_epi8(r, _mm256_or_si256(hi, _mm256_set1_epi32(0x40)), nan);
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
  }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static T sub(T a, T b) { return _mm256_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static T div(T a, T b) { return _mm256_div_ps(a, b); }
  static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T max(T a, T b) { return _mm256_max_ps(a, b); }
  static float reduce_add(T v) { return hsum256(v); }
  static float reduce_max(T v) { return hmax256(v); }
  static T exp(T x) {
    x = _mm256_min_ps(_mm256_max_ps(x, set1(kExpLo)), set1(kExpHi));
    const T n =
        _mm256_round_ps(mul(x, set1(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    T r = _mm256_fnmadd_ps(n, set1(kExpC1), x);
    r = _mm256_fnmadd_ps(n, set1(kExpC2), r);
    T p = set1(kExpP0);
    p = fma(p, r, set1(kExpP1));
    p = fma(p, r, set1(kExpP2));
    p = fma(p, r, set1(kExpP3));
    p = fma(p, r, set1(kExpP4));
    p = fma(p, r, set1(kExpP5));
    const T y = add(fma(p, mul(r, r), r), set1(1.0f));
    const __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return mul(y, _mm256_castsi256_ps(e));
  }
  // Lane j of the result is the sum of the 8 lanes of acc[j].
  static T hsum_w(const T* a) {
    T b[4];
    for (int i = 0; i < 4; ++i)
      b[i] = add(_mm256_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                 _mm256_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    const T c0 = add(_mm256_shuffle_ps(b[0], b[1], 0x44), _mm256_shuffle_ps(b[0], b[1], 0xEE));
    const T c1 = add(_mm256_shuffle_ps(b[2], b[3], 0x44), _mm256_shuffle_ps(b[2], b[3], 0xEE));
    return add(_mm256_permute2f128_ps(c0, c1, 0x20), _mm256_permute2f128_ps(c0, c1, 0x31));
  }
};

int32_t ksum(const uint8_t* u, const int32_t* s_lanes, const int8_t* x) {
  __m256i acc = _mm256_setzero_si256();
  for (int c = 0; c < 8; ++c) {
    const __m256i p = dot_u8s8(_mm256_setzero_si256(),
                               _mm256_load_si256(reinterpret_cast<const __m256i*>(u + 32 * c)),
                               _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32 * c)));
    acc = _mm256_add_epi32(
        acc, _mm256_mullo_epi32(
                 p, _mm256_load_si256(reinterpret_cast<const __m256i*>(s_lanes + 8 * c))));
  }
  return hsum256_epi32(acc);
}

#include "backend/cpu/kernels_generic.h"

// ---- activation quantization -------------------------------------------------------------------

constexpr int kGroup = 2;

void quantize_q8x32(const float* x, int64_t n_in, bool biased, uint8_t* out) {
  const Q8x32Layout lay = q8x32_layout(n_in);
  auto* qs = out + lay.qs_off;
  auto* dxb = reinterpret_cast<float*>(out + lay.dxb_off);
  auto* sx = reinterpret_cast<float*>(out + lay.sx_off);
  const __m128i bias = _mm_set1_epi8(biased ? static_cast<char>(0x80) : 0);
  const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
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
    __m256 v[4];
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(x + 32 * b + 8 * k);
      m = _mm256_max_ps(m, _mm256_and_ps(v[k], sign));
    }
    float d, id;
    q8_scale(hmax256(m), &d, &id);
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], vid));
    const int sum =
        hsum256_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    const __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
    const __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
    const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23),
                                                      _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(lo),
                     _mm_xor_si128(_mm256_castsi256_si128(bytes), bias));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(hi),
                     _mm_xor_si128(_mm256_extracti128_si256(bytes, 1), bias));
    _mm_storeu_ps(dxb + 4 * b, _mm_set1_ps(d));
    sx[b] = d * static_cast<float>(sum);
  }
}

// ---- 32-block formats
// ----------------------------------------------------------------------------

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

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// 0x10 in byte i of lane 0 where bit i of a is set, of lane 1 where bit i of b is set (i < 16).
inline __m256i fifth_bits(uint32_t a, uint32_t b) {
  __m256i v = _mm256_setr_m128i(_mm_set1_epi16(static_cast<short>(a)),
                                _mm_set1_epi16(static_cast<short>(b)));
  v = _mm256_shuffle_epi8(v, _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0,
                                              0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
  const __m256i sel = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
  v = _mm256_cmpeq_epi8(_mm256_and_si256(v, sel), sel);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

// Two weight blocks, ready for every token of a tile.
struct Group2 {
  __m256i lo, hi;    // first / last 16 values of blocks 0 and 1 (unsigned, or |w| if signed)
  __m256i slo, shi;  // the signed weights (sign source for the sign trick)
  __m256 dg;         // d of block k in lanes 4k..4k+3
  __m128 m2;         // m0 m1 m0 m1 (formats with a min)
};

template <class BT>
inline void load_group(const uint8_t* b0, Group2& g) {
  constexpr int B = BT::kBytes;
  constexpr bool kHasMin = BT::kM >= 0;
  const uint8_t* b1 = b0 + B;
  auto ld = [](const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); };
  __m256i lo, hi;
  if constexpr (BT::kBits == 8) {
    lo = _mm256_setr_m128i(ld(b0 + BT::kQs), ld(b1 + BT::kQs));
    hi = _mm256_setr_m128i(ld(b0 + BT::kQs + 16), ld(b1 + BT::kQs + 16));
  } else {
    const __m256i v = _mm256_setr_m128i(ld(b0 + BT::kQs), ld(b1 + BT::kQs));
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    lo = _mm256_and_si256(v, m4);
    hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if constexpr (BT::kBits == 5) {
      const uint32_t h0 = load_u32(b0 + BT::kQh), h1 = load_u32(b1 + BT::kQh);
      lo = _mm256_or_si256(lo, fifth_bits(h0 & 0xFFFF, h1 & 0xFFFF));
      hi = _mm256_or_si256(hi, fifth_bits(h0 >> 16, h1 >> 16));
    }
    if constexpr (BT::kOffset != 0) {
      const __m256i off = _mm256_set1_epi8(BT::kOffset);
      lo = _mm256_sub_epi8(lo, off);
      hi = _mm256_sub_epi8(hi, off);
    }
  }
  if constexpr (kHasMin) {
    g.lo = lo;
    g.hi = hi;
  } else {
    g.slo = lo;
    g.shi = hi;
    g.lo = _mm256_sign_epi8(lo, lo);
    g.hi = _mm256_sign_epi8(hi, hi);
  }
  const __m128 f = _mm_cvtph_ps(
      _mm_setr_epi32(static_cast<int>(load_u32(b0)), static_cast<int>(load_u32(b1)), 0, 0));
  g.dg = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(f),
                                  _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2));
  if constexpr (kHasMin) g.m2 = _mm_shuffle_ps(f, f, _MM_SHUFFLE(3, 1, 3, 1));
}

template <class BT, int NT>
inline void row_q32(const uint8_t* wrow, const Q8x32Layout& lay, const uint8_t* const* acts,
                    float* out) {
  constexpr int B = BT::kBytes;
  constexpr bool kHasMin = BT::kM >= 0;
  __m256 facc[NT];
  __m128 macc[NT];
  for (int t = 0; t < NT; ++t) {
    facc[t] = _mm256_setzero_ps();
    macc[t] = _mm_setzero_ps();
  }
  Group2 g;
  auto step = [&](const uint8_t* b0, int64_t gi) {
    load_group<BT>(b0, g);
    for (int t = 0; t < NT; ++t) {
      const uint8_t* a = acts[t];
      const __m256i xlo =
          _mm256_load_si256(reinterpret_cast<const __m256i*>(a + lay.qs_off + gi * 64));
      const __m256i xhi =
          _mm256_load_si256(reinterpret_cast<const __m256i*>(a + lay.qs_off + gi * 64 + 32));
      __m256i acc;
      if constexpr (kHasMin) {
        acc = dot_u8s8(_mm256_setzero_si256(), g.lo, xlo);
        acc = dot_u8s8(acc, g.hi, xhi);
      } else {
        acc = dot_u8s8(_mm256_setzero_si256(), g.lo, _mm256_sign_epi8(xlo, g.slo));
        acc = dot_u8s8(acc, g.hi, _mm256_sign_epi8(xhi, g.shi));
      }
      const __m256 dx = _mm256_load_ps(reinterpret_cast<const float*>(a + lay.dxb_off) + gi * 8);
      facc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_mul_ps(g.dg, dx), facc[t]);
      if constexpr (kHasMin) {
        const __m128 sx = _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(
            reinterpret_cast<const float*>(a + lay.sx_off) + gi * 2)));
        macc[t] = _mm_fmadd_ps(g.m2, sx, macc[t]);
      }
    }
  };
  const int64_t nfull = lay.nb / 2;
  for (int64_t gi = 0; gi < nfull; ++gi) step(wrow + gi * 2 * B, gi);
  if (lay.nb % 2 != 0) {
    alignas(32) uint8_t tail[2 * B] = {};
    std::memcpy(tail, wrow + nfull * 2 * B, B);
    step(tail, nfull);
  }
  for (int t = 0; t < NT; ++t) {
    float s = hsum256(facc[t]);
    if constexpr (kHasMin) s += _mm_cvtss_f32(_mm_add_ss(macc[t], _mm_movehdup_ps(macc[t])));
    out[t] = s;
  }
}

template <class BT>
void matmul_q32(const MatmulArgs& a, int64_t r0, int64_t r1, int t0, int t1) {
  constexpr int kTile = 4;
  const Q8x32Layout lay = q8x32_layout(a.n_in);
  for (int tb = t0; tb < t1; tb += kTile) {
    const int nt = t1 - tb < kTile ? t1 - tb : kTile;
    const uint8_t* acts[kTile];
    for (int t = 0; t < nt; ++t) acts[t] = a.act + static_cast<size_t>(tb + t) * a.act_stride;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wrow = a.w + static_cast<size_t>(r) * a.w_stride;
      float out[kTile];
      switch (nt) {
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

KernelTable make_table() {
  using model::GgmlType;
  KernelTable kt;
  kt.isa = kVnni ? Isa::kAvx2Vnni : Isa::kAvx2;
  kt.q8x32_group = kGroup;
  fill_generic(&kt);
  auto set = [&](GgmlType type, MatmulKernel fn) {
    kt.act_kind[static_cast<int>(type)] = ActKind::kQ8x32;
    kt.matmul[static_cast<int>(type)] = fn;
  };
  set(GgmlType::kQ4_0, &matmul_q32<Q4_0T>);
  set(GgmlType::kQ4_1, &matmul_q32<Q4_1T>);
  set(GgmlType::kQ5_0, &matmul_q32<Q5_0T>);
  set(GgmlType::kQ5_1, &matmul_q32<Q5_1T>);
  set(GgmlType::kQ8_0, &matmul_q32<Q8_0T>);
  set(GgmlType::kQ8_1, &matmul_q32<Q8_1T>);
  kt.quantize_q8x32 = &quantize_q8x32;
  return kt;
}
