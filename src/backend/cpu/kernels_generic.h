// Internal: ISA-generic kernel code, textually included by kernels_scalar.cpp,
// kernels_avx2*.cpp and kernels_avx512.cpp INSIDE their anonymous namespace and target pragma,
// so each inclusion compiles for that ISA. It has no #includes of its own (the including file
// includes everything first, which keeps library inline functions out of the target region).
//
// The including file defines before including this:
//   struct V            vector of V::W floats: zero, set1, load, store, load_f16, load_bf16,
//                       add, sub, mul, fma(a, b, c) = a * b + c, max, reduce_add, reduce_max,
//                       exp, hsum_w (W vectors -> one vector of their sums), store_f16,
//                       store_bf16;
//   int32_t ksum(const uint8_t* u, const int32_t* s_lanes, const int8_t* x)
//                       = sum over i < 256 of u[i] * x[i] * s_lanes[i / 4]  (exact int).
//
// Everything here is batch invariant: the value computed for one token row or one query never
// depends on which other rows share the call.

// ---- scalar helpers --------------------------------------------------------------------------

// ---- activation quantization (reference forms; SIMD files may provide faster equals) -----------

// Shared by every ISA so activations are bit-identical everywhere: d = amax / 127,
// q = round-to-nearest-even(x * (127 / amax)).
inline void q8_scale(float amax, float* d, float* id) {
  *d = amax / 127.0f;
  *id = amax != 0.0f ? 127.0f / amax : 0.0f;
}

// The largest |x[j]| of a quantization block (the scale of every int8 block format here).
inline float block_absmax(const float* x, int n) {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) {
    const float a = __builtin_fabsf(x[j]);
    amax = a > amax ? a : amax;
  }
  return amax;
}

inline void generic_quantize_q8x32(const float* x, int64_t n_in, bool biased, int group,
                                   uint8_t* out) {
  const Q8x32Layout lay = q8x32_layout(n_in);
  auto* qs = out + lay.qs_off;
  auto* dxb = reinterpret_cast<float*>(out + lay.dxb_off);
  auto* sx = reinterpret_cast<float*>(out + lay.sx_off);
  const uint8_t bias = biased ? 128 : 0;
  for (int64_t b = 0; b < lay.nb_pad; ++b) {
    const int64_t g = b / group, k = b % group;
    uint8_t* lo = qs + g * group * 32 + k * 16;
    uint8_t* hi = lo + group * 16;
    if (b >= lay.nb) {
      for (int j = 0; j < 16; ++j) lo[j] = hi[j] = bias;
      for (int j = 0; j < 4; ++j) dxb[4 * b + j] = 0.0f;
      sx[b] = 0.0f;
      continue;
    }
    const float* xb = x + b * 32;
    const float amax = block_absmax(xb, 32);
    float d, id;
    q8_scale(amax, &d, &id);
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      const int q = static_cast<int>(__builtin_nearbyintf(xb[j] * id));
      sum += q;
      const uint8_t byte = static_cast<uint8_t>(static_cast<int8_t>(q)) ^ bias;
      if (j < 16) {
        lo[j] = byte;
      } else {
        hi[j - 16] = byte;
      }
    }
    for (int j = 0; j < 4; ++j) dxb[4 * b + j] = d;
    sx[b] = d * static_cast<float>(sum);
  }
}

inline void generic_quantize_q8k(const float* x, int64_t n_in, uint8_t* out) {
  const Q8KLayout lay = q8k_layout(n_in);
  auto* qs = reinterpret_cast<int8_t*>(out + lay.qs_off);
  auto* dd = reinterpret_cast<float*>(out + lay.d_off);
  auto* bsum = reinterpret_cast<int16_t*>(out + lay.bsum_off);
  for (int64_t sb = 0; sb < lay.nsb; ++sb) {
    const float* xb = x + sb * 256;
    const float amax = block_absmax(xb, 256);
    float d, id;
    q8_scale(amax, &d, &id);
    dd[sb] = d;
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int j = 16 * g; j < 16 * g + 16; ++j) {
        const int q = static_cast<int>(__builtin_nearbyintf(xb[j] * id));
        qs[sb * 256 + j] = static_cast<int8_t>(q);
        sum += q;
      }
      bsum[sb * 16 + g] = static_cast<int16_t>(sum);
    }
  }
}

