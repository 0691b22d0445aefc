// Internal: the table of kernel entry points that each ISA variant provides, the activation
// formats the quantized matmuls consume, and their memory layouts. Not part of the public API;
// matmul.h, ops.h and attention.h are.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/cpu/isa.h"
#include "model/ggml_type.h"

namespace sgl::backend::cpu::detail {

// How activations are prepared for a weight type on a given ISA.
enum class ActKind : uint8_t {
  kF32,          // raw f32 rows (F32/F16/BF16 weights and the dequantize fallback)
  kQ8x32,        // per 32 values: int8 q in [-127, 127], d = amax / 127
  kQ8x32Biased,  // the same with q stored as q + 128 (uint8), for vpdpbusd with signed weights
  kQ8K,          // per 256 values: int8 q, f32 d, int32 sums of each 16
  kQ8Blk,        // per 32 values, llama.cpp's Q8_1 block: int8 q, d and d * sum(q) rounded to
                 // f16 (for the panel kernels)
};
inline constexpr int kNumActKinds = 5;

// Layout of one token row in kQ8x32 / kQ8x32Biased (nb = n_in / 32 blocks, padded to a multiple
// of 4 with zero blocks):
//   qs  [nb_pad * 32] bytes: blocks in groups of `group` (1, 2 or 4): within a group, the first
//       16 values of each block (block order), then the last 16 of each block. group 1 is the
//       natural order. This matches how SIMD kernels unpack nibble-packed weight blocks.
//   dxb [nb_pad * 4] f32: each block's d repeated 4 times (one per int32 lane of a block).
//   sx  [nb_pad] f32: d * sum(q) (sum of the unbiased q).
struct Q8x32Layout {
  int64_t nb = 0, nb_pad = 0;
  size_t qs_off = 0, dxb_off = 0, sx_off = 0, row_bytes = 0;
};
inline Q8x32Layout q8x32_layout(int64_t n_in) {
  Q8x32Layout l;
  l.nb = n_in / 32;
  l.nb_pad = (l.nb + 3) / 4 * 4;
  l.qs_off = 0;
  l.dxb_off = static_cast<size_t>(l.nb_pad) * 32;
  l.sx_off = l.dxb_off + static_cast<size_t>(l.nb_pad) * 16;
  l.row_bytes = (l.sx_off + static_cast<size_t>(l.nb_pad) * 4 + 63) / 64 * 64;
  return l;
}

// Layout of one token row in kQ8K (nsb = n_in / 256): qs [nsb * 256] int8, d [nsb] f32,
// bsum [nsb * 16] int16 (sums of each 16 q; |sum| <= 2032).
struct Q8KLayout {
  int64_t nsb = 0;
  size_t qs_off = 0, d_off = 0, bsum_off = 0, row_bytes = 0;
};
inline Q8KLayout q8k_layout(int64_t n_in) {
  Q8KLayout l;
  l.nsb = n_in / 256;
  l.qs_off = 0;
  l.d_off = static_cast<size_t>(l.nsb) * 256;
  l.bsum_off = l.d_off + static_cast<size_t>(l.nsb) * 4;
  l.row_bytes = (l.bsum_off + static_cast<size_t>(l.nsb) * 32 + 63) / 64 * 64;
  return l;
}

// Layout of one token row in kQ8Blk (nb = n_in / 32 blocks). Block b of x is quantized exactly as
// llama.cpp's quantize_row_q8_1 / quantize_row_q8_0 do on x86: d = amax / 127 (f32),
// q = round-to-nearest-even(x * (127 / amax)), then d is stored rounded to f16, and s = d * sum(q)
// (f32 d) rounded to f16. Stored widened to f32 so kernels broadcast them directly.
//   qs [nb * 32] int8, natural order;
//   d  [nb] f32 (an f16 value); s [nb] f32 (an f16 value); c [nb] int32 = -128 * sum(q).
struct Q8BlkLayout {
  int64_t nb = 0;
  size_t qs_off = 0, d_off = 0, s_off = 0, c_off = 0, row_bytes = 0;
};
inline Q8BlkLayout q8blk_layout(int64_t n_in) {
  Q8BlkLayout l;
  l.nb = n_in / 32;
  const size_t nb = static_cast<size_t>(l.nb);
  l.qs_off = 0;
  l.d_off = (nb * 32 + 63) / 64 * 64;
  l.s_off = l.d_off + nb * 4;
  l.c_off = l.s_off + nb * 4;
  l.row_bytes = (l.c_off + nb * 4 + 63) / 64 * 64;
  return l;
}

// The panel layout of weights repacked at load (WeightLayout::kPanels, matmul.h): rows in panels
// of kPanelRows; a panel holds, for each 32-block b of its rows, the rows' fp16 scales side by
// side, so one 16-lane vector op serves all 16 rows:
//   Q4_1: d [nb][16] f16, then m [nb][16] f16, then qs [nb][4 chunks][16 rows][4 bytes]: chunk c,
//         row r holds bytes 4c..4c+3 of the row's 16 nibble bytes (low nibbles: values 4c..4c+3,
//         high nibbles: values 16 + 4c..16 + 4c + 3).
//   Q8_0: d [nb][16] f16, then qs [nb][8 chunks][16 rows][4 bytes]: chunk c, row r holds values
//         4c..4c+3 of the row's block, each stored as q + 128 (uint8).
// A panel's size is rounded up to 64 bytes; rows past n_out in the last panel are zero (they add
// nothing and are never stored).
inline constexpr int kPanelRows = 16;
inline bool panel_type(model::GgmlType t) {
  return t == model::GgmlType::kQ4_1 || t == model::GgmlType::kQ8_0;
}
inline size_t panel_block_bytes(model::GgmlType t) {
  return t == model::GgmlType::kQ4_1 ? kPanelRows * 20 : kPanelRows * 34;
}
inline size_t panel_bytes(model::GgmlType t, int64_t n_in) {
  return (static_cast<size_t>(n_in / 32) * panel_block_bytes(t) + 63) / 64 * 64;
}

// One matmul job: y[t][r] = dot(weight row r, activation row t).
struct MatmulArgs {
  const uint8_t* w = nullptr;  // weight row 0
  size_t w_stride = 0;         // bytes between weight rows
  int64_t n_in = 0;
  const float* x = nullptr;  // [n_tokens, ldx] f32 activations (kF32)
  size_t ldx = 0;
  const uint8_t* act = nullptr;  // quantized activations, act_stride bytes per token
  size_t act_stride = 0;
  float* y = nullptr;  // [n_tokens, ldy]
  size_t ldy = 0;
};
// Computes rows [r0, r1) for tokens [t0, t1). Each y element depends only on its weight row and
// activation row (never on the ranges), which makes matmul batch invariant.
using MatmulKernel = void (*)(const MatmulArgs& a, int64_t r0, int64_t r1, int t0, int t1);

// Attention over one KV head for a range of query tokens (see attention.h for the contract).
struct AttentionTile {
  const float* q = nullptr;  // [n_tokens, n_head, head_dim]
  const int32_t* positions = nullptr;
  const void* k = nullptr;  // pool: [slot][n_head_kv][head_dim]
  const void* v = nullptr;
  model::GgmlType kv_type = model::GgmlType::kF16;
  const int32_t* slots = nullptr;
  int n_head = 0, n_head_kv = 0, head_dim = 0;
  float scale = 0.0f;
  float* out = nullptr;  // [n_tokens, n_head, head_dim]
  int kv_head = 0;
  int head_begin = 0, head_end = 0;  // query heads [head_begin, head_end) of this KV head's group
  int q_begin = 0, q_end = 0;
  float* scratch = nullptr;  // attention_scratch_floats(head_dim, group) floats
};
// Key block of the online softmax: every query's keys are processed in blocks aligned at
// multiples of this, whatever else is in the batch. Small enough that a block of keys and values
// converted to f32 stays in L1 next to the query rows.
inline constexpr int kAttnKeyBlock = 32;
// Queries of one KV head processed together (they share each block of keys while it is hot).
inline constexpr int kAttnQueryTile = 8;
inline size_t attention_scratch_floats(int head_dim, int group) {
  // Per row: scaled q, output accumulator, max and sum; then one block of scores, and one block
  // of keys and of values converted to f32.
  return static_cast<size_t>(kAttnQueryTile) * group * (2 * head_dim + 2) + kAttnKeyBlock +
         2 * static_cast<size_t>(kAttnKeyBlock) * head_dim + 64;
}

struct RopeApplyArgs {
  float* x = nullptr;  // [n_tokens, n_heads, head_dim], row stride `token_stride` floats
  int64_t token_stride = 0;
  int n_tokens = 0, n_heads = 0, head_dim = 0, rope_dim = 0;
  bool neox = false;
  const float* cos_sin = nullptr;  // [n_tokens][rope_dim / 2][2]: cos, sin
};

inline constexpr int kNumGgmlTypeIds = 32;

struct KernelTable {
  Isa isa = Isa::kScalar;
  int q8x32_group = 1;
  // Activation kind per ggml type id (for types with a kernel in `matmul`).
  ActKind act_kind[kNumGgmlTypeIds] = {};
  // Matmul kernel per ggml type id; nullptr = no direct kernel (dequantize fallback).
  MatmulKernel matmul[kNumGgmlTypeIds] = {};
  // Kernel for weights in the panel layout (activations kQ8Blk; r0 a multiple of kPanelRows,
  // w_stride the panel size), for panel_type() types; every table has one. True iff it is this
  // ISA's own (worth repacking for) rather than the portable reference.
  MatmulKernel matmul_panel[kNumGgmlTypeIds] = {};
  bool native_panels = false;

