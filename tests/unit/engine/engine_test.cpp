// Engine end to end on the real default model: continuous batching, chunked prefill, radix-cache
// reuse, stops, aborts, memory pressure. The CPU backend is batch-invariant, so every greedy
// output must equal a direct single-sequence greedy loop over the backend, token for token.
#include "runtime/engine.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "backend/cpu_backend.h"
#include "models/loader.h"
#include "runtime/sampler.h"

namespace sgl::runtime {
namespace {

constexpr const char* kModelPath = "/work/main/models/SmolLM2-135M-Instruct.Q4_1.gguf";

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = models::load_model(kModelPath);
    if (!m.is_ok()) return;
    model_ = std::move(m).value();
    backend::CpuBackendOptions bo;
    bo.n_threads = 2;
    bo.kv_capacity = 512;
    auto b = backend::CpuBackend::create(*model_, bo);
    if (b.is_ok()) backend_ = std::move(b).value();
  }
  static void TearDownTestSuite() {
    backend_.reset();
    model_.reset();
  }
  void SetUp() override {
    if (!model_ || !backend_) GTEST_SKIP() << "model not found: " << kModelPath;
  }

  static std::vector<int32_t> enc(const std::string& s) {
    return model_->tok().encode(s, false, false);
  }

  // Direct greedy loop over the backend: one sequence, slots 0..n-1.
  static std::vector<int32_t> reference(const std::vector<int32_t>& prompt, int n) {
    std::vector<int32_t> tokens = prompt;
    std::vector<int32_t> slots(prompt.size() + n);
    std::iota(slots.begin(), slots.end(), 0);
    std::vector<int32_t> out;
    int32_t n_past = 0;
    const int32_t n_vocab = static_cast<int32_t>(backend_->config().n_vocab);
    while (static_cast<int>(out.size()) < n) {
      backend::ForwardBatch b;
      const int32_t n_new = static_cast<int32_t>(tokens.size()) - n_past;
      b.add_sequence(tokens.data() + n_past, n_new, n_past, slots.data(), true);
      backend::Logits lg;
      EXPECT_TRUE(backend_->forward(b, &lg).is_ok());
      n_past += n_new;
      const int32_t t = Sampler::argmax(std::span<const float>(lg.row(0), n_vocab));
      tokens.push_back(t);
      out.push_back(t);
    }
    return out;
  }

  static GenerateRequest greedy(const std::vector<int32_t>& prompt, int max_new,
                                std::string rid = "r") {
    GenerateRequest r;
    r.rid = std::move(rid);
    r.input_ids = prompt;
    r.params.max_new_tokens = max_new;
    r.params.temperature = 0.0f;
    r.params.ignore_eos = true;
    return r;
  }

  static std::unique_ptr<Engine> make(EngineOptions o = {}) {
    o.threads = 2;
    if (o.max_total_tokens == 0) o.max_total_tokens = 1024;
    auto e = Engine::create(kModelPath, o);
    EXPECT_TRUE(e.is_ok()) << e.status().to_string();
    return e.is_ok() ? std::move(e).value() : nullptr;
  }

  static GenerateOutput run(Engine& e, GenerateRequest r) {
    auto h = e.submit(std::move(r));
    EXPECT_TRUE(h.is_ok()) << h.status().to_string();
    if (!h.is_ok()) return {};
    auto out = (*h)->wait();
    EXPECT_TRUE(out.is_ok());
    return out.is_ok() ? std::move(out).value() : GenerateOutput{};
  }

  static void expect_no_leaks(Engine& e) {
    ASSERT_TRUE(e.flush_cache().is_ok());
    EngineStats s = e.stats();
    EXPECT_EQ(s.kv_used, 0);
    EXPECT_EQ(s.running, 0);
    EXPECT_EQ(s.waiting, 0);
    EXPECT_EQ(s.cache_size, 0);
  }

  static std::vector<std::vector<int32_t>> prompts() {
    const char* texts[] = {
        "The capital of France is",
        "Once upon a time, in a small village,",
        "def fibonacci(n):",
        "The three primary colors are",
        "To make a cup of tea, first",
        "Water boils at a temperature of",
        "My favourite book is",
        "The quick brown fox",
    };
    std::vector<std::vector<int32_t>> p;
    for (const char* t : texts) p.push_back(enc(t));
    return p;
  }

