// Split-sequence causal GQA attention over slot lists (see kernels.h): one query token per block
// row, its KV head's query heads processed together, the key range split into chunks whose
// partial softmax states are merged by combine_kernel. Scores live in the log2 domain.
//
// Two kernels:
//  - decode_tc_kernel (head_dim 64/128/256): the bandwidth kernel. Each warp walks tiles of 16
//    keys; S = Q K^T and O += P V run on tensor cores (mma.sync m16n8k16, the KV head's <= 16
//    query heads as the M rows), so a tile costs one softmax update instead of per-key shuffles.
//    Each thread cp.asyncs exactly the 16-byte K/V chunks it later feeds to the mma (into its own
//    slice of a shared-memory ring, Stages tiles deep): no ldmatrix, no barriers in the loop, and
//    16-32 KB in flight per warp. The mma's reduction dimensions may be permuted freely, which is
//    what lets a thread's K fragment be one contiguous 16-byte load (the Q fragment follows the
//    same permutation); V fragments pair two keys per register (byte permutes of two loads).
//  - attention_kernel (every head_dim, the only one below 64): CUDA cores, head_dim/8 lanes per
//    key with one 16-byte load each, online softmax per key, states merged across the warp by
//    shuffles (q pre-scaled by scale * log2(e)).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <type_traits>

#include "backend/cuda/attention_tc_common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/kv_store.cuh"
#include "backend/cuda/pdl.cuh"

namespace sgl::backend::cuda {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kWarps = 4;
constexpr int kMinSplitKeys = 128;
// Upper bound of attention_fixed_splits: enough blocks to fill the chip at batch 1 (8 KV heads x
// 16), few enough that short contexts do not pay much for empty splits and the merge.
constexpr int kMaxFixedSplits = 16;

__device__ __forceinline__ void load8(const bf16* p, float* f) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 v = __bfloat1622float2(h[i]);
    f[2 * i] = v.x;
    f[2 * i + 1] = v.y;
  }
}
__device__ __forceinline__ void load8(const __half* p, float* f) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 v = __half22float2(h[i]);
    f[2 * i] = v.x;
    f[2 * i + 1] = v.y;
  }
}

// fp8: eight elements are 8 bytes.
template <typename KV>
__device__ __forceinline__ void load8_fp8(const KV* p, float* f) {
  const uint2 u = *reinterpret_cast<const uint2*>(p);
  uint32_t h[4];
  kv::fp8x4_to_f16x2x2<KV>(u.x, h[0], h[1]);
  kv::fp8x4_to_f16x2x2<KV>(u.y, h[2], h[3]);
#pragma unroll
  for (int i = 0; i < 4; ++i) kv::f16x2_to_float(h[i], f + 2 * i);
}
__device__ __forceinline__ void load8(const __nv_fp8_e4m3* p, float* f) { load8_fp8(p, f); }
__device__ __forceinline__ void load8(const __nv_fp8_e5m2* p, float* f) { load8_fp8(p, f); }

// Raw storage of eight K or V elements.
template <typename KV>
using Raw8 = std::conditional_t<sizeof(KV) == 1, uint2, uint4>;

// Merges softmax state (m2, l2, a2) into (m1, l1, a1).
__device__ __forceinline__ void merge_state(float& m1, float& l1, float* a1, float m2, float l2,
                                            const float* a2) {
  const float m = fmaxf(m1, m2);
  if (m == -INFINITY) return;
  const float c1 = m1 == -INFINITY ? 0.0f : exp2f(m1 - m);
  const float c2 = m2 == -INFINITY ? 0.0f : exp2f(m2 - m);
  l1 = l1 * c1 + l2 * c2;
#pragma unroll
  for (int i = 0; i < 8; ++i) a1[i] = a1[i] * c1 + a2[i] * c2;
  m1 = m;
}

struct KernelArgs {
  AttentionArgs a;
  int n_gchunks;  // chunks of query heads per KV head
  int n_splits;
  int split_len;  // 0: each token divides its own keys into n_splits (fixed_splits)
};

// split_len 0 (fixed split count, graph replays): each token divides its own keys, in whole
// tiles of 16 keys (splits past the end are empty and merge as nothing).
__device__ __forceinline__ int token_split_len(int n_keys, int n_splits) {
  return ((n_keys + n_splits - 1) / n_splits + 15) / 16 * 16;
}

// The last step of both kernels: merges the kWarps partial states of the block's ng query heads
// (staged in shared memory as acc [kWarps][gstride][D], m and l [kWarps][gstride], after a
// barrier) and writes the output rows (one split) or the split's state to the workspace.
template <int D>
__device__ __forceinline__ void write_block_result(const KernelArgs& ka, int t, int h0, int ng,
                                                   int split, const float* s_acc, const float* s_m,
                                                   const float* s_l, int gstride) {
  const AttentionArgs& a = ka.a;
  for (int idx = threadIdx.x; idx < ng * D; idx += blockDim.x) {
    const int g = idx / D, d = idx % D;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, s_m[w * gstride + g]);
    float sum = 0.0f, lsum = 0.0f;
    if (mx != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        const float mw = s_m[w * gstride + g];
        const float c = mw == -INFINITY ? 0.0f : exp2f(mw - mx);
        sum += s_acc[(w * gstride + g) * D + d] * c;
        lsum += s_l[w * gstride + g] * c;
      }
    }
    const size_t row = static_cast<size_t>(t) * a.n_head + h0 + g;
    if (ka.n_splits == 1) {
      a.out[row * D + d] = __bfloat16_as_ushort(__float2bfloat16_rn(lsum > 0 ? sum / lsum : 0.0f));
    } else {
      float* pp = a.workspace + (row * ka.n_splits + split) * (D + 2);
      pp[2 + d] = sum;
      if (d == 0) {
        pp[0] = mx;
        pp[1] = lsum;
      }
    }
  }
}

