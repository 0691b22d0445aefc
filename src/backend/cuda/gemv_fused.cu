// Decode GEMVs with their neighbouring elementwise work fused in (see kernels.h): at batch 1 the
// small kernels between the GEMVs (RMSNorms, the residual adds, bias + RoPE + the K/V store) cost
// about as much in launch latency and ramp as they do in work, so they move into the GEMVs.
//
// The weight stream is the one of gemv.cu (R output rows per task, 16-byte loads that skip L1, U
// steps of 256 columns in flight, f32 sums reduced by shuffles), with
// - for the small projections (QKV, O, down: fewer than kSplitBelowTasks tasks), K split over the
//   4 warps of a block, whose partial sums meet in shared memory in warp order: one warp per task
//   left too few warps in flight, each walking K one memory latency per step;
// - a prologue (GemvNormIn) that computes the activations itself: every block reads the n f32
//   residual rows from L2, reduces their sums of squares, and writes bf16(x * rsqrt(mean(x^2) +
//   eps) * weight) into shared memory; the block's first weight loads are issued before it, so
//   the prologue runs under their latency. The grid is persistent (a few blocks per SM striding
//   over the tasks) so that this is done about a thousand times, not once per task;
// - an epilogue: plain f32 store, the residual add (y += sum, one lane per element, no atomics),
//   SiLU(gate) * up, or bias + RoPE + the Q write and the K/V store into the slots (a warp's four
//   rows are two RoPE pairs of one head, so both halves of every rotation are in its registers).
// Every kernel is templated on the element type T of the weights and activations (gemv_common.cuh:
// Bf16, or F16 for --dtype float16); Q stays bf16 and K/V the pool's type either way.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <utility>

#include "backend/cuda/gemv_common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/kv_store.cuh"
#include "backend/cuda/pdl.cuh"