  static inline std::unique_ptr<models::LoadedModel> model_;
  static inline std::unique_ptr<backend::CpuBackend> backend_;
};

TEST_F(EngineTest, SingleGreedyMatchesDirectLoop) {
  auto e = make();
  ASSERT_TRUE(e);
  const auto prompt = enc("The capital of France is");
  const auto ref = reference(prompt, 12);
  GenerateOutput out = run(*e, greedy(prompt, 12));
  EXPECT_EQ(out.output_ids, ref);
  EXPECT_EQ(out.finish_reason.kind, FinishReason::kLength);
  EXPECT_EQ(out.finish_reason.length, 12);
  EXPECT_EQ(out.completion_tokens, 12);
  EXPECT_EQ(out.prompt_tokens, static_cast<int>(prompt.size()));
  EXPECT_EQ(out.cached_tokens, 0);
  EXPECT_EQ(out.text, model_->tok().decode(ref, true).value());
  expect_no_leaks(*e);
}

TEST_F(EngineTest, ConcurrentRequestsFromThreadsMatchSolo) {
  EngineOptions o;
  o.chunked_prefill_size = 7;  // prompts are split over several steps
  auto e = make(o);
  ASSERT_TRUE(e);
  const auto ps = prompts();
  std::vector<std::vector<int32_t>> refs;
  for (const auto& p : ps) refs.push_back(reference(p, 10));
  std::vector<GenerateOutput> outs(ps.size());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::shared_ptr<RequestHandle>> hs;
      for (size_t i = t; i < ps.size(); i += 4) {
        auto h = e->submit(greedy(ps[i], 10, "req" + std::to_string(i)));
        ASSERT_TRUE(h.is_ok());
        hs.push_back(*h);
      }
      size_t k = 0;
      for (size_t i = t; i < ps.size(); i += 4) {
        auto out = hs[k++]->wait();
        ASSERT_TRUE(out.is_ok());
        outs[i] = std::move(out).value();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (size_t i = 0; i < ps.size(); ++i) {
    EXPECT_EQ(outs[i].output_ids, refs[i]) << "request " << i;
    EXPECT_EQ(outs[i].finish_reason.kind, FinishReason::kLength);
  }
  expect_no_leaks(*e);
}

TEST_F(EngineTest, RepeatedPromptIsServedFromCache) {
  auto e = make();
  ASSERT_TRUE(e);
  const auto prompt = enc("Once upon a time, in a small village, there lived an old baker who");
  GenerateOutput a = run(*e, greedy(prompt, 8));
  GenerateOutput b = run(*e, greedy(prompt, 8));
  EXPECT_EQ(a.cached_tokens, 0);
  EXPECT_EQ(b.cached_tokens, static_cast<int>(prompt.size()) - 1);
  EXPECT_EQ(a.output_ids, b.output_ids);
  EXPECT_EQ(a.output_ids, reference(prompt, 8));
  // A continuation of prompt + output reuses the output's K/V too (all but the last token).
  std::vector<int32_t> longer = prompt;
  longer.insert(longer.end(), a.output_ids.begin(), a.output_ids.end());
  GenerateOutput c = run(*e, greedy(longer, 4));
  EXPECT_EQ(c.cached_tokens, static_cast<int>(longer.size()) - 1);
  EXPECT_EQ(c.output_ids, reference(longer, 4));
  EngineStats s = e->stats();
  EXPECT_GT(s.cache_hit_tokens, 0);
  EXPECT_GT(s.cache_size, 0);
  expect_no_leaks(*e);
}

TEST_F(EngineTest, PrefillOnlyWarmsTheCache) {
  auto e = make();
  ASSERT_TRUE(e);
  const auto prompt = enc("The three primary colors are red, blue and");
  GenerateOutput w = run(*e, greedy(prompt, 0));
  EXPECT_EQ(w.finish_reason.kind, FinishReason::kLength);
  EXPECT_EQ(w.finish_reason.length, 0);
  EXPECT_TRUE(w.output_ids.empty());
  EXPECT_EQ(w.completion_tokens, 0);
  GenerateOutput g = run(*e, greedy(prompt, 6));
  EXPECT_EQ(g.cached_tokens, static_cast<int>(prompt.size()) - 1);
  EXPECT_EQ(g.output_ids, reference(prompt, 6));
  expect_no_leaks(*e);
}

TEST_F(EngineTest, DisableRadixCache) {
  EngineOptions o;
  o.disable_radix_cache = true;
  auto e = make(o);
  ASSERT_TRUE(e);
  const auto prompt = enc("To make a cup of tea, first");
  const auto ref = reference(prompt, 8);
  GenerateOutput a = run(*e, greedy(prompt, 8));
  GenerateOutput b = run(*e, greedy(prompt, 8));
  EXPECT_EQ(a.cached_tokens, 0);
  EXPECT_EQ(b.cached_tokens, 0);
  EXPECT_EQ(a.output_ids, ref);
  EXPECT_EQ(b.output_ids, ref);
  EXPECT_EQ(e->stats().kv_used, 0);
  expect_no_leaks(*e);
}

TEST_F(EngineTest, StopStringEndsTheRequest) {
  auto e = make();
  ASSERT_TRUE(e);
  const auto prompt = enc("Once upon a time, in a small village,");
  GenerateOutput full = run(*e, greedy(prompt, 16));
  ASSERT_GT(full.text.size(), 6u);
  size_t k = full.text.size() / 3;
  while (k < full.text.size() && (full.text[k] == ' ' || full.text[k] == '\n')) ++k;
  ASSERT_LT(k + 2, full.text.size());
  const std::string stop = full.text.substr(k, 2);
  GenerateRequest r = greedy(prompt, 16);
  r.params.stop = {stop};
  GenerateOutput out = run(*e, r);
  EXPECT_EQ(out.finish_reason.kind, FinishReason::kStop);
  EXPECT_EQ(out.finish_reason.to_json()["type"], "stop");
  EXPECT_EQ(out.finish_reason.to_json()["matched"], stop);
  EXPECT_EQ(out.text, full.text.substr(0, full.text.find(stop)));
  EXPECT_LT(out.completion_tokens, 16);
  expect_no_leaks(*e);
}

TEST_F(EngineTest, AbortMidGeneration) {
  auto e = make();
  ASSERT_TRUE(e);
  GenerateRequest r = greedy(enc("The quick brown fox"), 200);
  auto h = e->submit(r);
  ASSERT_TRUE(h.is_ok());
  RequestEvent ev;
  ASSERT_TRUE((*h)->next(&ev));
  EXPECT_EQ(ev.kind, RequestEvent::kToken);
  (*h)->abort();
  int tokens = 1;
  bool finished = false;
  while ((*h)->next(&ev)) {
    if (ev.kind == RequestEvent::kFinish) {
      finished = true;
      EXPECT_EQ(ev.finish.kind, FinishReason::kAbort);
      EXPECT_EQ(ev.finish.to_json()["type"], "abort");
    } else {
      ++tokens;
    }
  }
  EXPECT_TRUE(finished);
  EXPECT_LT(tokens, 200);
  EXPECT_FALSE((*h)->next(&ev));
  // Aborting a finished request is harmless.
  (*h)->abort();
  expect_no_leaks(*e);
}

TEST_F(EngineTest, TinyPoolFinishesOrAbortsEveryRequest) {
  EngineOptions o;
  o.max_total_tokens = 96;
  o.chunked_prefill_size = 32;
  auto e = make(o);
  ASSERT_TRUE(e);
  const std::string base =
      " is a story about a traveller who walks across the mountains, meets many strangers, "
      "learns their songs and finally returns home to write them all down in a big book.";
  std::vector<std::vector<int32_t>> ps;
  for (int i = 0; i < 6; ++i) {
    auto p = enc("Chapter " + std::to_string(i + 1) + base + base);
    ASSERT_GE(p.size(), 40u);
    p.resize(40);
    ps.push_back(p);
  }
  std::vector<std::shared_ptr<RequestHandle>> hs;
  for (int i = 0; i < 6; ++i) {
    auto h = e->submit(greedy(ps[i], 16, "tiny" + std::to_string(i)));
    ASSERT_TRUE(h.is_ok()) << h.status().to_string();
    hs.push_back(*h);
  }
  int finished = 0, aborted = 0;
  for (int i = 0; i < 6; ++i) {
    auto out = hs[i]->wait();
    ASSERT_TRUE(out.is_ok());
    if (out->finish_reason.kind == FinishReason::kAbort) {
      ++aborted;
      EXPECT_NE(out->finish_reason.message.find("KV"), std::string::npos);
    } else {
      ++finished;
      EXPECT_EQ(out->output_ids, reference(ps[i], 16)) << "request " << i;
    }
  }
  EXPECT_EQ(finished + aborted, 6);
  EXPECT_GE(finished, 1);
  EXPECT_EQ(e->stats().aborted_for_memory, aborted);
  std::printf("tiny pool: %d finished, %d aborted, %lld tokens evicted\n", finished, aborted,
              static_cast<long long>(e->stats().evicted_tokens));
  expect_no_leaks(*e);
}

TEST_F(EngineTest, SeededSamplingIsReproducibleInABatch) {
  auto e = make();
  ASSERT_TRUE(e);
  const auto prompt = enc("Once upon a time, in a small village,");
  GenerateRequest r = greedy(prompt, 12);
  r.params.temperature = 0.9f;
  r.params.top_p = 0.95f;
  r.params.repetition_penalty = 1.1f;
  r.params.sampling_seed = 1234;
  GenerateOutput alone = run(*e, r);
  ASSERT_EQ(alone.output_ids.size(), 12u);
  std::vector<std::shared_ptr<RequestHandle>> hs;
  for (const auto& p : prompts()) hs.push_back(*e->submit(greedy(p, 12)));
  auto again = e->submit(r);
  ASSERT_TRUE(again.is_ok());
  auto out = (*again)->wait();
  ASSERT_TRUE(out.is_ok());
  EXPECT_EQ(out->output_ids, alone.output_ids);
  EXPECT_EQ(out->text, alone.text);
  for (auto& h : hs) ASSERT_TRUE(h->wait().is_ok());
  expect_no_leaks(*e);
}

TEST_F(EngineTest, SubmitRejectsInvalidRequests) {
  EngineOptions o;
  o.max_total_tokens = 128;
  auto e = make(o);
  ASSERT_TRUE(e);
  const auto prompt = enc("Hello there");
  {
    GenerateRequest r = greedy(prompt, 4);
    r.params.top_p = 0.0f;
    EXPECT_FALSE(e->submit(r).is_ok());
  }
  {
    GenerateRequest r = greedy(prompt, 4);
    r.params.temperature = -1.0f;
    EXPECT_FALSE(e->submit(r).is_ok());
  }
  {
    GenerateRequest r = greedy(prompt, 4);
    r.params.max_new_tokens = -1;
    EXPECT_FALSE(e->submit(r).is_ok());
  }
  EXPECT_FALSE(e->submit(greedy({}, 4)).is_ok());
  EXPECT_FALSE(e->submit(greedy({1, 2, 1 << 30}, 4)).is_ok());
  EXPECT_FALSE(e->submit(greedy({1, -5}, 4)).is_ok());
  EXPECT_FALSE(e->submit(greedy(prompt, 127)).is_ok());  // prompt + max_new > pool
  {
    GenerateRequest r = greedy(prompt, 4);
    r.params.n = 2;
    EXPECT_FALSE(e->submit(r).is_ok());
  }
  EngineStats s = e->stats();
  EXPECT_EQ(s.waiting + s.running, 0);
  // A valid request still works afterwards.
  GenerateOutput out = run(*e, greedy(prompt, 3));
  EXPECT_EQ(out.output_ids, reference(prompt, 3));
}

TEST_F(EngineTest, FlushCacheFailsWhileRequestsAreInFlight) {
  auto e = make();
  ASSERT_TRUE(e);
  auto h = e->submit(greedy(enc("My favourite book is"), 200));
  ASSERT_TRUE(h.is_ok());
  RequestEvent ev;
  ASSERT_TRUE((*h)->next(&ev));
  EXPECT_FALSE(e->flush_cache().is_ok());
  (*h)->abort();
  ASSERT_TRUE((*h)->wait().is_ok());
  expect_no_leaks(*e);
}

TEST_F(EngineTest, ShutdownAbortsPendingRequests) {
  auto e = make();
  ASSERT_TRUE(e);
  auto h = e->submit(greedy(enc("Water boils at a temperature of"), 200));
  ASSERT_TRUE(h.is_ok());
  e->shutdown();
  auto out = (*h)->wait();
  ASSERT_TRUE(out.is_ok());
  EXPECT_EQ(out->finish_reason.kind, FinishReason::kAbort);
  EXPECT_FALSE(e->submit(greedy(enc("x"), 1)).is_ok());
}

}  // namespace
}  // namespace sgl::runtime
