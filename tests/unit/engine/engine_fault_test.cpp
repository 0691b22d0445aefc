// Failures of the overlap schedule's launch / collect pair (Backend::launch_sample, collect), on
// the CPU backend behind a fault-injecting wrapper. What must hold whatever step fails:
// - every request in flight finishes, with an abort that names the failure (never a hang, never
//   a silent finish by length with fewer tokens);
// - the tokens it had already received are the ones a fault-free engine produces;
// - the engine keeps serving: later requests give exactly a fresh engine's greedy output;
// - K/V that a failed launch never computed is never served from the radix cache: a repeat of a
//   prompt whose prefill failed gets no cached tokens and a fresh engine's output.
// The CPU backend is batch invariant, so a fault-free engine's outputs are the reference
// whatever batches the two engines formed.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "engine_test_util.h"
#include "models/loader.h"
#include "sgl/engine.h"

namespace sgl::runtime {
namespace {

using test::expect_no_leaks;
using test::kModelPath;

// What the wrapper breaks, by launch number (1 = the engine's first launch_sample).
struct Faults {
  // A device fault: this launch is accepted but never runs (its K/V is never written) and its
  // collect fails; so do the collects of launches enqueued before that one is collected (they
  // may read its tokens), as after a sticky CUDA error.
  int fault_launch = 0;
  // With fault_launch: launches enqueued while the fault is uncollected fail at once instead.
  bool sticky_launch_error = false;
  // This launch returns an error and runs nothing.
  int fail_launch = 0;
};

class FaultyBackend : public backend::Backend {
 public:
  FaultyBackend(std::unique_ptr<backend::Backend> inner, Faults f)
      : inner_(std::move(inner)), f_(f) {}

  std::string_view name() const override { return inner_->name(); }
  const model::ModelConfig& config() const override { return inner_->config(); }
  int64_t kv_capacity() const override { return inner_->kv_capacity(); }
  Status forward(const backend::ForwardBatch& batch, backend::Logits* logits) override {
    return inner_->forward(batch, logits);
  }
  bool supports_sampling() const override { return inner_->supports_sampling(); }
  Status forward_sample(const backend::ForwardBatch& batch,
                        std::span<const backend::SampleRow> rows,
                        std::vector<int32_t>* tokens) override {
    return inner_->forward_sample(batch, rows, tokens);
  }

  Result<uint64_t> launch_sample(const backend::ForwardBatch& batch,
                                 std::span<const backend::SampleRow> rows) override {
    const int n = ++launches_;
    if (n == f_.fail_launch) return internal_error("injected launch failure");
    const bool faulted = n == f_.fault_launch || poisoned_ > 0;
    if (faulted && n != f_.fault_launch && f_.sticky_launch_error)
      return internal_error("injected launch failure after a device fault");
    const uint64_t ticket = next_ticket_++;
    if (faulted) {
      ++poisoned_;
      tickets_[ticket] = 0;  // nothing runs
      return ticket;
    }
    SGL_ASSIGN_OR_RETURN(const uint64_t inner, inner_->launch_sample(batch, rows));
    tickets_[ticket] = inner;
    return ticket;
  }

  Status collect(uint64_t ticket, std::vector<int32_t>* tokens) override {
    auto it = tickets_.find(ticket);
    if (it == tickets_.end()) return invalid_argument("collect: unknown ticket");
    const uint64_t inner = it->second;
    tickets_.erase(it);
    ++collects_;
    if (inner == 0) {
      --poisoned_;
      ++failed_collects_;
      return internal_error("injected device fault");
    }
    return inner_->collect(inner, tokens);
  }

  int launches() const { return launches_; }
  int collects() const { return collects_; }
  int failed_collects() const { return failed_collects_; }