namespace sgl::backend::cuda {
namespace {

using namespace gemv_detail;

enum class Epi { kF32, kAdd, kGated, kQkvRope };

struct FusedArgs {
  const uint16_t* x = nullptr;  // T activations [n, K] when there is no norm prologue
  GemvNormIn norm;              // norm.x != null: the prologue computes the activations
  const uint16_t* w = nullptr;  // [N, K] T
  void* out = nullptr;          // kF32 / kAdd: f32 [n, N]; kGated: T [n, N / 2]
  int N = 0, K = 0, n_tasks = 0;
  QkvRopeArgs rope;  // kQkvRope (its qkv field is unused)
};

// The R weight rows of warp task t. Rows past the end are clamped to N - 1 (loads stay in bounds)
// and marked dead (not stored).
template <int R, Epi kEpi>
__device__ __forceinline__ void task_rows(const FusedArgs& a, int t, int (&row)[R],
                                          bool (&live)[R]) {
#pragma unroll
  for (int j = 0; j < R; ++j) {
    if constexpr (kEpi == Epi::kGated) {
      const int F = a.N / 2;
      const int g = t * (R / 2) + (j % (R / 2));
      live[j] = g < F;
      row[j] = j < R / 2 ? g : F + g;
    } else if constexpr (kEpi == Epi::kQkvRope) {
      static_assert(R == 4, "a QKV task is two RoPE pairs");
      // Per head: rope_dim / 4 tasks of two pairs, then the unrotated tail in fours. Pairs are
      // (2i, 2i+1) (task rows 4u..4u+3) or, NEOX, (i, i + rope_dim/2) (rows 2u, 2u+1 and their
      // partners).
      const int D = a.rope.head_dim, tasks_per_head = D / 4;
      const int head = t / tasks_per_head, u = t % tasks_per_head;
      int e;
      if (a.rope.neox && u < a.rope.rope_dim / 4)
        e = 2 * u + (j & 1) + (j >= 2 ? a.rope.rope_dim / 2 : 0);
      else if (a.rope.neox)
        e = a.rope.rope_dim + 4 * (u - a.rope.rope_dim / 4) + j;
      else
        e = 4 * u + j;
      row[j] = head * D + e;
      live[j] = row[j] < a.N;
    } else {
      row[j] = t * R + j;
      live[j] = row[j] < a.N;
    }
    if (!live[j]) row[j] = a.N - 1;
  }
}

// act[r, :] = T(x[r] * rsqrt(mean(x[r]^2) + eps) * weight) for the block's NR rows: the
// expression of rms_norm_kernel (the sum of squares in another order). Ends with a barrier.
template <typename T, int NR>
__device__ __forceinline__ void norm_prologue(const GemvNormIn& in, int K, uint16_t* act) {
  __shared__ float part[kWarps][NR];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float* xr[NR];
#pragma unroll
  for (int r = 0; r < NR; ++r)
    xr[r] = in.x + static_cast<size_t>(in.rows != nullptr ? in.rows[r] : r) * K;
  float ss[NR];
#pragma unroll
  for (int r = 0; r < NR; ++r) ss[r] = 0.0f;
#pragma unroll 4
  for (int i = threadIdx.x * 4; i < K; i += kWarps * 32 * 4) {
#pragma unroll
    for (int r = 0; r < NR; ++r) {
      const float4 v = __ldg(reinterpret_cast<const float4*>(xr[r] + i));
      ss[r] += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
  }
#pragma unroll
  for (int r = 0; r < NR; ++r) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss[r] += __shfl_xor_sync(0xffffffffu, ss[r], o);
    if (lane == 0) part[warp][r] = ss[r];
  }
  __syncthreads();
  float inv[NR];
#pragma unroll
  for (int r = 0; r < NR; ++r) {
    float s = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) s += part[w][r];
    inv[r] = rsqrtf(s / static_cast<float>(K) + in.eps);
  }
#pragma unroll 2
  for (int i = threadIdx.x * 4; i < K; i += kWarps * 32 * 4) {
    const float4 g = __ldg(reinterpret_cast<const float4*>(in.weight + i));
#pragma unroll
    for (int r = 0; r < NR; ++r) {
      const float4 v = __ldg(reinterpret_cast<const float4*>(xr[r] + i));
      uint2 p;
      p.x = T::bits(v.x * inv[r] * g.x) | (uint32_t{T::bits(v.y * inv[r] * g.y)} << 16);
      p.y = T::bits(v.z * inv[r] * g.z) | (uint32_t{T::bits(v.w * inv[r] * g.w)} << 16);
      *reinterpret_cast<uint2*>(act + static_cast<size_t>(r) * K + i) = p;
    }
  }
  __syncthreads();
}

// Bias, RoPE and the store of element j (weight row `row`) of a QKV task for activation row r;
// v_p, row_p: its RoPE partner's sum and row.
__device__ __forceinline__ void qkv_rope_store(const QkvRopeArgs& a, int r, int row, int j,
                                               float v_j, float v_p, int row_p) {
  const int D = a.head_dim;
  const int head = row / D, e = row % D;
  if (a.bias != nullptr) {
    v_j += a.bias[row];
    v_p += a.bias[row_p];
  }
  float out = v_j;
  if (e < a.rope_dim && head < a.n_head + a.n_head_kv) {
    const bool first = a.neox ? j < 2 : (j & 1) == 0;
    const int e0 = first ? e : row_p % D;  // the pair's first element
    const int i = a.neox ? e0 : e0 / 2;
    const float* cs = a.cos_sin + static_cast<size_t>(r) * a.rope_dim;
    const float c = cs[i], s = cs[a.rope_dim / 2 + i];
    // (x0, x1) -> (x0 c - x1 s, x0 s + x1 c), x0 the first element: as qkv_rope_store_kernel.
    out = first ? v_j * c - v_p * s : v_p * s + v_j * c;
  }
  if (head < a.n_head) {
    a.q_out[static_cast<size_t>(r) * a.n_head * D + row] = to_bf16_bits(out);
  } else {
    const bool is_k = head < a.n_head + a.n_head_kv;
    const int kv_head = head - a.n_head - (is_k ? 0 : a.n_head_kv);
    const size_t idx = (static_cast<size_t>(a.out_slots[r]) * a.n_head_kv + kv_head) * D + e;
    store_kv_elem(is_k ? a.k_cache : a.v_cache, a.kv_elem, idx, out);
  }
}

// KS = 1: each warp owns a task (R rows) and walks all of K. KS = kWarps: the block's warps share
// a task, warp w taking every kWarps-th step of 256 * U columns, and the partial sums meet in
// shared memory in warp order (deterministic). The small projections (a few thousand rows) need
// the split: one warp per task leaves too few warps, each walking K one memory latency per step.
// Split and without a prologue (O, down: one block per task, not persistent), n = 1 is held to 64
// registers so that 8 blocks fit per SM and the 1024 tasks of a 4096-row matrix run in one wave.
template <typename T, int NR, int R, int U, int KS, bool kNorm, Epi kEpi>
__global__ void __launch_bounds__(kWarps * 32, (KS > 1 && NR == 1 && !kNorm) ? 8 : 1)
    gemv_fused_kernel(const __grid_constant__ FusedArgs a) {
  static_assert(kEpi != Epi::kGated || R % 2 == 0, "gated rows come in gate/up pairs");
  static_assert(KS == 1 || KS == kWarps, "K is split over all of the block's warps or none");
  static_assert(NR * R <= 32, "one lane per output element");
  extern __shared__ uint4 act_smem[];                // kNorm: [NR, K] T
  __shared__ float red[KS > 1 ? 2 : 1][KS][NR * R];  // KS > 1: per-warp sums, double-buffered
  uint16_t* act = reinterpret_cast<uint16_t*>(act_smem);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int K = a.K;
  const int stride = KS > 1 ? gridDim.x : gridDim.x * kWarps;
  int t = KS > 1 ? blockIdx.x : blockIdx.x * kWarps + warp;
  const int k_begin = (KS > 1 ? warp * 256 * U : 0) + lane * 8;
  constexpr int kStep = 256 * U * KS;

  int row[R];
  bool live[R];
  const uint16_t* wr[R];
  uint4 wv[U][R];
  auto start_task = [&](int task) {
    task_rows<R, kEpi>(a, task, row, live);
#pragma unroll
    for (int j = 0; j < R; ++j) wr[j] = a.w + static_cast<size_t>(row[j]) * K;
    if (k_begin < K) load_steps(wr, k_begin, K, wv);
  };
  auto xrow = [&](int r, int kk) {
    if constexpr (kNorm)
      return *reinterpret_cast<const uint4*>(act + static_cast<size_t>(r) * K + kk);
    else
      return __ldg(reinterpret_cast<const uint4*>(a.x + static_cast<size_t>(r) * K + kk));
  };

  pdl_trigger();
  // The first weight loads depend on nothing earlier: they are in flight during the wait for the
  // previous kernel and the norm prologue.
  if (t < a.n_tasks) start_task(t);
  pdl_wait();
  if constexpr (kNorm) norm_prologue<T, NR>(a.norm, K, act);

  int parity = 0;
  for (bool first = true; t < a.n_tasks; t += stride, first = false) {
    if (!first) start_task(t);
    float acc[NR][R];
#pragma unroll
    for (int r = 0; r < NR; ++r)
#pragma unroll
      for (int j = 0; j < R; ++j) acc[r][j] = 0.0f;
    for (int k0 = k_begin; k0 < K; k0 += kStep) {
      if (k0 != k_begin) load_steps(wr, k0, K, wv);
      accumulate_steps<T>(wv, k0, K, xrow, acc);
    }
    warp_sum(acc);

    if constexpr (KS > 1) {
      // Warp w's sums to red[parity][w]; warp 0 adds them in warp order. Alternating buffers: a
      // warp writes a buffer again two tasks later, after the barrier that warp 0 reaches only
      // once done reading it.
#pragma unroll
      for (int r = 0; r < NR; ++r)
#pragma unroll
        for (int j = 0; j < R; ++j)
          if (lane == r * R + j) red[parity][warp][r * R + j] = acc[r][j];
      __syncthreads();
      const int p = parity;
      parity ^= 1;
      if (warp != 0) continue;
#pragma unroll
      for (int r = 0; r < NR; ++r)
#pragma unroll
        for (int j = 0; j < R; ++j) {
          float sum = red[p][0][r * R + j];
#pragma unroll
          for (int w = 1; w < KS; ++w) sum += red[p][w][r * R + j];
          acc[r][j] = sum;
        }
    }

    // Every lane holds every sum; each output element is stored by exactly one lane.
    if constexpr (kEpi == Epi::kGated) {
      uint16_t* y = static_cast<uint16_t*>(a.out);
      const int F = a.N / 2;
#pragma unroll
      for (int r = 0; r < NR; ++r)
#pragma unroll
        for (int j = 0; j < R / 2; ++j)
          if (lane == (r * (R / 2) + j) % 32 && live[j])
            y[static_cast<size_t>(r) * F + row[j]] =
                T::bits(silu_mul(acc[r][j], acc[r][j + R / 2]));
    } else {
#pragma unroll
      for (int r = 0; r < NR; ++r)
#pragma unroll
        for (int j = 0; j < R; ++j)
          if (lane == (r * R + j) % 32 && live[j]) {
            if constexpr (kEpi == Epi::kQkvRope) {
              // The partner is one of two unrolled indices: a select, not a run-time index (which
              // would move the arrays to local memory).
              const float v_p = a.rope.neox ? acc[r][j ^ 2] : acc[r][j ^ 1];
              const int row_p = a.rope.neox ? row[j ^ 2] : row[j ^ 1];
              qkv_rope_store(a.rope, r, row[j], j, acc[r][j], v_p, row_p);
            } else {
              float* y = static_cast<float*>(a.out) + static_cast<size_t>(r) * a.N + row[j];
              if constexpr (kEpi == Epi::kAdd)
                *y += acc[r][j];
              else
                *y = acc[r][j];
            }
          }
    }
  }
}

// Programmatic dependent launch of the fused GEMVs with SGL_CUDA_PDL=1 (as the plain ones). Off by
// default: on the H100 it measured -0.4% of the batch-1 step in one call and +7% in another
// (docs/cuda.md, "Batch-1 decode fusions").
bool pdl_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("SGL_CUDA_PDL");
    return e != nullptr && e[0] == '1' && e[1] == '\0';
  }();
  return on;
}

