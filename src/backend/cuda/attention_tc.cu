// Prefill attention on tensor cores (see kernels.h: launch_attention_prefill_tc): the dispatch
// between the wgmma kernel (attention_sm90a.cu, sm_90 GPUs) and this file's kernel for other
// GPUs, FlashAttention-2 structure with mma.sync (bf16 in, f32 accumulation), sm_80 and newer.
//
// One block of 8 warps per (query head, tile of up to 128 consecutive queries of one sequence);
// each warp owns 16 query rows. The block walks the sequence's keys in tiles of kBc:
//   - K and V rows are gathered through the slot list with 16-byte cp.async copies into a
//     Stages-deep shared-memory ring, issued Stages - 1 tiles ahead, so the copies of later tiles
//     run under the tensor-core work of the current one (one __syncthreads per key tile). The slot
//     indices of the tile after that are read into registers one iteration earlier still, so the
//     gather's dependent load is off the critical path.
//   - Shared-memory rows are 16-byte-chunk XOR-swizzled (chunk ^ (row & 7)): ldmatrix reads of 8
//     rows at one logical chunk, and the cp.async writes, are free of bank conflicts.
//   - Q stays in registers (ldmatrix once), S = Q K^T and O += P V accumulate in registers
//     (mma.m16n8k16; K via ldmatrix, V via ldmatrix.trans), P is repacked from the S accumulators
//     into A fragments without touching shared memory.
//   - Online softmax in f32 per row, in the log2 domain (the softmax scale times log2(e) folded
//     into one FMA before ex2); row sums stay per-thread partials until the end.
//   - Causal: key tiles past the block's last position are never loaded; a warp skips the key
//     tiles entirely after its own last row, and masks only on the tiles crossing its diagonal.
// The grid is (heads, tiles) with the caller's tiles sorted longest first: the longest tiles of
// every head start first (load balance), and the query heads of one KV head run side by side, so
// their shared K/V reads hit in L2.
#include "backend/cuda/attention_tc.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/attention_tc_common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/kv_store.cuh"

