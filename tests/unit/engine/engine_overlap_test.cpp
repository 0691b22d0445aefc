// The overlap schedule (EngineOptions::disable_overlap_schedule) on the CPU backend, whose
// synchronous launch_sample resolves future token ids on the host: the engine launches step n + 1
// before it processes step n's tokens, exactly as with the CUDA backend. The CPU backend is batch
// invariant, so every request's output must be the same with overlap on and off, whatever the
// two schedules made of the batches: greedy and seeded sampling, EOS, stop strings,
// max_new_tokens, n > 1, prefix-cache hits, aborts while a launch is in flight, retraction with a
// small pool, and requests that force the synchronous path mixed in.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "backend/cpu_backend.h"
#include "models/loader.h"
#include "engine_test_util.h"
#include "sgl/engine.h"

namespace sgl::runtime {
namespace {

using test::expect_no_leaks;
using test::kModelPath;

class OverlapTest : public test::DefaultModelTest {
 protected:
  // overlap: the overlap schedule on the (synchronous) CPU backend; else the plain schedule.
  static std::unique_ptr<Engine> make(bool overlap, EngineOptions o = {}) {
    o.threads = 2;
    if (o.max_total_tokens == 0) o.max_total_tokens = 1024;
    o.disable_overlap_schedule = !overlap;
    o.overlap_sync_backend = true;
    auto e = Engine::create(kModelPath, o);
    EXPECT_TRUE(e.is_ok()) << e.status().to_string();
    if (!e.is_ok()) return nullptr;
    EXPECT_EQ((*e)->overlap_schedule(), overlap);
    return std::move(e).value();
  }

  static GenerateRequest req(const std::vector<int32_t>& prompt, int max_new, std::string rid) {
    return test::greedy_request(prompt, max_new, std::move(rid));
  }

  // Submits every request at once (one submit_batch: the same arrival order in both engines)
  // and waits for all; outputs flattened in handle order.
  static std::vector<GenerateOutput> run_all(Engine& e, std::vector<GenerateRequest> rs) {
    auto hs = e.submit_batch(std::move(rs));
    EXPECT_TRUE(hs.is_ok()) << hs.status().to_string();
    std::vector<GenerateOutput> outs;
    if (!hs.is_ok()) return outs;
    for (auto& h : *hs) {
      auto out = h->wait();
      EXPECT_TRUE(out.is_ok());
      outs.push_back(out.is_ok() ? std::move(out).value() : GenerateOutput{});
    }
    return outs;
  }

  static void expect_same(const std::vector<GenerateOutput>& off,
                          const std::vector<GenerateOutput>& on) {
    ASSERT_EQ(off.size(), on.size());
    for (size_t i = 0; i < off.size(); ++i) {
      EXPECT_EQ(on[i].output_ids, off[i].output_ids) << "request " << i;
      EXPECT_EQ(on[i].text, off[i].text) << "request " << i;
      EXPECT_EQ(on[i].finish_reason.to_json(), off[i].finish_reason.to_json()) << "request " << i;
      EXPECT_EQ(on[i].completion_tokens, off[i].completion_tokens) << "request " << i;
      EXPECT_EQ(on[i].prompt_tokens, off[i].prompt_tokens) << "request " << i;
      ASSERT_EQ(on[i].output_logprobs.size(), off[i].output_logprobs.size()) << "request " << i;
      for (size_t k = 0; k < on[i].output_logprobs.size(); ++k)
        EXPECT_EQ(on[i].output_logprobs[k].token.logprob, off[i].output_logprobs[k].token.logprob);
    }
  }

  // The first six sample prompts.
  static std::vector<std::vector<int32_t>> prompts() {
    std::vector<std::vector<int32_t>> p;
    for (const std::string& t : test::sample_prompts())
      if (p.size() < 6) p.push_back(enc(t));
    return p;
  }

