// Prefill attention on tensor cores (see kernels.h: launch_attention_prefill_tc).
//
// One block of 4 warps per (tile of up to 64 consecutive queries of one sequence, query head).
// The block walks the sequence's keys in tiles of 64 (slot lists: each K/V row is gathered with
// 16-byte loads), FlashAttention-2 style: S = Q K^T on tensor cores (WMMA bf16, f32 accumulate)
// into shared memory, an online softmax per row in f32 (each warp owns 16 query rows; the lanes
// walk a row's columns, so shared-memory accesses are conflict-free), P (bf16) V on tensor cores
// accumulated into an f32 O tile in shared memory, which is rescaled by the running-max correction
// before each accumulation. Shared-memory rows are padded (16 bytes) against bank conflicts of
// the WMMA loads. Causal: keys beyond a row's position are masked, and key tiles past the tile's
// last position are never read.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cstdint>

#include "backend/cuda/kernels.h"

namespace sgl::backend::cuda {
namespace {

using bf16 = __nv_bfloat16;
namespace wmma = nvcuda::wmma;

constexpr int kBr = 64;  // queries per block
constexpr int kBc = 64;  // keys per tile
constexpr int kThreads = 128;

// Padded leading dimensions (elements) of the shared tiles.
template <int D>
struct Smem {
  static constexpr int ld_qkv = D + 8;  // bf16 Q, K, V rows
  static constexpr int ld_s = kBc + 4;  // f32 S rows
  static constexpr int ld_p = kBc + 8;  // bf16 P rows
  static constexpr int ld_o = D + 4;    // f32 O rows
  static constexpr size_t q = 0;
  static constexpr size_t k = q + size_t(kBr) * ld_qkv * 2;
  static constexpr size_t v = k + size_t(kBc) * ld_qkv * 2;
  static constexpr size_t s = v + size_t(kBc) * ld_qkv * 2;
  static constexpr size_t p = s + size_t(kBr) * ld_s * 4;
  static constexpr size_t o = p + size_t(kBr) * ld_p * 2;
  static constexpr size_t total = o + size_t(kBr) * ld_o * 4;
};

template <int D>
__global__ void __launch_bounds__(kThreads)
    prefill_tc_kernel(AttentionArgs a, const int32_t* __restrict__ tiles) {
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* sq = reinterpret_cast<bf16*>(smem + Smem<D>::q);
  bf16* sk = reinterpret_cast<bf16*>(smem + Smem<D>::k);
  bf16* sv = reinterpret_cast<bf16*>(smem + Smem<D>::v);
  float* ss = reinterpret_cast<float*>(smem + Smem<D>::s);
  bf16* sp = reinterpret_cast<bf16*>(smem + Smem<D>::p);
  float* so = reinterpret_cast<float*>(smem + Smem<D>::o);

  const int t0 = tiles[2 * blockIdx.x];
  const int n_rows = tiles[2 * blockIdx.x + 1];
  const int head = blockIdx.y;
  const int kvh = head / (a.n_head / a.n_head_kv);
  const int pos0 = a.positions[t0];
  const int last_pos = pos0 + n_rows - 1;
  const int32_t* slots = a.slots + a.seq_slots_begin[a.token_seq[t0]];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  constexpr int kVec = D / 8;  // 16-byte vectors per row

  constexpr int LQ = Smem<D>::ld_qkv, LS = Smem<D>::ld_s, LP = Smem<D>::ld_p, LO = Smem<D>::ld_o;
  // Q tile (rows past n_rows are zero) and a zero O tile.
  const bf16* qg = reinterpret_cast<const bf16*>(a.q);
  for (int i = tid; i < kBr * kVec; i += kThreads) {
    const int r = i / kVec, c = i % kVec;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r < n_rows)
      val = *reinterpret_cast<const uint4*>(qg + (size_t(t0 + r) * a.n_head + head) * D + c * 8);
    *reinterpret_cast<uint4*>(sq + r * LQ + c * 8) = val;
  }
  for (int i = tid; i < kBr * LO; i += kThreads) so[i] = 0.0f;

  // Softmax state of the warp's 16 rows, replicated in every lane.
  float m[16], l[16];
#pragma unroll
  for (int r = 0; r < 16; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
  }
  const float qscale = a.scale * 1.4426950408889634f;

