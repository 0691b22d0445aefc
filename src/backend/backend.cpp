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

std::string_view weight_dtype_name(WeightDtype t) {
  switch (t) {
    case WeightDtype::kAuto: return "auto";
    case WeightDtype::kBF16: return "bfloat16";
    case WeightDtype::kF16: return "float16";
    case WeightDtype::kF32: return "float32";
  }
  return "?";
}

Result<WeightDtype> parse_weight_dtype(std::string_view name) {
  if (name == "auto") return WeightDtype::kAuto;
  if (name == "half" || name == "float16" || name == "fp16" || name == "f16")
    return WeightDtype::kF16;
  if (name == "bfloat16" || name == "bf16") return WeightDtype::kBF16;
  if (name == "float" || name == "float32" || name == "fp32" || name == "f32")
    return WeightDtype::kF32;
  return invalid_argument("unknown --dtype '" + std::string(name) +
                          "' (expected auto, half, float16, bfloat16, float or float32)");
}

Status Backend::forward_sample(const ForwardBatch&, std::span<const SampleRow>,
                               std::vector<int32_t>*) {
  return unsupported("the " + std::string(name()) + " backend does not sample on the device");
}

Result<uint64_t> Backend::launch_sample(const ForwardBatch& batch, std::span<const SampleRow> rows) {
  if (!supports_sampling())
    return unsupported("the " + std::string(name()) + " backend does not sample on the device");
  if (sync_results_.size() >= static_cast<size_t>(kMaxUncollected))
    return invalid_argument("launch_sample: " + std::to_string(kMaxUncollected) +
                               " launches are still uncollected");
  const ForwardBatch* run = &batch;
  ForwardBatch resolved;
  for (int32_t t : batch.tokens) {
    if (t >= 0) continue;
    resolved = batch;
    for (int32_t& id : resolved.tokens) {
      if (id >= 0) continue;
      const int64_t row = -static_cast<int64_t>(id) - 1;
      if (row >= static_cast<int64_t>(sync_last_.size()))
        return invalid_argument("launch_sample: future token " + std::to_string(id) +
                                " but the previous launch sampled " +
                                std::to_string(sync_last_.size()) + " rows");
      id = sync_last_[static_cast<size_t>(row)];
    }
    run = &resolved;
    break;
  }
  std::vector<int32_t> tokens;
  SGL_RETURN_IF_ERROR(forward_sample(*run, rows, &tokens));
  sync_last_ = tokens;
  sync_results_.push_back(std::move(tokens));
  return sync_next_ticket_++;
}

Status Backend::collect(uint64_t ticket, std::vector<int32_t>* tokens) {
  const uint64_t oldest = sync_next_ticket_ - sync_results_.size();
  if (sync_results_.empty() || ticket != oldest)
    return invalid_argument("collect: ticket " + std::to_string(ticket) +
                            " is not the oldest uncollected launch");
  *tokens = std::move(sync_results_.front());
  sync_results_.pop_front();
  return Status::ok();
}

}  // namespace sgl::backend