namespace sgl::backend::cuda {
namespace {

using namespace tc;

// The defaults of launch_attention_prefill_tc: the fastest variants on the H100 (docs/cuda.md).
constexpr PrefillTcVariant kPrefillTcMmaDefault = PrefillTcVariant::kKeys128Stages2;
constexpr PrefillTcVariant kPrefillTcWgmmaDefault = PrefillTcVariant::kWgmmaKeys64Stages2TwoBlocks;

constexpr int kBr = kPrefillTcRows;  // queries per block
constexpr int kWarps = kBr / 16;
constexpr int kThreads = kWarps * 32;
static_assert(kBr % 16 == 0 && kWarps <= 32, "16 query rows per warp");

template <int D, int Bc, int Stages>
struct Cfg {
  static constexpr int kChunks = D / 8;    // 16-byte chunks per row
  static constexpr int kRowBytes = D * 2;  // one bf16 row of one head
  static constexpr int kQBytes = kBr * kRowBytes;
  static constexpr int kTileBytes = Bc * kRowBytes;
  static constexpr int kStageBytes = 2 * kTileBytes;  // K then V
  static constexpr int kSmem = kQBytes + Stages * kStageBytes;
  static constexpr int kRowsPerThread = Bc * kChunks / kThreads;  // K/V rows a thread copies
  static_assert(Bc * kChunks % kThreads == 0, "whole copy rounds");
  static_assert(kThreads % kChunks == 0, "a thread copies one chunk column");
  static_assert(Bc % 16 == 0 && Stages >= 2, "tile shape");
};

// Byte offset of (row, 16-byte chunk) in a swizzled tile of D-element rows.
template <int D>
__device__ __forceinline__ uint32_t swz(int row, int chunk) {
  return uint32_t(row * (D * 2) + ((chunk ^ (row & 7)) << 4));
}

template <int D, int Bc, int Stages>
__global__ void __launch_bounds__(kThreads, 1)
    prefill_mma_kernel(AttentionArgs a, const int32_t* __restrict__ tiles) {
  using C = Cfg<D, Bc, Stages>;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sq = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const uint32_t skv = sq + C::kQBytes;

  const int head = blockIdx.x;
  const int t0 = tiles[2 * blockIdx.y];
  const int n_rows = tiles[2 * blockIdx.y + 1];
  const int kvh = head / (a.n_head / a.n_head_kv);
  const int pos0 = a.positions[t0];
  const int last_pos = pos0 + n_rows - 1;
  const int32_t* __restrict__ slots = a.slots + a.seq_slots_begin[a.token_seq[t0]];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int n_kt = last_pos / Bc + 1;

  const uint16_t* __restrict__ kg = static_cast<const uint16_t*>(a.k_cache);
  const uint16_t* __restrict__ vg = static_cast<const uint16_t*>(a.v_cache);
  // This thread copies chunk `cc` of rows cr, cr + kThreads / kChunks, ... of every K/V tile.
  const int cc = tid % C::kChunks, cr = tid / C::kChunks;
  constexpr int kRowStep = kThreads / C::kChunks;
  const size_t kv_off = size_t(kvh) * D + cc * 8;

  // Slot of each row this thread copies for key tile kt (-1 past the sequence).
  auto load_slots = [&](int kt, int(&sl)[C::kRowsPerThread]) {
#pragma unroll
    for (int i = 0; i < C::kRowsPerThread; ++i) {
      const int j = kt * Bc + cr + i * kRowStep;
      sl[i] = j <= last_pos ? slots[j] : -1;
    }
  };
  auto issue_kv = [&](int stage, const int(&sl)[C::kRowsPerThread]) {
    const uint32_t sk = skv + stage * C::kStageBytes, sv = sk + C::kTileBytes;
#pragma unroll
    for (int i = 0; i < C::kRowsPerThread; ++i) {
      const int r = cr + i * kRowStep;
      const size_t off = size_t(sl[i] < 0 ? 0 : sl[i]) * a.n_head_kv * D + kv_off;
      cp_async16(sk + swz<D>(r, cc), kg + off, sl[i] >= 0);
      cp_async16(sv + swz<D>(r, cc), vg + off, sl[i] >= 0);
    }
  };

  // Prologue: group 0 = Q tile + key tile 0, group s = key tile s for s < Stages - 1; the slots
  // of key tile Stages - 1 in registers.
  for (int i = tid; i < kBr * C::kChunks; i += kThreads) {
    const int r = i / C::kChunks, c = i % C::kChunks;
    const bool ok = r < n_rows;
    cp_async16(sq + swz<D>(r, c), a.q + (size_t(t0 + (ok ? r : 0)) * a.n_head + head) * D + c * 8,
               ok);
  }
  int sl[C::kRowsPerThread];
#pragma unroll
  for (int st = 0; st < Stages - 1; ++st) {
    if (st < n_kt) {
      load_slots(st, sl);
      issue_kv(st, sl);
    }
    cp_async_commit();
  }
  if (Stages - 1 < n_kt) load_slots(Stages - 1, sl);

  cp_async_wait<Stages - 2>();  // group 0
  __syncthreads();
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    ldsm_x4(sq + swz<D>(warp * 16 + (lane & 15), kk * 2 + (lane >> 4)), qf[kk][0], qf[kk][1],
            qf[kk][2], qf[kk][3]);

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  // Running max (raw score units) and this thread's partial row sums, rows g and g + 8.
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
  const float sl2 = a.scale * 1.4426950408889634f;
  const int warp_first = pos0 + warp * 16;
  const int row_a = warp_first + (lane >> 2), row_b = row_a + 8;
  const int warp_last = warp_first + 15;

  for (int kt = 0; kt < n_kt; ++kt) {
    cp_async_wait<Stages - 2>();  // key tile kt has landed (this thread's copies) ...
    __syncthreads();  // ... everyone's, and the stage refilled below (tile kt - 1's) is not read
    if (kt + Stages - 1 < n_kt) issue_kv((kt + Stages - 1) % Stages, sl);
    cp_async_commit();
    if (kt + Stages < n_kt) load_slots(kt + Stages, sl);

    const int j0 = kt * Bc;
    if (j0 > warp_last) continue;  // every key of the tile is after this warp's rows
    const uint32_t sk = skv + (kt % Stages) * C::kStageBytes, sv = sk + C::kTileBytes;

    // S (16 x Bc) = Q K^T.
    float s[Bc / 8][4];
#pragma unroll
    for (int i = 0; i < Bc / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk += 2) {
#pragma unroll
      for (int nt = 0; nt < Bc / 8; ++nt) {
        uint32_t b0, b1, b2, b3;
        ldsm_x4(sk + swz<D>(nt * 8 + (lane & 7), kk * 2 + (lane >> 3)), b0, b1, b2, b3);
        mma_bf16(s[nt], qf[kk], b0, b1);
        mma_bf16(s[nt], qf[kk + 1], b2, b3);
      }
    }

    if (j0 + Bc - 1 > warp_first) {  // the tile crosses this warp's diagonal
#pragma unroll
      for (int nt = 0; nt < Bc / 8; ++nt) {
        const int col = j0 + nt * 8 + 2 * (lane & 3);
        if (col > row_a) s[nt][0] = -INFINITY;
        if (col + 1 > row_a) s[nt][1] = -INFINITY;
        if (col > row_b) s[nt][2] = -INFINITY;
        if (col + 1 > row_b) s[nt][3] = -INFINITY;
      }
    }

    // Online softmax. Key 0 is in the first tile every row sees, so the maxima are finite from
    // the first tile on and ex2(-inf) = 0 handles both the first correction and masked keys.
    float mx0 = m0, mx1 = m1;
#pragma unroll
    for (int nt = 0; nt < Bc / 8; ++nt) {
      mx0 = fmaxf(mx0, fmaxf(s[nt][0], s[nt][1]));
      mx1 = fmaxf(mx1, fmaxf(s[nt][2], s[nt][3]));
    }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {  // the 4 lanes of a row
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, off));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, off));
    }
    const float c0 = ex2((m0 - mx0) * sl2), c1 = ex2((m1 - mx1) * sl2);
    m0 = mx0;
    m1 = mx1;
    const float mb0 = mx0 * sl2, mb1 = mx1 * sl2;
    uint32_t p[Bc / 16][4];
    float rs0 = 0.0f, rs1 = 0.0f;
