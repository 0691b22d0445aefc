// Token sampling on the GPU (CudaBackend::forward_sample): one block per logits row applies the
// grammar bitset and the vocabulary limit, then picks the token exactly as the host sampler
// (runtime::Sampler::sample) would from the same logits and the same uniform number u:
// greedy argmax (lowest id on ties), or temperature -> min-p -> top-k -> top-p -> inverse-CDF draw.
//
// No sorting: every filter keeps a prefix of the entries ordered by (probability desc, id asc), so
// a kept set is a cut (t, id) — "p > t, or p == t and id <= id" — found by bisection on the float
// bits of t, each step one block-wide count or mass reduction over the row; ties at the cut are
// resolved in id order, as the host's sort does. Masses are summed in double; every reduction has
// a fixed order, so a row's result is deterministic.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

namespace sgl::backend::cuda {

// Per-row parameters, uploaded as an array (8-byte aligned: it starts with a double).
struct SampleParams {
  double u = 0;             // uniform in [0, 1) from the request's RNG; unused when greedy
  float temperature = 1;    // < 1e-6: greedy
  float top_p = 1;          // (0, 1]
  float min_p = 0;          // [0, 1]
  int32_t top_k = -1;       // <= 0: all
  int32_t vocab_limit = 0;  // ids >= vocab_limit are never picked (clamped to n_vocab)
  int32_t mask_offset = -1; // first word of the row's bitset in `masks`, or -1: no mask
  int32_t mask_words = 0;   // bit i = word i/32, bit i%32; ids >= 32 * mask_words are masked
  int32_t pad = 0;
};
static_assert(sizeof(SampleParams) == 40, "SampleParams is uploaded as raw bytes");

// out[r] = the token sampled from logits[r, 0..n_vocab) with params[r] (device pointers; masks
// holds the bitsets params[r].mask_offset points into). `work` [n_rows, n_vocab] receives the
// unnormalized probabilities; it may be `logits` itself (the logits are then overwritten).
// A row with every entry masked (or no finite maximum) gets the host's answer for that case: the
// argmax rule (index 0 when all are -inf).
void launch_sample(const float* logits, float* work, int n_rows, int n_vocab,
                   const SampleParams* params, const uint32_t* masks, int32_t* out,
                   cudaStream_t stream);

// The overlap scheduler's future tokens (Backend::launch_sample): tokens[i] = prev[-tokens[i] - 1]
// where tokens[i] < 0, in place on the device (prev: the previous launch's sampled tokens).
void launch_resolve_futures(int32_t* tokens, int n, const int32_t* prev, cudaStream_t stream);

}  // namespace sgl::backend::cuda
