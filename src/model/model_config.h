// ModelConfig: the hyperparameters of a llama-family decoder (Llama 2/3, Mistral, Qwen2,
// SmolLM2), read from GGUF metadata or from a Hugging Face config.json, validated, in one shape
// the model code and backends use regardless of the file format.
//
// Supported: GGUF architectures `llama` (Mistral GGUFs also say llama) and `qwen2`; Hugging Face
// LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM. Anything else is refused with an
// error naming the architecture.
//
// RoPE convention: a llama-arch GGUF had its Q/K rows permuted by the converter, so it rotates
// adjacent pairs (kNorm); qwen2 GGUFs and every Hugging Face checkpoint rotate halves (kNeox).
// Llama-3.1 GGUFs carry their frequency scaling as a `rope_freqs.weight` tensor instead of
// metadata; the model code looks that tensor up itself.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "support/status.h"

namespace sgl::model {

class GgufFile;

enum class RopeType {
  kNorm,  // rotate adjacent pairs (2i, 2i+1): llama-arch GGUF
  kNeox,  // rotate i with i + rope_dim/2: Hugging Face, qwen2 GGUF
};

enum class RopeScalingType { kNone, kLinear, kYarn, kLlama3 };

const char* rope_type_name(RopeType type);                 // "norm", "neox"
const char* rope_scaling_type_name(RopeScalingType type);  // "none", "linear", "yarn", "llama3"

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  float factor = 1.0f;                   // context extension factor (linear, yarn, llama3)
  uint32_t original_context_length = 0;  // pre-extension context (yarn, llama3); 0 = unknown
  float low_freq_factor = 1.0f;          // llama3
  float high_freq_factor = 4.0f;         // llama3
  float beta_fast = 32.0f;               // yarn
  float beta_slow = 1.0f;                // yarn
};

struct ModelConfig {
  // Also reachable as ModelConfig::RopeType etc.
  using RopeType = ::sgl::model::RopeType;
  using RopeScalingType = ::sgl::model::RopeScalingType;
  using RopeScaling = ::sgl::model::RopeScaling;

  // Upper bounds for sanity checks (well above any real model of this family).
  static constexpr uint32_t kMaxEmbd = 1u << 16;
  static constexpr uint32_t kMaxLayers = 1024;
  static constexpr uint32_t kMaxHeads = 1024;
  static constexpr uint32_t kMaxHeadDim = 1024;
  static constexpr uint32_t kMaxFf = 1u << 20;
  static constexpr uint32_t kMaxVocab = 1u << 22;
  static constexpr uint32_t kMaxContext = 1u << 24;

  std::string arch;             // "llama" or "qwen2" (Mistral is "llama")
  uint32_t context_length = 0;  // trained context (max_position_embeddings)
  uint32_t n_embd = 0;          // hidden size
  uint32_t n_layer = 0;
  uint32_t n_ff = 0;  // MLP intermediate size
  uint32_t n_head = 0;
  uint32_t n_head_kv = 0;  // divides n_head (GQA group = n_head / n_head_kv)
  uint32_t head_dim = 0;   // usually n_embd / n_head; may be set explicitly
  uint32_t n_vocab = 0;
  float rope_freq_base = 10000.0f;
  uint32_t rope_dim = 0;  // rotated dims per head (even, <= head_dim)
  RopeType rope_type = RopeType::kNorm;
  RopeScaling rope_scaling;
  float rms_eps = 1e-5f;
  bool tied_embeddings = false;  // the LM head reuses token_embd
  bool attn_qkv_bias = false;    // Q, K and V projections have biases (Qwen2)
  uint32_t sliding_window = 0;   // attention window (Mistral v0.1); 0 = full attention
  int32_t bos_token_id = -1;     // -1 = unknown
  std::vector<int32_t> eos_token_ids;
  std::string torch_dtype;  // Hugging Face only ("bfloat16", ...); "" for GGUF
  std::string source;       // "gguf" or "hf"

  // From GGUF metadata (`<arch>.*` keys). n_vocab: <arch>.vocab_size, else the length of
  // tokenizer.ggml.tokens, else token_embd.weight's second dimension. tied = no output.weight.
  static Result<ModelConfig> from_gguf(const GgufFile& file);
  // From a parsed Hugging Face config.json (architectures[0], or model_type when absent).
  static Result<ModelConfig> from_hf_config_json(const nlohmann::json& config);
  // Reads and parses `path` (a config.json) and calls from_hf_config_json; errors name the path.
  static Result<ModelConfig> from_hf_config_file(const std::string& path);

  // Checks every field for consistency and sane bounds; from_* call it before returning.
  Status validate() const;

  // Multi-line human-readable summary (for `sgl-cli inspect`).
  std::string summary() const;
  nlohmann::json to_json() const;
};

}  // namespace sgl::model