  const bf16* kg = static_cast<const bf16*>(a.k_cache);
  const bf16* vg = static_cast<const bf16*>(a.v_cache);
  const int n_tiles = last_pos / kBc + 1;
  for (int kt = 0; kt < n_tiles; ++kt) {
    const int j0 = kt * kBc;
    __syncthreads();  // the previous tile's K, V and P are no longer read
    for (int i = tid; i < kBc * kVec; i += kThreads) {
      const int r = i / kVec, c = i % kVec;
      const int j = j0 + r;
      uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
      if (j <= last_pos) {
        const size_t off = (size_t(slots[j]) * a.n_head_kv + kvh) * D + c * 8;
        kv = *reinterpret_cast<const uint4*>(kg + off);
        vv = *reinterpret_cast<const uint4*>(vg + off);
      }
      *reinterpret_cast<uint4*>(sk + r * LQ + c * 8) = kv;
      *reinterpret_cast<uint4*>(sv + r * LQ + c * 8) = vv;
    }
    __syncthreads();

    // S (this warp's 16 rows x 64 keys) = Q K^T.
#pragma unroll
    for (int nf = 0; nf < kBc / 16; ++nf) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb;
        wmma::load_matrix_sync(fa, sq + warp * 16 * LQ + kk * 16, LQ);
        wmma::load_matrix_sync(fb, sk + nf * 16 * LQ + kk * 16, LQ);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      wmma::store_matrix_sync(ss + warp * 16 * LS + nf * 16, acc, LS, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax, row by row: lane handles columns lane and lane + 32; P to shared memory;
    // the row of O rescaled by the correction.
#pragma unroll
    for (int r = 0; r < 16; ++r) {
      const int row = warp * 16 + r;
      const int row_pos = pos0 + (row < n_rows ? row : 0);
      const float* srow = ss + row * LS;
      const int j_a = j0 + lane, j_b = j0 + lane + 32;
      const float sa = j_a <= row_pos ? srow[lane] * qscale : -INFINITY;
      const float sb = j_b <= row_pos ? srow[lane + 32] * qscale : -INFINITY;
      float mx = fmaxf(sa, sb);
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      const float m_new = fmaxf(m[r], mx);
      const float corr =
          m[r] == -INFINITY ? (m_new == -INFINITY ? 1.0f : 0.0f) : exp2f(m[r] - m_new);
      const bf16 pa = __float2bfloat16_rn(sa == -INFINITY ? 0.0f : exp2f(sa - m_new));
      const bf16 pb = __float2bfloat16_rn(sb == -INFINITY ? 0.0f : exp2f(sb - m_new));
      sp[row * LP + lane] = pa;
      sp[row * LP + lane + 32] = pb;
      float sum = __bfloat162float(pa) + __bfloat162float(pb);  // what P V will use
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      l[r] = l[r] * corr + sum;
      m[r] = m_new;
      float* orow = so + row * LO;
#pragma unroll
      for (int c = lane; c < D; c += 32) orow[c] *= corr;
    }
    __syncwarp();

    // O (16 rows x D) += P (16 x 64) V (64 x D).
#pragma unroll
    for (int nf = 0; nf < D / 16; ++nf) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, so + warp * 16 * LO + nf * 16, LO, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kBc / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb;
        wmma::load_matrix_sync(fa, sp + warp * 16 * LP + kk * 16, LP);
        wmma::load_matrix_sync(fb, sv + kk * 16 * LQ + nf * 16, LQ);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      wmma::store_matrix_sync(so + warp * 16 * LO + nf * 16, acc, LO, wmma::mem_row_major);
    }
    __syncwarp();
  }

  // Normalize and write the warp's rows (lanes along the row).
#pragma unroll
  for (int r = 0; r < 16; ++r) {
    const int row = warp * 16 + r;
    if (row >= n_rows) continue;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    const float* orow = so + row * LO;
    uint16_t* out = a.out + (size_t(t0 + row) * a.n_head + head) * D;
    for (int c = lane; c < D; c += 32)
      out[c] = __bfloat16_as_ushort(__float2bfloat16_rn(orow[c] * inv));
  }
}

template <int D>
bool launch_d(const AttentionArgs& a, const int32_t* tiles, int n_tiles, cudaStream_t stream) {
  static bool configured = false;
  if (!configured) {
    if (cudaFuncSetAttribute(prefill_tc_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             int(Smem<D>::total)) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    configured = true;
  }
  const dim3 grid(n_tiles, a.n_head);
  prefill_tc_kernel<D><<<grid, kThreads, Smem<D>::total, stream>>>(a, tiles);
  return true;
}

}  // namespace

bool prefill_tc_supported(int head_dim, KvElem kv_elem) {
  return (head_dim == 64 || head_dim == 128) && kv_elem == KvElem::kBF16;
}

bool launch_attention_prefill_tc(const AttentionArgs& a, const int32_t* tiles, int n_tiles,
                                 cudaStream_t stream) {
  if (!prefill_tc_supported(a.head_dim, a.kv_elem)) return false;
  if (n_tiles <= 0) return true;
  return a.head_dim == 64 ? launch_d<64>(a, tiles, n_tiles, stream)
                          : launch_d<128>(a, tiles, n_tiles, stream);
}

}  // namespace sgl::backend::cuda