#pragma unroll
    for (int nt = 0; nt < Bc / 8; ++nt) {
      const float p0 = ex2(fmaf(s[nt][0], sl2, -mb0)), p1 = ex2(fmaf(s[nt][1], sl2, -mb0));
      const float p2 = ex2(fmaf(s[nt][2], sl2, -mb1)), p3 = ex2(fmaf(s[nt][3], sl2, -mb1));
      rs0 += p0 + p1;
      rs1 += p2 + p3;
      // The C layout of n-tiles 2k, 2k+1 is the A layout of k-step k.
      p[nt / 2][(nt & 1) * 2 + 0] = pack_bf16(p0, p1);
      p[nt / 2][(nt & 1) * 2 + 1] = pack_bf16(p2, p3);
    }
    l0 = l0 * c0 + rs0;
    l1 = l1 * c1 + rs1;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      o[dt][0] *= c0;
      o[dt][1] *= c0;
      o[dt][2] *= c1;
      o[dt][3] *= c1;
    }

    // O (16 x D) += P (16 x Bc) V (Bc x D).
#pragma unroll
    for (int ks = 0; ks < Bc / 16; ++ks) {
#pragma unroll
      for (int dt = 0; dt < D / 8; dt += 2) {
        uint32_t b0, b1, b2, b3;
        ldsm_x4_t(sv + swz<D>(ks * 16 + (lane & 15), dt + (lane >> 4)), b0, b1, b2, b3);
        mma_bf16(o[dt], p[ks], b0, b1);
        mma_bf16(o[dt + 1], p[ks], b2, b3);
      }
    }
  }
  cp_async_wait<0>();

  // Normalize; stage the warp's 16 rows in its own rows of the Q tile (only this warp read
  // them), then write them out with 16-byte stores.
#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, off);
    l1 += __shfl_xor_sync(0xffffffffu, l1, off);
  }
  const float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
  const int ra = warp * 16 + (lane >> 2), rb = ra + 8;
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) {
    const uint32_t col = 4 * (lane & 3);  // bytes within the chunk
    const uint32_t va = pack_bf16(o[dt][0] * inv0, o[dt][1] * inv0);
    const uint32_t vb = pack_bf16(o[dt][2] * inv1, o[dt][3] * inv1);
    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sq + swz<D>(ra, dt) + col), "r"(va));
    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sq + swz<D>(rb, dt) + col), "r"(vb));
  }
  __syncwarp();
  for (int i = lane; i < 16 * C::kChunks; i += 32) {
    const int r = warp * 16 + i / C::kChunks, c = i % C::kChunks;
    if (r >= n_rows) continue;
    uint4 v;
    asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "r"(sq + swz<D>(r, c)));
    *reinterpret_cast<uint4*>(a.out + (size_t(t0 + r) * a.n_head + head) * D + c * 8) = v;
  }
}

