// Device helpers shared by the decode GEMVs (gemv.cu, gemv_fused.cu): the streaming weight load,
// bf16 / f16 unpacking and the 8-wide dot product. Both kernels use the same arithmetic order, so
// a row computed by either is the same f32 sum.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace sgl::backend::cuda::gemv_detail {

// Warps per block of every decode GEMV.
constexpr int kWarps = 4;

// A 16-byte load that does not allocate in L1: the weights are streamed once.
__device__ __forceinline__ uint4 ld_stream(const uint16_t* p) {
  uint4 r;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
      : "l"(p));
  return r;
}

__device__ __forceinline__ float lo(uint32_t v) { return __uint_as_float(v << 16); }
__device__ __forceinline__ float hi(uint32_t v) { return __uint_as_float(v & 0xffff0000u); }

__device__ __forceinline__ float dot8(const uint4& w, const uint4& x, float acc) {
  acc = fmaf(lo(w.x), lo(x.x), acc);
  acc = fmaf(hi(w.x), hi(x.x), acc);
  acc = fmaf(lo(w.y), lo(x.y), acc);
  acc = fmaf(hi(w.y), hi(x.y), acc);
  acc = fmaf(lo(w.z), lo(x.z), acc);
  acc = fmaf(hi(w.z), hi(x.z), acc);
  acc = fmaf(lo(w.w), lo(x.w), acc);
  acc = fmaf(hi(w.w), hi(x.w), acc);
  return acc;
}

__device__ __forceinline__ uint16_t to_bf16_bits(float f) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}

// The element type of a GEMV's weights and activations (kernels.h: WeightElem), as a template
// argument: lo/hi unpack the low/high element of a 32-bit pair to f32, bits rounds an f32 to it
// (to nearest even). Bf16 is the code the bf16 kernels had before the f16 path existed.
struct Bf16 {
  __device__ __forceinline__ static float lo(uint32_t v) { return gemv_detail::lo(v); }
  __device__ __forceinline__ static float hi(uint32_t v) { return gemv_detail::hi(v); }
  __device__ __forceinline__ static uint16_t bits(float f) { return to_bf16_bits(f); }
};
struct F16 {
  __device__ __forceinline__ static float lo(uint32_t v) {
    return __half2float(__ushort_as_half(static_cast<uint16_t>(v & 0xffffu)));
  }
  __device__ __forceinline__ static float hi(uint32_t v) {
    return __half2float(__ushort_as_half(static_cast<uint16_t>(v >> 16)));
  }
  // IEEE round to nearest: beyond +-65504 an activation becomes +-inf, as in torch.float16.
  __device__ __forceinline__ static uint16_t bits(float f) {
    return __half_as_ushort(__float2half_rn(f));
  }
};

// dot8 over element type T (the same fma order as the bf16 dot8).
template <typename T>
__device__ __forceinline__ float dot8(const uint4& w, const uint4& x, float acc) {
  acc = fmaf(T::lo(w.x), T::lo(x.x), acc);
  acc = fmaf(T::hi(w.x), T::hi(x.x), acc);
  acc = fmaf(T::lo(w.y), T::lo(x.y), acc);
  acc = fmaf(T::hi(w.y), T::hi(x.y), acc);
  acc = fmaf(T::lo(w.z), T::lo(x.z), acc);
  acc = fmaf(T::hi(w.z), T::hi(x.z), acc);
  acc = fmaf(T::lo(w.w), T::lo(x.w), acc);
  acc = fmaf(T::hi(w.w), T::hi(x.w), acc);
  return acc;
}

// The weight stream of both GEMVs: wv[u][j] = the 16 bytes of weight row j at column k0 + 256 u
// (zero past K), U steps of R rows in flight per lane, loads that skip L1.
template <int U, int R>
__device__ __forceinline__ void load_steps(const uint16_t* const (&wr)[R], int k0, int K,
                                           uint4 (&wv)[U][R]) {
#pragma unroll
  for (int u = 0; u < U; ++u)
#pragma unroll
    for (int j = 0; j < R; ++j)
      wv[u][j] = k0 + u * 256 < K ? ld_stream(wr[j] + k0 + u * 256) : make_uint4(0, 0, 0, 0);
}

// acc[r][j] += the products of the loaded steps of weight row j with activation row r, whose 16
// bytes at column kk x(r, kk) returns: steps in order, rows in order (the one arithmetic order of
// every decode GEMV).
template <typename T, int NR, int R, int U, typename X>
__device__ __forceinline__ void accumulate_steps(const uint4 (&wv)[U][R], int k0, int K, const X& x,
                                                 float (&acc)[NR][R]) {
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int kk = k0 + u * 256;
    if (kk < K) {
#pragma unroll
      for (int r = 0; r < NR; ++r) {
        const uint4 xv = x(r, kk);
#pragma unroll
        for (int j = 0; j < R; ++j) acc[r][j] = dot8<T>(wv[u][j], xv, acc[r][j]);
      }
    }
  }
}

// Every lane gets the warp's sum of each acc[r][j] (butterfly shuffles).
template <int NR, int R>
__device__ __forceinline__ void warp_sum(float (&acc)[NR][R]) {
#pragma unroll
  for (int r = 0; r < NR; ++r)
#pragma unroll
    for (int j = 0; j < R; ++j)
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) acc[r][j] += __shfl_xor_sync(0xffffffffu, acc[r][j], o);
}

// SiLU(g) * u, the expression silu_mul_kernel uses, so every path rounds alike.
__device__ __forceinline__ float silu_mul(float g, float u) { return g / (1.0f + __expf(-g)) * u; }

}  // namespace sgl::backend::cuda::gemv_detail