// llama.cpp's Q8_1 / Q8_0 activation blocks (kQ8Blk). The q are those of q8_scale; d and s are
// rounded to f16 like llama.cpp's block_q8_1 fields.
inline float round_to_f16(float v) { return fp16_to_fp32(fp32_to_fp16(v)); }

inline void generic_quantize_q8blk(const float* x, int64_t n_in, uint8_t* out) {
  const Q8BlkLayout lay = q8blk_layout(n_in);
  auto* qs = reinterpret_cast<int8_t*>(out + lay.qs_off);
  auto* dd = reinterpret_cast<float*>(out + lay.d_off);
  auto* ss = reinterpret_cast<float*>(out + lay.s_off);
  auto* cc = reinterpret_cast<int32_t*>(out + lay.c_off);
  for (int64_t b = 0; b < lay.nb; ++b) {
    const float* xb = x + b * 32;
    const float amax = block_absmax(xb, 32);
    float d, id;
    q8_scale(amax, &d, &id);
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      const int q = static_cast<int>(__builtin_nearbyintf(xb[j] * id));
      qs[b * 32 + j] = static_cast<int8_t>(q);
      sum += q;
    }
    dd[b] = round_to_f16(d);
    ss[b] = round_to_f16(d * static_cast<float>(sum));
    cc[b] = -128 * sum;
  }
}

// ---- panel matmul: the portable reference ---------------------------------------------------
//
// Per weight row and token: for each block b, isum = exact integer dot of the block's quants with
// the activation's q (for Q8_0 via the stored q + 128 and the -128 * sum(q) correction), then
//   acc = fma(float(isum), d_w * d_x, acc);   and for Q4_1   acc = fma(m_w, s_x, acc).
// The SIMD panel kernels do the same per lane, so every path gives the same bits.
template <bool kQ41>
void matmul_panel_ref(const MatmulArgs& a, int64_t r0, int64_t r1, int t0, int t1) {
  const Q8BlkLayout lay = q8blk_layout(a.n_in);
  const int64_t nb = lay.nb;
  constexpr int kChunks = kQ41 ? 4 : 8;
  for (int64_t p0 = r0; p0 < r1; p0 += kPanelRows) {
    const uint8_t* panel = a.w + static_cast<size_t>(p0 / kPanelRows) * a.w_stride;
    const auto* dw = reinterpret_cast<const uint16_t*>(panel);
    const uint16_t* mw = dw + nb * kPanelRows;
    const uint8_t* qs = panel + static_cast<size_t>(nb) * kPanelRows * (kQ41 ? 4 : 2);
    const int nr = r1 - p0 < kPanelRows ? static_cast<int>(r1 - p0) : kPanelRows;
    for (int t = t0; t < t1; ++t) {
      const uint8_t* act = a.act + static_cast<size_t>(t) * a.act_stride;
      const auto* xq = reinterpret_cast<const int8_t*>(act + lay.qs_off);
      const auto* dx = reinterpret_cast<const float*>(act + lay.d_off);
      const auto* sx = reinterpret_cast<const float*>(act + lay.s_off);
      const auto* cx = reinterpret_cast<const int32_t*>(act + lay.c_off);
      for (int r = 0; r < nr; ++r) {
        float acc = 0.0f;
        for (int64_t b = 0; b < nb; ++b) {
          const uint8_t* blk = qs + static_cast<size_t>(b) * kChunks * 64 + 4 * r;
          const int8_t* x = xq + b * 32;
          int32_t isum = kQ41 ? 0 : cx[b];
          for (int c = 0; c < kChunks; ++c) {
            for (int j = 0; j < 4; ++j) {
              const uint8_t byte = blk[64 * c + j];
              if constexpr (kQ41) {
                isum += (byte & 0xF) * x[4 * c + j] + (byte >> 4) * x[16 + 4 * c + j];
              } else {
                isum += byte * x[4 * c + j];
              }
            }
          }
          const float d = fp16_to_fp32(dw[b * kPanelRows + r]);
          acc = __builtin_fmaf(static_cast<float>(isum), d * dx[b], acc);
          if constexpr (kQ41)
            acc = __builtin_fmaf(fp16_to_fp32(mw[b * kPanelRows + r]), sx[b], acc);
        }
        a.y[static_cast<size_t>(t) * a.ldy + p0 + r] = acc;
      }
    }
  }
}

// ---- K-quant matmul: unpack a super-block, then exact integer dots per token ------------------