template <typename KV, int D, int GC>
__global__ void __launch_bounds__(kWarps * 32) attention_kernel(KernelArgs ka) {
  constexpr int L = D / 8;     // lanes per key
  constexpr int KPW = 32 / L;  // keys per warp step
  pdl_trigger();  // the O GEMV may start loading its weights now
  const AttentionArgs& a = ka.a;
  const int t = blockIdx.x;
  if (a.token_skip != nullptr && a.token_skip[t] != 0) return;
  const int kvh = blockIdx.y / ka.n_gchunks;
  const int gchunk = blockIdx.y % ka.n_gchunks;
  const int split = blockIdx.z;
  const int group = a.n_head / a.n_head_kv;
  const int h0 = kvh * group + gchunk * GC;
  const int ng = min(GC, group - gchunk * GC);
  const int n_keys = a.positions[t] + 1;
  const int32_t* slots = a.slots + a.seq_slots_begin[a.token_seq[t]];
  // split_len 0: the split count is fixed (graph replays) and each token divides its own keys.
  const int split_len = ka.split_len > 0 ? ka.split_len : token_split_len(n_keys, ka.n_splits);
  const int k_begin = split * split_len;
  const int k_end = min(n_keys, k_begin + split_len);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane / L, part = lane % L;
  const float qscale = a.scale * 1.4426950408889634f;

  float q[GC][8];
#pragma unroll
  for (int g = 0; g < GC; ++g) {
    if (g < ng) {
      load8(reinterpret_cast<const bf16*>(a.q) + (static_cast<size_t>(t) * a.n_head + h0 + g) * D +
                part * 8,
            q[g]);
#pragma unroll
      for (int i = 0; i < 8; ++i) q[g][i] *= qscale;
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) q[g][i] = 0.0f;
    }
  }
  float m[GC], l[GC], acc[GC][8];
#pragma unroll
  for (int g = 0; g < GC; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[g][i] = 0.0f;
  }

  const KV* kc = static_cast<const KV*>(a.k_cache);
  const KV* vc = static_cast<const KV*>(a.v_cache);
  constexpr int kStep = kWarps * KPW;
  using Raw = Raw8<KV>;
  auto fetch = [&](int j, Raw* kr, Raw* vr) {
    if (j < k_end) {
      const size_t off = (static_cast<size_t>(slots[j]) * a.n_head_kv + kvh) * D + part * 8;
      *kr = *reinterpret_cast<const Raw*>(kc + off);
      *vr = *reinterpret_cast<const Raw*>(vc + off);
    } else {
      *kr = *vr = Raw{};
    }
  };
  // The next step's K/V rows are loaded (raw 16 bytes) before this step's math, so two steps of
  // loads are in flight per lane. (Three steps measured 2% slower at batch 64 x 4k on the H100.)
  Raw k_raw, v_raw;
  fetch(k_begin + warp * KPW + sub, &k_raw, &v_raw);
  for (int base = k_begin + warp * KPW; base < k_end; base += kStep) {
    const int j = base + sub;
    const bool valid = j < k_end;
    float kf[8], vf[8];
    load8(reinterpret_cast<const KV*>(&k_raw), kf);
    load8(reinterpret_cast<const KV*>(&v_raw), vf);
    fetch(j + kStep, &k_raw, &v_raw);
#pragma unroll
    for (int g = 0; g < GC; ++g) {
      float s = 0.0f;
#pragma unroll
      for (int i = 0; i < 8; ++i) s += q[g][i] * kf[i];
#pragma unroll
      for (int o = L / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      if (valid) {
        const float mn = fmaxf(m[g], s);
        const float c = exp2f(m[g] - mn);  // m = -inf gives 0, as wanted
        const float p = exp2f(s - mn);
        l[g] = l[g] * c + p;
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[g][i] = acc[g][i] * c + p * vf[i];
        m[g] = mn;
      }
    }
  }

  // Merge the key streams of the warp (lanes with the same part, different sub).
#pragma unroll
  for (int o = L; o < 32; o <<= 1) {
#pragma unroll
    for (int g = 0; g < GC; ++g) {
      const float m2 = __shfl_xor_sync(0xffffffffu, m[g], o);
      const float l2 = __shfl_xor_sync(0xffffffffu, l[g], o);
      float a2[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) a2[i] = __shfl_xor_sync(0xffffffffu, acc[g][i], o);
      merge_state(m[g], l[g], acc[g], m2, l2, a2);
    }
  }

  // Merge the warps through shared memory.
  __shared__ float s_acc[kWarps][GC][D];
  __shared__ float s_m[kWarps][GC], s_l[kWarps][GC];
  if (sub == 0) {
#pragma unroll
    for (int g = 0; g < GC; ++g) {
#pragma unroll
      for (int i = 0; i < 8; ++i) s_acc[warp][g][part * 8 + i] = acc[g][i];
      if (part == 0) {
        s_m[warp][g] = m[g];
        s_l[warp][g] = l[g];
      }
    }
  }
  __syncthreads();
  write_block_result<D>(ka, t, h0, ng, split, &s_acc[0][0][0], &s_m[0][0], &s_l[0][0], GC);
}