 private:
  std::unique_ptr<backend::Backend> inner_;
  Faults f_;
  int launches_ = 0;
  int collects_ = 0;
  int failed_collects_ = 0;
  int poisoned_ = 0;  // faulted launches not collected yet
  uint64_t next_ticket_ = 1;
  std::unordered_map<uint64_t, uint64_t> tickets_;  // ours -> the inner backend's (0: faulted)
};

class FaultTest : public test::DefaultModelTest {
 protected:
  // An engine with the overlap schedule on the (synchronous) CPU backend; with `faults`, behind
  // the wrapper (*wrapper points at it, owned by the engine).
  static std::unique_ptr<Engine> make(const Faults* faults, EngineOptions o = {},
                                      FaultyBackend** wrapper = nullptr) {
    o.threads = 2;
    if (o.max_total_tokens == 0) o.max_total_tokens = 1024;
    o.disable_overlap_schedule = false;
    o.overlap_sync_backend = true;
    if (faults) {
      const Faults f = *faults;
      o.wrap_backend = [f, wrapper](std::unique_ptr<backend::Backend> b) {
        auto w = std::make_unique<FaultyBackend>(std::move(b), f);
        if (wrapper) *wrapper = w.get();
        return std::unique_ptr<backend::Backend>(std::move(w));
      };
    }
    auto e = Engine::create(kModelPath, o);
    EXPECT_TRUE(e.is_ok()) << e.status().to_string();
    if (!e.is_ok()) return nullptr;
    EXPECT_TRUE((*e)->overlap_schedule());
    return std::move(e).value();
  }

  // Submits every request at once and waits for all (outputs in handle order). A request that
  // does not finish within a minute is a hang: reported, and the binary exits (the scheduler
  // thread cannot be joined then).
  static std::vector<GenerateOutput> run_all(Engine& e, std::vector<GenerateRequest> rs) {
    auto hs = e.submit_batch(std::move(rs));
    EXPECT_TRUE(hs.is_ok()) << hs.status().to_string();
    std::vector<GenerateOutput> outs;
    if (!hs.is_ok()) return outs;
    for (auto& h : *hs) {
      auto fut = std::async(std::launch::async, [h] { return h->wait(); });
      if (fut.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
        std::fprintf(stderr, "request %s did not finish: the engine hangs\n", h->rid().c_str());
        std::fflush(stderr);
        std::_Exit(1);
      }
      auto out = fut.get();
      EXPECT_TRUE(out.is_ok()) << out.status().to_string();
      outs.push_back(out.is_ok() ? std::move(out).value() : GenerateOutput{});
    }
    return outs;
  }

  // A fault-free engine's outputs for `rs` (the reference).
  static std::vector<GenerateOutput> reference(const std::vector<GenerateRequest>& rs,
                                               EngineOptions o = {}) {
    auto e = make(nullptr, o);
    if (!e) return {};
    return run_all(*e, rs);
  }

  static GenerateRequest req(const std::vector<int32_t>& prompt, int max_new, std::string rid) {
    return test::greedy_request(prompt, max_new, std::move(rid));
  }

  static std::vector<GenerateRequest> batch(int first, int count, int max_new,
                                            const std::string& tag) {
    const auto texts = test::sample_prompts();
    std::vector<GenerateRequest> rs;
    for (int i = first; i < first + count; ++i)
      rs.push_back(req(enc(texts[static_cast<size_t>(i) % texts.size()]), max_new + i,
                       tag + std::to_string(i)));
    return rs;
  }

  // Ended by the injected failure: an abort naming it, the tokens so far a prefix of the
  // reference's and fewer than asked for.
  static void expect_failed(const GenerateOutput& got, const GenerateOutput& ref,
                            const std::string& what, size_t i) {
    EXPECT_EQ(got.finish_reason.kind, FinishReason::kAbort) << "request " << i;
    EXPECT_NE(got.finish_reason.message.find("forward pass failed"), std::string::npos)
        << "request " << i << ": " << got.finish_reason.message;
    EXPECT_NE(got.finish_reason.message.find(what), std::string::npos)
        << "request " << i << ": " << got.finish_reason.message;
    ASSERT_LT(got.output_ids.size(), ref.output_ids.size()) << "request " << i;
    EXPECT_EQ(got.output_ids,
              std::vector<int32_t>(
                  ref.output_ids.begin(),
                  ref.output_ids.begin() + static_cast<std::ptrdiff_t>(got.output_ids.size())))
        << "request " << i;
    EXPECT_EQ(got.completion_tokens, static_cast<int32_t>(got.output_ids.size()));
  }

  // The radix cache's size once the scheduler has published the failure's end: it evicts after
  // the requests' finish events, so a snapshot taken at once may predate it. Polls up to 10 s
  // for zero; returns the last value seen.
  static int64_t cache_size_after_failure(Engine& e) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    int64_t size = e.stats().cache_size;
    while (size != 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      size = e.stats().cache_size;
    }
    return size;
  }

