// Prefill attention on Hopper's warpgroup tensor-core instructions (wgmma, sm_90a only; see
// attention_tc.h). Same contract, tiles and cp.async K/V pipeline as the mma.sync kernel in
// attention_tc.cu; what changes is the matrix work:
//   - 2 warpgroups per block, each owning 64 of the 128 query rows. S = Q K^T is one chain of
//     wgmma m64nBck16 with both operands read by the tensor cores from shared memory (Q stays
//     there; no Q registers), O += P V is a chain of wgmma m64nDk16 with P from registers (the S
//     accumulator layout per warp is the mma.sync A-fragment layout, as for the mma.sync kernel)
//     and V from shared memory through the transpose flag (V rows are [key][d]: N-major).
//   - Shared tiles use the 128-byte swizzle the wgmma descriptors describe: 64-element column
//     blocks of R rows x 128 bytes, 16-byte chunk c of row r at chunk c ^ (r & 7), every block
//     1024-byte aligned. The cp.async writes and the output staging use the same map.
//   - cp.async writes reach the tensor cores' (async proxy) reads through
//     fence.proxy.async.shared::cta in every writing thread before the barrier.
// Shapes (PrefillTcVariant): the default takes 64-key tiles in a 2-stage ring and caps registers
// at 128 so that two blocks share a multiprocessor: the warpgroups of one block run their softmax
// while the other block's keep the tensor cores busy. On the H100 (2026-11-27) that measured
// 451-484 TFLOP/s at 4k-16k tokens against 398-437 for one block per multiprocessor with 128-key
// tiles. Issuing the next tile's S before this tile's P V (FlashAttention-3's in-warpgroup
// overlap) measured slower in the one-block layout (375-422: the block-wide barrier per key tile
// keeps both warpgroups in step) and is not kept.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/attention_tc.h"
#include "backend/cuda/attention_tc_common.cuh"
#include "backend/cuda/kernels.h"

namespace sgl::backend::cuda {
namespace {

using namespace tc;

constexpr int kBr = kPrefillTcRows;  // 128 queries: two warpgroups of 64
constexpr int kThreads = 256;
static_assert(kBr == 128, "two warpgroups of 64 query rows");

template <int D, int Bc, int Stages>
struct Cfg {
  static constexpr int kChunks = D / 8;
  static constexpr int kQBytes = kBr * D * 2;
  static constexpr int kTileBytes = Bc * D * 2;
  static constexpr int kStageBytes = 2 * kTileBytes;                   // K then V
  static constexpr int kSmem = 1024 + kQBytes + Stages * kStageBytes;  // + alignment slack
  static constexpr int kRowsPerThread = Bc * kChunks / kThreads;
  static_assert(Bc * kChunks % kThreads == 0 && kThreads % kChunks == 0, "copy rounds");
  static_assert((Bc == 64 || Bc == 128) && (D == 64 || D == 128) && Stages >= 2, "shapes");
};

// Byte offset of (row, 16-byte chunk) in a tile of `rows` rows in 128-byte-swizzled column blocks.
__device__ __forceinline__ uint32_t sw128(int row, int chunk, int rows) {
  return uint32_t((chunk >> 3) * rows * 128 + row * 128 + (((chunk & 7) ^ (row & 7)) << 4));
}

// wgmma shared-memory descriptor, 128-byte swizzle.
__device__ __forceinline__ uint64_t gmma_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t(lbo >> 4) << 16) | (uint64_t(sbo >> 4) << 32) |
         (1ull << 62);
}

__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// Keeps the compiler from moving accumulator reads or writes across the asynchronous wgmma.
template <int N>
__device__ __forceinline__ void reg_fence(float (&d)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) asm volatile("" : "+f"(d[i][j])::"memory");
}

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
// d (64 x 64) = A B^T (+ d if accumulate): A 64 x 16 and B 64 x 16 in shared memory, K-major.
__device__ __forceinline__ void wgmma_ss(float (&d)[8][4], uint64_t da, uint64_t db,
                                         int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, "
      "%9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, "
      "%27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),
        "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),
        "+f"(d[7][2]), "+f"(d[7][3])
      : "l"(da), "l"(db), "r"(accumulate));
}