// A super-block of any K format as: w[i] = A * s[i / 16] * u[i] - B * t[i / 16], u in [0, 63].
struct KUnpacked {
  alignas(64) uint8_t u[256];
  alignas(64) int32_t s_lanes[64];  // s[i / 16] for each group of 4 values (one int32 lane)
  int32_t t[16];
  float a, b;
};

inline void k_fill_lanes(const int32_t* s, KUnpacked* k) {
  for (int i = 0; i < 64; ++i) k->s_lanes[i] = s[i / 4];
}

inline void unpack_q2_k(const uint8_t* blk, KUnpacked* k) {
  const auto* b = reinterpret_cast<const model::BlockQ2_K*>(blk);
  for (int n = 0; n < 2; ++n)
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 32; ++l) k->u[128 * n + 32 * j + l] = (b->qs[32 * n + l] >> (2 * j)) & 3;
  int32_t s[16];
  for (int g = 0; g < 16; ++g) {
    s[g] = b->scales[g] & 0xF;
    k->t[g] = b->scales[g] >> 4;
  }
  k_fill_lanes(s, k);
  k->a = fp16_to_fp32(b->d);
  k->b = fp16_to_fp32(b->dmin);
}

inline void unpack_q3_k(const uint8_t* blk, KUnpacked* k) {
  const auto* b = reinterpret_cast<const model::BlockQ3_K*>(blk);
  for (int n = 0; n < 2; ++n)
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 32; ++l)
        k->u[128 * n + 32 * j + l] = static_cast<uint8_t>(
            ((b->qs[32 * n + l] >> (2 * j)) & 3) | (((b->hmask[l] >> (4 * n + j)) & 1) << 2));
  int32_t s[16];
  for (int g = 0; g < 16; ++g) {
    s[g] = model::unpack_scale_q3_k(g, b->scales) - 32;
    k->t[g] = 4 * s[g];
  }
  k_fill_lanes(s, k);
  k->a = k->b = fp16_to_fp32(b->d);
}

inline void unpack_scales_k4(const uint8_t* scales, KUnpacked* k) {
  int32_t s[16];
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    model::unpack_scale_min_k4(j, scales, &sc, &m);
    s[2 * j] = s[2 * j + 1] = sc;
    k->t[2 * j] = k->t[2 * j + 1] = m;
  }
  k_fill_lanes(s, k);
}

inline void unpack_q4_k(const uint8_t* blk, KUnpacked* k) {
  const auto* b = reinterpret_cast<const model::BlockQ4_K*>(blk);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      k->u[64 * c + l] = b->qs[32 * c + l] & 0xF;
      k->u[64 * c + 32 + l] = b->qs[32 * c + l] >> 4;
    }
  unpack_scales_k4(b->scales, k);
  k->a = fp16_to_fp32(b->d);
  k->b = fp16_to_fp32(b->dmin);
}

inline void unpack_q5_k(const uint8_t* blk, KUnpacked* k) {
  const auto* b = reinterpret_cast<const model::BlockQ5_K*>(blk);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      k->u[64 * c + l] =
          static_cast<uint8_t>((b->qs[32 * c + l] & 0xF) | (((b->qh[l] >> (2 * c)) & 1) << 4));
      k->u[64 * c + 32 + l] =
          static_cast<uint8_t>((b->qs[32 * c + l] >> 4) | (((b->qh[l] >> (2 * c + 1)) & 1) << 4));
    }
  unpack_scales_k4(b->scales, k);
  k->a = fp16_to_fp32(b->d);
  k->b = fp16_to_fp32(b->dmin);
}

inline void unpack_q6_k(const uint8_t* blk, KUnpacked* k) {
  const auto* b = reinterpret_cast<const model::BlockQ6_K*>(blk);
  for (int n = 0; n < 2; ++n)
    for (int l = 0; l < 32; ++l) {
      const uint8_t l0 = b->ql[64 * n + l], l1 = b->ql[64 * n + 32 + l], h = b->qh[32 * n + l];
      k->u[128 * n + l] = static_cast<uint8_t>((l0 & 0xF) | ((h & 3) << 4));
      k->u[128 * n + 32 + l] = static_cast<uint8_t>((l1 & 0xF) | (((h >> 2) & 3) << 4));
      k->u[128 * n + 64 + l] = static_cast<uint8_t>((l0 >> 4) | (((h >> 4) & 3) << 4));
      k->u[128 * n + 96 + l] = static_cast<uint8_t>((l1 >> 4) | (((h >> 6) & 3) << 4));
    }
  int32_t s[16];
  for (int g = 0; g < 16; ++g) {
    s[g] = b->scales[g];
    k->t[g] = 32 * s[g];
  }
  k_fill_lanes(s, k);
  k->a = k->b = fp16_to_fp32(b->d);
}

