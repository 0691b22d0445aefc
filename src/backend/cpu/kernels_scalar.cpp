// Portable scalar kernels: the reference every SIMD variant is tested against, and the path on
// CPUs (or architectures) without AVX2.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "backend/cpu/kernel_table.h"
#include "model/quant.h"
#include "support/fp16.h"

namespace sgl::backend::cpu::detail {
namespace {

// A one-lane "vector" so the generic code runs unchanged.
struct V {
  using T = float;
  static constexpr int W = 1;
  static T zero() { return 0.0f; }
  static T set1(float v) { return v; }
  static T load(const float* p) { return *p; }
  static void store(float* p, T v) { *p = v; }
  static T load_f16(const uint16_t* p) { return fp16_to_fp32(*p); }
  static T load_bf16(const uint16_t* p) { return bf16_to_fp32(*p); }
  static void store_f16(uint16_t* p, T v) { *p = fp32_to_fp16(v); }
  static void store_bf16(uint16_t* p, T v) { *p = fp32_to_bf16(v); }
  static T add(T a, T b) { return a + b; }
  static T sub(T a, T b) { return a - b; }
  static T mul(T a, T b) { return a * b; }
  static T div(T a, T b) { return a / b; }
  static T fma(T a, T b, T c) { return __builtin_fmaf(a, b, c); }
  static T max(T a, T b) { return a > b ? a : b; }
  static float reduce_add(T v) { return v; }
  static float reduce_max(T v) { return v; }
  static T exp(T x) { return exp_poly_scalar(x); }
  static T hsum_w(const T* acc) { return acc[0]; }
};

int32_t ksum(const uint8_t* u, const int32_t* s_lanes, const int8_t* x) {
  int32_t total = 0;
  for (int g = 0; g < 16; ++g) {
    int32_t d = 0;
    for (int i = 16 * g; i < 16 * g + 16; ++i) d += static_cast<int32_t>(u[i]) * x[i];
    total += d * s_lanes[4 * g];
  }
  return total;
}

#include "backend/cpu/kernels_generic.h"

// ---- 32-block formats
// ----------------------------------------------------------------------------

// Where the fields of each 32-block format live, and how a stored q maps to the integer used in
// the dot product: signed formats use q - kOffset; formats with a min use q itself and add
// m * d_x * sum(x_q) in float.
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

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

template <class BT>
void decode_block(const uint8_t* blk, int8_t* w) {
  if constexpr (BT::kBits == 8) {
    std::memcpy(w, blk + BT::kQs, 32);
  } else {
    uint32_t qh = 0;
    if constexpr (BT::kBits == 5) std::memcpy(&qh, blk + BT::kQh, 4);
    for (int j = 0; j < 16; ++j) {
      const uint8_t q = blk[BT::kQs + j];
      int lo = q & 0xF, hi = q >> 4;
      if constexpr (BT::kBits == 5) {
        lo |= static_cast<int>((qh >> j) & 1) << 4;
        hi |= static_cast<int>((qh >> (j + 16)) & 1) << 4;
      }
      w[j] = static_cast<int8_t>(lo - BT::kOffset);
      w[j + 16] = static_cast<int8_t>(hi - BT::kOffset);
    }
  }
}

template <class BT>
void matmul_q32(const MatmulArgs& a, int64_t r0, int64_t r1, int t0, int t1) {
  constexpr int kTile = 4;
  const Q8x32Layout lay = q8x32_layout(a.n_in);
  alignas(64) int8_t w[32];
  for (int tb = t0; tb < t1; tb += kTile) {
    const int nt = t1 - tb < kTile ? t1 - tb : kTile;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wrow = a.w + static_cast<size_t>(r) * a.w_stride;
      float acc[kTile] = {}, accm[kTile] = {};
      for (int64_t b = 0; b < lay.nb; ++b) {
        const uint8_t* blk = wrow + b * BT::kBytes;
        decode_block<BT>(blk, w);
        const float dw = fp16_to_fp32(load_u16(blk));
        for (int t = 0; t < nt; ++t) {
          const uint8_t* act = a.act + static_cast<size_t>(tb + t) * a.act_stride;
          const auto* xq = reinterpret_cast<const int8_t*>(act + lay.qs_off) + b * 32;
          int32_t isum = 0;
          for (int j = 0; j < 32; ++j) isum += static_cast<int32_t>(w[j]) * xq[j];
          const float dx = reinterpret_cast<const float*>(act + lay.dxb_off)[4 * b];
          acc[t] = __builtin_fmaf(static_cast<float>(isum), dw * dx, acc[t]);
          if constexpr (BT::kM >= 0) {
            const float sx = reinterpret_cast<const float*>(act + lay.sx_off)[b];
            accm[t] = __builtin_fmaf(fp16_to_fp32(load_u16(blk + BT::kM)), sx, accm[t]);
          }
        }
      }
      for (int t = 0; t < nt; ++t) a.y[static_cast<size_t>(tb + t) * a.ldy + r] = acc[t] + accm[t];
    }
  }
}

void quantize_q8x32(const float* x, int64_t n_in, bool biased, uint8_t* out) {
  generic_quantize_q8x32(x, n_in, biased, 1, out);
}

KernelTable make_table() {
  using model::GgmlType;
  KernelTable kt;
  kt.isa = Isa::kScalar;
  kt.q8x32_group = 1;
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

}  // namespace

const KernelTable& scalar_kernels() {
  static const KernelTable table = make_table();
  return table;
}

}  // namespace sgl::backend::cpu::detail
