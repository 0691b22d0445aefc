// Writing one element into the KV pool, for kernels outside kernels.cu that store K/V (the fused
// QKV GEMV epilogue). One function, so a new KvElem (e.g. FP8 with a scale) changes one place.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstddef>

#include "backend/cuda/kernels.h"

namespace sgl::backend::cuda {

// cache[idx] = v converted to the pool's element type (round to nearest even).
__device__ __forceinline__ void store_kv_elem(void* cache, KvElem elem, size_t idx, float v) {
  if (elem == KvElem::kBF16)
    static_cast<__nv_bfloat16*>(cache)[idx] = __float2bfloat16_rn(v);
  else
    static_cast<__half*>(cache)[idx] = __float2half_rn(v);
}

}  // namespace sgl::backend::cuda
