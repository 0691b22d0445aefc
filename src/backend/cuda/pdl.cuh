// Programmatic dependent launch (sm_90+): a kernel launched with the programmatic stream
// serialization attribute may start while the kernel before it in the stream still runs; it must
// call pdl_wait() before touching anything that kernel (or any earlier one) writes, and may do
// independent work (loading weights) before. pdl_trigger() in the earlier kernel lets such a
// dependent kernel start as soon as every block of the earlier one has begun. Both are no-ops
// below sm_90 and for kernels launched without the attribute.
#pragma once

namespace sgl::backend::cuda {

__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

}  // namespace sgl::backend::cuda
