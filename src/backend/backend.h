// Backend: the contract every compute backend (CPU, CUDA) implements. A backend owns the model's
// weights in its own memory and the KV pool storage ([layer][slot][kv_head][head_dim]); the
// runtime owns which slots belong to which sequence (runtime/kv_pool) and builds ForwardBatches.
//
// Contract of forward():
// - REQUIRES: batch.validate(kv_capacity(), config().n_vocab) is ok (backends check it too and
//   return its error), and every slot in a sequence's first n_past entries was written by an
//   earlier forward() with the same token at the same position.
// - Writes K/V of every new token into its out slot, then returns logits for batch.logit_rows.
// - Batch invariance (CPU backend): a sequence's logits are bit-identical whatever else is in the
//   batch and however its prompt was split into chunks.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "backend/forward_batch.h"
#include "model/model_config.h"
#include "support/status.h"

namespace sgl::backend {

enum class KvDtype { kF16, kBF16, kF32 };
std::string_view kv_dtype_name(KvDtype t);
Result<KvDtype> parse_kv_dtype(std::string_view name);  // "f16"/"fp16", "bf16", "f32"/"fp32"

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  virtual const model::ModelConfig& config() const = 0;
  // Number of token slots in the KV pool.
  virtual int64_t kv_capacity() const = 0;
  virtual Status forward(const ForwardBatch& batch, Logits* logits) = 0;
};

}  // namespace sgl::backend
