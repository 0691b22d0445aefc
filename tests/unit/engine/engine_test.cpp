// Engine end to end on the real default model: continuous batching, chunked prefill, radix-cache
// reuse, stops, aborts, memory pressure. The CPU backend is batch-invariant, so every greedy
// output must equal a direct single-sequence greedy loop over the backend, token for token.
#include "sgl/engine.h"
#include "backend/factory.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "backend/cpu_backend.h"
#include "engine_test_util.h"
#include "models/loader.h"
#include "runtime/sampler.h"

namespace sgl::runtime {
namespace {

using test::expect_no_leaks;
using test::kModelPath;

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
    return test::greedy_request(prompt, max_new, std::move(rid));
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

  static std::vector<std::vector<int32_t>> prompts() {
    std::vector<std::vector<int32_t>> p;
    for (const std::string& t : test::sample_prompts()) p.push_back(enc(t));
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
    r.params.n = 2;  // submit() takes one sample; submit_batch() expands n
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


// ---------------------------------------------------------------- retraction

TEST_F(EngineTest, RetractionUnderMemoryPressureKeepsOutputsExact) {
  // Admission reserves no decode room (conservativeness 0), so running requests outgrow the pool
  // and must be retracted and resumed; every output must still equal the solo greedy output.
  EngineOptions o;
  o.max_total_tokens = 100;
  o.chunked_prefill_size = 64;
  o.schedule_conservativeness = 0.0;
  auto e = make(o);
  ASSERT_TRUE(e);
  std::vector<std::vector<int32_t>> ps;
  const auto all = prompts();
  for (int i = 0; i < 6; ++i) {
    auto p = enc("Story " + std::to_string(i) + ": once upon a time a traveller walked across " +
                 "the mountains and met many strangers along the way");
    p.resize(std::min<size_t>(p.size(), 20));
    ps.push_back(p);
  }
  std::vector<std::shared_ptr<RequestHandle>> hs;
  for (int i = 0; i < 6; ++i) {
    auto h = e->submit(greedy(ps[i], 24, "ret" + std::to_string(i)));
    ASSERT_TRUE(h.is_ok()) << h.status().to_string();
    hs.push_back(*h);
  }
  int retractions = 0;
  for (int i = 0; i < 6; ++i) {
    auto out = hs[i]->wait();
    ASSERT_TRUE(out.is_ok());
    ASSERT_EQ(out->finish_reason.kind, FinishReason::kLength) << out->finish_reason.message;
    EXPECT_EQ(out->output_ids, reference(ps[i], 24)) << "request " << i;
    EXPECT_EQ(out->completion_tokens, 24);
    retractions += out->timings.retractions;
  }
  EngineStats s = e->stats();
  EXPECT_GT(s.retractions, 0);
  EXPECT_EQ(s.retractions, retractions);
  EXPECT_EQ(s.aborted_for_memory, 0);
  std::printf("retraction: %lld retractions, %lld tokens evicted\n",
              static_cast<long long>(s.retractions), static_cast<long long>(s.evicted_tokens));
  expect_no_leaks(*e);
}

// ---------------------------------------------------------------- logprobs

TEST_F(EngineTest, LogprobLayoutAndValues) {
  auto e = make();
  ASSERT_TRUE(e);
  const auto prompt = enc("The three primary colors are red, yellow and");
  const int32_t L = static_cast<int32_t>(prompt.size());
  GenerateRequest r = greedy(prompt, 5);
  r.params.return_logprob = true;
  r.params.logprob_start_len = 0;
  r.params.top_logprobs_num = 4;
  r.params.token_ids_logprob = {prompt[1], 42};
  GenerateOutput out = run(*e, r);
  ASSERT_EQ(out.finish_reason.kind, FinishReason::kLength);
  // input_token_logprobs covers [logprob_start_len, prompt_tokens); the first is null.
  ASSERT_EQ(static_cast<int32_t>(out.input_logprobs.size()), L);
  EXPECT_TRUE(std::isnan(out.input_logprobs[0].token.logprob));
  EXPECT_TRUE(out.input_logprobs[0].top.empty());
  ASSERT_EQ(static_cast<int>(out.output_logprobs.size()), out.completion_tokens);

  // Values: the log-softmax of a direct forward over the prompt + output.
  std::vector<int32_t> seq = prompt;
  seq.insert(seq.end(), out.output_ids.begin(), out.output_ids.end() - 1);
  std::vector<int32_t> slots(seq.size());
  std::iota(slots.begin(), slots.end(), 0);
  backend::ForwardBatch b;
  b.add_sequence(seq.data(), static_cast<int32_t>(seq.size()), 0, slots.data(), false);
  for (int32_t i = 0; i < static_cast<int32_t>(seq.size()); ++i) b.logit_rows.push_back(i);
  backend::Logits lg;
  ASSERT_TRUE(backend_->forward(b, &lg).is_ok());
  const int32_t V = lg.n_vocab;
  std::vector<float> ls(V);
  for (int32_t p = 0; p < static_cast<int32_t>(seq.size()); ++p) {
    log_softmax(std::span<const float>(lg.row(p), V), ls);
    const PositionLogprobs& e_lp = p + 1 < L ? out.input_logprobs[p + 1]
                                             : out.output_logprobs[p + 1 - L];
    const int32_t want_tok = p + 1 < L ? prompt[p + 1] : out.output_ids[p + 1 - L];
    EXPECT_EQ(e_lp.token.token, want_tok);
    EXPECT_NEAR(e_lp.token.logprob, ls[want_tok], 1e-4) << "position " << p;
    ASSERT_EQ(e_lp.top.size(), 4u);
    for (size_t k = 0; k + 1 < e_lp.top.size(); ++k)
      EXPECT_GE(e_lp.top[k].logprob, e_lp.top[k + 1].logprob);
    EXPECT_NEAR(e_lp.top[0].logprob, ls[Sampler::argmax(std::span<const float>(lg.row(p), V))],
                1e-4);
    ASSERT_EQ(e_lp.by_id.size(), 2u);
    EXPECT_EQ(e_lp.by_id[0].token, prompt[1]);
    EXPECT_EQ(e_lp.by_id[1].token, 42);
    EXPECT_NEAR(e_lp.by_id[1].logprob, ls[42], 1e-4);
  }
  // Greedy: the chosen token is the best of the top list.
  for (size_t i = 0; i < out.output_logprobs.size(); ++i)
    EXPECT_EQ(out.output_logprobs[i].top[0].token, out.output_ids[i]);

  // The cache rule: positions from logprob_start_len on are recomputed.
  GenerateRequest again = greedy(prompt, 2);
  again.params.return_logprob = true;
  again.params.logprob_start_len = 3;
  GenerateOutput o2 = run(*e, again);
  EXPECT_EQ(o2.cached_tokens, 3);
  ASSERT_EQ(static_cast<int32_t>(o2.input_logprobs.size()), L - 3);
  EXPECT_TRUE(std::isnan(o2.input_logprobs[0].token.logprob));
  for (int32_t i = 1; i < L - 3; ++i)
    EXPECT_EQ(o2.input_logprobs[i].token.logprob, out.input_logprobs[i + 3].token.logprob);
  // Without logprobs only the last prompt token is recomputed.
  EXPECT_EQ(run(*e, greedy(prompt, 1)).cached_tokens, L - 1);
  // Output logprobs only (logprob_start_len -1), and a prefill-only request's input logprobs.
  GenerateRequest outonly = greedy(prompt, 3);
  outonly.params.return_logprob = true;
  GenerateOutput o3 = run(*e, outonly);
  EXPECT_TRUE(o3.input_logprobs.empty());
  EXPECT_EQ(o3.output_logprobs.size(), 3u);
  GenerateRequest pre = greedy(prompt, 0);
  pre.params.return_logprob = true;
  pre.params.logprob_start_len = L - 2;
  GenerateOutput o4 = run(*e, pre);
  EXPECT_EQ(o4.completion_tokens, 0);
  ASSERT_EQ(o4.input_logprobs.size(), 2u);
  EXPECT_EQ(o4.input_logprobs[1].token.logprob, out.input_logprobs[L - 1].token.logprob);
  // logprob_start_len must lie inside the prompt.
  GenerateRequest bad = greedy(prompt, 2);
  bad.params.return_logprob = true;
  bad.params.logprob_start_len = L;
  EXPECT_FALSE(e->submit(bad).is_ok());
  expect_no_leaks(*e);
}

// ---------------------------------------------------------------- n > 1, text, abort by rid

TEST_F(EngineTest, ParallelSamplesShareOnePrefill) {
  auto e = make();
  ASSERT_TRUE(e);
  const auto prompt = enc("Once upon a time, in a small village, there lived a");
  const int32_t L = static_cast<int32_t>(prompt.size());
  GenerateRequest r = greedy(prompt, 6, "par");
  r.params.n = 3;
  std::vector<GenerateRequest> batch;
  batch.push_back(r);
  const auto prompt2 = enc("In a galaxy far, far away, a young pilot");
  const int32_t L2 = static_cast<int32_t>(prompt2.size());
  GenerateRequest sampled = greedy(prompt2, 6, "smp");
  sampled.params.n = 2;
  sampled.params.temperature = 1.0f;
  batch.push_back(sampled);
  auto hs = e->submit_batch(std::move(batch));
  ASSERT_TRUE(hs.is_ok()) << hs.status().to_string();
  ASSERT_EQ(hs->size(), 5u);
  EXPECT_EQ((*hs)[0]->rid(), "par-0");
  EXPECT_EQ((*hs)[2]->rid(), "par-2");
  EXPECT_EQ((*hs)[4]->rid(), "smp-1");
  const auto ref = reference(prompt, 6);
  int computed_prompts = 0;
  for (size_t i = 0; i < hs->size(); ++i) {
    auto out = (*hs)[i]->wait();
    ASSERT_TRUE(out.is_ok());
    EXPECT_EQ(out->completion_tokens, 6);
    if (i < 3) {
      EXPECT_EQ(out->output_ids, ref) << i;
    }
    if (out->cached_tokens == 0) {
      ++computed_prompts;
    } else {
      EXPECT_EQ(out->cached_tokens, (i < 3 ? L : L2) - 1);
    }
  }
  // Only the first sample of each request computed its prompt; the others reused it.
  EXPECT_EQ(computed_prompts, 2);
  expect_no_leaks(*e);
}

TEST_F(EngineTest, TextInputIsTokenizedWithTheModelRules) {
  auto e = make();
  ASSERT_TRUE(e);
  const std::string text = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n";
  GenerateRequest r = greedy({}, 4);
  r.text = text;
  GenerateOutput out = run(*e, r);
  const auto ids = model_->tok().encode(text, true, true);
  EXPECT_EQ(out.prompt_tokens, static_cast<int>(ids.size()));
  EXPECT_EQ(out.output_ids, reference(ids, 4));
  GenerateRequest empty = greedy({}, 4);
  empty.text = "";
  if (!model_->tok().add_bos()) {
    EXPECT_FALSE(e->submit(empty).is_ok());
  }
}

TEST_F(EngineTest, AbortByRid) {
  auto e = make();
  ASSERT_TRUE(e);
  GenerateRequest r = greedy(enc("My favourite book is"), 300, "victim");
  auto h = e->submit(r);
  ASSERT_TRUE(h.is_ok());
  GenerateRequest g = greedy(enc("The quick brown fox"), 300, "grp");
  g.params.n = 2;
  std::vector<GenerateRequest> gv;
  gv.push_back(g);
  auto gh = e->submit_batch(std::move(gv));
  ASSERT_TRUE(gh.is_ok());
  RequestEvent ev;
  ASSERT_TRUE((*h)->next(&ev));
  EXPECT_EQ(e->abort("victim"), 1);
  EXPECT_EQ(e->abort("grp"), 2);
  EXPECT_EQ(e->abort("nobody"), 0);
  auto out = (*h)->wait();
  ASSERT_TRUE(out.is_ok());
  EXPECT_EQ(out->finish_reason.kind, FinishReason::kAbort);
  for (auto& x : *gh) EXPECT_EQ(x->wait()->finish_reason.kind, FinishReason::kAbort);
  EXPECT_EQ(e->abort("victim"), 0);  // finished requests leave the registry
  expect_no_leaks(*e);
}

// ---------------------------------------------------------------- schedule policies

namespace {
// Runs a blocker, then submits {B (no shared prefix), C (shares the cached prefix)} together
// with one running slot, and returns true if C was admitted before B.
}  // namespace

class PolicyTest : public EngineTest {
 protected:
  bool c_before_b(SchedulePolicy policy, int32_t max_wait_steps, int32_t b_max_new = 4,
                  int32_t c_max_new = 4) {
    EngineOptions o;
    o.max_running_requests = 1;
    o.schedule_policy = policy;
    o.max_wait_steps = max_wait_steps;
    auto e = make(o);
    EXPECT_TRUE(e);
    const auto shared = enc("You are a helpful assistant. Answer briefly and politely. Question:");
    run(*e, greedy(shared, 0));  // cache the shared prefix
    auto blocker = e->submit(greedy(enc("The quick brown fox"), 12, "blocker"));
    EXPECT_TRUE(blocker.is_ok());
    RequestEvent ev;
    EXPECT_TRUE((*blocker)->next(&ev));  // the blocker is running
    auto c = shared;
    for (int32_t t : enc(" what colour is the sky?")) c.push_back(t);
    std::vector<GenerateRequest> v;
    v.push_back(greedy(enc("Water boils at a temperature of"), b_max_new, "B"));
    v.push_back(greedy(c, c_max_new, "C"));
    auto hs = e->submit_batch(std::move(v));
    EXPECT_TRUE(hs.is_ok());
    auto ob = (*hs)[0]->wait();
    auto oc = (*hs)[1]->wait();
    EXPECT_TRUE((*blocker)->wait().is_ok());
    EXPECT_EQ(oc->cached_tokens, static_cast<int>(shared.size()));
    return oc->timings.queued_s < ob->timings.queued_s;
  }
};

TEST_F(PolicyTest, FcfsAdmitsInArrivalOrder) { EXPECT_FALSE(c_before_b(SchedulePolicy::kFcfs, 256)); }
TEST_F(PolicyTest, LpmAdmitsTheLongestCachedPrefixFirst) {
  EXPECT_TRUE(c_before_b(SchedulePolicy::kLpm, 256));
}
TEST_F(PolicyTest, DfsWeightFollowsTheCachedSubtree) {
  EXPECT_TRUE(c_before_b(SchedulePolicy::kDfsWeight, 256));
}
TEST_F(PolicyTest, LpmAgingGuardAdmitsOldRequestsInArrivalOrder) {
  // Both have waited longer than max_wait_steps when the blocker ends: arrival order wins.
  EXPECT_FALSE(c_before_b(SchedulePolicy::kLpm, 2));
}
TEST_F(PolicyTest, LofAdmitsTheLongestOutputFirst) {
  EXPECT_TRUE(c_before_b(SchedulePolicy::kLof, 256, 3, 8));
  EXPECT_FALSE(c_before_b(SchedulePolicy::kLof, 256, 8, 3));
}

TEST_F(EngineTest, EveryPolicyProducesTheSameOutputs) {
  const auto ps = prompts();
  std::vector<std::vector<int32_t>> refs;
  for (const auto& p : ps) refs.push_back(reference(p, 6));
  for (SchedulePolicy policy : {SchedulePolicy::kFcfs, SchedulePolicy::kLpm,
                                SchedulePolicy::kDfsWeight, SchedulePolicy::kLof,
                                SchedulePolicy::kRandom}) {
    EngineOptions o;
    o.schedule_policy = policy;
    o.max_running_requests = 3;
    o.max_prefill_tokens = 16;
    auto e = make(o);
    ASSERT_TRUE(e);
    std::vector<GenerateRequest> v;
    for (size_t i = 0; i < ps.size(); ++i) v.push_back(greedy(ps[i], 6, "p" + std::to_string(i)));
    auto hs = e->submit_batch(std::move(v));
    ASSERT_TRUE(hs.is_ok());
    for (size_t i = 0; i < ps.size(); ++i)
      EXPECT_EQ((*hs)[i]->wait()->output_ids, refs[i]) << schedule_policy_name(policy) << " " << i;
    expect_no_leaks(*e);
  }
  EXPECT_EQ(*parse_schedule_policy("dfs-weight"), SchedulePolicy::kDfsWeight);
  EXPECT_FALSE(parse_schedule_policy("sjf").is_ok());
}

// ---------------------------------------------------------------- concurrency and determinism

TEST_F(EngineTest, ThreadsSubmittingAndAbortingAtRandom) {
  EngineOptions o;
  o.max_total_tokens = 400;
  o.schedule_conservativeness = 0.3;
  auto e = make(o);
  ASSERT_TRUE(e);
  const auto ps = prompts();
  std::vector<std::vector<int32_t>> refs;
  for (const auto& p : ps) refs.push_back(reference(p, 8));
  std::atomic<int> mismatches{0}, aborted{0}, finished{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      Rng rng(1000 + t);
      for (int k = 0; k < 5; ++k) {
        const size_t i = rng.next_u64() % ps.size();
        auto h = e->submit(greedy(ps[i], 8, "t" + std::to_string(t) + "-" + std::to_string(k)));
        if (!h.is_ok()) {
          ++mismatches;
          continue;
        }
        const int abort_after = static_cast<int>(rng.next_u64() % 12);  // >= 9: never
        std::vector<int32_t> got;
        RequestEvent ev;
        int n_events = 0;
        bool was_aborted = false;
        while ((*h)->next(&ev)) {
          if (ev.kind == RequestEvent::kToken) got.push_back(ev.token);
          if (ev.kind == RequestEvent::kFinish) was_aborted = ev.finish.kind == FinishReason::kAbort;
          if (++n_events == abort_after) (*h)->abort();
        }
        if (was_aborted) {
          ++aborted;
          // What was streamed before the abort is still a prefix of the right answer.
          if (!std::equal(got.begin(), got.end(), refs[i].begin())) ++mismatches;
        } else {
          ++finished;
          if (got != refs[i]) ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(finished + aborted, 30);
  std::printf("random aborts: %d finished, %d aborted\n", finished.load(), aborted.load());
  expect_no_leaks(*e);
}

TEST_F(EngineTest, SeededOutputIsTheSameWithCacheOnAndOffAndInABatch) {
  const auto prompt = enc("To make a cup of tea, first");
  GenerateRequest r = greedy(prompt, 10, "seeded");
  r.params.temperature = 1.1f;
  r.params.top_k = 40;
  r.params.min_p = 0.02f;
  r.params.frequency_penalty = 0.3f;
  r.params.sampling_seed = 99;
  std::vector<int32_t> first;
  for (bool disable : {false, true}) {
    EngineOptions o;
    o.disable_radix_cache = disable;
    auto e = make(o);
    ASSERT_TRUE(e);
    GenerateOutput alone = run(*e, r);
    GenerateOutput cached = run(*e, r);  // the prompt now comes from the cache (when on)
    std::vector<GenerateRequest> v;
    for (const auto& p : prompts()) v.push_back(greedy(p, 10));
    v.push_back(r);
    auto hs = e->submit_batch(std::move(v));
    ASSERT_TRUE(hs.is_ok());
    GenerateOutput in_batch = *hs->back()->wait();
    if (first.empty()) first = alone.output_ids;
    EXPECT_EQ(alone.output_ids, first);
    EXPECT_EQ(cached.output_ids, first);
    EXPECT_EQ(in_batch.output_ids, first);
    EXPECT_EQ(cached.cached_tokens, disable ? 0 : static_cast<int>(prompt.size()) - 1);
    for (size_t i = 0; i + 1 < hs->size(); ++i) ASSERT_TRUE((*hs)[i]->wait().is_ok());
  }
}

TEST_F(EngineTest, ListenerAndTryNext) {
  auto e = make();
  ASSERT_TRUE(e);
  auto h = e->submit(greedy(enc("The capital of France is"), 5));
  ASSERT_TRUE(h.is_ok());
  std::atomic<int> calls{0};
  (*h)->set_listener([&] { ++calls; });
  int tokens = 0;
  bool done = false;
  RequestEvent ev;
  while (!done) {
    if ((*h)->try_next(&ev)) {
      if (ev.kind == RequestEvent::kToken) ++tokens;
      done = ev.kind == RequestEvent::kFinish;
    } else {
      std::this_thread::yield();
    }
  }
  EXPECT_EQ(tokens, 5);
  EXPECT_TRUE((*h)->finished());
  EXPECT_FALSE((*h)->try_next(&ev));
  EXPECT_GE(calls.load(), 1);
}


// ---------------------------------------------------------------- constrained decoding

TEST_F(EngineTest, RegexAndJsonSchemaConstrainTheOutput) {
  auto e = make();
  ASSERT_TRUE(e);
  const auto prompt = enc("<|im_start|>user\nGive me a phone number.<|im_end|>\n<|im_start|>assistant\n");
  GenerateRequest r = greedy(prompt, 24);
  r.params.ignore_eos = false;
  r.params.temperature = 1.0f;
  r.params.sampling_seed = 7;
  r.params.regex = std::string(R"(\(\d{3}\) \d{3}-\d{4})");
  GenerateOutput out = run(*e, r);
  EXPECT_EQ(out.finish_reason.kind, FinishReason::kStop) << out.finish_reason.to_json().dump();
  ASSERT_EQ(out.text.size(), 14u) << out.text;
  EXPECT_EQ(out.text[0], '(');
  EXPECT_EQ(out.text[5], ' ');
  EXPECT_EQ(out.text[9], '-');

  GenerateRequest j = greedy(prompt, 64);
  j.params.ignore_eos = false;
  j.params.json_schema = std::string(
      R"({"type":"object","properties":{"name":{"type":"string","maxLength":12},)"
      R"("age":{"type":"integer","minimum":0,"maximum":120}},"required":["name","age"],)"
      R"("additionalProperties":false})");
  GenerateOutput jo = run(*e, j);
  EXPECT_EQ(jo.finish_reason.kind, FinishReason::kStop) << jo.text;
  auto parsed = nlohmann::json::parse(jo.text, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << jo.text;
  EXPECT_TRUE(parsed["name"].is_string());
  EXPECT_TRUE(parsed["age"].is_number_integer());

  // Compile errors are the user's, named by field.
  GenerateRequest bad = greedy(prompt, 4);
  bad.params.regex = std::string("(unclosed");
  auto h = e->submit(bad);
  ASSERT_FALSE(h.is_ok());
  EXPECT_EQ(h.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(h.status().message().find("regex"), std::string::npos) << h.status().to_string();
  expect_no_leaks(*e);
}


TEST_F(EngineTest, JumpForwardKeepsOutputsValidWithFewerSteps) {
  const auto prompt = enc("<|im_start|>user\nDescribe a city as JSON.<|im_end|>\n<|im_start|>assistant\n");
  const std::string schema =
      R"({"type":"object","properties":{"city_name":{"type":"string","maxLength":16},)"
      R"("country_name":{"type":"string","maxLength":16},"population_in_millions":{"type":"integer",)"
      R"("minimum":0,"maximum":100},"is_capital_city":{"type":"boolean"}},)"
      R"("required":["city_name","country_name","population_in_millions","is_capital_city"],)"
      R"("additionalProperties":false})";
  int64_t steps[2], jumped[2];
  for (int off = 0; off < 2; ++off) {
    EngineOptions o;
    o.disable_jump_forward = off == 1;
    auto e = make(o);
    ASSERT_TRUE(e);
    GenerateRequest r = greedy(prompt, 120);
    r.params.ignore_eos = false;
    r.params.json_schema = schema;
    GenerateOutput out = run(*e, r);
    EXPECT_EQ(out.finish_reason.kind, FinishReason::kStop) << out.text;
    auto j = nlohmann::json::parse(out.text, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << out.text;
    EXPECT_TRUE(j["city_name"].is_string());
    EXPECT_TRUE(j["is_capital_city"].is_boolean());
    // The ids decode to the text, and completion_tokens counts the forced tokens too.
    EXPECT_EQ(*model_->tok().decode(out.output_ids, true), out.text);
    // With jump-forward the forced parts are re-tokenized with the sampled token before them,
    // so here the whole output is exactly the tokenizer's encoding of its text (no odd splits at
    // the jump boundaries; the first sampled `{` became `{"`). Without it the model spells the
    // forced text itself, token by token, and does not (`{` then `"`).
    // (The ids end with the matched end-of-turn token, which is not part of the text.)
    const auto canonical = model_->tok().encode(out.text, false, false);
    std::vector<int32_t> ids = out.output_ids;
    ASSERT_TRUE(std::holds_alternative<int32_t>(out.finish_reason.matched));
    ASSERT_EQ(ids.back(), std::get<int32_t>(out.finish_reason.matched));
    ids.pop_back();
    if (off == 0) {
      EXPECT_EQ(canonical, ids) << out.text;
    } else {
      EXPECT_NE(canonical, ids) << out.text;
    }
    EXPECT_EQ(out.completion_tokens, static_cast<int>(out.output_ids.size()));
    steps[off] = e->stats().steps;
    jumped[off] = e->stats().jump_forward_tokens;
  }
  EXPECT_GT(jumped[0], 5);
  EXPECT_EQ(jumped[1], 0);
  EXPECT_LT(steps[0], steps[1]);
  std::printf("jump-forward: %lld steps (%lld tokens jumped) vs %lld steps without\n",
              static_cast<long long>(steps[0]), static_cast<long long>(jumped[0]),
              static_cast<long long>(steps[1]));
}


TEST_F(EngineTest, ConcurrentRequestsWithASharedPrefixComputeItOnce) {
  EngineOptions o;
  o.chunked_prefill_size = 32;  // the shared prefix takes several steps to compute
  auto e = make(o);
  ASSERT_TRUE(e);
  std::vector<int32_t> prefix;
  while (prefix.size() < 80)
    for (int32_t t : enc(" You are a helpful assistant who answers in short sentences.")) prefix.push_back(t);
  prefix.resize(80);
  std::vector<GenerateRequest> v;
  for (int i = 0; i < 4; ++i) {
    auto p = prefix;
    for (int32_t t : enc(" Question " + std::to_string(i) + ": what is " + std::to_string(i) + "+1?"))
      p.push_back(t);
    v.push_back(greedy(p, 2, "s" + std::to_string(i)));
  }
  auto hs = e->submit_batch(std::move(v));
  ASSERT_TRUE(hs.is_ok());
  int total_cached = 0;
  for (auto& h : *hs) total_cached += h->wait()->cached_tokens;
  // All but the first reuse the whole shared prefix, though all four arrived together.
  EXPECT_GE(total_cached, 3 * 80);
  expect_no_leaks(*e);
}


TEST_F(EngineTest, UnknownOrMissingDeviceIsAClearErrorNotACrash) {
  // create() fails after loading the model; the half-built engine must tear down cleanly.
  EngineOptions o;
  o.threads = 2;
  o.device = "tpu";
  auto e = Engine::create(kModelPath, o);
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("unknown device"), std::string::npos)
      << e.status().to_string();
  if (!sgl::backend::cuda_compiled()) {
    o.device = "cuda";
    auto c = Engine::create(kModelPath, o);
    ASSERT_FALSE(c.is_ok());
    EXPECT_NE(c.status().message().find("built without CUDA"), std::string::npos)
        << c.status().to_string();
  }
}

TEST_F(EngineTest, TensorParallelismNeedsCuda) {
  // --tp-size: more than one GPU through NCCL; on the CPU backend (or below 1) a clear error
  // from create(), after loading the model, with a clean teardown.
  EngineOptions o;
  o.threads = 2;
  o.tp_size = 2;
  auto cpu = Engine::create(kModelPath, o);
  ASSERT_FALSE(cpu.is_ok());
  EXPECT_NE(cpu.status().message().find("--device cuda"), std::string::npos)
      << cpu.status().to_string();
  EXPECT_NE(cpu.status().message().find("--tp-size 2"), std::string::npos);
  o.tp_size = 0;
  auto zero = Engine::create(kModelPath, o);
  ASSERT_FALSE(zero.is_ok());
  EXPECT_NE(zero.status().message().find("--tp-size"), std::string::npos);
  if (!sgl::backend::cuda_compiled()) {
    o.device = "cuda";
    o.tp_size = 2;
    auto c = Engine::create(kModelPath, o);
    ASSERT_FALSE(c.is_ok());
    EXPECT_NE(c.status().message().find("built without CUDA"), std::string::npos)
        << c.status().to_string();
  }
  o.device = "cpu";
  o.tp_size = 1;  // the default still works
  EXPECT_TRUE(Engine::create(kModelPath, o).is_ok());
}

TEST_F(EngineTest, WeightDtypeOtherThanAutoIsRefusedOnTheCpu) {
  // --dtype picks the GPU weights' type; the CPU backend computes on the checkpoint's own types,
  // so any other value than auto is a clear error there (after loading, with a clean teardown).
  EngineOptions o;
  o.threads = 2;
  for (auto d : {sgl::backend::WeightDtype::kF16, sgl::backend::WeightDtype::kBF16,
                 sgl::backend::WeightDtype::kF32}) {
    o.dtype = d;
    auto e = Engine::create(kModelPath, o);
    ASSERT_FALSE(e.is_ok()) << sgl::backend::weight_dtype_name(d);
    EXPECT_NE(e.status().message().find("--dtype"), std::string::npos) << e.status().to_string();
    EXPECT_NE(e.status().message().find("auto"), std::string::npos) << e.status().to_string();
  }
  o.dtype = sgl::backend::WeightDtype::kAuto;
  EXPECT_TRUE(Engine::create(kModelPath, o).is_ok());
}

TEST_F(EngineTest, DummyLoadFormatChecksItsInputs) {
  // --load-format dummy: a config.json plus a separate tokenizer; random weights exist only on
  // the GPU backend, so on the CPU it is a clear error, as are missing or unknown inputs.
  const std::string cfg = std::string(SGL_SOURCE_DIR) + "/tests/data/configs/qwen2.5-0.5b.json";
  EngineOptions o;
  o.threads = 2;
  o.load_format = "dummy";
  auto no_tok = Engine::create(cfg, o);
  ASSERT_FALSE(no_tok.is_ok());
  EXPECT_NE(no_tok.status().message().find("tokenizer"), std::string::npos)
      << no_tok.status().to_string();
  o.tokenizer_path = kModelPath;  // a GGUF file's tokenizer
  auto cpu = Engine::create(cfg, o);
  ASSERT_FALSE(cpu.is_ok());
  EXPECT_NE(cpu.status().message().find("--device cuda"), std::string::npos)
      << cpu.status().to_string();
  o.load_format = "safetensors-please";
  auto bad = Engine::create(cfg, o);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("load_format"), std::string::npos);
  o.load_format = "auto";
  auto tok_without_dummy = Engine::create(kModelPath, o);
  ASSERT_FALSE(tok_without_dummy.is_ok());
  EXPECT_NE(tok_without_dummy.status().message().find("tokenizer_path"), std::string::npos);
}

TEST(LoadDummyModel, ConfigFromJsonTokenizerFromElsewhere) {
  const std::string cfg = std::string(SGL_SOURCE_DIR) + "/tests/data/configs/llama-3.1-8b.json";
  auto m = models::load_dummy_model(cfg, kModelPath);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_TRUE((*m)->dummy);
  EXPECT_EQ((*m)->weights, nullptr);
  EXPECT_EQ((*m)->config.n_vocab, 128256);
  EXPECT_EQ((*m)->config.n_layer, 32);
  EXPECT_EQ((*m)->tok().vocab_size(), 49152);  // SmolLM2's tokenizer: fewer ids, allowed
  auto missing = models::load_dummy_model(cfg + ".nope", kModelPath);
  EXPECT_FALSE(missing.is_ok());
  EXPECT_FALSE(models::load_dummy_model(std::string(SGL_SOURCE_DIR) + "/README.md", kModelPath)
                   .is_ok());  // not a config
  // A tokenizer with more ids than the config's vocabulary cannot work with it.
  std::ifstream in(cfg);
  nlohmann::json j = nlohmann::json::parse(in);
  j["vocab_size"] = 1000;
  j["bos_token_id"] = 1;
  j["eos_token_id"] = 2;
  const std::string small = ::testing::TempDir() + "/small_vocab_config.json";
  std::ofstream(small) << j.dump();
  auto too_small = models::load_dummy_model(small, kModelPath);
  ASSERT_FALSE(too_small.is_ok());
  EXPECT_NE(too_small.status().message().find("49152"), std::string::npos)
      << too_small.status().to_string();
}

}  // namespace
}  // namespace sgl::runtime