// Blocks per SM of the persistent (norm prologue) kernels: each block computes the prologue
// once, so fewer blocks read less from L2; SGL_CUDA_GEMV_BPS overrides (benchmarks).
int prologue_blocks_per_sm() {
  static const int v = [] {
    const char* e = std::getenv("SGL_CUDA_GEMV_BPS");
    const int x = e != nullptr ? std::atoi(e) : 0;
    return x >= 1 && x <= 32 ? x : 8;
  }();
  return v;
}

// Shared memory of the norm prologue: n rows of K 16-bit elements, at most this much (two blocks
// per SM).
constexpr size_t kMaxPrologueSmem = 96 * 1024;

// The most resident blocks per SM of `kernel` with `smem` dynamic bytes. The first call for a
// (kernel, smem) also raises the kernel's dynamic shared memory limit where it needs more than
// the default 48 KiB; the answer is cached, so graph captures (and most launches) make no such
// host calls.
int prepare_kernel(const void* kernel, size_t smem) {
  static std::mutex mu;
  static std::map<std::pair<const void*, size_t>, int> cache;
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_pair(kernel, smem);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  // Static shared memory comes on top of the dynamic bytes: raise the limit for every size.
  if (smem > 0)
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(kMaxPrologueSmem));
  int blocks = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, kWarps * 32, smem) !=
      cudaSuccess) {
    cudaGetLastError();
    blocks = 1;
  }
  blocks = blocks > 0 ? blocks : 1;
  cache.emplace(key, blocks);
  return blocks;
}