  // Runs `rs` on a fresh engine with overlap off and one with overlap on; expects the same
  // outputs; returns the overlap engine's stats.
  static EngineStats compare(const std::vector<GenerateRequest>& rs, EngineOptions o = {},
                             std::vector<GenerateOutput>* outs = nullptr) {
    auto off = make(false, o);
    auto on = make(true, o);
    EXPECT_TRUE(off && on);
    if (!off || !on) return {};
    const auto a = run_all(*off, rs);
    const auto b = run_all(*on, rs);
    expect_same(a, b);
    if (outs) *outs = b;
    EXPECT_EQ(off->stats().overlapped_steps, 0);
    EngineStats s = on->stats();
    expect_no_leaks(*off);
    expect_no_leaks(*on);
    return s;
  }
};

TEST_F(OverlapTest, FutureTokensResolveToThePreviousLaunchsSamples) {
  // The Backend contract itself: -(i + 1) in a launch stands for row i's token of the previous
  // launch; the result equals forward_sample with the real ids.
  backend::CpuBackendOptions bo;
  bo.n_threads = 2;
  bo.kv_capacity = 128;
  auto b = backend::CpuBackend::create(*model_, bo);
  ASSERT_TRUE(b.is_ok());
  backend::CpuBackend& be = **b;
  const auto p0 = enc("The capital of France is");
  const auto p1 = enc("def fibonacci(n):");
  std::vector<int32_t> s0(40), s1(40);
  std::iota(s0.begin(), s0.end(), 0);
  std::iota(s1.begin(), s1.end(), 64);
  std::vector<backend::SampleRow> rows(2);
  rows[1].temperature = 0.7f;
  rows[1].u = 0.3;
  backend::ForwardBatch pre;
  pre.add_sequence(p0.data(), static_cast<int32_t>(p0.size()), 0, s0.data(), true);
  pre.add_sequence(p1.data(), static_cast<int32_t>(p1.size()), 0, s1.data(), true);
  auto t1 = be.launch_sample(pre, rows);
  ASSERT_TRUE(t1.is_ok()) << t1.status().to_string();
  // Row 1's token first, then row 0's: the references need not follow the row order.
  backend::ForwardBatch dec;
  const int32_t f1 = -2, f0 = -1;
  dec.add_sequence(&f1, 1, static_cast<int32_t>(p1.size()), s1.data(), true);
  dec.add_sequence(&f0, 1, static_cast<int32_t>(p0.size()), s0.data(), true);
  std::swap(rows[0], rows[1]);
  auto t2 = be.launch_sample(dec, rows);  // launched before the first is collected
  ASSERT_TRUE(t2.is_ok()) << t2.status().to_string();
  std::vector<int32_t> first, second;
  EXPECT_FALSE(be.collect(*t2, &second).is_ok());  // out of order
  ASSERT_TRUE(be.collect(*t1, &first).is_ok());
  ASSERT_TRUE(be.collect(*t2, &second).is_ok());
  ASSERT_EQ(first.size(), 2u);
  ASSERT_EQ(second.size(), 2u);
  // The same decode step with the real ids (it rewrites the same slots with the same K/V).
  backend::ForwardBatch ref;
  ref.add_sequence(&first[1], 1, static_cast<int32_t>(p1.size()), s1.data(), true);
  ref.add_sequence(&first[0], 1, static_cast<int32_t>(p0.size()), s0.data(), true);
  std::vector<int32_t> expect;
  ASSERT_TRUE(be.forward_sample(ref, rows, &expect).is_ok());
  EXPECT_EQ(second, expect);
  // A reference past the previous launch's rows is an error.
  const int32_t bad = -3;
  backend::ForwardBatch oob;
  oob.add_sequence(&bad, 1, static_cast<int32_t>(p0.size()) + 1, s0.data(), true);
  rows.resize(1);
  EXPECT_FALSE(be.launch_sample(oob, rows).is_ok());
}

TEST_F(OverlapTest, GreedyBatchIsTheSameAndOverlaps) {
  std::vector<GenerateRequest> rs;
  const auto ps = prompts();
  for (size_t i = 0; i < ps.size(); ++i)
    rs.push_back(req(ps[i], 6 + 5 * static_cast<int>(i), "g" + std::to_string(i)));
  rs.push_back(req(ps[0], 1, "one"));  // a single token: its only sample is the prefill's
  rs.push_back(req(ps[1], 0, "prefill-only"));
  const EngineStats s = compare(rs);
  EXPECT_GT(s.overlapped_steps, 10);
  EXPECT_GT(s.device_sampled_tokens, 0);
}

TEST_F(OverlapTest, SeededSamplingEosAndStopStrings) {
  std::vector<GenerateRequest> rs;
  const auto ps = prompts();
  for (size_t i = 0; i < ps.size(); ++i) {
    GenerateRequest r = req(ps[i], 40, "s" + std::to_string(i));
    r.params.temperature = 0.8f;
    r.params.top_p = 0.9f;
    r.params.top_k = 40;
    r.params.min_p = 0.02f;
    r.params.sampling_seed = 100 + i;
    r.params.ignore_eos = false;  // EOS ends some early, a step before the scheduler sees it
    if (i % 2 == 1) r.params.stop = {".", "\n"};
    rs.push_back(std::move(r));
  }
  std::vector<GenerateOutput> outs;
  const EngineStats s = compare(rs, {}, &outs);
  EXPECT_GT(s.overlapped_steps, 0);
  int stopped = 0, by_length = 0;
  for (const auto& o : outs) (o.finish_reason.kind == FinishReason::kStop ? stopped : by_length)++;
  EXPECT_GT(stopped, 0);  // the point of the test: stops seen a step late
  std::printf("seeded: %d stopped (EOS or stop string), %d by length\n", stopped, by_length);
}

TEST_F(OverlapTest, ParallelSamplesAndPrefixCacheHits) {
  const auto ps = prompts();
  std::vector<int32_t> shared = enc(
      "You are a helpful assistant. Answer briefly and precisely, in one sentence. Question: ");
  std::vector<GenerateRequest> rs;
  for (int i = 0; i < 4; ++i) {
    std::vector<int32_t> p = shared;
    p.insert(p.end(), ps[i].begin(), ps[i].end());
    rs.push_back(req(p, 12, "c" + std::to_string(i)));
  }
  GenerateRequest n3 = req(ps[2], 10, "n");
  n3.params.n = 3;
  n3.params.temperature = 1.0f;
  n3.params.sampling_seed = 7;
  rs.push_back(n3);
  auto off = make(false);
  auto on = make(true);
  ASSERT_TRUE(off && on);
  // Twice on each engine: the second round is served from the cache.
  for (int round = 0; round < 2; ++round) {
    const auto a = run_all(*off, rs);
    const auto b = run_all(*on, rs);
    expect_same(a, b);
    if (round == 1) {
      for (size_t i = 0; i < b.size(); ++i) EXPECT_GT(b[i].cached_tokens, 0) << "request " << i;
    }
  }
  EXPECT_GT(on->stats().overlapped_steps, 0);
  EXPECT_GT(on->stats().cache_hit_tokens, 0);
  expect_no_leaks(*off);
  expect_no_leaks(*on);
}

TEST_F(OverlapTest, RetractionWithASmallPool) {
  EngineOptions o;
  o.max_total_tokens = 100;
  o.chunked_prefill_size = 64;
  o.schedule_conservativeness = 0.0;
  std::vector<GenerateRequest> rs;
  for (int i = 0; i < 6; ++i) {
    auto p = enc("Story " + std::to_string(i) + ": once upon a time a traveller walked across " +
                 "the mountains and met many strangers along the way");
    p.resize(std::min<size_t>(p.size(), 20));
    rs.push_back(req(p, 24, "ret" + std::to_string(i)));
  }
  const EngineStats s = compare(rs, o);
  EXPECT_GT(s.retractions, 0);
  EXPECT_GT(s.overlapped_steps, 0);
  EXPECT_EQ(s.aborted_for_memory, 0);
}

TEST_F(OverlapTest, HostPathRequestsMixedIn) {
  // Logprobs, penalties, logit bias and a grammar need the previous step settled on the host:
  // those steps run synchronously, the rest overlaps; every output is still the same.
  const auto ps = prompts();
  std::vector<GenerateRequest> rs;
  for (size_t i = 0; i < 3; ++i) rs.push_back(req(ps[i], 30, "plain" + std::to_string(i)));
  GenerateRequest lp = req(ps[3], 6, "logprobs");
  lp.params.return_logprob = true;
  lp.params.top_logprobs_num = 2;
  lp.params.logprob_start_len = 1;
  rs.push_back(lp);
  GenerateRequest pen = req(ps[4], 6, "penalty");
  pen.params.repetition_penalty = 1.3f;
  pen.params.logit_bias = {{13, 2.0f}};
  rs.push_back(pen);
  GenerateRequest re = req(ps[5], 8, "regex");
  re.params.regex = "[0-9]{1,3} degrees";
  rs.push_back(re);
  const EngineStats s = compare(rs);
  // The plain requests outlive the others: their last steps overlap.
  EXPECT_GT(s.overlapped_steps, 0);
}

TEST_F(OverlapTest, AbortWhileALaunchIsInFlight) {
  auto e = make(true);
  ASSERT_TRUE(e);
  const auto ps = prompts();
  GenerateRequest keep = req(ps[0], 24, "keep");
  auto hk = e->submit(keep);
  auto ha = e->submit(req(ps[1], 400, "abort"));
  ASSERT_TRUE(hk.is_ok() && ha.is_ok());
  RequestEvent ev;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*ha)->next(&ev));
  (*ha)->abort();
  int tokens = 3;
  bool aborted = false;
  while ((*ha)->next(&ev)) {
    if (ev.kind == RequestEvent::kFinish) aborted = ev.finish.kind == FinishReason::kAbort;
    else ++tokens;
  }
  EXPECT_TRUE(aborted);
  EXPECT_LT(tokens, 400);
  auto out = (*hk)->wait();
  ASSERT_TRUE(out.is_ok());
  // The request left running is unaffected: the same as alone on a plain engine.
  auto plain = make(false);
  ASSERT_TRUE(plain);
  auto ref = run_all(*plain, {keep});
  ASSERT_EQ(ref.size(), 1u);
  EXPECT_EQ(out->output_ids, ref[0].output_ids);
  EXPECT_GT(e->stats().overlapped_steps, 0);
  expect_no_leaks(*e);
}

TEST_F(OverlapTest, OffByDefaultOnTheCpuBackend) {
  // The CPU backend's launches are synchronous: the overlap schedule would only add latency.
  EngineOptions o;
  o.threads = 2;
  o.max_total_tokens = 256;
  auto e = Engine::create(kModelPath, o);
  ASSERT_TRUE(e.is_ok());
  EXPECT_FALSE((*e)->overlap_schedule());
}

}  // namespace
}  // namespace sgl::runtime
