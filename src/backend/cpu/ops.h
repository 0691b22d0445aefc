// Elementwise and per-row CPU kernels of a transformer layer: RMS norm, RoPE, SwiGLU, softmax,
// add, and embedding-row lookup. Each runs on the current ISA (isa.h) and is deterministic: a
// row's result depends only on that row. None allocates.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/cpu/matmul.h"

namespace sgl::backend::cpu {

// y[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w for each of n_rows rows of n floats (row stride n).
// y may equal x.
void rms_norm(const float* x, const float* w, float* y, int n_rows, int64_t n, float eps);

// y = silu(gate) * up = gate / (1 + exp(-gate)) * up, elementwise over n floats. y may alias
// gate or up.
void silu_mul(const float* gate, const float* up, float* y, int64_t n);

// In-place softmax of one row of n floats.
void softmax(float* x, int64_t n);

// y = a + b elementwise (y may alias a or b).
void add(const float* a, const float* b, float* y, int64_t n);

enum class RopeLayout {
  kNorm,  // rotate adjacent pairs (2i, 2i + 1): llama-architecture GGUF files
  kNeox,  // rotate halves (i, i + rope_dim / 2): Hugging Face Llama, Qwen2 and most others
};

struct RopeParams {
  RopeLayout layout = RopeLayout::kNorm;
  int head_dim = 0;
  int rope_dim = 0;  // dimensions rotated (the first rope_dim of each head); 0 means head_dim
  float freq_base = 10000.0f;
  // Linear position scaling: positions are multiplied by this (1 / the "linear" rope factor).
  float freq_scale = 1.0f;
  // Optional per-pair frequency divisors [rope_dim / 2] (Llama-3 style rope_freqs), or null.
  const float* freq_factors = nullptr;
};

// cos/sin table for the given positions: cos_sin [n_tokens][rope_dim] holds, per token, the
// rope_dim / 2 cosines then the rope_dim / 2 sines of theta_i = pos * freq_scale *
// freq_base^(-2i / rope_dim) / freq_factors[i], computed in double precision. Compute it once
// per forward pass and share it between layers and between Q and K.
void rope_table(const RopeParams& p, const int32_t* positions, int n_tokens, float* cos_sin);

// Rotates x [n_tokens][n_heads][head_dim] in place (token rows token_stride floats apart; 0 means
// n_heads * head_dim) by the angles in cos_sin from rope_table().
void rope_apply(const RopeParams& p, const float* cos_sin, float* x, int n_tokens, int n_heads,
                int64_t token_stride = 0);

// Dequantizes row `row` of `table` (any matmul_supported type) into out [table.n_in].
void embedding_lookup(const WeightView& table, int64_t row, float* out);

}  // namespace sgl::backend::cpu