// d (64 x 128) = A B^T (+ d if accumulate): A 64 x 16 and B 128 x 16 in shared memory, K-major.
__device__ __forceinline__ void wgmma_ss(float (&d)[16][4], uint64_t da, uint64_t db,
                                         int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, "
      "%9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, "
      "%27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, "
      "%45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, "
      "%63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),
        "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),
        "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]),
        "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]),
        "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]),
        "+f"(d[11][3]), "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]),
        "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]),
        "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), "+f"(d[15][0]), "+f"(d[15][1]),
        "+f"(d[15][2]), "+f"(d[15][3])
      : "l"(da), "l"(db), "r"(accumulate));
}

// d (64 x 64) += A B: A 64 x 16 in registers (mma.sync A-fragment layout per warp), B 16 x 64 in
// shared memory, N-major (the transpose flag set).
__device__ __forceinline__ void wgmma_rs_nmajor(float (&d)[8][4], const uint32_t (&a)[4],
                                                uint64_t db) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, "
      "%9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, "
      "%27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),
        "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),
        "+f"(d[7][2]), "+f"(d[7][3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

// d (64 x 128) += A B: A 64 x 16 in registers (mma.sync A-fragment layout per warp), B 16 x 128 in
// shared memory, N-major (the transpose flag set).
__device__ __forceinline__ void wgmma_rs_nmajor(float (&d)[16][4], const uint32_t (&a)[4],
                                                uint64_t db) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, "
      "%9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, "
      "%27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, "
      "%45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, "
      "%63}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),
        "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),
        "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]),
        "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]),
        "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]),
        "+f"(d[11][3]), "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]),
        "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]),
        "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), "+f"(d[15][0]), "+f"(d[15][1]),
        "+f"(d[15][2]), "+f"(d[15][3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

#endif

template <int D, int Bc, int Stages, int kMinBlocks>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    prefill_wgmma_kernel(AttentionArgs a, const int32_t* __restrict__ tiles) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using C = Cfg<D, Bc, Stages>;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t sq = (static_cast<uint32_t>(__cvta_generic_to_shared(smem_raw)) + 1023u) & ~1023u;
  const uint32_t skv = sq + C::kQBytes;

  const int head = blockIdx.x;
  const int t0 = tiles[2 * blockIdx.y];
  const int n_rows = tiles[2 * blockIdx.y + 1];
  const int kvh = head / (a.n_head / a.n_head_kv);
  const int pos0 = a.positions[t0];
  const int last_pos = pos0 + n_rows - 1;
  const int32_t* __restrict__ slots = a.slots + a.seq_slots_begin[a.token_seq[t0]];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, wg = warp >> 2;
  const int n_kt = last_pos / Bc + 1;

  const uint16_t* __restrict__ kg = static_cast<const uint16_t*>(a.k_cache);
  const uint16_t* __restrict__ vg = static_cast<const uint16_t*>(a.v_cache);
  const int cc = tid % C::kChunks, cr = tid / C::kChunks;
  constexpr int kRowStep = kThreads / C::kChunks;
  const size_t kv_off = size_t(kvh) * D + cc * 8;

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
      cp_async16(sk + sw128(r, cc, Bc), kg + off, sl[i] >= 0);
      cp_async16(sv + sw128(r, cc, Bc), vg + off, sl[i] >= 0);
    }
  };

  for (int i = tid; i < kBr * C::kChunks; i += kThreads) {
    const int r = i / C::kChunks, c = i % C::kChunks;
    const bool ok = r < n_rows;
    cp_async16(sq + sw128(r, c, kBr),
               a.q + (size_t(t0 + (ok ? r : 0)) * a.n_head + head) * D + c * 8, ok);
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

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
  const float sl2 = a.scale * 1.4426950408889634f;
  const int warp_first = pos0 + warp * 16;
  const int row_a = warp_first + (lane >> 2), row_b = row_a + 8;
  const int wg_last = pos0 + wg * 64 + 63;
  const uint32_t q_wg = sq + wg * 64 * 128;  // this warpgroup's 64 rows in each column block

  // S (64 x Bc per warpgroup) = Q K^T of key tile kt, k-steps of 16 along the head dimension;
  // issued and committed, not waited for.
  auto issue_s = [&](int kt, float(&s)[Bc / 8][4]) {
    const uint32_t sk = skv + (kt % Stages) * C::kStageBytes;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const uint32_t koff = (kk & 3) * 32;  // 16 elements along a 128-byte row
      wgmma_ss(s, gmma_desc(q_wg + (kk >> 2) * kBr * 128 + koff, 16, 1024),
               gmma_desc(sk + (kk >> 2) * Bc * 128 + koff, 16, 1024), kk > 0 ? 1 : 0);
    }
    wgmma_commit();
  };
  // O (64 x D per warpgroup) += P V of key tile kt, k-steps of 16 keys; V is N-major: 64-element
  // d blocks Bc * 128 bytes apart, 8-key groups 1024 bytes apart. Issued and committed.
  auto issue_pv = [&](int kt, const uint32_t(&p)[Bc / 16][4]) {
    const uint32_t sv = skv + (kt % Stages) * C::kStageBytes + C::kTileBytes;
#pragma unroll
    for (int ks = 0; ks < Bc / 16; ++ks)
      wgmma_rs_nmajor(o, p[ks], gmma_desc(sv + ks * 2048, Bc * 128, 1024));
    wgmma_commit();
  };
  // Causal mask, online softmax update of (m, l) with S of key tile kt; P (bf16 A fragments)
  // into p, the corrections of O's rows into c0, c1.
  auto softmax = [&](int kt, float(&s)[Bc / 8][4], uint32_t(&p)[Bc / 16][4], float& c0, float& c1) {
    const int j0 = kt * Bc;
    if (j0 + Bc - 1 > warp_first) {
#pragma unroll
      for (int nt = 0; nt < Bc / 8; ++nt) {
        const int col = j0 + nt * 8 + 2 * (lane & 3);
        if (col > row_a) s[nt][0] = -INFINITY;
        if (col + 1 > row_a) s[nt][1] = -INFINITY;
        if (col > row_b) s[nt][2] = -INFINITY;
        if (col + 1 > row_b) s[nt][3] = -INFINITY;
      }
    }
    float mx0 = m0, mx1 = m1;
#pragma unroll
    for (int nt = 0; nt < Bc / 8; ++nt) {
      mx0 = fmaxf(mx0, fmaxf(s[nt][0], s[nt][1]));
      mx1 = fmaxf(mx1, fmaxf(s[nt][2], s[nt][3]));
    }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, off));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, off));
    }
    // A warp whose rows all precede the tile (inside a warpgroup that does not) sees only
    // masked scores; its maxima stay those of earlier tiles, finite from key tile 0 on.
    c0 = ex2((m0 - mx0) * sl2);
    c1 = ex2((m1 - mx1) * sl2);
    m0 = mx0;
    m1 = mx1;
    const float mb0 = mx0 * sl2, mb1 = mx1 * sl2;
    float rs0 = 0.0f, rs1 = 0.0f;
