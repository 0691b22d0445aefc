// Batch invariance of the CPU backend on the default model: a sequence's logits are bit-identical
// whatever else shares its forward passes, however its prompt is chunked, whether its prefix was
// computed earlier (a cached prefix, in other slots, as part of another sequence), and with 1 or
// 2 threads. Checked for every KV dtype, for every prompt position and for 8 greedy decode steps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu_backend.h"
#include "models/loader.h"
#include "test_util.h"

namespace sgl::models {
namespace {

using testing::argmax;
using testing::default_model_path;
using testing::default_model_present;
using testing::iota_slots;
using testing::run_forward;
using testing::SeqRequest;

constexpr int kPromptLen = 100;
constexpr int kPrefixLen = 60;  // the cached prefix of variant (d)
constexpr int kDecodeSteps = 8;
constexpr int64_t kKvCapacity = 3200;  // the slots below stay under 3108

const char* const kPrompt =
    "Batch invariance means that the numbers a model produces for one request do not depend on "
    "which other requests happen to be processed at the same time. Without it, a server that "
    "mixes prefill chunks and decode tokens in one batch could give a user different answers "
    "for the same prompt and seed, depending on the load. The CPU backend computes every token's "
    "row independently and stores keys and values rounded the same way, so the result for a "
    "sequence should be identical to the last bit, on every thread count and for every cache type.";

const char* const kOthers[8] = {
    "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n"
    "    return a\n\nprint([fibonacci(i) for i in range(20)])\n",
    "Il était une fois, dans un petit village au bord de la mer, une vieille femme qui vendait "
    "des coquillages aux voyageurs.",
    "<|im_start|>user\nList three colours of the rainbow.<|im_end|>\n<|im_start|>assistant\n",
    "1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181, 6765",
    "The quick brown fox jumps over the lazy dog while the cat watches from the window sill.",
    "SELECT name, COUNT(*) AS n FROM orders JOIN customers USING (customer_id) GROUP BY name "
    "HAVING n > 3 ORDER BY n DESC;",
    "Water boils at one hundred degrees Celsius at sea level, but at lower temperatures on high "
    "mountains, because the air pressure is lower there.",
    "Once upon a midnight dreary, while I pondered, weak and weary, over many a quaint and "
    "curious volume of forgotten lore",
};

class BatchInvarianceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!default_model_present()) return;
    auto m = load_model(default_model_path());
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    model_ = m->release();
    prompt_ = model_->tok().encode(kPrompt, true, false);
    ASSERT_GE(prompt_.size(), static_cast<size_t>(kPromptLen));
    prompt_.resize(kPromptLen);
    for (const char* t : kOthers) others_.push_back(model_->tok().encode(t, true, true));
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override {
    if (model_ == nullptr) GTEST_SKIP() << "default model not found: " << default_model_path();
  }

  static std::unique_ptr<backend::CpuBackend> make_backend(backend::KvDtype kv, int threads) {
    backend::CpuBackendOptions o;
    o.n_threads = threads;
    o.kv_dtype = kv;
    o.kv_capacity = kKvCapacity;
    auto be = backend::CpuBackend::create(*model_, o);
    EXPECT_TRUE(be.is_ok()) << be.status().to_string();
    return be.is_ok() ? std::move(*be) : nullptr;
  }

  static LoadedModel* model_;
  static std::vector<int32_t> prompt_;
  static std::vector<std::vector<int32_t>> others_;
};

LoadedModel* BatchInvarianceTest::model_ = nullptr;
std::vector<int32_t> BatchInvarianceTest::prompt_;
std::vector<std::vector<int32_t>> BatchInvarianceTest::others_;

// The prompt's logits for every position plus the logits of kDecodeSteps greedy steps after it.
struct Trace {
  std::vector<float> prompt;              // [kPromptLen, n_vocab]
  std::vector<std::vector<float>> steps;  // [kDecodeSteps][n_vocab]
};

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Where two logit arrays first differ, for failure messages.
std::string first_difference(const std::vector<float>& a, const std::vector<float>& b,
                             int32_t n_vocab) {
  if (a.size() != b.size()) return "sizes differ";
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0)
      return "row " + std::to_string(i / n_vocab) + " token " + std::to_string(i % n_vocab) + ": " +
             std::to_string(a[i]) + " vs " + std::to_string(b[i]);
  }
  return "none";
}

