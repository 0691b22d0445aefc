// Tile-shape variants of the tensor-core prefill attention kernel (attention_tc.cu), for the
// micro-benchmark that chose the default. The backend calls launch_attention_prefill_tc
// (kernels.h), which is the kDefault variant.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "backend/cuda/kernels.h"

namespace sgl::backend::cuda {

// Keys per tile and depth of the shared-memory ring of K/V tiles (128 queries per block always).
enum class PrefillTcVariant {
  kDefault,         // 64 keys, 3 stages
  kKeys64Stages2,   // 64 keys, 2 stages
  kKeys32Stages4,   // 32 keys, 4 stages
  kKeys128Stages2,  // 128 keys, 2 stages
  kKeys128Stages3,  // 128 keys, 3 stages
};
constexpr PrefillTcVariant kPrefillTcVariants[] = {
    PrefillTcVariant::kDefault, PrefillTcVariant::kKeys64Stages2, PrefillTcVariant::kKeys32Stages4,
    PrefillTcVariant::kKeys128Stages2, PrefillTcVariant::kKeys128Stages3};
inline const char* prefill_tc_variant_name(PrefillTcVariant v) {
  switch (v) {
    case PrefillTcVariant::kDefault: return "bc64_s3";
    case PrefillTcVariant::kKeys64Stages2: return "bc64_s2";
    case PrefillTcVariant::kKeys32Stages4: return "bc32_s4";
    case PrefillTcVariant::kKeys128Stages2: return "bc128_s2";
    case PrefillTcVariant::kKeys128Stages3: return "bc128_s3";
  }
  return "?";
}

// launch_attention_prefill_tc with the given tile shape; same contract.
bool launch_attention_prefill_tc_variant(const AttentionArgs& a, const int32_t* tiles, int n_tiles,
                                         PrefillTcVariant v, cudaStream_t stream);

}  // namespace sgl::backend::cuda