// kSameAB: A == B (Q3_K, Q6_K), so the min term folds into the exact integer sum.
template <int kBlockBytes, bool kSameAB, void (*kUnpack)(const uint8_t*, KUnpacked*)>
void matmul_k(const MatmulArgs& a, int64_t r0, int64_t r1, int t0, int t1) {
  constexpr int kTile = 8;
  const Q8KLayout lay = q8k_layout(a.n_in);
  KUnpacked k;
  for (int tb = t0; tb < t1; tb += kTile) {
    const int nt = t1 - tb < kTile ? t1 - tb : kTile;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wrow = a.w + static_cast<size_t>(r) * a.w_stride;
      float acc[kTile] = {};
      for (int64_t sb = 0; sb < lay.nsb; ++sb) {
        kUnpack(wrow + sb * kBlockBytes, &k);
        for (int t = 0; t < nt; ++t) {
          const uint8_t* act = a.act + static_cast<size_t>(tb + t) * a.act_stride;
          const auto* xq = reinterpret_cast<const int8_t*>(act + lay.qs_off) + sb * 256;
          const float dx = reinterpret_cast<const float*>(act + lay.d_off)[sb];
          const int16_t* bs = reinterpret_cast<const int16_t*>(act + lay.bsum_off) + sb * 16;
          const int32_t isum = ksum(k.u, k.s_lanes, xq);
          int32_t imin = 0;
          for (int g = 0; g < 16; ++g) imin += k.t[g] * bs[g];
          const float da = k.a * dx;
          if constexpr (kSameAB) {
            acc[t] = __builtin_fmaf(da, static_cast<float>(isum - imin), acc[t]);
          } else {
            acc[t] = __builtin_fmaf(da, static_cast<float>(isum), acc[t]);
            acc[t] = __builtin_fmaf(-(k.b * dx), static_cast<float>(imin), acc[t]);
          }
        }
      }
      for (int t = 0; t < nt; ++t) a.y[static_cast<size_t>(tb + t) * a.ldy + r] = acc[t];
    }
  }
}

// ---- float-weight matmul (F32, F16, BF16) ------------------------------------------------------

struct WF32 {
  static typename V::T load(const uint8_t* p) { return V::load(reinterpret_cast<const float*>(p)); }
  static float at(const uint8_t* p, int64_t i) { return reinterpret_cast<const float*>(p)[i]; }
  static constexpr int kBytes = 4;
};
struct WF16 {
  static typename V::T load(const uint8_t* p) {
    return V::load_f16(reinterpret_cast<const uint16_t*>(p));
  }
  static float at(const uint8_t* p, int64_t i) {
    return fp16_to_fp32(reinterpret_cast<const uint16_t*>(p)[i]);
  }
  static constexpr int kBytes = 2;
};
struct WBF16 {
  static typename V::T load(const uint8_t* p) {
    return V::load_bf16(reinterpret_cast<const uint16_t*>(p));
  }
  static float at(const uint8_t* p, int64_t i) {
    return bf16_to_fp32(reinterpret_cast<const uint16_t*>(p)[i]);
  }
  static constexpr int kBytes = 2;
};

template <class WT>
void matmul_float(const MatmulArgs& a, int64_t r0, int64_t r1, int t0, int t1) {
  constexpr int kTile = 4;
  const int64_t n = a.n_in, nv = n / V::W * V::W;
  for (int tb = t0; tb < t1; tb += kTile) {
    const int nt = t1 - tb < kTile ? t1 - tb : kTile;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wrow = a.w + static_cast<size_t>(r) * a.w_stride;
      typename V::T acc[kTile];
      for (int t = 0; t < kTile; ++t) acc[t] = V::zero();
      for (int64_t i = 0; i < nv; i += V::W) {
        const typename V::T w = WT::load(wrow + i * WT::kBytes);
        for (int t = 0; t < nt; ++t)
          acc[t] = V::fma(w, V::load(a.x + static_cast<size_t>(tb + t) * a.ldx + i), acc[t]);
      }
      for (int t = 0; t < nt; ++t) {
        const float* xt = a.x + static_cast<size_t>(tb + t) * a.ldx;
        float s = V::reduce_add(acc[t]);
        for (int64_t i = nv; i < n; ++i) s = __builtin_fmaf(WT::at(wrow, i), xt[i], s);
        a.y[static_cast<size_t>(tb + t) * a.ldy + r] = s;
      }
    }
  }
}

