// Skinny GEMMs for decode (see kernels.h): y[n, N] = x[n, K] W[N, K]^T for n <= kGemvMaxRows.
//
// At these sizes the weight matrix is read once and every other byte is negligible, so the kernel
// is a weight stream: each warp owns R consecutive output rows and walks K with 16-byte loads per
// lane (8 bf16), U steps of 256 columns issued before any arithmetic, so R * U loads of 16 bytes
// per lane are in flight. Weights bypass L1 (read once); the activations (n rows, a few KB to a
// few hundred KB) are read through L1/L2 by every warp. Each lane keeps n * R f32 partial sums,
// reduced across the warp by shuffles at the end: no atomics, no split over K, so the result is
// deterministic and independent of the launch configuration's timing.
//
// The gated form reads the fused gate|up matrix [2F, K]: a warp owns R/2 gate rows and the same
// R/2 up rows, and writes bf16(silu(gate) * up) directly (the SiLU-and-multiply epilogue), so the
// f32 gate|up rows never go to memory.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "backend/cuda/gemv_common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/pdl.cuh"

namespace sgl::backend::cuda {
namespace {

using namespace gemv_detail;

// NR activation rows, R weight rows per warp, U column steps in flight, T the element type of x and
// W (gemv_common.cuh: Bf16 or F16). Gated: N = 2F rows (gate | up), out is T [n, F]; else out is
// f32 [n, N].
template <typename T, int NR, int R, int U, bool kGated>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_kernel(const uint16_t* __restrict__ x, const uint16_t* __restrict__ w,
                void* __restrict__ out, int N, int K) {
  static_assert(!kGated || R % 2 == 0, "gated rows come in gate/up pairs");
  const int lane = threadIdx.x & 31;
  const int warp = blockIdx.x * kWarps + (threadIdx.x >> 5);
  const int F = N / 2;
  int row[R];
  bool live[R];
#pragma unroll
  for (int j = 0; j < R; ++j) {
    if constexpr (kGated) {
      const int g = warp * (R / 2) + (j % (R / 2));
      live[j] = g < F;
      row[j] = (j < R / 2 ? g : F + g);
    } else {
      row[j] = warp * R + j;
      live[j] = row[j] < N;
    }
    if (!live[j]) row[j] = N - 1;  // loads stay in bounds; the result is not stored
  }
  if (!live[0]) return;  // the whole warp is past the end (row order: j = 0 is the smallest)
  const uint16_t* wr[R];
#pragma unroll
  for (int j = 0; j < R; ++j) wr[j] = w + static_cast<size_t>(row[j]) * K;

  float acc[NR][R];
#pragma unroll
  for (int r = 0; r < NR; ++r)
#pragma unroll
    for (int j = 0; j < R; ++j) acc[r][j] = 0.0f;

  pdl_trigger();
  uint4 wv[U][R];
  auto xrow = [&](int r, int kk) {
    return __ldg(reinterpret_cast<const uint4*>(x + static_cast<size_t>(r) * K + kk));
  };
  // The first weight loads do not depend on the previous kernel: under programmatic dependent
  // launch they overlap its tail. The activations are read only after the wait.
  load_steps(wr, lane * 8, K, wv);
  pdl_wait();
  for (int k0 = lane * 8; k0 < K; k0 += 256 * U) {
    if (k0 != lane * 8) load_steps(wr, k0, K, wv);
    accumulate_steps<T>(wv, k0, K, xrow, acc);
  }
  warp_sum(acc);

  // Every lane now holds every sum; lane r * R + j (or r * R/2 + j, gated) stores one.
  if constexpr (kGated) {
    uint16_t* y = static_cast<uint16_t*>(out);
#pragma unroll
    for (int r = 0; r < NR; ++r)
#pragma unroll
      for (int j = 0; j < R / 2; ++j)
        if (lane == (r * (R / 2) + j) % 32 && live[j]) {
          const float g = acc[r][j], u = acc[r][j + R / 2];
          // The same expression as silu_mul_kernel, so both paths round alike.
          y[static_cast<size_t>(r) * F + row[j]] = T::bits(silu_mul(g, u));
        }
  } else {
    float* y = static_cast<float*>(out);
#pragma unroll
    for (int r = 0; r < NR; ++r)
#pragma unroll
      for (int j = 0; j < R; ++j)
        if (lane == (r * R + j) % 32 && live[j]) y[static_cast<size_t>(r) * N + row[j]] = acc[r][j];
  }
}

// Programmatic dependent launch of the GEMVs with SGL_CUDA_PDL=1. Off by default: on the H100
// it did not move the 8B batch-1 decode step beyond run-to-run noise (docs/cuda.md).
bool pdl_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("SGL_CUDA_PDL");
    return e != nullptr && std::strcmp(e, "1") == 0;
  }();
  return on;
}