void expect_same_trace(const Trace& ref, const Trace& got, const std::string& what,
                       int32_t n_vocab) {
  EXPECT_TRUE(bitwise_equal(ref.prompt, got.prompt))
      << what << ": prompt logits differ, first at "
      << first_difference(ref.prompt, got.prompt, n_vocab);
  ASSERT_EQ(ref.steps.size(), got.steps.size()) << what;
  for (size_t i = 0; i < ref.steps.size(); ++i)
    EXPECT_TRUE(bitwise_equal(ref.steps[i], got.steps[i]))
        << what << ": decode step " << i << " logits differ, first at "
        << first_difference(ref.steps[i], got.steps[i], n_vocab);
}

// The variants. Each returns the same Trace if the backend is batch invariant; `slots` give the
// prompt's KV slots (kPromptLen + kDecodeSteps of them) so variants use different memory.
class Variants {
 public:
  Variants(backend::CpuBackend& be, const std::vector<int32_t>& prompt,
           const std::vector<std::vector<int32_t>>& others)
      : be_(be), prompt_(prompt), others_(others), n_vocab_(be.config().n_vocab) {}

  // (a) The whole prompt alone in one pass; decode steps alone.
  Trace alone(const std::vector<int32_t>& slots) {
    Trace t;
    auto out = run_forward(be_, {{prompt_, 0, head(slots, kPromptLen), true}});
    if (out.empty()) return t;
    t.prompt = std::move(out[0]);
    decode(&t, slots, nullptr);
    return t;
  }

  // (b) The whole prompt in the middle of a batch with 8 other sequences: prefill chunks at
  // various n_past and single decode tokens; decode steps in batches with the others decoding
  // and one of them prefilling.
  Trace mixed(const std::vector<int32_t>& slots, int32_t other_slot_base) {
    Trace t;
    // Put part of each other sequence in the pool first.
    static constexpr int kPrepLen[8] = {30, 11, 17, 9, 40, 8, 25, 5};
    std::vector<std::vector<int32_t>> os(8);
    std::vector<int32_t> n_past(8);
    std::vector<SeqRequest> prep;
    for (int i = 0; i < 8; ++i) {
      os[i] = iota_slots(other_slot_base + 200 * i, 200);
      n_past[i] = std::min<int32_t>(kPrepLen[i], static_cast<int32_t>(others_[i].size()) - 4);
      prep.push_back({head(others_[i], n_past[i]), 0, head(os[i], n_past[i]), i % 2 == 0});
    }
    if (run_forward(be_, prep).empty()) return t;
    // The mixed batch: others 0, 2, 4, 6 prefill a chunk, 1, 3, 5, 7 decode one token.
    std::vector<SeqRequest> batch;
    int prompt_index = -1;
    for (int i = 0; i < 8; ++i) {
      const int32_t n_new =
          i % 2 == 0
              ? std::min<int32_t>(13 + 7 * i, static_cast<int32_t>(others_[i].size()) - n_past[i])
              : 1;
      batch.push_back({slice(others_[i], n_past[i], n_past[i] + n_new), n_past[i],
                       head(os[i], n_past[i] + n_new), i == 2});
      n_past[i] += n_new;
      if (i == 4) {
        prompt_index = static_cast<int>(batch.size());
        batch.push_back({prompt_, 0, head(slots, kPromptLen), true});
      }
    }
    auto out = run_forward(be_, batch);
    if (out.empty()) return t;
    t.prompt = std::move(out[prompt_index]);
    // Decode steps alongside the others (which feed their own next prompt tokens, or repeat
    // token 42 once their text ends); on step 3 one of them prefills a 20-token chunk.
    int32_t tok =
        argmax(t.prompt.data() + static_cast<size_t>(kPromptLen - 1) * n_vocab_, n_vocab_);
    for (int step = 0; step < kDecodeSteps; ++step) {
      const int32_t pos = kPromptLen + step;
      std::vector<SeqRequest> b;
      int pi = -1;
      for (int i = 0; i < 8; ++i) {
        if ((step + i) % 3 == 0) continue;  // vary the composition from step to step
        const int32_t n_new = (step == 3 && i == 1) ? 20 : 1;
        std::vector<int32_t> toks;
        for (int32_t k = 0; k < n_new; ++k) {
          const size_t at = static_cast<size_t>(n_past[i] + k);
          toks.push_back(at < others_[i].size() ? others_[i][at] : 42);
        }
        b.push_back({toks, n_past[i], head(os[i], n_past[i] + n_new), false});
        n_past[i] += n_new;
        if (i == step % 8) {
          pi = static_cast<int>(b.size());
          b.push_back({{tok}, pos, head(slots, pos + 1), false});
        }
      }
      if (pi < 0) {
        pi = static_cast<int>(b.size());
        b.push_back({{tok}, pos, head(slots, pos + 1), false});
      }
      auto o = run_forward(be_, b);
      if (o.empty()) return t;
      t.steps.push_back(std::move(o[pi]));
      tok = argmax(t.steps.back().data(), n_vocab_);
    }
    return t;
  }

