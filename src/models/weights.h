// Weight views independent of the file format. A WeightSource answers "the tensor named X" in
// GGUF naming (blk.N.attn_q.weight, ...), whether the file is a GGUF or a Hugging Face
// safetensors checkpoint (whose names and dimension order are translated here).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/ggml_type.h"
#include "support/status.h"

namespace sgl::model {
class GgufFile;
class SafetensorsCheckpoint;
}  // namespace sgl::model

namespace sgl::models {

// A read-only view of one weight tensor in ggml order: ne[0] is the contiguous dimension, so a
// matrix mapping n_in -> n_out has ne = {n_in, n_out} and n_out rows of row_bytes each.
struct WeightRef {
  std::string name;
  model::GgmlType type = model::GgmlType::kF32;
  std::vector<int64_t> ne;      // [n_dims] ggml order
  const void* data = nullptr;   // points into the mapped file (or an owned buffer)
  uint64_t n_bytes = 0;

  bool present() const { return data != nullptr; }
  int64_t rows() const;         // product of ne[1..]
  int64_t cols() const { return ne.empty() ? 0 : ne[0]; }
  uint64_t row_bytes() const;   // bytes of one row of ne[0] elements
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // The tensor with the given GGUF-style name, nullopt when absent, or an error when it exists
  // in a form we cannot use (e.g. a safetensors dtype other than F32/F16/BF16).
  virtual Result<std::optional<WeightRef>> find(std::string_view gguf_name) const = 0;
  // Total bytes of all tensors (for reporting).
  virtual uint64_t total_bytes() const = 0;
};

// Source over a GGUF file (names used as they are). The file must outlive the source.
std::unique_ptr<WeightSource> gguf_weight_source(const model::GgufFile& file);
// Source over a Hugging Face Llama/Mistral/Qwen2 checkpoint: maps GGUF names to HF names
// (blk.N.attn_q.weight -> model.layers.N.self_attn.q_proj.weight, ...) and reverses the
// dimension order. Only F32/F16/BF16 tensors are accepted.
std::unique_ptr<WeightSource> safetensors_weight_source(const model::SafetensorsCheckpoint& ckpt);

// Looks up `name` and checks it has exactly the expected ggml-order shape.
Result<WeightRef> require_weight(const WeightSource& src, const std::string& name,
                                 std::vector<int64_t> expected_ne);
// Same, but absent is fine (returns a WeightRef with data == nullptr).
Result<WeightRef> optional_weight(const WeightSource& src, const std::string& name,
                                  std::vector<int64_t> expected_ne);

}  // namespace sgl::models