#pragma unroll
    for (int nt = 0; nt < Bc / 8; ++nt) {
      const float p0 = ex2(fmaf(s[nt][0], sl2, -mb0)), p1 = ex2(fmaf(s[nt][1], sl2, -mb0));
      const float p2 = ex2(fmaf(s[nt][2], sl2, -mb1)), p3 = ex2(fmaf(s[nt][3], sl2, -mb1));
      rs0 += p0 + p1;
      rs1 += p2 + p3;
      // The accumulator layout of n-tiles 2k, 2k+1 is the A-fragment layout of k-step k.
      p[nt / 2][(nt & 1) * 2 + 0] = pack_bf16(p0, p1);
      p[nt / 2][(nt & 1) * 2 + 1] = pack_bf16(p2, p3);
    }
    l0 = l0 * c0 + rs0;
    l1 = l1 * c1 + rs1;
  };
  auto rescale_o = [&](float c0, float c1) {
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      o[dt][0] *= c0;
      o[dt][1] *= c0;
      o[dt][2] *= c1;
      o[dt][3] *= c1;
    }
  };

  for (int kt = 0; kt < n_kt; ++kt) {
    cp_async_wait<Stages - 2>();  // key tile kt (and with it the Q tile) has landed ...
    fence_proxy_async();          // ... is visible to the tensor cores ...
    __syncthreads();              // ... for everyone's copies; tile kt - 1's stage is free
    if (kt + Stages - 1 < n_kt) issue_kv((kt + Stages - 1) % Stages, sl);
    cp_async_commit();
    if (kt + Stages < n_kt) load_slots(kt + Stages, sl);
    if (kt * Bc > wg_last) continue;  // warpgroup-uniform: the tile is after all its rows

    float s[Bc / 8][4];
    uint32_t p[Bc / 16][4];
    float c0, c1;
    wgmma_fence();
    issue_s(kt, s);
    wgmma_wait<0>();
    reg_fence(s);
    softmax(kt, s, p, c0, c1);
    rescale_o(c0, c1);
    wgmma_fence();
    reg_fence(o);
    issue_pv(kt, p);
    wgmma_wait<0>();
    reg_fence(o);
  }
  cp_async_wait<0>();
  __syncthreads();  // every warpgroup's reads of the Q tile are over