// Rows per warp and steps in flight for each activation-row count: more weight rows per warp
// share each activation load (L1 traffic n / R per weight byte), and R * U 16-byte loads per lane
// keep enough bytes in flight to cover HBM latency.
template <typename T, int NR, bool kGated>
void launch_nr(const uint16_t* x, const uint16_t* w, void* out, int N, int K, int variant,
               cudaStream_t stream) {
  // variant 0 = default; 1..4 = alternatives kept for the benchmark (v0 was <2, 4> at n <= 2).
  const int rows = kGated ? N / 2 : N;
  auto go = [&](auto kernel, int r_per_warp) {
    const int out_per_warp = kGated ? r_per_warp / 2 : r_per_warp;
    const int warps = (rows + out_per_warp - 1) / out_per_warp;
    const int blocks = (warps + kWarps - 1) / kWarps;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(blocks);
    cfg.blockDim = dim3(kWarps * 32);
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = pdl_enabled() ? 1 : 0;
    cudaLaunchKernelEx(&cfg, kernel, x, w, out, N, K);
  };
  // The alternatives are bf16 only (benchmarks): f16 always runs the default tiling.
  if constexpr (std::is_same_v<T, Bf16>) {
    switch (variant) {
      case 1:
        go(gemv_kernel<T, NR, 2, 2, kGated>, 2);
        return;
      case 2:  // one row per warp (a gate/up pair when gated), many warps
        go(gemv_kernel < T, NR, kGated ? 2 : 1, 8, kGated >, kGated ? 2 : 1);
        return;
      case 3:
        go(gemv_kernel<T, NR, 4, 2, kGated>, 4);
        return;
      case 4:
        go(gemv_kernel<T, NR, 4, 4, kGated>, 4);
        return;
      default:
        break;
    }
  }
  // Measured on the H100 (8B decode shapes): 4 rows x 2 steps is the best or within 2% of it
  // for every n; the gated form at n <= 2 does best with one gate/up pair x 4 steps.
  if constexpr (kGated && NR <= 2)
    go(gemv_kernel<T, NR, 2, 4, kGated>, 2);
  else
    go(gemv_kernel<T, NR, 4, 2, kGated>, 4);
}

template <typename T, bool kGated>
void launch_any(const uint16_t* x, const uint16_t* w, void* out, int n, int N, int K, int variant,
                cudaStream_t stream) {
  switch (n) {
    case 1:
      launch_nr<T, 1, kGated>(x, w, out, N, K, variant, stream);
      break;
    case 2:
      launch_nr<T, 2, kGated>(x, w, out, N, K, variant, stream);
      break;
    case 3:
      launch_nr<T, 3, kGated>(x, w, out, N, K, variant, stream);
      break;
    case 4:
      launch_nr<T, 4, kGated>(x, w, out, N, K, variant, stream);
      break;
    case 5:
      launch_nr<T, 5, kGated>(x, w, out, N, K, variant, stream);
      break;
    case 6:
      launch_nr<T, 6, kGated>(x, w, out, N, K, variant, stream);
      break;
    case 7:
      launch_nr<T, 7, kGated>(x, w, out, N, K, variant, stream);
      break;
    default:
      launch_nr<T, 8, kGated>(x, w, out, N, K, variant, stream);
      break;
  }
}

}  // namespace

namespace {
// SGL_CUDA_GEMV_VARIANT=1..4 replaces the default tiling (benchmarks of the whole model).
int default_variant() {
  static const int v = [] {
    const char* e = std::getenv("SGL_CUDA_GEMV_VARIANT");
    const int x = e != nullptr ? std::atoi(e) : 0;
    return x >= 1 && x <= 4 ? x : 0;
  }();
  return v;
}
}  // namespace

bool gemv_supported(int n, int N, int K) {
  return n >= 1 && n <= kGemvMaxRows && N >= 1 && K >= 8 && K % 8 == 0;
}

void launch_gemv(const uint16_t* x, const uint16_t* w, float* y, int n, int N, int K,
                 cudaStream_t stream, int variant, WeightElem elem) {
  if (!gemv_supported(n, N, K)) return;
  const int v = variant != 0 ? variant : default_variant();
  if (elem == WeightElem::kF16)
    launch_any<F16, false>(x, w, y, n, N, K, v, stream);
  else
    launch_any<Bf16, false>(x, w, y, n, N, K, v, stream);
}

void launch_gemv_gate_up_silu(const uint16_t* x, const uint16_t* w_gu, uint16_t* out, int n,
                              int n_ff, int K, cudaStream_t stream, int variant, WeightElem elem) {
  if (!gemv_supported(n, 2 * n_ff, K)) return;
  const int v = variant != 0 ? variant : default_variant();
  if (elem == WeightElem::kF16)
    launch_any<F16, true>(x, w_gu, out, n, 2 * n_ff, K, v, stream);
  else
    launch_any<Bf16, true>(x, w_gu, out, n, 2 * n_ff, K, v, stream);
}

}  // namespace sgl::backend::cuda