// SGL_CUDA_GEMV_SPLIT=0 keeps one warp per task everywhere (benchmarks).
bool split_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("SGL_CUDA_GEMV_SPLIT");
    return !(e != nullptr && e[0] == '0');
  }();
  return on;
}

int sm_count() {
  int dev = 0, n = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev);
  return n > 0 ? n : 1;
}

// Tasks below this count split K over the block's warps (KS = kWarps): about one resident warp
// per task or fewer otherwise. The choice depends on the shape alone, not on n, so a row's sums
// are the same at every batch size.
constexpr int kSplitBelowTasks = 4096;

template <typename T, int NR, int R, int U, int KS, bool kNorm, Epi kEpi>
void launch_tiled(FusedArgs a, cudaStream_t stream) {
  const auto kernel = gemv_fused_kernel<T, NR, R, U, KS, kNorm, kEpi>;
  const int warps_per_task = KS > 1 ? kWarps : 1;
  int blocks = (a.n_tasks * warps_per_task + kWarps - 1) / kWarps;
  size_t smem = 0;
  if constexpr (kNorm) {
    smem = static_cast<size_t>(NR) * a.K * 2;
    const int per_sm = std::min(prologue_blocks_per_sm(),
                                prepare_kernel(reinterpret_cast<const void*>(kernel), smem));
    blocks = std::min(blocks, sm_count() * per_sm);
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(blocks);
  cfg.blockDim = dim3(kWarps * 32);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl_enabled() ? 1 : 0;
  cudaLaunchKernelEx(&cfg, kernel, a);  // errors surface at the caller's cudaGetLastError()
}

template <typename T, int NR, bool kNorm, Epi kEpi>
void launch_fused(FusedArgs a, cudaStream_t stream) {
  // The split is chosen by the shape alone and uses one tiling (4 rows x 2 steps) for every n,
  // so a row's sums are the same at every batch size. Unsplit, the tilings of gemv.cu's
  // defaults: 4 rows x 2 steps; gated at n <= 2, a gate/up pair x 4 steps (the order of each
  // lane's sum does not depend on the steps in flight).
  const int out_rows = kEpi == Epi::kGated ? a.N / 2 : a.N;
  const int tasks4 = kEpi == Epi::kGated ? (out_rows + 1) / 2 : (out_rows + 3) / 4;
  if (tasks4 < kSplitBelowTasks && split_enabled()) {
    a.n_tasks = tasks4;
    launch_tiled<T, NR, 4, 2, kWarps, kNorm, kEpi>(a, stream);
    return;
  }
  constexpr bool kSmallGated = kEpi == Epi::kGated && NR <= 2;
  constexpr int R = kSmallGated ? 2 : 4;
  constexpr int U = kSmallGated ? 4 : 2;
  const int out_per_task = kEpi == Epi::kGated ? R / 2 : R;
  a.n_tasks = (out_rows + out_per_task - 1) / out_per_task;
  launch_tiled<T, NR, R, U, 1, kNorm, kEpi>(a, stream);
}

template <typename T, bool kNorm, Epi kEpi>
void launch_n(const FusedArgs& a, int n, cudaStream_t stream) {
  switch (n) {
    case 1:
      return launch_fused<T, 1, kNorm, kEpi>(a, stream);
    case 2:
      return launch_fused<T, 2, kNorm, kEpi>(a, stream);
    case 3:
      return launch_fused<T, 3, kNorm, kEpi>(a, stream);
    case 4:
      return launch_fused<T, 4, kNorm, kEpi>(a, stream);
    case 5:
      return launch_fused<T, 5, kNorm, kEpi>(a, stream);
    case 6:
      return launch_fused<T, 6, kNorm, kEpi>(a, stream);
    case 7:
      return launch_fused<T, 7, kNorm, kEpi>(a, stream);
    default:
      return launch_fused<T, 8, kNorm, kEpi>(a, stream);
  }
}

template <bool kNorm, Epi kEpi>
void launch_any(const FusedArgs& a, int n, cudaStream_t stream, WeightElem elem) {
  if (elem == WeightElem::kF16)
    launch_n<F16, kNorm, kEpi>(a, n, stream);
  else
    launch_n<Bf16, kNorm, kEpi>(a, n, stream);
}

}  // namespace