template <int D, int Bc, int Stages>
bool launch_cfg(const AttentionArgs& a, const int32_t* tiles, int n_tiles, cudaStream_t stream) {
  constexpr int smem = Cfg<D, Bc, Stages>::kSmem;
  static std::atomic<uint64_t> configured{0};  // per GPU
  if (!tc::set_max_dynamic_smem(prefill_mma_kernel<D, Bc, Stages>, smem, configured)) return false;
  if (n_tiles > 65535) return false;  // gridDim.y
  const dim3 grid(a.n_head, n_tiles);
  prefill_mma_kernel<D, Bc, Stages><<<grid, kThreads, smem, stream>>>(a, tiles);
  return true;
}

}  // namespace

bool prefill_tc_supported(int head_dim, KvElem kv_elem) {
  return (head_dim == 64 || head_dim == 128) && kv_elem != KvElem::kF16;
}

namespace {

// One thread per 8 elements of a row (8 bytes in, 16 out); K and V by blockIdx.y.
template <typename KV>
__global__ void kv_rows_to_bf16_kernel(const uint8_t* __restrict__ k, const uint8_t* __restrict__ v,
                                       const int32_t* __restrict__ src, int n_rows, int row_elems,
                                       uint16_t* __restrict__ dk, uint16_t* __restrict__ dv) {
  const int per_row = row_elems / 8;
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(n_rows) * per_row) return;
  const size_t row = i / per_row, part = i % per_row;
  const uint8_t* pool = blockIdx.y == 0 ? k : v;
  uint16_t* dst = blockIdx.y == 0 ? dk : dv;
  const uint2 in =
      *reinterpret_cast<const uint2*>(pool + static_cast<size_t>(src[row]) * row_elems + part * 8);
  uint32_t out[4];
  const uint32_t w[2] = {in.x, in.y};
#pragma unroll
  for (int h = 0; h < 4; ++h) {
    const uint32_t two = (w[h / 2] >> (16 * (h % 2))) & 0xffffu;
    float f[2];
    kv::f16x2_to_float(kv::fp8x2_to_f16x2<KV>(two), f);
    out[h] = tc::pack_bf16(f[0], f[1]);
  }
  *reinterpret_cast<uint4*>(dst + row * row_elems + part * 8) =
      make_uint4(out[0], out[1], out[2], out[3]);
}

}  // namespace

void launch_kv_rows_to_bf16(const void* k_cache, const void* v_cache, KvElem kv_elem,
                            const int32_t* src_slots, int n_rows, int row_elems, uint16_t* dst_k,
                            uint16_t* dst_v, cudaStream_t stream) {
  const size_t threads = static_cast<size_t>(n_rows) * (row_elems / 8);
  if (threads == 0) return;
  const dim3 grid(static_cast<unsigned>((threads + 255) / 256), 2);
  const auto* k = static_cast<const uint8_t*>(k_cache);
  const auto* v = static_cast<const uint8_t*>(v_cache);
  if (kv_elem == KvElem::kFp8E4M3)
    kv_rows_to_bf16_kernel<__nv_fp8_e4m3>
        <<<grid, 256, 0, stream>>>(k, v, src_slots, n_rows, row_elems, dst_k, dst_v);
  else
    kv_rows_to_bf16_kernel<__nv_fp8_e5m2>
        <<<grid, 256, 0, stream>>>(k, v, src_slots, n_rows, row_elems, dst_k, dst_v);
}

namespace {

bool is_wgmma(PrefillTcVariant v) {
  return v == PrefillTcVariant::kWgmmaKeys64Stages3 ||
         v == PrefillTcVariant::kWgmmaKeys64Stages2TwoBlocks ||
         v == PrefillTcVariant::kWgmmaKeys128Stages2 || v == PrefillTcVariant::kWgmmaKeys128Stages3;
}

#ifdef SGL_CUDA_SM90A
// The current device is sm_90 (wgmma's sm_90a code runs there only).
bool device_is_sm90() {
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return major == 9 && minor == 0;
}
#endif

}  // namespace