  // An engine behind `f` (options o) runs rs: every request fails with `error` after its first
  // `kept` tokens, which match the fault-free run (ref). Returns the engine, its wrapper in *w.
  static std::unique_ptr<Engine> run_failing(const Faults& f,
                                             const std::vector<GenerateRequest>& rs,
                                             const std::vector<GenerateOutput>& ref,
                                             const char* error, size_t kept, FaultyBackend** w,
                                             EngineOptions o = {}) {
    auto e = make(&f, o, w);
    EXPECT_TRUE(e && *w);
    if (!e || !*w) return nullptr;
    const auto outs = run_all(*e, rs);
    EXPECT_EQ(outs.size(), ref.size());
    for (size_t i = 0; i < outs.size() && i < ref.size(); ++i) {
      expect_failed(outs[i], ref[i], error, i);
      EXPECT_EQ(outs[i].output_ids.size(), kept) << "request " << i;
    }
    return e;
  }

  static void expect_same(const std::vector<GenerateOutput>& got,
                          const std::vector<GenerateOutput>& ref) {
    ASSERT_EQ(got.size(), ref.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].output_ids, ref[i].output_ids) << "request " << i;
      EXPECT_EQ(got[i].text, ref[i].text) << "request " << i;
      EXPECT_EQ(got[i].finish_reason.to_json(), ref[i].finish_reason.to_json()) << "request " << i;
    }
  }
};

TEST_F(FaultTest, FaultInThePrefillLaunchAbortsAllAndCachesNothingOfIt) {
  // Launch 1 is every prompt's prefill; it never runs, and launch 2 (their first decode, with
  // future tokens of launch 1) is enqueued before launch 1's collect fails. The prompts entered
  // the radix cache when launch 1 was enqueued: their K/V is garbage and must not be served.
  const auto rs = batch(0, 4, 8, "p");
  const auto ref = reference(rs);
  Faults f;
  f.fault_launch = 1;
  FaultyBackend* w = nullptr;
  auto e = run_failing(f, rs, ref, "injected device fault", 0, &w);
  ASSERT_TRUE(e);
  EXPECT_EQ(w->failed_collects(), 2);  // the fault and the launch that read its tokens
  EXPECT_EQ(cache_size_after_failure(*e), 0);
  EXPECT_EQ(e->stats().kv_used, 0);

  // The same prompts again: recomputed (no cached token), the fault-free output.
  const auto again = run_all(*e, rs);
  expect_same(again, ref);
  for (size_t i = 0; i < again.size(); ++i) EXPECT_EQ(again[i].cached_tokens, 0) << i;
  // And new ones.
  const auto more = batch(4, 4, 6, "q");
  expect_same(run_all(*e, more), reference(more));
  EXPECT_EQ(w->launches(), w->collects());
  expect_no_leaks(*e);
}

TEST_F(FaultTest, FaultMidDecodeKeepsTheTokensSoFarAndTheEngineServing) {
  const auto rs = batch(0, 5, 10, "d");
  const auto ref = reference(rs);
  Faults f;
  f.fault_launch = 5;  // launch k samples every request's k-th token: 1-4's are kept
  FaultyBackend* w = nullptr;
  auto e = run_failing(f, rs, ref, "injected device fault", 4, &w);
  ASSERT_TRUE(e);
  // Repeats and new prompts, several batches: the fault-free outputs.
  expect_same(run_all(*e, rs), ref);
  const auto more = batch(3, 5, 7, "m");
  expect_same(run_all(*e, more), reference(more));
  EXPECT_EQ(w->launches(), w->collects());
  expect_no_leaks(*e);
}

TEST_F(FaultTest, FaultInAChunkedPrefillCachesNoneOfTheFailedChunk) {
  // A long prompt prefilled 16 tokens a launch; launch 2 (its second chunk) never runs, and
  // launch 3 (the third) is enqueued before that shows. The abort releases the request with
  // n_past counting both chunks: what that inserts into the cache must not survive.
  std::string text;
  for (const std::string& t : test::sample_prompts()) text += t + " ";
  const auto prompt = enc(text);
  ASSERT_GT(prompt.size(), 48u);
  const std::vector<GenerateRequest> rs = {req(prompt, 6, "long"),
                                           req(enc("The quick brown fox"), 12, "short")};
  EngineOptions o;
  o.chunked_prefill_size = 16;
  const auto ref = reference(rs, o);
  Faults f;
  f.fault_launch = 2;
  FaultyBackend* w = nullptr;
  auto e = make(&f, o, &w);
  ASSERT_TRUE(e && w);
  const auto outs = run_all(*e, {rs[0]});
  ASSERT_EQ(outs.size(), 1u);
  expect_failed(outs[0], ref[0], "injected device fault", 0);
  EXPECT_EQ(w->failed_collects(), 2);
  EXPECT_EQ(cache_size_after_failure(*e), 0);
  const auto again = run_all(*e, rs);
  expect_same(again, ref);
  EXPECT_EQ(again[0].cached_tokens, 0);
  expect_no_leaks(*e);
}

