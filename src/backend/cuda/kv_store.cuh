// Element conversions of the KV pool, in one place for every kernel that stores K/V (the bias +
// RoPE + store kernel, and any GEMV epilogue that takes the store over) or reads fp8 K/V.
//
// fp8 follows SGLang's --kv-cache-dtype fp8_e4m3 / fp8_e5m2 with scale 1.0: a stored value is the
// f32 value rounded to nearest even and saturated to the largest finite value (+-448 for e4m3,
// +-57344 for e5m2; NaN stays NaN). Both fp8 kinds convert to f16 exactly (e5m2 is the top byte of
// an f16; every e4m3 value, subnormals included, is an f16 normal or subnormal), which is why the
// fp8 readers run their tensor-core products in f16.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstddef>
#include <cstdint>

#include "backend/cuda/kernels.h"

namespace sgl::backend::cuda::kv {

template <typename KV>
__device__ __forceinline__ KV from_float(float v);
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_fp8_e4m3 from_float<__nv_fp8_e4m3>(float v) {
  __nv_fp8_e4m3 r;
  r.__x = __nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3);
  return r;
}
template <>
__device__ __forceinline__ __nv_fp8_e5m2 from_float<__nv_fp8_e5m2>(float v) {
  __nv_fp8_e5m2 r;
  r.__x = __nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E5M2);
  return r;
}

// Stores one K or V element into the pool.
template <typename KV>
__device__ __forceinline__ void store(KV* p, float v) {
  *p = from_float<KV>(v);
}

template <typename KV>
inline constexpr bool kIsFp8 = sizeof(KV) == 1;

// Two fp8 values (byte 0 -> low half) to an f16x2 register, exactly.
template <typename KV>
__device__ __forceinline__ uint32_t fp8x2_to_f16x2(uint32_t two_bytes);
template <>
__device__ __forceinline__ uint32_t fp8x2_to_f16x2<__nv_fp8_e4m3>(uint32_t two_bytes) {
  uint32_t d;
  asm("{\n .reg .b16 t;\n cvt.u16.u32 t, %1;\n cvt.rn.f16x2.e4m3x2 %0, t;\n}\n"
      : "=r"(d)
      : "r"(two_bytes));
  return d;
}
template <>
__device__ __forceinline__ uint32_t fp8x2_to_f16x2<__nv_fp8_e5m2>(uint32_t two_bytes) {
  // e5m2 is an f16 with the low 8 mantissa bits cut: move each byte to the top of its half.
  return __byte_perm(two_bytes, 0u, 0x1404);
}

// Four fp8 values (one 32-bit word, byte 0 first) to two f16x2 registers: bytes 0, 1 -> lo,
// bytes 2, 3 -> hi.
template <typename KV>
__device__ __forceinline__ void fp8x4_to_f16x2x2(uint32_t word, uint32_t& lo, uint32_t& hi);
template <>
__device__ __forceinline__ void fp8x4_to_f16x2x2<__nv_fp8_e4m3>(uint32_t word, uint32_t& lo,
                                                                uint32_t& hi) {
  asm("{\n .reg .b16 a, b;\n mov.b32 {a, b}, %2;\n cvt.rn.f16x2.e4m3x2 %0, a;\n"
      " cvt.rn.f16x2.e4m3x2 %1, b;\n}\n"
      : "=r"(lo), "=r"(hi)
      : "r"(word));
}
template <>
__device__ __forceinline__ void fp8x4_to_f16x2x2<__nv_fp8_e5m2>(uint32_t word, uint32_t& lo,
                                                                uint32_t& hi) {
  lo = __byte_perm(word, 0u, 0x1404);
  hi = __byte_perm(word, 0u, 0x3424);
}

// An f16x2 register to two floats (low half first).
__device__ __forceinline__ void f16x2_to_float(uint32_t h, float* f) {
  const float2 v = __half22float2(*reinterpret_cast<const __half2*>(&h));
  f[0] = v.x;
  f[1] = v.y;
}

}  // namespace sgl::backend::cuda::kv

namespace sgl::backend::cuda {

// cache[idx] = v converted to the pool's element type, chosen at run time (the fused QKV GEMV
// epilogue serves every pool type with one kernel).
__device__ __forceinline__ void store_kv_elem(void* cache, KvElem elem, size_t idx, float v) {
  switch (elem) {
    case KvElem::kBF16:
      kv::store(static_cast<__nv_bfloat16*>(cache) + idx, v);
      break;
    case KvElem::kF16:
      kv::store(static_cast<__half*>(cache) + idx, v);
      break;
    case KvElem::kFp8E4M3:
      kv::store(static_cast<__nv_fp8_e4m3*>(cache) + idx, v);
      break;
    case KvElem::kFp8E5M2:
      kv::store(static_cast<__nv_fp8_e5m2*>(cache) + idx, v);
      break;
  }
}

}  // namespace sgl::backend::cuda