#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, off);
    l1 += __shfl_xor_sync(0xffffffffu, l1, off);
  }
  const float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
  const int ra = warp * 16 + (lane >> 2), rb = ra + 8;
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) {
    const uint32_t col = 4 * (lane & 3);
    const uint32_t va = pack_bf16(o[dt][0] * inv0, o[dt][1] * inv0);
    const uint32_t vb = pack_bf16(o[dt][2] * inv1, o[dt][3] * inv1);
    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sq + sw128(ra, dt, kBr) + col), "r"(va));
    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sq + sw128(rb, dt, kBr) + col), "r"(vb));
  }
  __syncwarp();
  for (int i = lane; i < 16 * C::kChunks; i += 32) {
    const int r = warp * 16 + i / C::kChunks, c = i % C::kChunks;
    if (r >= n_rows) continue;
    uint4 v;
    asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "r"(sq + sw128(r, c, kBr)));
    *reinterpret_cast<uint4*>(a.out + (size_t(t0 + r) * a.n_head + head) * D + c * 8) = v;
  }
#endif
}

template <int D, int Bc, int Stages, int kMinBlocks>
bool launch_cfg(const AttentionArgs& a, const int32_t* tiles, int n_tiles, cudaStream_t stream) {
  constexpr int smem = Cfg<D, Bc, Stages>::kSmem;
  static std::atomic<uint64_t> configured{0};  // per GPU
  if (!tc::set_max_dynamic_smem(prefill_wgmma_kernel<D, Bc, Stages, kMinBlocks>, smem, configured))
    return false;
  if (n_tiles > 65535) return false;
  prefill_wgmma_kernel<D, Bc, Stages, kMinBlocks>
      <<<dim3(a.n_head, n_tiles), kThreads, smem, stream>>>(a, tiles);
  return true;
}

template <int D>
bool launch_d(const AttentionArgs& a, const int32_t* tiles, int n_tiles, PrefillTcVariant v,
              cudaStream_t stream) {
  switch (v) {
    case PrefillTcVariant::kWgmmaKeys64Stages3:
      return launch_cfg<D, 64, 3, 1>(a, tiles, n_tiles, stream);
    case PrefillTcVariant::kWgmmaKeys64Stages2TwoBlocks:
      return launch_cfg<D, 64, 2, 2>(a, tiles, n_tiles, stream);
    case PrefillTcVariant::kWgmmaKeys128Stages2:
      return launch_cfg<D, 128, 2, 1>(a, tiles, n_tiles, stream);
    case PrefillTcVariant::kWgmmaKeys128Stages3:
      return launch_cfg<D, 128, 3, 1>(a, tiles, n_tiles, stream);
    default:
      return false;
  }
}

}  // namespace

bool launch_attention_prefill_sm90a(const AttentionArgs& a, const int32_t* tiles, int n_tiles,
                                    PrefillTcVariant v, cudaStream_t stream) {
  return a.head_dim == 64 ? launch_d<64>(a, tiles, n_tiles, v, stream)
                          : launch_d<128>(a, tiles, n_tiles, v, stream);
}

}  // namespace sgl::backend::cuda