bool prefill_tc_variant_available(PrefillTcVariant v) {
  if (!is_wgmma(v)) return true;
#ifdef SGL_CUDA_SM90A
  return device_is_sm90();
#else
  return false;
#endif
}

bool launch_attention_prefill_tc_variant(const AttentionArgs& a, const int32_t* tiles, int n_tiles,
                                         PrefillTcVariant v, cudaStream_t stream) {
  if (!prefill_tc_supported(a.head_dim, a.kv_elem)) return false;
  if (a.kv_elem != KvElem::kBF16) {
    // fp8: the rows of the tiles' sequences in bf16, read through their own slot list.
    if (a.bf16_k == nullptr || a.bf16_v == nullptr || a.bf16_src == nullptr ||
        a.bf16_seq_begin == nullptr || a.bf16_slots == nullptr)
      return false;
    if (n_tiles <= 0) return prefill_tc_variant_available(v);
    launch_kv_rows_to_bf16(a.k_cache, a.v_cache, a.kv_elem, a.bf16_src, a.bf16_rows,
                           a.n_head_kv * a.head_dim, a.bf16_k, a.bf16_v, stream);
    AttentionArgs b = a;
    b.k_cache = a.bf16_k;
    b.v_cache = a.bf16_v;
    b.kv_elem = KvElem::kBF16;
    b.seq_slots_begin = a.bf16_seq_begin;
    b.slots = a.bf16_slots;
    return launch_attention_prefill_tc_variant(b, tiles, n_tiles, v, stream);
  }
  if (v == PrefillTcVariant::kDefault) {
    // The fastest measured on the H100 (docs/cuda.md); the wgmma kernel where it can run.
    static const bool wgmma = prefill_tc_variant_available(kPrefillTcWgmmaDefault);
    if (wgmma &&
        launch_attention_prefill_tc_variant(a, tiles, n_tiles, kPrefillTcWgmmaDefault, stream))
      return true;
    v = kPrefillTcMmaDefault;
  }
  if (!prefill_tc_variant_available(v)) return false;
  if (n_tiles <= 0) return true;
#ifdef SGL_CUDA_SM90A
  if (is_wgmma(v)) return launch_attention_prefill_sm90a(a, tiles, n_tiles, v, stream);
#endif
  if (a.head_dim == 64) {
    switch (v) {
      case PrefillTcVariant::kKeys64Stages3:
        return launch_cfg<64, 64, 3>(a, tiles, n_tiles, stream);
      case PrefillTcVariant::kKeys64Stages2:
        return launch_cfg<64, 64, 2>(a, tiles, n_tiles, stream);
      case PrefillTcVariant::kKeys32Stages4:
        return launch_cfg<64, 32, 4>(a, tiles, n_tiles, stream);
      case PrefillTcVariant::kKeys128Stages2:
        return launch_cfg<64, 128, 2>(a, tiles, n_tiles, stream);
      case PrefillTcVariant::kKeys128Stages3:
        return launch_cfg<64, 128, 3>(a, tiles, n_tiles, stream);
      default:
        return false;
    }
  }
  switch (v) {
    case PrefillTcVariant::kKeys64Stages3:
      return launch_cfg<128, 64, 3>(a, tiles, n_tiles, stream);
    case PrefillTcVariant::kKeys64Stages2:
      return launch_cfg<128, 64, 2>(a, tiles, n_tiles, stream);
    case PrefillTcVariant::kKeys32Stages4:
      return launch_cfg<128, 32, 4>(a, tiles, n_tiles, stream);
    case PrefillTcVariant::kKeys128Stages2:
      return launch_cfg<128, 128, 2>(a, tiles, n_tiles, stream);
    case PrefillTcVariant::kKeys128Stages3:
      return launch_cfg<128, 128, 3>(a, tiles, n_tiles, stream);
    default:
      return false;
  }
}

bool launch_attention_prefill_tc(const AttentionArgs& a, const int32_t* tiles, int n_tiles,
                                 cudaStream_t stream) {
  return launch_attention_prefill_tc_variant(a, tiles, n_tiles, PrefillTcVariant::kDefault, stream);
}

}  // namespace sgl::backend::cuda