// ---- elementwise ops ---------------------------------------------------------------------------

void k_rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
  const int64_t nv = n / V::W * V::W;
  typename V::T acc = V::zero();
  for (int64_t i = 0; i < nv; i += V::W) {
    const typename V::T v = V::load(x + i);
    acc = V::fma(v, v, acc);
  }
  float ss = V::reduce_add(acc);
  for (int64_t i = nv; i < n; ++i) ss = __builtin_fmaf(x[i], x[i], ss);
  const float scale = 1.0f / __builtin_sqrtf(ss / static_cast<float>(n) + eps);
  const typename V::T vs = V::set1(scale);
  for (int64_t i = 0; i < nv; i += V::W)
    V::store(y + i, V::mul(V::mul(V::load(x + i), vs), V::load(w + i)));
  for (int64_t i = nv; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void k_silu_mul(const float* gate, const float* up, float* y, int64_t n) {
  const int64_t nv = n / V::W * V::W;
  const typename V::T one = V::set1(1.0f);
  for (int64_t i = 0; i < nv; i += V::W) {
    const typename V::T g = V::load(gate + i);
    const typename V::T e = V::exp(V::sub(V::zero(), g));
    V::store(y + i, V::mul(V::div(g, V::add(one, e)), V::load(up + i)));
  }
  for (int64_t i = nv; i < n; ++i) {
    const float g = gate[i];
    y[i] = g / (1.0f + exp_poly_scalar(-g)) * up[i];
  }
}

void k_softmax(float* x, int64_t n) {
  if (n <= 0) return;
  const int64_t nv = n / V::W * V::W;
  float mx = x[0];
  for (int64_t i = 0; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  const typename V::T vm = V::set1(mx);
  typename V::T acc = V::zero();
  for (int64_t i = 0; i < nv; i += V::W) {
    const typename V::T e = V::exp(V::sub(V::load(x + i), vm));
    V::store(x + i, e);
    acc = V::add(acc, e);
  }
  float sum = V::reduce_add(acc);
  for (int64_t i = nv; i < n; ++i) {
    x[i] = exp_poly_scalar(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  const typename V::T vi = V::set1(inv);
  for (int64_t i = 0; i < nv; i += V::W) V::store(x + i, V::mul(V::load(x + i), vi));
  for (int64_t i = nv; i < n; ++i) x[i] *= inv;
}

void k_add(const float* a, const float* b, float* y, int64_t n) {
  const int64_t nv = n / V::W * V::W;
  for (int64_t i = 0; i < nv; i += V::W) V::store(y + i, V::add(V::load(a + i), V::load(b + i)));
  for (int64_t i = nv; i < n; ++i) y[i] = a[i] + b[i];
}

void k_f32_to_f16(const float* x, uint16_t* y, int64_t n) {
  const int64_t nv = n / V::W * V::W;
  for (int64_t i = 0; i < nv; i += V::W) V::store_f16(y + i, V::load(x + i));
  for (int64_t i = nv; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

void k_f32_to_bf16(const float* x, uint16_t* y, int64_t n) {
  const int64_t nv = n / V::W * V::W;
  for (int64_t i = 0; i < nv; i += V::W) V::store_bf16(y + i, V::load(x + i));
  for (int64_t i = nv; i < n; ++i) y[i] = fp32_to_bf16(x[i]);
}

// ---- RoPE
// ----------------------------------------------------------------------------------------

void k_rope_apply(const RopeApplyArgs& a) {
  const int half = a.rope_dim / 2;
  const int64_t nv = half / V::W * V::W;
  for (int t = 0; t < a.n_tokens; ++t) {
    const float* cs = a.cos_sin + static_cast<size_t>(t) * a.rope_dim;
    const float* sn = cs + half;
    for (int h = 0; h < a.n_heads; ++h) {
      float* x =
          a.x + static_cast<size_t>(t) * a.token_stride + static_cast<size_t>(h) * a.head_dim;
      if (a.neox) {
        int64_t i = 0;
        for (; i < nv; i += V::W) {
          const typename V::T x0 = V::load(x + i), x1 = V::load(x + half + i);
          const typename V::T c = V::load(cs + i), s = V::load(sn + i);
          V::store(x + i, V::sub(V::mul(x0, c), V::mul(x1, s)));
          V::store(x + half + i, V::add(V::mul(x0, s), V::mul(x1, c)));
        }
        for (; i < half; ++i) {
          const float x0 = x[i], x1 = x[i + half];
          x[i] = x0 * cs[i] - x1 * sn[i];
          x[i + half] = x0 * sn[i] + x1 * cs[i];
        }
      } else {
        for (int i = 0; i < half; ++i) {
          const float x0 = x[2 * i], x1 = x[2 * i + 1];
          x[2 * i] = x0 * cs[i] - x1 * sn[i];
          x[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
        }
      }
    }
  }
}

// ---- attention
// -----------------------------------------------------------------------------------

struct KvF32 {
  using Elem = float;
  static typename V::T load(const Elem* p) { return V::load(p); }
};
struct KvF16 {
  using Elem = uint16_t;
  static typename V::T load(const Elem* p) { return V::load_f16(p); }
};
struct KvBF16 {
  using Elem = uint16_t;
  static typename V::T load(const Elem* p) { return V::load_bf16(p); }
};

// Online-softmax update of one query row with keys [0, nk) of a key block. kp/vp point at each
// key's and value's head_dim floats. The arithmetic for a row depends only on the row, nk and
// the keys (never on other rows), and keys are grouped by their absolute index. NV > 0: head_dim
// is NV vectors, known at compile time (q and the output accumulators live in registers);
// NV == 0: any multiple of the vector width, same arithmetic in the same order.
template <int NV>
void attn_row_block(const float* qs, const float* const* kp, const float* const* vp, int nk, int hd,
                    float* sbuf, float* m, float* l, float* o) {
  using T = typename V::T;
  constexpr int W = V::W;
  constexpr int kQ = NV > 0 ? NV : 1;
  const int nvec = NV > 0 ? NV : hd / W;
  T q[kQ];
  if constexpr (NV > 0)
    for (int c = 0; c < NV; ++c) q[c] = V::load(qs + c * W);
  // Scores, W keys at a time.
  for (int j0 = 0; j0 < nk; j0 += W) {
    T acc[W];
    for (int jj = 0; jj < W; ++jj) {
      const int j = j0 + jj;
      if (j >= nk) {
        acc[jj] = V::zero();
        continue;
      }
      if constexpr (NV > 0) {
        T s = V::mul(q[0], V::load(kp[j]));
        for (int c = 1; c < NV; ++c) s = V::fma(q[c], V::load(kp[j] + c * W), s);
        acc[jj] = s;
      } else {
        T s = V::mul(V::load(qs), V::load(kp[j]));
        for (int c = 1; c < nvec; ++c) s = V::fma(V::load(qs + c * W), V::load(kp[j] + c * W), s);
        acc[jj] = s;
      }
    }
    V::store(sbuf + j0, V::hsum_w(acc));
  }
  // Block max (exact in any order); keys past nk in the last group of W do not count.
  const int nk_pad = (nk + W - 1) / W * W;
  for (int j = nk; j < nk_pad; ++j) sbuf[j] = -__builtin_inff();
  T vmax = V::load(sbuf);
  for (int j0 = W; j0 < nk_pad; j0 += W) vmax = V::max(vmax, V::load(sbuf + j0));
  const float mb = V::reduce_max(vmax);
  const float m_new = *m > mb ? *m : mb;
  const float alpha = *l == 0.0f ? 0.0f : exp_poly_scalar(*m - m_new);
  // Probabilities; keys past nk are exactly 0.
  const T vmn = V::set1(m_new);
  T psum = V::zero();
  for (int j0 = 0; j0 < nk_pad; j0 += W) {
    T p = V::exp(V::sub(V::load(sbuf + j0), vmn));
    V::store(sbuf + j0, p);
    if (j0 + W > nk) {
      for (int j = nk; j < j0 + W; ++j) sbuf[j] = 0.0f;
      p = V::load(sbuf + j0);
    }
    psum = V::add(psum, p);
  }
  *l = *l * alpha + V::reduce_add(psum);
  *m = m_new;
  // O = O * alpha + sum_j p_j v_j, with even and odd keys in separate chains per vector.
  const T va = V::set1(alpha);
  if constexpr (NV > 0) {
    T ae[NV], ao[NV];
    for (int c = 0; c < NV; ++c) ae[c] = ao[c] = V::zero();
    int j = 0;
    for (; j + 1 < nk; j += 2) {
      const T pe = V::set1(sbuf[j]), po = V::set1(sbuf[j + 1]);
      const float* ve = vp[j];
      const float* vo = vp[j + 1];
      for (int c = 0; c < NV; ++c) {
        ae[c] = V::fma(pe, V::load(ve + c * W), ae[c]);
        ao[c] = V::fma(po, V::load(vo + c * W), ao[c]);
      }
    }
    if (j < nk) {
      const T pe = V::set1(sbuf[j]);
      for (int c = 0; c < NV; ++c) ae[c] = V::fma(pe, V::load(vp[j] + c * W), ae[c]);
    }
    for (int c = 0; c < NV; ++c)
      V::store(o + c * W, V::fma(V::load(o + c * W), va, V::add(ae[c], ao[c])));
  } else {
    for (int c = 0; c < nvec; ++c) {
      T ae = V::zero(), ao = V::zero();
      int j = 0;
      for (; j + 1 < nk; j += 2) {
        ae = V::fma(V::set1(sbuf[j]), V::load(vp[j] + c * W), ae);
        ao = V::fma(V::set1(sbuf[j + 1]), V::load(vp[j + 1] + c * W), ao);
      }
      if (j < nk) ae = V::fma(V::set1(sbuf[j]), V::load(vp[j] + c * W), ae);
      V::store(o + c * W, V::fma(V::load(o + c * W), va, V::add(ae, ao)));
    }
  }
}

// The row kernel for a head_dim: unrolled for 4 and 8 vectors (q and the output accumulators
// in registers), generic otherwise. It depends only on head_dim, so every row of every call
// uses the same one and results stay invariant.
using AttnRowFn = void (*)(const float*, const float* const*, const float* const*, int, int, float*,
                           float*, float*, float*);
inline AttnRowFn attn_row_fn(int hd) {
  if (V::W >= 8 && hd == 4 * V::W) return &attn_row_block<4>;
  if (hd == 8 * V::W) return &attn_row_block<8>;
  return &attn_row_block<0>;
}

// Keys and values are converted to f32 once per block (exactly, so results do not depend on
// it) and shared by every query row of the tile.
template <class KV>
void attention_tile_impl(const AttentionTile& t) {
  using Elem = typename KV::Elem;
  constexpr bool kF32 = sizeof(Elem) == 4;
  const int hd = t.head_dim, group = t.n_head / t.n_head_kv, ng = t.head_end - t.head_begin;
  const size_t kv_row = static_cast<size_t>(t.n_head_kv) * hd;  // elements per slot
  const auto* kpool = static_cast<const Elem*>(t.k);
  const auto* vpool = static_cast<const Elem*>(t.v);
  // Scratch (attention_scratch_floats): per-row state for up to kAttnQueryTile * group rows,
  // then scores, then the converted key and value blocks.
  const size_t max_rows = static_cast<size_t>(kAttnQueryTile) * group;
  float* qs = t.scratch;               // [rows][hd]
  float* o = qs + max_rows * hd;       // [rows][hd]
  float* ml = o + max_rows * hd;       // [rows][2]
  float* sbuf = ml + max_rows * 2;     // [kAttnKeyBlock]
  float* kbuf = sbuf + kAttnKeyBlock;  // [kAttnKeyBlock][hd]
  float* vbuf = kbuf + static_cast<size_t>(kAttnKeyBlock) * hd;
  const float* kp[kAttnKeyBlock];
  const float* vp[kAttnKeyBlock];
  const int nvec = hd / V::W;
  const AttnRowFn row_fn = attn_row_fn(hd);

  for (int q0 = t.q_begin; q0 < t.q_end; q0 += kAttnQueryTile) {
    const int nq = t.q_end - q0 < kAttnQueryTile ? t.q_end - q0 : kAttnQueryTile;
    int max_pos = 0;
    for (int i = 0; i < nq; ++i)
      max_pos = t.positions[q0 + i] > max_pos ? t.positions[q0 + i] : max_pos;
    const int rows = nq * ng;
    for (int r = 0; r < rows; ++r) {
      const int i = q0 + r / ng, h = t.kv_head * group + t.head_begin + r % ng;
      const float* q = t.q + (static_cast<size_t>(i) * t.n_head + h) * hd;
      for (int d = 0; d < hd; ++d) {
        qs[r * hd + d] = q[d] * t.scale;
        o[r * hd + d] = 0.0f;
      }
      ml[2 * r] = -__builtin_inff();
      ml[2 * r + 1] = 0.0f;
    }
    for (int kb = 0; kb <= max_pos; kb += kAttnKeyBlock) {
      const int nkb = max_pos + 1 - kb < kAttnKeyBlock ? max_pos + 1 - kb : kAttnKeyBlock;
      for (int j = 0; j < nkb; ++j) {
        const size_t slot = static_cast<size_t>(t.slots[kb + j]);
        const Elem* ks = kpool + slot * kv_row + static_cast<size_t>(t.kv_head) * hd;
        const Elem* vs = vpool + slot * kv_row + static_cast<size_t>(t.kv_head) * hd;
        if constexpr (kF32) {
          kp[j] = reinterpret_cast<const float*>(ks);
          vp[j] = reinterpret_cast<const float*>(vs);
        } else {
          float* kd = kbuf + static_cast<size_t>(j) * hd;
          float* vd = vbuf + static_cast<size_t>(j) * hd;
          for (int c = 0; c < nvec; ++c) {
            V::store(kd + c * V::W, KV::load(ks + c * V::W));
            V::store(vd + c * V::W, KV::load(vs + c * V::W));
          }
          kp[j] = kd;
          vp[j] = vd;
        }
      }
      for (int r = 0; r < rows; ++r) {
        const int pos = t.positions[q0 + r / ng];
        if (pos < kb) continue;
        const int nk = pos + 1 - kb < nkb ? pos + 1 - kb : nkb;
        row_fn(qs + r * hd, kp, vp, nk, hd, sbuf, &ml[2 * r], &ml[2 * r + 1], o + r * hd);
      }
    }
    for (int r = 0; r < rows; ++r) {
      const int i = q0 + r / ng, h = t.kv_head * group + t.head_begin + r % ng;
      float* out = t.out + (static_cast<size_t>(i) * t.n_head + h) * hd;
      const float inv = 1.0f / ml[2 * r + 1];
      for (int d = 0; d < hd; ++d) out[d] = o[r * hd + d] * inv;
    }
  }
}

void k_attention(const AttentionTile& t) {
  switch (t.kv_type) {
    case model::GgmlType::kF32:
      return attention_tile_impl<KvF32>(t);
    case model::GgmlType::kBF16:
      return attention_tile_impl<KvBF16>(t);
    default:
      return attention_tile_impl<KvF16>(t);
  }
}

// Fills the entries every ISA implements with the generic code above.
inline void fill_generic(KernelTable* kt) {
  using model::GgmlType;
  auto set = [&](GgmlType type, ActKind kind, MatmulKernel fn) {
    kt->act_kind[static_cast<int>(type)] = kind;
    kt->matmul[static_cast<int>(type)] = fn;
  };
  set(GgmlType::kF32, ActKind::kF32, &matmul_float<WF32>);
  set(GgmlType::kF16, ActKind::kF32, &matmul_float<WF16>);
  set(GgmlType::kBF16, ActKind::kF32, &matmul_float<WBF16>);
  set(GgmlType::kQ2_K, ActKind::kQ8K, &matmul_k<84, false, unpack_q2_k>);
  set(GgmlType::kQ3_K, ActKind::kQ8K, &matmul_k<110, true, unpack_q3_k>);
  set(GgmlType::kQ4_K, ActKind::kQ8K, &matmul_k<144, false, unpack_q4_k>);
  set(GgmlType::kQ5_K, ActKind::kQ8K, &matmul_k<176, false, unpack_q5_k>);
  set(GgmlType::kQ6_K, ActKind::kQ8K, &matmul_k<210, true, unpack_q6_k>);
  kt->quantize_q8k = &generic_quantize_q8k;
  kt->quantize_q8blk = &generic_quantize_q8blk;
  kt->matmul_panel[static_cast<int>(GgmlType::kQ4_1)] = &matmul_panel_ref<true>;
  kt->matmul_panel[static_cast<int>(GgmlType::kQ8_0)] = &matmul_panel_ref<false>;
  kt->rms_norm = &k_rms_norm;
  kt->silu_mul = &k_silu_mul;
  kt->softmax = &k_softmax;
  kt->add = &k_add;
  kt->rope_apply = &k_rope_apply;
  kt->f32_to_f16 = &k_f32_to_f16;
  kt->f32_to_bf16 = &k_f32_to_bf16;
  kt->attention_head_dim_multiple = V::W;
  kt->attention = &k_attention;
}
