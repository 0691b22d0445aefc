#include "backend/backend.h"

#include <string>

namespace sgl::backend {

std::string_view kv_dtype_name(KvDtype t) {
  switch (t) {
    case KvDtype::kF16: return "f16";
    case KvDtype::kBF16: return "bf16";
    case KvDtype::kF32: return "f32";
    case KvDtype::kFp8E4M3: return "fp8_e4m3";
    case KvDtype::kFp8E5M2: return "fp8_e5m2";
  }
  return "?";
}

int kv_dtype_bytes(KvDtype t) {
  switch (t) {
    case KvDtype::kF32: return 4;
    case KvDtype::kFp8E4M3:
    case KvDtype::kFp8E5M2: return 1;
    default: return 2;
  }
}

Result<KvDtype> parse_kv_dtype(std::string_view name) {
  if (name == "f16" || name == "fp16" || name == "float16" || name == "auto") return KvDtype::kF16;
  if (name == "bf16" || name == "bfloat16") return KvDtype::kBF16;
  if (name == "f32" || name == "fp32" || name == "float32") return KvDtype::kF32;
  // SGLang's names (--kv-cache-dtype).
  if (name == "fp8_e4m3") return KvDtype::kFp8E4M3;
  if (name == "fp8_e5m2") return KvDtype::kFp8E5M2;
  return invalid_argument("unknown KV cache dtype '" + std::string(name) +
                          "' (expected f16, bf16, f32, fp8_e4m3 or fp8_e5m2)");
}

Status Backend::forward_sample(const ForwardBatch&, std::span<const SampleRow>,
                               std::vector<int32_t>*) {
  return unsupported("the " + std::string(name()) + " backend does not sample on the device");
}

}  // namespace sgl::backend