  // Quantizes one row of n_in floats into the layout above (n_in % 32 == 0, or % 256 for Q8K).
  void (*quantize_q8x32)(const float* x, int64_t n_in, bool biased, uint8_t* out) = nullptr;
  void (*quantize_q8k)(const float* x, int64_t n_in, uint8_t* out) = nullptr;
  void (*quantize_q8blk)(const float* x, int64_t n_in, uint8_t* out) = nullptr;

  void (*rms_norm)(const float* x, const float* w, float* y, int64_t n, float eps) = nullptr;
  void (*silu_mul)(const float* gate, const float* up, float* y, int64_t n) = nullptr;
  void (*softmax)(float* x, int64_t n) = nullptr;
  void (*add)(const float* a, const float* b, float* y, int64_t n) = nullptr;
  void (*rope_apply)(const RopeApplyArgs& a) = nullptr;
  void (*f32_to_f16)(const float* x, uint16_t* y, int64_t n) = nullptr;
  void (*f32_to_bf16)(const float* x, uint16_t* y, int64_t n) = nullptr;
  // REQUIRES: head_dim % attention_head_dim_multiple == 0 (else use the scalar table's).
  int attention_head_dim_multiple = 1;
  void (*attention)(const AttentionTile& t) = nullptr;
};

// exp(x) by range reduction and a degree-6 polynomial (relative error ~2 ulp); x is clamped to
// the finite float range. Vector versions in the V structs use the same constants.
inline constexpr float kExpHi = 88.0f;  // keeps 2^n finite (n <= 127)
inline constexpr float kExpLo = -87.3365447504019f;
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kExpC1 = 0.693359375f;
inline constexpr float kExpC2 = -2.12194440e-4f;
inline constexpr float kExpP0 = 1.9875691500e-4f;
inline constexpr float kExpP1 = 1.3981999507e-3f;
inline constexpr float kExpP2 = 8.3334519073e-3f;
inline constexpr float kExpP3 = 4.1665795894e-2f;
inline constexpr float kExpP4 = 1.6666665459e-1f;
inline constexpr float kExpP5 = 5.0000001201e-1f;

inline float exp_poly_scalar(float x) {
  x = x > kExpHi ? kExpHi : x;
  x = x < kExpLo ? kExpLo : x;
  const float n = __builtin_nearbyintf(x * kLog2e);
  float r = x - n * kExpC1;
  r = r - n * kExpC2;
  float p = kExpP0;
  p = p * r + kExpP1;
  p = p * r + kExpP2;
  p = p * r + kExpP3;
  p = p * r + kExpP4;
  p = p * r + kExpP5;
  const float y = p * (r * r) + r + 1.0f;
  const int32_t e = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  __builtin_memcpy(&scale, &e, 4);
  return y * scale;
}

const KernelTable& scalar_kernels();
#if defined(__x86_64__)
const KernelTable& avx2_kernels();
const KernelTable& avx2_vnni_kernels();
const KernelTable& avx512_kernels();
#endif

// The table for current_isa().
const KernelTable& kernels();

}  // namespace sgl::backend::cpu::detail
