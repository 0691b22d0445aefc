// Helpers shared by the engine tests (engine_test.cpp, engine_overlap_test.cpp,
// engine_fault_test.cpp): the default model's path and a suite fixture that loads it, the sample
// prompts, a greedy request, and the no-leak check after a run.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "models/loader.h"
#include "sgl/engine.h"

namespace sgl::runtime::test {

inline constexpr const char* kModelPath = SGL_SOURCE_DIR "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

// A suite that loads the default model once (its tests skip when models/ lacks it); enc()
// tokenizes without special tokens.
class DefaultModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = models::load_model(kModelPath);
    if (m.is_ok()) model_ = std::move(m).value();
  }
  static void TearDownTestSuite() { model_.reset(); }
  void SetUp() override {
    if (!model_) GTEST_SKIP() << "model not found: " << kModelPath;
  }
  static std::vector<int32_t> enc(const std::string& s) {
    return model_->tok().encode(s, false, false);
  }

  static inline std::unique_ptr<models::LoadedModel> model_;
};

// Short prompts of different kinds and lengths.
inline std::vector<std::string> sample_prompts() {
  return {
      "The capital of France is",    "Once upon a time, in a small village,",
      "def fibonacci(n):",           "The three primary colors are",
      "To make a cup of tea, first", "Water boils at a temperature of",
      "My favourite book is",        "The quick brown fox",
  };
}

// Greedy decoding of exactly max_new tokens (EOS ignored).
inline GenerateRequest greedy_request(const std::vector<int32_t>& prompt, int max_new,
                                      std::string rid) {
  GenerateRequest r;
  r.rid = std::move(rid);
  r.input_ids = prompt;
  r.params.max_new_tokens = max_new;
  r.params.temperature = 0.0f;
  r.params.ignore_eos = true;
  return r;
}

// After everything finished and the cache is flushed, nothing holds KV slots or queue places.
inline void expect_no_leaks(Engine& e) {
  ASSERT_TRUE(e.flush_cache().is_ok());
  EngineStats s = e.stats();
  EXPECT_EQ(s.kv_used, 0);
  EXPECT_EQ(s.running, 0);
  EXPECT_EQ(s.waiting, 0);
  EXPECT_EQ(s.cache_size, 0);
}

}  // namespace sgl::runtime::test
