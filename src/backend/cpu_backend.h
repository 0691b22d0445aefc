// The CPU backend: runs the Llama family on the CPU with weights kept in their stored format
// (quantized blocks stay quantized) and a token-granular KV pool in f16, bf16 or f32.
//
// Batch invariance: every kernel computes a token's row independently of the other rows (see
// backend/cpu/matmul.h and attention.h), K/V are stored rounded the same way whoever computed
// them, so a sequence's logits are bit-identical whatever else is in the batch, however its
// prompt was chunked, and whether its prefix came from the cache or was computed.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/attention.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/ops.h"
#include "models/llama.h"
#include "models/loader.h"
#include "support/thread_pool.h"

namespace sgl::backend {

struct CpuBackendOptions {
  int n_threads = 0;                 // 0 = physical cores
  KvDtype kv_dtype = KvDtype::kF16;
  int64_t kv_capacity = 0;           // KV pool size in tokens; 0 = the model's context length,
                                     // capped at kDefaultMaxKvTokens
  static constexpr int64_t kDefaultMaxKvTokens = 65536;
};

class CpuBackend final : public Backend {
 public:
  // The model must outlive the backend (weights are read from its mapping).
  static Result<std::unique_ptr<CpuBackend>> create(const models::LoadedModel& model,
                                                    const CpuBackendOptions& options);
  ~CpuBackend() override;

  std::string_view name() const override { return "cpu"; }
  const model::ModelConfig& config() const override { return config_; }
  int64_t kv_capacity() const override { return kv_capacity_; }
  Status forward(const ForwardBatch& batch, Logits* logits) override;
  // forward(), then runtime::Sampler's pick on each row (vocabulary limit and grammar bitset
  // applied first): the host path's tokens for the same u. Synchronous, so the inherited
  // launch_sample / collect are synchronous too (supports_async() is false).
  bool supports_sampling() const override { return true; }
  Status forward_sample(const ForwardBatch& batch, std::span<const SampleRow> rows,
                        std::vector<int32_t>* tokens) override;

  int n_threads() const { return pool_.n_threads(); }
  KvDtype kv_dtype() const { return kv_dtype_; }
  size_t kv_bytes() const;

 private:
  CpuBackend(const model::ModelConfig& config, int n_threads);
  Status init(const models::LoadedModel& model, const CpuBackendOptions& options);
  void ensure_scratch(int n_tokens);
  void attention_layer(const ForwardBatch& batch, int layer);

  // Matrices are repacked at load (cpu::PackedWeights) where the ISA has panel kernels.
  struct Layer {
    cpu::PackedWeights wq, wk, wv, wo, w_gate, w_up, w_down;
    std::vector<float> attn_norm, ffn_norm, bq, bk, bv;  // f32 copies
  };

  model::ModelConfig config_;
  ThreadPool pool_;
  cpu::MatmulWorkspace mm_ws_;
  cpu::WeightView tok_embd_;  // the file's rows (embedding lookups)
  cpu::PackedWeights output_;
  std::vector<float> output_norm_;
  std::vector<float> freq_factors_;  // [rope_dim/2] or empty
  cpu::RopeParams rope_;
  std::vector<Layer> layers_;

  KvDtype kv_dtype_ = KvDtype::kF16;
  model::GgmlType kv_type_ = model::GgmlType::kF16;
  int64_t kv_capacity_ = 0;
  size_t kv_row_bytes_ = 0;                 // one slot of one layer (n_head_kv * head_dim elems)
  std::vector<uint8_t*> k_cache_, v_cache_; // [n_layer] each [kv_capacity][n_head_kv][head_dim]

  // Scratch, grown to the largest batch seen.
  int scratch_tokens_ = 0;
  std::vector<float> x_, h_, q_, k_, v_, attn_, gate_, up_, cos_sin_;
  struct AttnItem {
    int seq, kv_head, q_begin, q_end;  // a block of one sequence's queries for one KV head
  };
  std::vector<AttnItem> attn_items_;
  std::vector<float> attn_scratch_;  // per thread
  size_t attn_scratch_floats_ = 0;
  std::vector<float> head_x_;        // [n_logits, n_embd]
  Logits sample_logits_;             // forward_sample's rows, reused between calls
};

}  // namespace sgl::backend
