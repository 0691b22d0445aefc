#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace sgl::runtime {

Status SamplingParams::validate(int32_t n_vocab) const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature))
    return invalid_argument("temperature must be a finite number >= 0, got " +
                            std::to_string(temperature));
  if (!(top_p > 0.0f && top_p <= 1.0f))
    return invalid_argument("top_p must be in (0, 1], got " + std::to_string(top_p));
  if (top_k < -1) return invalid_argument("top_k must be -1 (all) or positive, got " +
                                          std::to_string(top_k));
  if (!(min_p >= 0.0f && min_p <= 1.0f))
    return invalid_argument("min_p must be in [0, 1], got " + std::to_string(min_p));
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f))
    return invalid_argument("frequency_penalty must be in [-2, 2], got " +
                            std::to_string(frequency_penalty));
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f))
    return invalid_argument("presence_penalty must be in [-2, 2], got " +
                            std::to_string(presence_penalty));
  if (!(repetition_penalty > 0.0f && repetition_penalty <= 2.0f))
    return invalid_argument("repetition_penalty must be in (0, 2], got " +
                            std::to_string(repetition_penalty));
  for (const auto& [id, bias] : logit_bias) {
    if (id < 0 || id >= n_vocab)
      return invalid_argument("logit_bias: token id " + std::to_string(id) + " out of range");
    if (!std::isfinite(bias) && !(std::isinf(bias) && bias < 0))
      return invalid_argument("logit_bias: bias for token " + std::to_string(id) +
                              " must be finite or -inf");
  }
  return Status::ok();
}

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

void Rng::reseed(uint64_t seed) {
  uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
}

uint64_t Rng::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

SamplerState::SamplerState(const SamplingParams& params, std::span<const int32_t> prompt,
                           uint64_t seed)
    : rng_(seed) {
  if (params.repetition_penalty != 1.0f)
    for (int32_t t : prompt) mark_seen(t);
}

void SamplerState::mark_seen(int32_t token) {
  if (token < 0) return;
  if (static_cast<size_t>(token) >= seen_.size()) seen_.resize(static_cast<size_t>(token) + 1, 0);
  if (!seen_[token]) {
    seen_[token] = 1;
    seen_list_.push_back(token);
  }
}

void SamplerState::accept(int32_t token) {
  ++output_counts_[token];
  mark_seen(token);
}

void Sampler::apply_penalties(std::span<float> logits, const SamplingParams& p,
                              const SamplerState& state) {
  const int32_t n = static_cast<int32_t>(logits.size());
  if (p.repetition_penalty != 1.0f) {
    for (int32_t t : state.seen_tokens()) {
      if (t >= n) continue;
      float& l = logits[t];
      l = l > 0 ? l / p.repetition_penalty : l * p.repetition_penalty;
    }
  }
  if (p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) {
    for (const auto& [t, c] : state.output_counts()) {
      if (t < 0 || t >= n) continue;
      logits[t] -= p.frequency_penalty * static_cast<float>(c) + p.presence_penalty;
    }
  }
  for (const auto& [t, b] : p.logit_bias)
    if (t >= 0 && t < n) logits[t] += b;
}

int32_t Sampler::argmax(std::span<const float> logits) {
  // Two passes that vectorize: the maximum over 16 independent lanes (a > b ? a : b is exactly a
  // SIMD max), then the first index holding it (lowest id on ties, as the greedy rule says).
  const size_t n = logits.size();
  const float* x = logits.data();
  float lanes[16];
  for (float& l : lanes) l = -INFINITY;
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 16; ++k) lanes[k] = lanes[k] > x[i + k] ? lanes[k] : x[i + k];
  float m = -INFINITY;
  for (float l : lanes) m = m > l ? m : l;
  for (; i < n; ++i) m = m > x[i] ? m : x[i];
  for (size_t j = 0; j < n; ++j)
    if (x[j] == m) return static_cast<int32_t>(j);
  return 0;  // empty, or every logit NaN
}

namespace {

// Sampler::sample with the uniform draw supplied by `draw` (called at most once, only when a
// random pick is made).
template <typename Draw>
int32_t sample_impl(std::span<const float> logits, const SamplingParams& p, Draw draw,
                    std::vector<std::pair<float, int32_t>>& cand) {
  if (p.greedy()) return Sampler::argmax(logits);
  const int32_t n = static_cast<int32_t>(logits.size());
  const float inv_t = 1.0f / p.temperature;
  float maxl = -INFINITY;
  for (float l : logits) maxl = std::max(maxl, l);
  if (!std::isfinite(maxl)) return Sampler::argmax(logits);  // everything masked to -inf

  // Candidates with unnormalized probabilities. min-p keeps p >= min_p * p_max; since
  // p_max = exp(0) = 1 after subtracting the max, the threshold is simply min_p.
  cand.clear();
  const float min_keep = p.min_p > 0 ? p.min_p : 0.0f;
  for (int32_t i = 0; i < n; ++i) {
    const float e = std::exp((logits[i] - maxl) * inv_t);
    if (e > 0.0f && e >= min_keep) cand.emplace_back(e, i);
  }
  auto by_prob = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < cand.size()) {
    std::nth_element(cand.begin(), cand.begin() + p.top_k, cand.end(), by_prob);
    cand.resize(static_cast<size_t>(p.top_k));
  }
  if (p.top_p < 1.0f) {
    std::sort(cand.begin(), cand.end(), by_prob);
    double total = 0;
    for (const auto& c : cand) total += c.first;
    const double limit = static_cast<double>(p.top_p) * total;
    double cum = 0;
    size_t keep = 0;
    while (keep < cand.size()) {
      cum += cand[keep].first;
      ++keep;
      if (cum >= limit) break;
    }
    cand.resize(keep);
  } else {
    // A canonical order so the draw does not depend on the nth_element's arrangement.
    std::sort(cand.begin(), cand.end(),
              [](const auto& a, const auto& b) { return a.second < b.second; });
  }
  double total = 0;
  for (const auto& c : cand) total += c.first;
  const double r = draw() * total;
  double cum = 0;
  for (const auto& c : cand) {
    cum += c.first;
    if (r < cum) return c.second;
  }
  return cand.back().second;
}

}  // namespace

int32_t Sampler::sample(std::span<const float> logits, const SamplingParams& p,
                        SamplerState& state, std::vector<std::pair<float, int32_t>>& cand) {
  return sample_impl(logits, p, [&state] { return state.rng().next_double(); }, cand);
}

int32_t Sampler::sample_u(std::span<const float> logits, const SamplingParams& p, double u,
                          std::vector<std::pair<float, int32_t>>& cand) {
  return sample_impl(logits, p, [u] { return u; }, cand);
}

void log_softmax(std::span<const float> logits, std::span<float> out) {
  float maxl = -INFINITY;
  for (float l : logits) maxl = std::max(maxl, l);
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l - maxl));
  const float lse = maxl + static_cast<float>(std::log(sum));
  for (size_t i = 0; i < logits.size(); ++i) out[i] = logits[i] - lse;
}

}  // namespace sgl::runtime