  // (c) The prompt in 3 uneven chunks over 3 forward passes (each with another sequence).
  Trace chunked(const std::vector<int32_t>& slots, int32_t other_slot_base) {
    Trace t;
    const int cuts[4] = {0, 17, 71, kPromptLen};
    const std::vector<int32_t> os = iota_slots(other_slot_base, 64);
    for (int c = 0; c < 3; ++c) {
      const std::vector<int32_t>& other = others_[c];
      const int32_t on = std::min<int32_t>(5 + 3 * c, static_cast<int32_t>(other.size()));
      auto out = run_forward(
          be_, {{head(other, on), 0, head(os, on), false},
                {slice(prompt_, cuts[c], cuts[c + 1]), cuts[c], head(slots, cuts[c + 1]), true}});
      if (out.empty()) return t;
      t.prompt.insert(t.prompt.end(), out[1].begin(), out[1].end());
    }
    decode(&t, slots, nullptr);
    return t;
  }

  // (d) The first kPrefixLen tokens come from an earlier pass of another sequence that shares
  // them (as the radix cache would hand them over): that sequence's logits give the prefix rows,
  // and the prompt then continues from its slots with n_past = kPrefixLen. Decode steps run in
  // batches of 3 with two unrelated single-token sequences.
  Trace cached_prefix(const std::vector<int32_t>& slots, int32_t other_slot_base) {
    Trace t;
    // The sharing sequence: the prefix, then 15 tokens of its own in other slots.
    std::vector<int32_t> sharer = head(prompt_, kPrefixLen);
    sharer.insert(sharer.end(), others_[4].begin(), others_[4].begin() + 15);
    std::vector<int32_t> sharer_slots = head(slots, kPrefixLen);
    for (int32_t i = 0; i < 15; ++i) sharer_slots.push_back(other_slot_base + i);
    const std::vector<int32_t> os = iota_slots(other_slot_base + 100, 64);
    auto first = run_forward(
        be_, {{head(others_[5], 9), 0, head(os, 9), true}, {sharer, 0, sharer_slots, true}});
    if (first.empty()) return t;
    t.prompt.assign(first[1].begin(),
                    first[1].begin() + static_cast<size_t>(kPrefixLen) * n_vocab_);
    auto rest = run_forward(
        be_, {{slice(prompt_, kPrefixLen, kPromptLen), kPrefixLen, head(slots, kPromptLen), true}});
    if (rest.empty()) return t;
    t.prompt.insert(t.prompt.end(), rest[0].begin(), rest[0].end());
    const std::vector<int32_t> extra = iota_slots(other_slot_base + 200, 2 * kDecodeSteps);
    decode(&t, slots, &extra);
    return t;
  }

 private:
  static std::vector<int32_t> head(const std::vector<int32_t>& v, int32_t n) {
    return std::vector<int32_t>(v.begin(), v.begin() + n);
  }
  static std::vector<int32_t> slice(const std::vector<int32_t>& v, int32_t b, int32_t e) {
    return std::vector<int32_t>(v.begin() + b, v.begin() + e);
  }

  // Greedy decode steps after the prompt. With `extra` slots, each step also carries two
  // single-token sequences of their own (fresh one-token prompts: tokens 7 and 9).
  void decode(Trace* t, const std::vector<int32_t>& slots, const std::vector<int32_t>* extra) {
    if (t->prompt.size() != static_cast<size_t>(kPromptLen) * n_vocab_) return;
    int32_t tok =
        argmax(t->prompt.data() + static_cast<size_t>(kPromptLen - 1) * n_vocab_, n_vocab_);
    for (int step = 0; step < kDecodeSteps; ++step) {
      const int32_t pos = kPromptLen + step;
      std::vector<SeqRequest> b;
      if (extra != nullptr) b.push_back({{7}, 0, {(*extra)[2 * step]}, false});
      b.push_back({{tok}, pos, head(slots, pos + 1), false});
      if (extra != nullptr) b.push_back({{9}, 0, {(*extra)[2 * step + 1]}, true});
      auto o = run_forward(be_, b);
      if (o.empty()) return;
      t->steps.push_back(std::move(o[extra != nullptr ? 1 : 0]));
      tok = argmax(t->steps.back().data(), n_vocab_);
    }
  }

  backend::CpuBackend& be_;
  const std::vector<int32_t>& prompt_;
  const std::vector<std::vector<int32_t>>& others_;
  int32_t n_vocab_;
};

