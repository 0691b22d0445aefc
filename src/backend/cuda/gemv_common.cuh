// Device helpers shared by the decode GEMVs (gemv.cu, gemv_fused.cu): the streaming weight load,
// bf16 unpacking and the 8-wide dot product. Both kernels use the same arithmetic order, so a row
// computed by either is the same f32 sum.
#pragma once

#include <cuda_bf16.h>

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

// SiLU(g) * u, the expression silu_mul_kernel uses, so every path rounds alike.
__device__ __forceinline__ float silu_mul(float g, float u) { return g / (1.0f + __expf(-g)) * u; }

}  // namespace sgl::backend::cuda::gemv_detail