// ---------------------------------------------------------------------------------------------
// Tensor-core decode kernel (see the top of the file).

constexpr int kTile = 16;        // keys per warp step
constexpr int kTcMaxHeads = 16;  // query heads per block (the mma's M rows)

// fp8 tiles are half the bytes: twice the stages keep as many bytes in flight.
template <int D, bool kFp8>
constexpr int tc_stages() {
  return (D >= 256 ? 2 : D >= 128 ? 3 : 4) * (kFp8 ? 2 : 1);
}
// Shared memory: the cp.async ring ([stage][chunk][thread] 16-byte chunks, D / 8 (fp8: D / 16)
// chunks per thread and tile), reused after the loop for the cross-warp merge.
template <int D, bool kFp8, int kStages = tc_stages<D, kFp8>()>
constexpr int tc_smem_bytes() {
  const int ring = kWarps * 32 * kStages * (D / (kFp8 ? 16 : 8)) * 16;
  const int merge = (kWarps * kTcMaxHeads * D + 2 * kWarps * kTcMaxHeads) * 4;
  return ring > merge ? ring : merge;
}

template <typename KV>
struct Mma;
template <>
struct Mma<bf16> {
  __device__ static uint32_t q_pair(uint32_t bf16x2) { return bf16x2; }
  __device__ static uint32_t pack(float lo, float hi) { return tc::pack_bf16(lo, hi); }
  __device__ static void run(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    tc::mma_bf16(c, a, b0, b1);
  }
};
template <>
struct Mma<__half> {
  // q is bf16; an f16 mma needs f16 operands (exact for |q| within f16's normal range).
  __device__ static uint32_t q_pair(uint32_t bf16x2) {
    const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&bf16x2));
    const __half2 h = __floats2half2_rn(f.x, f.y);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
  __device__ static uint32_t pack(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
  __device__ static void run(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

// Grid as attention_kernel's, with chunks of up to 16 query heads. Thread (r = lane / 4,
// c = lane % 4) of a warp, for its tile of keys k0..k0+15:
//  - S = Q K^T: n-tile kt holds keys k0 + 8 kt + 0..7; the thread's B fragment is key r's dims
//    32 j + 8 c .. +7 (16 bytes) for j < D/32, its two halves feeding k-steps 2 j and 2 j + 1
//    (k index 2c, 2c+1 <- dims +0, +1 (+4, +5); 2c+8, 2c+9 <- dims +2, +3 (+6, +7)); the Q
//    A fragment (rows = query heads r and r + 8) is loaded with the same map. The C fragment gives
//    the thread scores of keys 8 kt + 2c, 2c+1 for heads r and r + 8.
//  - O += P V: P's A fragment is S's C fragment repacked (as FlashAttention-2); V's B fragment
//    wants two keys per register, so the thread loads keys 2c, 2c+1, 2c+8, 2c+9 at dims
//    64 g + 8 r .. +7 and byte-permutes pairs; column n of output n-tile 8 g + e is dim
//    64 g + 8 n + e.
//
// fp8 K/V (D >= 128): a 16-byte chunk holds 16 elements, so the same scheme runs with chunks
// twice as wide: K chunk j of key r is dims 64 j + 16 c .. +15, its four 4-byte words feeding
// k-steps 4 j .. 4 j + 3 (Q follows: A pair (2 j + w / 2, w % 2) is dims 64 j + 16 c + 4 w ..);
// V chunks are dims 128 g + 16 r .. +15, column n of n-tile 16 g + e being dim 128 g + 16 n + e.
// fp8 converts to f16 exactly (cvt.f16x2.e4m3x2, or a byte move for e5m2), so the mma runs in
// f16 (Q converted, as for an f16 pool).
template <typename KV, int D, bool kHi, int kStages>
__global__ void __launch_bounds__(kWarps * 32) decode_tc_kernel(KernelArgs ka) {
  constexpr bool kFp8 = kv::kIsFp8<KV>;
  using M = Mma<std::conditional_t<kFp8, __half, KV>>;
  constexpr int kEl = kFp8 ? 16 : 8;    // elements per 16-byte chunk
  constexpr int kNJ = D / 32;           // Q A-fragment pairs (k-steps / 2)
  constexpr int kKPer = D / (4 * kEl);  // K chunks per key and thread
  constexpr int kNG = D / (8 * kEl);    // V chunks per key and thread
  constexpr int kKCh = 2 * kKPer;       // K chunks per tile and thread (keys r, r + 8)
  constexpr int kCh = kKCh + 4 * kNG;   // all chunks per tile and thread
  constexpr int kThreads = kWarps * 32;
  static_assert(kNG >= 1, "fp8 needs head_dim >= 128");
  extern __shared__ uint4 smem[];
  pdl_trigger();  // the O GEMV may start loading its weights now
  const AttentionArgs& a = ka.a;
  const int t = blockIdx.x;
  if (a.token_skip != nullptr && a.token_skip[t] != 0) return;
  const int kvh = blockIdx.y / ka.n_gchunks;
  const int gchunk = blockIdx.y % ka.n_gchunks;
  const int split = blockIdx.z;
  const int group = a.n_head / a.n_head_kv;
  const int h0 = kvh * group + gchunk * kTcMaxHeads;
  const int ng = min(kTcMaxHeads, group - gchunk * kTcMaxHeads);
  const int n_keys = a.positions[t] + 1;
  const int32_t* slots = a.slots + a.seq_slots_begin[a.token_seq[t]];
  const int split_len = ka.split_len > 0 ? ka.split_len : token_split_len(n_keys, ka.n_splits);
  const int k_begin = split * split_len;
  const int k_end = min(n_keys, k_begin + split_len);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int r = lane >> 2, c = lane & 3;
  const int n_tiles = k_end > k_begin ? (k_end - k_begin + kTile - 1) / kTile : 0;
  // This warp's tiles: warp, warp + kWarps, ... of the block's range.
  const int my_tiles = n_tiles > warp ? (n_tiles - warp + kWarps - 1) / kWarps : 0;
  const float qscale = a.scale * 1.4426950408889634f;

  // Q A fragments: [j][half][reg]; rows r (regs 0, 2) and r + 8 (regs 1, 3), zero past ng.
  uint32_t qa[kNJ][2][4];
  {
    const uint16_t* qrow = a.q + (static_cast<size_t>(t) * a.n_head + h0) * D;
#pragma unroll
    for (int j = 0; j < kNJ; ++j) {
      const int d0 = kFp8 ? 64 * (j / 2) + 16 * c + 8 * (j % 2) : 32 * j + 8 * c;
      uint4 lo = make_uint4(0, 0, 0, 0), hi = make_uint4(0, 0, 0, 0);
      if (r < ng) lo = *reinterpret_cast<const uint4*>(qrow + r * D + d0);
      if (kHi && r + 8 < ng) hi = *reinterpret_cast<const uint4*>(qrow + (r + 8) * D + d0);
      qa[j][0][0] = M::q_pair(lo.x);
      qa[j][0][1] = M::q_pair(hi.x);
      qa[j][0][2] = M::q_pair(lo.y);
      qa[j][0][3] = M::q_pair(hi.y);
      qa[j][1][0] = M::q_pair(lo.z);
      qa[j][1][1] = M::q_pair(hi.z);
      qa[j][1][2] = M::q_pair(lo.w);
      qa[j][1][3] = M::q_pair(hi.w);
    }
  }

  const KV* kc = static_cast<const KV*>(a.k_cache);
  const KV* vc = static_cast<const KV*>(a.v_cache);
  const uint32_t ring = static_cast<uint32_t>(__cvta_generic_to_shared(smem)) + tid * 16;
  auto chunk_addr = [&](int stage, int i) { return ring + (stage * kCh + i) * kThreads * 16; };
  // Slot of key (lane % 16) of this warp's tile `it`, or -1 past the range.
  auto load_slot = [&](int it) -> int {
    const int key = k_begin + (warp + it * kWarps) * kTile + (lane & 15);
    return it < my_tiles && key < k_end ? __ldg(slots + key) : -1;
  };
  // Issues the copies of this warp's tile `it` into `stage` (warp-uniform: shuffles inside).
  auto issue = [&](int stage, int sl) {
    int s_k[2], s_v[4];
    s_k[0] = __shfl_sync(0xffffffffu, sl, r);
    s_k[1] = __shfl_sync(0xffffffffu, sl, r + 8);
    s_v[0] = __shfl_sync(0xffffffffu, sl, 2 * c);
    s_v[1] = __shfl_sync(0xffffffffu, sl, 2 * c + 1);
    s_v[2] = __shfl_sync(0xffffffffu, sl, 2 * c + 8);
    s_v[3] = __shfl_sync(0xffffffffu, sl, 2 * c + 9);
#pragma unroll
    for (int kt = 0; kt < 2; ++kt) {
      const KV* src = kc + (static_cast<size_t>(max(s_k[kt], 0)) * a.n_head_kv + kvh) * D + kEl * c;
#pragma unroll
      for (int j = 0; j < kKPer; ++j)
        tc::cp_async16(chunk_addr(stage, kt * kKPer + j), src + 4 * kEl * j, s_k[kt] >= 0);
    }
#pragma unroll
    for (int v = 0; v < 4; ++v) {
      const KV* src = vc + (static_cast<size_t>(max(s_v[v], 0)) * a.n_head_kv + kvh) * D + kEl * r;
#pragma unroll
      for (int g = 0; g < kNG; ++g)
        tc::cp_async16(chunk_addr(stage, kKCh + v * kNG + g), src + 8 * kEl * g, s_v[v] >= 0);
    }
  };

  // Prologue: tiles 0 .. kStages - 2 in flight (one commit group each, empty past the end), the
  // slots of tile kStages - 1 in a register.
#pragma unroll
  for (int st = 0; st < kStages - 1; ++st) {
    if (st < my_tiles) issue(st, load_slot(st));
    tc::cp_async_commit();
  }
  int sl_next = load_slot(kStages - 1);

  float o[D / 8][4];
#pragma unroll
  for (int nt = 0; nt < D / 8; ++nt) o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.0f;
  float m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.0f, l_hi = 0.0f;

  for (int it = 0; it < my_tiles; ++it) {
    // Refill the stage read in the previous iteration (this thread's own chunks: its reads of
    // them are complete, their values having been consumed by the mma).
    if (it + kStages - 1 < my_tiles) issue((it + kStages - 1) % kStages, sl_next);
    tc::cp_async_commit();
    sl_next = load_slot(it + kStages);  // latency hidden behind this tile's math
    tc::cp_async_wait<kStages - 1>();   // tile `it` has landed (this thread's copies)
    const int stage = it % kStages;
    const uint4* buf = smem + stage * kCh * kThreads + tid;

    float s[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
    for (int j = 0; j < kKPer; ++j) {
#pragma unroll
      for (int kt = 0; kt < 2; ++kt) {
        const uint4 kw = buf[(kt * kKPer + j) * kThreads];
        if constexpr (kFp8) {
          const uint32_t w[4] = {kw.x, kw.y, kw.z, kw.w};
#pragma unroll
          for (int q = 0; q < 4; ++q) {
            uint32_t b0, b1;
            kv::fp8x4_to_f16x2x2<KV>(w[q], b0, b1);
            M::run(s[kt], qa[2 * j + q / 2][q % 2], b0, b1);
          }
        } else {
          M::run(s[kt], qa[j][0], kw.x, kw.y);
          M::run(s[kt], qa[j][1], kw.z, kw.w);
        }
      }
    }

    // Online softmax, one update per tile and row (the quad of a row shares its max).
    const int kb = k_begin + (warp + it * kWarps) * kTile + 2 * c;
#pragma unroll
    for (int kt = 0; kt < 2; ++kt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const bool valid = kb + 8 * kt + e < k_end;
        s[kt][e] = valid ? s[kt][e] * qscale : -INFINITY;
        s[kt][2 + e] = valid ? s[kt][2 + e] * qscale : -INFINITY;
      }
    }
    float corr_lo, corr_hi = 1.0f;
    {
      float mx = fmaxf(fmaxf(s[0][0], s[0][1]), fmaxf(s[1][0], s[1][1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mn = fmaxf(m_lo, mx);
      const float base = mn == -INFINITY ? 0.0f : mn;
      corr_lo = tc::ex2(m_lo - base);  // m = -inf gives 0
      s[0][0] = tc::ex2(s[0][0] - base);
      s[0][1] = tc::ex2(s[0][1] - base);
      s[1][0] = tc::ex2(s[1][0] - base);
      s[1][1] = tc::ex2(s[1][1] - base);
      l_lo = l_lo * corr_lo + (s[0][0] + s[0][1]) + (s[1][0] + s[1][1]);
      m_lo = mn;
    }
    if (kHi) {
      float mx = fmaxf(fmaxf(s[0][2], s[0][3]), fmaxf(s[1][2], s[1][3]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mn = fmaxf(m_hi, mx);
      const float base = mn == -INFINITY ? 0.0f : mn;
      corr_hi = tc::ex2(m_hi - base);
      s[0][2] = tc::ex2(s[0][2] - base);
      s[0][3] = tc::ex2(s[0][3] - base);
      s[1][2] = tc::ex2(s[1][2] - base);
      s[1][3] = tc::ex2(s[1][3] - base);
      l_hi = l_hi * corr_hi + (s[0][2] + s[0][3]) + (s[1][2] + s[1][3]);
      m_hi = mn;
    }
#pragma unroll
    for (int nt = 0; nt < D / 8; ++nt) {
      o[nt][0] *= corr_lo;
      o[nt][1] *= corr_lo;
      if (kHi) {
        o[nt][2] *= corr_hi;
        o[nt][3] *= corr_hi;
      }
    }
    uint32_t pa[4];
    pa[0] = M::pack(s[0][0], s[0][1]);
    pa[1] = kHi ? M::pack(s[0][2], s[0][3]) : 0u;
    pa[2] = M::pack(s[1][0], s[1][1]);
    pa[3] = kHi ? M::pack(s[1][2], s[1][3]) : 0u;

#pragma unroll
    for (int g = 0; g < kNG; ++g) {
      const uint4 v0 = buf[(kKCh + 0 * kNG + g) * kThreads];
      const uint4 v1 = buf[(kKCh + 1 * kNG + g) * kThreads];
      const uint4 v2 = buf[(kKCh + 2 * kNG + g) * kThreads];
      const uint4 v3 = buf[(kKCh + 3 * kNG + g) * kThreads];
      const uint32_t w0[4] = {v0.x, v0.y, v0.z, v0.w}, w1[4] = {v1.x, v1.y, v1.z, v1.w};
      const uint32_t w2[4] = {v2.x, v2.y, v2.z, v2.w}, w3[4] = {v3.x, v3.y, v3.z, v3.w};
      if constexpr (kFp8) {
        // Byte e of keys 2c, 2c+1 (and 2c+8, 2c+9) side by side, then to f16 pairs.
#pragma unroll
        for (int q = 0; q < 4; ++q) {
#pragma unroll
          for (int hb = 0; hb < 2; ++hb) {
            const uint32_t sel = hb ? 0x7362u : 0x5140u;  // bytes 2, 3 or 0, 1 of both words
            uint32_t b0[2], b1[2];
            kv::fp8x4_to_f16x2x2<KV>(__byte_perm(w0[q], w1[q], sel), b0[0], b0[1]);
            kv::fp8x4_to_f16x2x2<KV>(__byte_perm(w2[q], w3[q], sel), b1[0], b1[1]);
            M::run(o[16 * g + 4 * q + 2 * hb], pa, b0[0], b1[0]);
            M::run(o[16 * g + 4 * q + 2 * hb + 1], pa, b0[1], b1[1]);
          }
        }
      } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          const uint32_t sel = (e & 1) ? 0x7632u : 0x5410u;  // high or low halves of both words
          M::run(o[8 * g + e], pa, __byte_perm(w0[e / 2], w1[e / 2], sel),
                 __byte_perm(w2[e / 2], w3[e / 2], sel));
        }
      }
    }
  }
  tc::cp_async_wait<0>();

  // Row sums over the quad; stage the warp's state for the cross-warp merge (reusing the ring).
  l_lo += __shfl_xor_sync(0xffffffffu, l_lo, 1);
  l_lo += __shfl_xor_sync(0xffffffffu, l_lo, 2);
  if (kHi) {
    l_hi += __shfl_xor_sync(0xffffffffu, l_hi, 1);
    l_hi += __shfl_xor_sync(0xffffffffu, l_hi, 2);
  }
  __syncthreads();
  float* s_acc = reinterpret_cast<float*>(smem);  // [kWarps][kTcMaxHeads][D]
  float* s_m = s_acc + kWarps * kTcMaxHeads * D;  // [kWarps][kTcMaxHeads]
  float* s_l = s_m + kWarps * kTcMaxHeads;
  float* acc_lo = s_acc + (warp * kTcMaxHeads + r) * D;
  float* acc_hi = acc_lo + 8 * D;
#pragma unroll
  for (int g = 0; g < kNG; ++g) {
#pragma unroll
    for (int e = 0; e < kEl; ++e) {
      // Columns 2c and 2c + 1 of n-tile kEl g + e.
      const int d = 8 * kEl * g + 2 * kEl * c + e;
      const int nt = kEl * g + e;
      acc_lo[d] = o[nt][0];
      acc_lo[d + kEl] = o[nt][1];
      if (kHi) {
        acc_hi[d] = o[nt][2];
        acc_hi[d + kEl] = o[nt][3];
      }
    }
  }
  if (c == 0) {
    s_m[warp * kTcMaxHeads + r] = m_lo;
    s_l[warp * kTcMaxHeads + r] = l_lo;
    if (kHi) {
      s_m[warp * kTcMaxHeads + r + 8] = m_hi;
      s_l[warp * kTcMaxHeads + r + 8] = l_hi;
    }
  }
  __syncthreads();
  write_block_result<D>(ka, t, h0, ng, split, s_acc, s_m, s_l, kTcMaxHeads);
}

// Sum (kMax false) or maximum over the block; every thread gets the result. Ends with a barrier.
// blockDim.x is a power of two (head_dim): below 32 only its lanes take part.
template <bool kMax>
__device__ __forceinline__ float block_reduce(float v, float* s_red) {
  const unsigned mask = blockDim.x >= 32 ? 0xffffffffu : (1u << blockDim.x) - 1;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    if (o < static_cast<int>(blockDim.x)) {
      const float w = __shfl_xor_sync(mask, v, o);
      v = kMax ? fmaxf(v, w) : v + w;
    }
  }
  const int n_warps = (blockDim.x + 31) / 32;
  if (n_warps > 1) {
    if ((threadIdx.x & 31) == 0) s_red[threadIdx.x >> 5] = v;
    __syncthreads();
    v = s_red[0];
    for (int w = 1; w < n_warps; ++w) v = kMax ? fmaxf(v, s_red[w]) : v + s_red[w];
  }
  __syncthreads();
  return v;
}

// One block of head_dim threads per (token, query head): merges the splits' states. The splits'
// maxima and weights are read in parallel and the accumulators with several loads in flight per
// thread (a serial walk costs two L2 round trips per split: ~20 us at 64 splits).
__global__ void combine_kernel(const float* __restrict__ ws, int n_splits, int D, int n_head,
                               const int32_t* __restrict__ token_skip, uint16_t* __restrict__ out) {
  extern __shared__ float s_c[];  // [n_splits] weight of each split
  __shared__ float s_red[32];
  pdl_trigger();
  const size_t row = blockIdx.x;
  if (token_skip != nullptr && token_skip[row / n_head] != 0) return;
  const float* p = ws + row * n_splits * (D + 2);
  const int d = threadIdx.x;
  float mx = -INFINITY;
  for (int s = d; s < n_splits; s += blockDim.x) mx = fmaxf(mx, p[s * (D + 2)]);
  mx = block_reduce<true>(mx, s_red);
  float lpart = 0.0f;
  for (int s = d; s < n_splits; s += blockDim.x) {
    const float ms = p[s * (D + 2)];
    const float c = ms == -INFINITY ? 0.0f : exp2f(ms - mx);  // all -inf: every weight 0
    s_c[s] = c;
    lpart += p[s * (D + 2) + 1] * c;
  }
  const float lsum = block_reduce<false>(lpart, s_red);  // its barriers publish s_c
  float sum = 0.0f;
#pragma unroll 8
  for (int s = 0; s < n_splits; ++s) sum += p[s * (D + 2) + 2 + d] * s_c[s];
  out[row * D + d] = __bfloat16_as_ushort(__float2bfloat16_rn(lsum > 0 ? sum / lsum : 0.0f));
}

// Query heads per block of attention_kernel.
int group_chunk(int group) { return group > 4 ? 8 : group > 2 ? 4 : group > 1 ? 2 : 1; }

bool tc_head_dim(int d) { return d == 64 || d == 128 || d == 256; }

// Blocks per (token, KV head) before the split over the sequence: chunks of the query heads
// (up to 16 per block in the tensor-core kernel, group_chunk's in the other).
int head_chunks(int group, int head_dim) {
  const int gc = tc_head_dim(head_dim) ? kTcMaxHeads : group_chunk(group);
  return (group + gc - 1) / gc;
}

void plan(int n_tokens, int n_head, int n_head_kv, int head_dim, int max_kv, int n_sm,
          int* n_gchunks, int* n_splits, int* split_len) {
  *n_gchunks = head_chunks(n_head / n_head_kv, head_dim);
  const long base = static_cast<long>(n_tokens) * n_head_kv * *n_gchunks;
  // Split only to reach one wave of blocks (the tensor-core kernel keeps 2 per SM): on the H100
  // every extra split of a big batch cost bandwidth (64 x 4k: 1 split 87% of copy bandwidth,
  // 2: 83%, 5: 82%; a single block per SM already streams ~15 GB/s), while small batches
  // (latency-bound) gain from splits of down to 128 keys (1 x 1k: 8 splits 16.7 us, 1: 25.4 us).
  const long target = 2L * n_sm;
  int splits = static_cast<int>(std::max<long>(1, (target + base - 1) / base));
  splits = std::min(splits, std::max(1, (max_kv + kMinSplitKeys - 1) / kMinSplitKeys));
  // Whole tiles of 16 keys per split (the tensor-core kernel's step).
  int len = ((std::max(max_kv, 1) + splits - 1) / splits + kTile - 1) / kTile * kTile;
  *split_len = len;
  *n_splits = (std::max(max_kv, 1) + len - 1) / len;
}

template <typename KV, int D>
void launch_d(const KernelArgs& ka, int group, dim3 grid, cudaStream_t stream) {
  switch (group_chunk(group)) {
    case 1:
      attention_kernel<KV, D, 1><<<grid, kWarps * 32, 0, stream>>>(ka);
      break;
    case 2:
      attention_kernel<KV, D, 2><<<grid, kWarps * 32, 0, stream>>>(ka);
      break;
    case 4:
      attention_kernel<KV, D, 4><<<grid, kWarps * 32, 0, stream>>>(ka);
      break;
    default:
      attention_kernel<KV, D, 8><<<grid, kWarps * 32, 0, stream>>>(ka);
      break;
  }
}

template <typename KV>
void launch_kv(const KernelArgs& ka, int group, dim3 grid, cudaStream_t stream) {
  switch (ka.a.head_dim) {
    case 8:
      launch_d<KV, 8>(ka, group, grid, stream);
      break;
    case 16:
      launch_d<KV, 16>(ka, group, grid, stream);
      break;
    case 32:
      launch_d<KV, 32>(ka, group, grid, stream);
      break;
    case 64:
      launch_d<KV, 64>(ka, group, grid, stream);
      break;
    case 128:
      launch_d<KV, 128>(ka, group, grid, stream);
      break;
    default:
      launch_d<KV, 256>(ka, group, grid, stream);
      break;
  }
}

// False (launching nothing) if the kernel's shared-memory size cannot be configured.
template <typename KV, int D, bool kHi, int kStages>
bool launch_tc_stages(const KernelArgs& ka, dim3 grid, cudaStream_t stream) {
  constexpr int smem = tc_smem_bytes<D, kv::kIsFp8<KV>, kStages>();
  // Per GPU: the attribute is per device, and tensor-parallel ranks launch on several.
  static std::atomic<uint64_t> configured{0};
  if (!tc::set_max_dynamic_smem(decode_tc_kernel<KV, D, kHi, kStages>, smem, configured))
    return false;
  decode_tc_kernel<KV, D, kHi, kStages><<<grid, kWarps * 32, smem, stream>>>(ka);
  return true;
}

template <typename KV, int D, bool kHi>
bool launch_tc_cfg(const KernelArgs& ka, dim3 grid, cudaStream_t stream) {
  constexpr bool kFp8 = kv::kIsFp8<KV>;
  if constexpr (kFp8 && D == 128) {
    // SGL_CUDA_DECODE_FP8_STAGES=4|5|6|7 fixes the ring depth (benchmarks only).
    static const int stages = [] {
      const char* e = std::getenv("SGL_CUDA_DECODE_FP8_STAGES");
      return e != nullptr ? std::atoi(e) : 0;
    }();
    // A 4-deep ring (64 KB) fits three blocks per SM instead of two: measured on the H100 it
    // streams faster where there are many waves of blocks (256 x 2k: 2325 GB/s against 2237 at
    // 6 deep) and slower where the grid is under two waves of two blocks (64 x 4k, 512 blocks:
    // 2089 against 2244, the last wave a third full).
    const long blocks = static_cast<long>(grid.x) * grid.y * grid.z;
    const int s = stages != 0 ? stages : blocks >= 6L * ka.a.n_sm ? 4 : 6;
    if (s == 4) return launch_tc_stages<KV, D, kHi, 4>(ka, grid, stream);
    if (s == 5) return launch_tc_stages<KV, D, kHi, 5>(ka, grid, stream);
    if (s == 7) return launch_tc_stages<KV, D, kHi, 7>(ka, grid, stream);
  }
  return launch_tc_stages<KV, D, kHi, tc_stages<D, kFp8>()>(ka, grid, stream);
}

template <typename KV, int D>
bool launch_tc_d(const KernelArgs& ka, int group, dim3 grid, cudaStream_t stream) {
  return group > 8 ? launch_tc_cfg<KV, D, true>(ka, grid, stream)
                   : launch_tc_cfg<KV, D, false>(ka, grid, stream);
}

template <typename KV>
bool launch_tc(const KernelArgs& ka, int group, dim3 grid, cudaStream_t stream) {
  switch (ka.a.head_dim) {
    case 64:
      if constexpr (kv::kIsFp8<KV>)
        return false;  // fp8 needs 128+ (CUDA-core kernel)
      else
        return launch_tc_d<KV, 64>(ka, group, grid, stream);
    case 128:
      return launch_tc_d<KV, 128>(ka, group, grid, stream);
    default:
      return launch_tc_d<KV, 256>(ka, group, grid, stream);
  }
}

KernelArgs make_kernel_args(const AttentionArgs& a) {
  KernelArgs ka;
  ka.a = a;
  plan(a.n_tokens, a.n_head, a.n_head_kv, a.head_dim, a.max_kv, a.n_sm, &ka.n_gchunks, &ka.n_splits,
       &ka.split_len);
  if (a.fixed_splits > 0) {
    ka.n_splits = a.fixed_splits;
    ka.split_len = 0;
  }
  return ka;
}

void launch_combine(const KernelArgs& ka, cudaStream_t stream) {
  const AttentionArgs& a = ka.a;
  if (ka.n_splits > 1)
    combine_kernel<<<a.n_tokens * a.n_head, a.head_dim, ka.n_splits * sizeof(float), stream>>>(
        a.workspace, ka.n_splits, a.head_dim, a.n_head, a.token_skip, a.out);
}

void launch_simple(KernelArgs ka, cudaStream_t stream) {
  const int group = ka.a.n_head / ka.a.n_head_kv;
  ka.n_gchunks = (group + group_chunk(group) - 1) / group_chunk(group);
  const dim3 grid(ka.a.n_tokens, ka.a.n_head_kv * ka.n_gchunks, ka.n_splits);
  switch (ka.a.kv_elem) {
    case KvElem::kBF16:
      launch_kv<bf16>(ka, group, grid, stream);
      break;
    case KvElem::kF16:
      launch_kv<__half>(ka, group, grid, stream);
      break;
    case KvElem::kFp8E4M3:
      launch_kv<__nv_fp8_e4m3>(ka, group, grid, stream);
      break;
    case KvElem::kFp8E5M2:
      launch_kv<__nv_fp8_e5m2>(ka, group, grid, stream);
      break;
  }
  launch_combine(ka, stream);
}

}  // namespace

bool attention_head_dim_supported(int d) {
  return d == 8 || d == 16 || d == 32 || d == 64 || d == 128 || d == 256;
}

int attention_fixed_splits(int n_tokens, int n_head, int n_head_kv, int n_sm) {
  // Counted in the tensor-core kernel's head chunks (the same as the other's up to group 8).
  const long gch = head_chunks(n_head / n_head_kv, 128);
  const long base = static_cast<long>(n_tokens) * n_head_kv * gch;
  return static_cast<int>(std::clamp<long>((2L * n_sm + base - 1) / base, 1, kMaxFixedSplits));
}

size_t attention_workspace_floats(int n_tokens, int n_head, int n_head_kv, int head_dim, int max_kv,
                                  int n_sm, int fixed_splits) {
  int gch, splits, len;
  plan(n_tokens, n_head, n_head_kv, head_dim, max_kv, n_sm, &gch, &splits, &len);
  if (fixed_splits > 0) splits = fixed_splits;
  if (splits == 1) return 0;
  return static_cast<size_t>(n_tokens) * n_head * splits * (head_dim + 2);
}

void launch_attention(const AttentionArgs& a, cudaStream_t stream) {
  if (a.n_tokens <= 0) return;
  const KernelArgs ka = make_kernel_args(a);
  if (tc_head_dim(a.head_dim)) {
    const int group = a.n_head / a.n_head_kv;
    const dim3 grid(a.n_tokens, a.n_head_kv * ka.n_gchunks, ka.n_splits);
    bool ok = false;
    switch (a.kv_elem) {
      case KvElem::kBF16:
        ok = launch_tc<bf16>(ka, group, grid, stream);
        break;
      case KvElem::kF16:
        ok = launch_tc<__half>(ka, group, grid, stream);
        break;
      case KvElem::kFp8E4M3:
        ok = launch_tc<__nv_fp8_e4m3>(ka, group, grid, stream);
        break;
      case KvElem::kFp8E5M2:
        ok = launch_tc<__nv_fp8_e5m2>(ka, group, grid, stream);
        break;
    }
    if (ok) {
      launch_combine(ka, stream);
      return;
    }
  }
  launch_simple(ka, stream);
}

void launch_attention_simple(const AttentionArgs& a, cudaStream_t stream) {
  if (a.n_tokens <= 0) return;
  launch_simple(make_kernel_args(a), stream);
}

}  // namespace sgl::backend::cuda