// Slot lists for the prompt: contiguous, or a fixed pseudo-random permutation of a region.
std::vector<int32_t> shuffled_slots(int32_t base, int32_t n, uint32_t seed) {
  std::vector<int32_t> s = iota_slots(base, n);
  std::mt19937 rng(seed);
  std::shuffle(s.begin(), s.end(), rng);
  return s;
}

void run_all_variants(backend::CpuBackend& be, const std::vector<int32_t>& prompt,
                      const std::vector<std::vector<int32_t>>& others) {
  const int32_t n_vocab = static_cast<int32_t>(be.config().n_vocab);
  constexpr int32_t kLen = kPromptLen + kDecodeSteps;
  Variants v(be, prompt, others);
  const Trace a = v.alone(iota_slots(0, kLen));
  ASSERT_EQ(a.prompt.size(), static_cast<size_t>(kPromptLen) * n_vocab);
  ASSERT_EQ(a.steps.size(), static_cast<size_t>(kDecodeSteps));
  expect_same_trace(a, v.mixed(shuffled_slots(200, kLen, 1), 1000), "(b) mixed batch", n_vocab);
  expect_same_trace(a, v.chunked(iota_slots(2700, kLen), 2850), "(c) 3 chunks", n_vocab);
  expect_same_trace(a, v.cached_prefix(shuffled_slots(500, kLen, 2), 700), "(d) cached prefix",
                    n_vocab);
  // The alone variant again in other slots, after all that traffic in the pool.
  expect_same_trace(a, v.alone(shuffled_slots(3000, kLen, 3)), "(a') alone, other slots", n_vocab);
}

TEST_F(BatchInvarianceTest, KvF16) {
  auto be = make_backend(backend::KvDtype::kF16, 2);
  ASSERT_NE(be, nullptr);
  run_all_variants(*be, prompt_, others_);
}

TEST_F(BatchInvarianceTest, KvBF16) {
  auto be = make_backend(backend::KvDtype::kBF16, 2);
  ASSERT_NE(be, nullptr);
  run_all_variants(*be, prompt_, others_);
}

TEST_F(BatchInvarianceTest, KvF32) {
  auto be = make_backend(backend::KvDtype::kF32, 2);
  ASSERT_NE(be, nullptr);
  run_all_variants(*be, prompt_, others_);
}

// One thread and two threads give the same bits, alone and in a mixed batch.
TEST_F(BatchInvarianceTest, ThreadCount) {
  auto one = make_backend(backend::KvDtype::kF16, 1);
  auto two = make_backend(backend::KvDtype::kF16, 2);
  ASSERT_NE(one, nullptr);
  ASSERT_NE(two, nullptr);
  const int32_t n_vocab = static_cast<int32_t>(one->config().n_vocab);
  constexpr int32_t kLen = kPromptLen + kDecodeSteps;
  Variants v1(*one, prompt_, others_);
  Variants v2(*two, prompt_, others_);
  const Trace a1 = v1.alone(iota_slots(0, kLen));
  const Trace a2 = v2.alone(iota_slots(0, kLen));
  ASSERT_EQ(a1.prompt.size(), static_cast<size_t>(kPromptLen) * n_vocab);
  expect_same_trace(a1, a2, "1 vs 2 threads, alone", n_vocab);
  expect_same_trace(a1, v2.mixed(shuffled_slots(200, kLen, 4), 1000), "1 vs 2 threads, mixed",
                    n_vocab);
}

// The KV dtype matters (the test above would pass trivially if it were ignored): f16 and f32
// caches give logits that differ somewhere, but only by rounding.
TEST_F(BatchInvarianceTest, KvDtypeChangesOnlyRounding) {
  auto f16 = make_backend(backend::KvDtype::kF16, 2);
  auto f32 = make_backend(backend::KvDtype::kF32, 2);
  ASSERT_NE(f16, nullptr);
  ASSERT_NE(f32, nullptr);
  const auto slots = iota_slots(0, kPromptLen);
  auto a = run_forward(*f16, {{prompt_, 0, slots, true}});
  auto b = run_forward(*f32, {{prompt_, 0, slots, true}});
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_FALSE(bitwise_equal(a[0], b[0]));
  // This model amplifies any rounding difference through its int8-quantized activations (see
  // golden_logits_test.cpp): f16 vs f32 K/V measure about 1e-3, a broken cache would be near 1.
  const double e = testing::nmse(a[0].data(), b[0].data(), a[0].size());
  std::cout << "[batch] KV f16 vs f32 logits NMSE " << e << "\n";
  EXPECT_LT(e, 2e-2);
}

}  // namespace
}  // namespace sgl::models