TEST_F(FaultTest, FailedLaunchAbortsItsRequestsAndTheRestContinue) {
  // Launch 3 fails at once: the requests in it end with the error; launches 1 and 2 completed,
  // so their tokens reach the requests first.
  const auto rs = batch(0, 4, 8, "l");
  const auto ref = reference(rs);
  Faults f;
  f.fail_launch = 3;
  FaultyBackend* w = nullptr;
  auto e = run_failing(f, rs, ref, "injected launch failure", 2, &w);
  ASSERT_TRUE(e);
  expect_same(run_all(*e, rs), ref);
  EXPECT_EQ(w->launches(), w->collects() + 1);  // the failed launch has no ticket
  expect_no_leaks(*e);
}

TEST_F(FaultTest, FailedLaunchAfterARequestStoppedInTheLaunchBefore) {
  // The failed launch holds a decode row of a request whose previous token (in the launch still
  // in flight) is a stop token. Settling that launch finishes and frees the request; the error
  // path must not touch it afterwards (it did: a heap use-after-free under SGL_SANITIZE), and
  // the request ends with its stop, not the error.
  GenerateRequest probe = req(enc("The capital of France is"), 16, "probe");
  probe.params.ignore_eos = false;
  const auto plain = reference({probe});
  ASSERT_EQ(plain.size(), 1u);
  const auto& ids = plain[0].output_ids;
  ASSERT_GE(ids.size(), 4u);
  // The first token from the third on that did not occur before it: the stop at token j.
  size_t j = 0;
  for (size_t k = 2; k < ids.size() && j == 0; ++k)
    if (std::find(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids[k]) ==
        ids.begin() + static_cast<std::ptrdiff_t>(k))
      j = k + 1;
  ASSERT_GT(j, 0u) << "no usable stop token in the greedy output";
  ASSERT_LT(j, ids.size());  // launch j + 1 has a row for it: it may still decode
  GenerateRequest r = probe;
  r.rid = "stops";
  r.params.stop_token_ids = {ids[j - 1]};
  const auto ref = reference({r});
  ASSERT_EQ(ref[0].finish_reason.kind, FinishReason::kStop);
  ASSERT_EQ(ref[0].completion_tokens, static_cast<int32_t>(j));

  Faults f;
  f.fail_launch = static_cast<int>(j) + 1;  // launch j samples token j; j + 1 is built before
  FaultyBackend* w = nullptr;
  auto e = make(&f, {}, &w);
  ASSERT_TRUE(e && w);
  expect_same(run_all(*e, {r}), ref);
  EXPECT_EQ(w->launches(), static_cast<int>(j) + 1);
  expect_same(run_all(*e, {r}), ref);
  expect_no_leaks(*e);
}

TEST_F(FaultTest, StickyFaultFailsTheNextLaunchToo) {
  // As a CUDA error does: launch 3 faults on the device and launch 4 fails at enqueue. Settling
  // launch 3 then aborts (and frees) every running request, launch 4's included.
  const auto rs = batch(0, 4, 8, "s");
  const auto ref = reference(rs);
  Faults f;
  f.fault_launch = 3;
  f.sticky_launch_error = true;
  FaultyBackend* w = nullptr;
  auto e = make(&f, {}, &w);
  ASSERT_TRUE(e && w);
  const auto outs = run_all(*e, rs);
  ASSERT_EQ(outs.size(), ref.size());
  for (size_t i = 0; i < outs.size(); ++i) {
    expect_failed(outs[i], ref[i], "injected device fault", i);
    EXPECT_EQ(outs[i].output_ids.size(), 2u) << "request " << i;
  }
  EXPECT_EQ(w->failed_collects(), 1);
  expect_same(run_all(*e, rs), ref);
  const auto more = batch(2, 6, 5, "t");
  expect_same(run_all(*e, more), reference(more));
  expect_no_leaks(*e);
}

}  // namespace
}  // namespace sgl::runtime
