// The Llama family: Llama 2/3 (incl. Llama-3 RoPE scaling), Mistral, Qwen2 (QKV bias, NEOX RoPE),
// SmolLM2 (tied embeddings). Pre-norm decoder blocks: RMSNorm -> grouped-query attention with
// RoPE -> residual; RMSNorm -> SwiGLU MLP -> residual; final RMSNorm -> LM head.
//
// This file owns what is specific to the family: which tensors exist, their shapes, and the
// per-architecture flags. Backends implement the computation.
#pragma once

#include <vector>

#include "model/model_config.h"
#include "models/weights.h"
#include "support/status.h"

namespace sgl::models {

struct LlamaLayerWeights {
  WeightRef attn_norm;          // [n_embd] f32
  WeightRef wq, wk, wv;         // [n_embd] -> [n_head*head_dim], [n_head_kv*head_dim] x2
  WeightRef bq, bk, bv;         // optional biases (Qwen2), f32
  WeightRef wo;                 // [n_head*head_dim] -> [n_embd]
  WeightRef ffn_norm;           // [n_embd]
  WeightRef w_gate, w_up;       // [n_embd] -> [n_ff]
  WeightRef w_down;             // [n_ff] -> [n_embd]
};

struct LlamaWeights {
  WeightRef tok_embd;           // [n_embd, n_vocab] (ggml order): one row per token
  WeightRef output_norm;        // [n_embd]
  WeightRef output;             // [n_embd, n_vocab]; the embedding itself when tied
  WeightRef rope_freqs;         // optional [rope_dim/2] frequency factors (Llama 3.1 GGUF)
  std::vector<LlamaLayerWeights> layers;
};

// Collects and shape-checks every tensor the config calls for. Errors name the tensor.
Result<LlamaWeights> load_llama_weights(const model::ModelConfig& config, const WeightSource& src);

}  // namespace sgl::models
