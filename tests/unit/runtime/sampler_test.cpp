#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <set>

namespace sgl::runtime {
namespace {

std::vector<float> random_logits(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 3.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(Sampler, GreedyPicksArgmaxLowestIdOnTies) {
  std::vector<float> l = {1, 5, 3, 5};
  SamplingParams p;
  p.temperature = 0;
  SamplerState st(p, {}, 1);
  std::vector<std::pair<float, int32_t>> scratch;
  EXPECT_EQ(Sampler::sample(l, p, st, scratch), 1);
}

TEST(Sampler, SeededDrawsAreReproducible) {
  auto l = random_logits(1000, 3);
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_p = 0.9f;
  std::vector<std::pair<float, int32_t>> scratch;
  SamplerState a(p, {}, 42), b(p, {}, 42), c(p, {}, 43);
  int diff = 0;
  for (int i = 0; i < 50; ++i) {
    int32_t x = Sampler::sample(l, p, a, scratch);
    EXPECT_EQ(x, Sampler::sample(l, p, b, scratch));
    diff += x != Sampler::sample(l, p, c, scratch);
  }
  EXPECT_GT(diff, 0);
}

TEST(Sampler, TopKRestrictsToKBest) {
  auto l = random_logits(500, 5);
  SamplingParams p;
  p.temperature = 5.0f;  // flatten so that without top-k many tokens would appear
  p.top_k = 3;
  std::vector<int32_t> order(l.size());
  for (size_t i = 0; i < l.size(); ++i) order[i] = static_cast<int32_t>(i);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return l[a] > l[b]; });
  SamplerState st(p, {}, 7);
  std::vector<std::pair<float, int32_t>> scratch;
  std::map<int32_t, int> seen;
  for (int i = 0; i < 2000; ++i) ++seen[Sampler::sample(l, p, st, scratch)];
  EXPECT_EQ(seen.size(), 3u);
  for (int k = 0; k < 3; ++k) EXPECT_TRUE(seen.count(order[k]));
}

TEST(Sampler, FrequenciesMatchSoftmaxWithinTolerance) {
  std::vector<float> l = {0.0f, 1.0f, 2.0f, -1.0f};
  SamplingParams p;
  p.temperature = 1.0f;
  SamplerState st(p, {}, 11);
  std::vector<std::pair<float, int32_t>> scratch;
  std::vector<int> count(4);
  const int n = 200000;
  for (int i = 0; i < n; ++i) ++count[Sampler::sample(l, p, st, scratch)];
  double z = 0;
  for (float x : l) z += std::exp(x);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(count[i] / double(n), std::exp(l[i]) / z, 0.005);
}

TEST(Sampler, TopPKeepsSmallestSetReachingP) {
  // probabilities ~ 0.64, 0.24, 0.09, 0.03: top_p 0.7 keeps the two best.
  std::vector<float> l = {std::log(0.64f), std::log(0.24f), std::log(0.09f), std::log(0.03f)};
  SamplingParams p;
  p.top_p = 0.7f;
  SamplerState st(p, {}, 3);
  std::vector<std::pair<float, int32_t>> scratch;
  std::set<int32_t> seen;
  for (int i = 0; i < 5000; ++i) seen.insert(Sampler::sample(l, p, st, scratch));
  EXPECT_EQ(seen, (std::set<int32_t>{0, 1}));
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.2f) - 3};
  SamplingParams p;
  p.min_p = 0.1f;  // keeps p >= 0.05: token 2 (~0.01) is dropped
  SamplerState st(p, {}, 3);
  std::vector<std::pair<float, int32_t>> scratch;
  for (int i = 0; i < 5000; ++i) EXPECT_NE(Sampler::sample(l, p, st, scratch), 2);
}

TEST(Sampler, PenaltiesAndBias) {
  std::vector<float> l = {2.0f, -2.0f, 1.0f, 0.0f};
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  p.logit_bias = {{3, 10.0f}};
  std::vector<int32_t> prompt = {0};
  SamplerState st(p, prompt, 0);
  st.accept(1);
  st.accept(1);
  Sampler::apply_penalties(l, p, st);
  EXPECT_FLOAT_EQ(l[0], 1.0f);                     // prompt token, positive: divided
  EXPECT_FLOAT_EQ(l[1], -4.0f - 2 * 0.5f - 0.25f); // output twice: multiplied then penalized
  EXPECT_FLOAT_EQ(l[2], 1.0f);
  EXPECT_FLOAT_EQ(l[3], 10.0f);
}

TEST(Sampler, ValidateRejectsOutOfRange) {
  SamplingParams p;
  EXPECT_TRUE(p.validate(10).is_ok());
  p.top_p = 0;
  EXPECT_FALSE(p.validate(10).is_ok());
  p = {};
  p.repetition_penalty = 0;
  EXPECT_FALSE(p.validate(10).is_ok());
  p = {};
  p.logit_bias = {{10, 1.0f}};
  EXPECT_FALSE(p.validate(10).is_ok());
  p = {};
  p.temperature = NAN;
  EXPECT_FALSE(p.validate(10).is_ok());
}

TEST(LogSoftmax, NormalizesToOne) {
  auto l = random_logits(1000, 9);
  std::vector<float> out(l.size());
  log_softmax(l, out);
  double s = 0;
  for (float x : out) s += std::exp(static_cast<double>(x));
  EXPECT_NEAR(s, 1.0, 1e-5);
}

}  // namespace
}  // namespace sgl::runtime