bool gemv_norm_supported(int n, int N, int K) {
  return gemv_supported(n, N, K) && static_cast<size_t>(n) * K * 2 <= kMaxPrologueSmem;
}

void launch_gemv_norm(const GemvNormIn& in, const uint16_t* w, float* y, int n, int N, int K,
                      cudaStream_t stream, WeightElem elem) {
  if (!gemv_norm_supported(n, N, K)) return;
  FusedArgs a;
  a.norm = in;
  a.w = w;
  a.out = y;
  a.N = N;
  a.K = K;
  launch_any<true, Epi::kF32>(a, n, stream, elem);
}

void launch_gemv_norm_gate_up_silu(const GemvNormIn& in, const uint16_t* w_gu, uint16_t* out, int n,
                                   int n_ff, int K, cudaStream_t stream, WeightElem elem) {
  if (!gemv_norm_supported(n, 2 * n_ff, K)) return;
  FusedArgs a;
  a.norm = in;
  a.w = w_gu;
  a.out = out;
  a.N = 2 * n_ff;
  a.K = K;
  launch_any<true, Epi::kGated>(a, n, stream, elem);
}

void launch_gemv_add(const uint16_t* x, const uint16_t* w, float* resid, int n, int N, int K,
                     cudaStream_t stream, WeightElem elem) {
  if (!gemv_supported(n, N, K)) return;
  FusedArgs a;
  a.x = x;
  a.w = w;
  a.out = resid;
  a.N = N;
  a.K = K;
  launch_any<false, Epi::kAdd>(a, n, stream, elem);
}

bool gemv_norm_qkv_rope_supported(const QkvRopeArgs& a, int K) {
  const int N = (a.n_head + 2 * a.n_head_kv) * a.head_dim;
  return gemv_norm_supported(a.n, N, K) && a.head_dim % 4 == 0 && a.rope_dim % 4 == 0 &&
         a.rope_dim > 0 && a.rope_dim <= a.head_dim;
}

void launch_gemv_norm_qkv_rope(const GemvNormIn& in, const uint16_t* w_qkv, const QkvRopeArgs& r,
                               int K, cudaStream_t stream, WeightElem elem) {
  if (!gemv_norm_qkv_rope_supported(r, K)) return;
  FusedArgs a;
  a.norm = in;
  a.w = w_qkv;
  a.N = (r.n_head + 2 * r.n_head_kv) * r.head_dim;
  a.K = K;
  a.rope = r;
  launch_any<true, Epi::kQkvRope>(a, r.n, stream, elem);
}

}  // namespace sgl::backend::cuda
