// Token sampling: penalties, logit bias, temperature, top-k, top-p, min-p, seeded RNG. The
// sampler is a pure function of (logits, params, per-request state), so a seeded request samples
// the same tokens whatever else is in the batch.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "support/status.h"

namespace sgl::runtime {

// The subset of SGLang's sampling parameters that act on the logits of one step.
struct SamplingParams {
  float temperature = 1.0f;        // < 1e-6 means greedy
  float top_p = 1.0f;              // (0, 1]
  int32_t top_k = -1;              // -1 or 0 = all
  float min_p = 0.0f;              // [0, 1]
  float frequency_penalty = 0.0f;  // [-2, 2], times the count of the token in the output
  float presence_penalty = 0.0f;   // [-2, 2], once if the token occurs in the output
  float repetition_penalty = 1.0f; // (0, 2], divides positive / multiplies negative logits of
                                   // tokens seen in the prompt or output (CTRL-style)
  std::vector<std::pair<int32_t, float>> logit_bias;  // token id -> added to its logit
  std::optional<uint64_t> seed;    // per-request RNG seed; unseeded requests draw one

  bool greedy() const { return temperature < 1e-6f; }
  bool has_penalties() const {
    return frequency_penalty != 0.0f || presence_penalty != 0.0f || repetition_penalty != 1.0f;
  }
  // Checks the ranges above; errors name the parameter.
  Status validate(int32_t n_vocab) const;
};

// A small, fast, portable RNG (xoshiro256**), seeded by splitmix64. Same sequence on every
// platform and standard library.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }
  void reseed(uint64_t seed);
  uint64_t next_u64();
  // Uniform in [0, 1) with 53 random bits.
  double next_double() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

 private:
  uint64_t s_[4];
};

// Per-request sampling state: its RNG and the token counts that penalties need.
class SamplerState {
 public:
  SamplerState(const SamplingParams& params, std::span<const int32_t> prompt, uint64_t seed);
  // Records a generated token (for penalties).
  void accept(int32_t token);
  Rng& rng() { return rng_; }
  const std::unordered_map<int32_t, int32_t>& output_counts() const { return output_counts_; }
  const std::vector<int32_t>& seen_tokens() const { return seen_list_; }  // prompt ∪ output

 private:
  Rng rng_;
  std::unordered_map<int32_t, int32_t> output_counts_;
  std::vector<uint8_t> seen_;  // bitmap-like flags by token id (grown on demand)
  std::vector<int32_t> seen_list_;
  void mark_seen(int32_t token);
};

class Sampler {
 public:
  // Applies penalties and logit bias in place (the processed logits are what logprobs report).
  static void apply_penalties(std::span<float> logits, const SamplingParams& p,
                              const SamplerState& state);
  // Picks a token from (already processed) logits. Greedy: the highest logit, lowest id on ties.
  // Otherwise temperature, then top-k, min-p and top-p filters, then a draw from the state's RNG.
  // `scratch` is reused between calls to avoid allocation.
  static int32_t sample(std::span<const float> logits, const SamplingParams& p,
                        SamplerState& state, std::vector<std::pair<float, int32_t>>& scratch);
  // The same pick with the uniform number given (what backend::SampleRow::u carries): equal to
  // sample() when u is the number sample() would draw from the state's RNG.
  static int32_t sample_u(std::span<const float> logits, const SamplingParams& p, double u,
                          std::vector<std::pair<float, int32_t>>& scratch);
  static int32_t argmax(std::span<const float> logits);
};

// log-softmax of `logits` into `out` (same length), computed in double for the normalizer.
void log_softmax(std::span<const float> logits, std::span<float> out);

}  // namespace sgl::runtime
