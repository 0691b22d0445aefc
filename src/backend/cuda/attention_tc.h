// Variants of the tensor-core prefill attention kernels, for the parity tests and the
// micro-benchmark that chose the default. The backend calls launch_attention_prefill_tc
// (kernels.h), which is kDefault: the wgmma kernel (attention_sm90a.cu) on an sm_90 GPU when the
// build has it (SGL_CUDA_SM90A), else the mma.sync kernel (attention_tc.cu).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "backend/cuda/kernels.h"

namespace sgl::backend::cuda {

// 128 queries per block always; keys per tile and depth of the shared-memory ring of K/V tiles.
enum class PrefillTcVariant {
  kDefault,
  kKeys64Stages3,  // mma.sync
  kKeys64Stages2,
  kKeys32Stages4,
  kKeys128Stages2,
  kKeys128Stages3,
  kWgmmaKeys64Stages3,           // wgmma (sm_90a)
  kWgmmaKeys64Stages2TwoBlocks,  // <= 128 registers: two blocks per multiprocessor
  kWgmmaKeys128Stages2,
  kWgmmaKeys128Stages3,
};
constexpr PrefillTcVariant kPrefillTcVariants[] = {PrefillTcVariant::kDefault,
                                                   PrefillTcVariant::kKeys64Stages3,
                                                   PrefillTcVariant::kKeys64Stages2,
                                                   PrefillTcVariant::kKeys32Stages4,
                                                   PrefillTcVariant::kKeys128Stages2,
                                                   PrefillTcVariant::kKeys128Stages3,
                                                   PrefillTcVariant::kWgmmaKeys64Stages3,
                                                   PrefillTcVariant::kWgmmaKeys64Stages2TwoBlocks,
                                                   PrefillTcVariant::kWgmmaKeys128Stages2,
                                                   PrefillTcVariant::kWgmmaKeys128Stages3};
inline const char* prefill_tc_variant_name(PrefillTcVariant v) {
  switch (v) {
    case PrefillTcVariant::kDefault:
      return "default";
    case PrefillTcVariant::kKeys64Stages3:
      return "mma_bc64_s3";
    case PrefillTcVariant::kKeys64Stages2:
      return "mma_bc64_s2";
    case PrefillTcVariant::kKeys32Stages4:
      return "mma_bc32_s4";
    case PrefillTcVariant::kKeys128Stages2:
      return "mma_bc128_s2";
    case PrefillTcVariant::kKeys128Stages3:
      return "mma_bc128_s3";
    case PrefillTcVariant::kWgmmaKeys64Stages3:
      return "wgmma_bc64_s3";
    case PrefillTcVariant::kWgmmaKeys128Stages2:
      return "wgmma_bc128_s2";
    case PrefillTcVariant::kWgmmaKeys64Stages2TwoBlocks:
      return "wgmma_bc64_s2_2blk";
    case PrefillTcVariant::kWgmmaKeys128Stages3:
      return "wgmma_bc128_s3";
  }
  return "?";
}

// True iff the variant can run here: the wgmma ones need the sm_90a build and an sm_90 GPU
// (the current device).
bool prefill_tc_variant_available(PrefillTcVariant v);

// launch_attention_prefill_tc with the given variant; same contract. False (launching nothing)
// when the variant is not available or does not apply.
bool launch_attention_prefill_tc_variant(const AttentionArgs& a, const int32_t* tiles, int n_tiles,
                                         PrefillTcVariant v, cudaStream_t stream);

// The wgmma kernels (attention_sm90a.cu, built only with SGL_CUDA_SM90A); v is a kWgmma* variant.
bool launch_attention_prefill_sm90a(const AttentionArgs& a, const int32_t* tiles, int n_tiles,
                                    PrefillTcVariant v, cudaStream_t stream);

}  // namespace sgl::backend::cuda
