// A straightforward forward pass of the Llama family in double precision, for checking the
// backends on small models. Written from the published model definitions (Hugging Face
// LlamaForCausalLM / Qwen2ForCausalLM, and llama.cpp's conventions for GGUF files), not from our
// kernels: weights are dequantized once to double, every token is recomputed over the whole
// prefix, nothing is fused, batched, quantized or cached.
//
//   x = embedding[token]
//   per layer:  h = rmsnorm(x) * attn_norm
//               q, k, v = Wq h (+ bq), Wk h (+ bk), Wv h (+ bv)
//               rotate q and k (RoPE: adjacent pairs for llama-arch GGUF, halves otherwise;
//                 theta_i = pos * freq_scale * base^(-2i / rope_dim) / freq_factor_i)
//               a = softmax(q k^T / sqrt(head_dim), causal) v   (query head h reads KV head
//                 h / (n_head / n_head_kv))
//               x += Wo a
//               h = rmsnorm(x) * ffn_norm;  x += Wdown (silu(Wgate h) * Wup h)
//   logits = Wout (rmsnorm(x) * output_norm)
//
// Memory is 8 bytes per weight: meant for test models of a few million parameters at most.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/loader.h"
#include "support/status.h"

namespace sgl::models::testing {

// Deliberate mistakes, for negative controls: a test shows that its comparison would notice
// them.
struct ReferenceOptions {
  bool ignore_rope_freqs = false;  // treat every rope_freqs factor as 1
  bool swap_rope_layout = false;   // rotate halves where pairs are meant, and vice versa
};

class ReferenceModel {
 public:
  // Dequantizes every tensor the config calls for (through model.weights, GGUF names).
  static Result<ReferenceModel> create(const LoadedModel& model,
                                       const ReferenceOptions& options = {});

  // Logits for every position of `tokens` (a whole sequence from position 0), [n, n_vocab].
  std::vector<std::vector<double>> forward(const std::vector<int32_t>& tokens) const;

 private:
  struct Matrix {
    int64_t n_out = 0, n_in = 0;
    std::vector<double> w;  // [n_out][n_in]
  };
  struct Layer {
    std::vector<double> attn_norm, ffn_norm, bq, bk, bv;
    Matrix wq, wk, wv, wo, w_gate, w_up, w_down;
  };
  static Result<Matrix> matrix(const WeightSource& src, const std::string& name);
  static Result<std::vector<double>> vec(const WeightSource& src, const std::string& name,
                                         bool optional);
  static std::vector<double> matvec(const Matrix& m, const std::vector<double>& x);
  std::vector<double> rms_norm(const std::vector<double>& x, const std::vector<double>& w) const;
  void rope(std::vector<double>& x, int n_heads, int32_t pos) const;

  model::ModelConfig config_;
  ReferenceOptions options_;
  Matrix tok_embd_, output_;
  std::vector<double> output_norm_;
  std::vector<double> freq_factors_;  // [rope_dim / 2], all 1 when the model has none
  double freq_scale_ = 1.0;
  std::vector<Layer> layers_;
};

}  // namespace sgl::models::testing
