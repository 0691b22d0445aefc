// The overlap schedule on the GPU: CudaBackend::launch_sample with future token ids (resolved on
// the device, in the eager path and at the decode graphs' fixed token address) against
// forward_sample with the real ids on a second backend running the same batches; and the engine
// with overlap on against off.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "cuda_test_util.h"

#ifdef SGL_WITH_CUDA

#include "backend/cuda/cuda_backend.h"
#include "models/loader.h"
#include "sgl/engine.h"

namespace sgl {
namespace {

using cuda_test::kTinyVocab;
using cuda_test::TinyModelSpec;
using cuda_test::write_tiny_gguf;

class CudaOverlap : public ::testing::Test {
 protected:
  void SetUp() override {
    SGL_REQUIRE_GPU();
    path_ = (std::filesystem::temp_directory_path() /
             ("sgl_cuda_overlap_" + std::to_string(getpid()) + ".gguf"))
                .string();
    TinyModelSpec spec;
    spec.seed = 21;
    ASSERT_TRUE(write_tiny_gguf(path_, spec).is_ok());
  }
  void TearDown() override {
    if (!path_.empty()) std::filesystem::remove(path_);
  }
  std::unique_ptr<runtime::Engine> make(bool overlap) {
    runtime::EngineOptions o;
    o.device = "cuda";
    o.max_total_tokens = 4096;
    o.threads = 2;
    o.disable_overlap_schedule = !overlap;
    auto e = runtime::Engine::create(path_, o);
    EXPECT_TRUE(e.is_ok()) << e.status().to_string();
    if (!e.is_ok()) return nullptr;
    EXPECT_EQ((*e)->overlap_schedule(), overlap);
    return std::move(e).value();
  }
  std::string path_;
};

// One sequence of the backend test: its tokens so far and its slots.
struct Seq {
  std::vector<int32_t> toks;
  std::vector<int32_t> slots;
};

TEST_F(CudaOverlap, FutureTokensMatchRealIdsInEagerAndGraphSteps) {
  auto model = models::load_model(path_);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  backend::CudaBackendOptions bo;
  bo.kv_capacity = 1024;
  bo.progress = false;
  auto a = backend::CudaBackend::create(**model, bo);  // async, future ids
  auto b = backend::CudaBackend::create(**model, bo);  // reference, real ids
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  ASSERT_TRUE((*a)->supports_async());

  std::mt19937 rng(3);
  std::vector<Seq> seqs(4);
  for (int s = 0; s < 4; ++s) {
    for (int i = 0; i < 9 + 5 * s; ++i) seqs[s].toks.push_back(int32_t(rng() % (kTinyVocab - 1)));
    seqs[s].slots.resize(200);
    std::iota(seqs[s].slots.begin(), seqs[s].slots.end(), 200 * s);
  }
  std::vector<int32_t> n_past(4, 0);
  // A step: which sequences decode (one token: the last one sampled, a future id on `a`) and
  // which prefill their whole prompt; every sequence gets one sampled row, in batch order.
  struct Step {
    std::vector<int> decode, prefill;
  };
  const std::vector<Step> steps = {
      {{}, {0, 1, 2}},    // prefill: eager
      {{0, 1, 2}, {}},    // decode of 3: graph size 4, first run (eager, planned)
      {{0, 2}, {3}},      // decode + prefill: eager, futures out of row order
      {{0, 2, 3}, {}},    // graph size 4: captured
      {{0, 2, 3}, {}},    // graph size 4: replayed
      {{3, 0}, {}},       // graph size 2, first run; futures out of row order
      {{0, 3}, {}},       // graph size 2: captured
  };
  std::vector<int> last_row(4, -1);  // sequence -> its row in the previous launch
  std::vector<uint64_t> tickets;
  std::vector<std::vector<int32_t>> got, want;
  std::vector<std::vector<int>> order;  // sequences of each step's rows
  for (size_t k = 0; k < steps.size(); ++k) {
    backend::ForwardBatch fa;
    std::vector<int> rows_seq;
    std::vector<int32_t> fut(8);
    int nf = 0;
    for (int s : steps[k].decode) {
      Seq& q = seqs[s];
      // The previous launch's row for s: the token is not on the host yet.
      fut[nf] = -(last_row[s] + 1);
      fa.add_sequence(&fut[nf], 1, n_past[s], q.slots.data(), true);
      ++nf;
      rows_seq.push_back(s);
    }
    for (int s : steps[k].prefill) {
      fa.add_sequence(seqs[s].toks.data(), int32_t(seqs[s].toks.size()), 0, seqs[s].slots.data(),
                      true);
      rows_seq.push_back(s);
    }
    std::vector<backend::SampleRow> rows(rows_seq.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      if (rows_seq[i] % 2 == 1) {
        rows[i].temperature = 0.9f;
        rows[i].top_p = 0.95f;
        rows[i].u = double(rng() % 1000) / 1000.0;
      }
    }
    auto t = (*a)->launch_sample(fa, rows);
    ASSERT_TRUE(t.is_ok()) << "step " << k << ": " << t.status().to_string();
    tickets.push_back(*t);
    // Collect the previous launch now (step k is already enqueued behind it), then run the same
    // step on `b` with the real ids.
    if (k > 0) {
      std::vector<int32_t> toks;
      ASSERT_TRUE((*a)->collect(tickets[k - 1], &toks).is_ok());
      got.push_back(toks);
    }
    order.push_back(rows_seq);
    for (size_t i = 0; i < rows_seq.size(); ++i) last_row[rows_seq[i]] = int(i);
    for (int s : steps[k].decode) ++n_past[s];
    for (int s : steps[k].prefill) n_past[s] = int32_t(seqs[s].toks.size());
  }
  {
    std::vector<int32_t> toks;
    ASSERT_TRUE((*a)->collect(tickets.back(), &toks).is_ok());
    got.push_back(toks);
  }
  // An out-of-range future id is refused.
  {
    const int32_t bad = -100;
    backend::ForwardBatch fa;
    fa.add_sequence(&bad, 1, n_past[0], seqs[0].slots.data(), true);
    std::vector<backend::SampleRow> one(1);
    EXPECT_FALSE((*a)->launch_sample(fa, one).is_ok());
  }

  // The reference: the same steps on `b` with the ids `a` sampled, synchronously.
  std::fill(n_past.begin(), n_past.end(), 0);
  std::vector<int32_t> last_tok(4, -1);
  std::mt19937 rng2(3);
  for (int s = 0; s < 4; ++s)
    for (int i = 0; i < 9 + 5 * s; ++i) (void)rng2();
  for (size_t k = 0; k < steps.size(); ++k) {
    backend::ForwardBatch fb;
    for (int s : steps[k].decode)
      fb.add_sequence(&last_tok[s], 1, n_past[s], seqs[s].slots.data(), true);
    for (int s : steps[k].prefill)
      fb.add_sequence(seqs[s].toks.data(), int32_t(seqs[s].toks.size()), 0, seqs[s].slots.data(),
                      true);
    std::vector<backend::SampleRow> rows(order[k].size());
    for (size_t i = 0; i < rows.size(); ++i) {
      if (order[k][i] % 2 == 1) {
        rows[i].temperature = 0.9f;
        rows[i].top_p = 0.95f;
        rows[i].u = double(rng2() % 1000) / 1000.0;
      }
    }
    std::vector<int32_t> toks;
    ASSERT_TRUE((*b)->forward_sample(fb, rows, &toks).is_ok()) << "step " << k;
    want.push_back(toks);
    for (size_t i = 0; i < order[k].size(); ++i) last_tok[order[k][i]] = toks[i];
    for (int s : steps[k].decode) ++n_past[s];
    for (int s : steps[k].prefill) n_past[s] = int32_t(seqs[s].toks.size());
  }
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < got.size(); ++k) EXPECT_EQ(got[k], want[k]) << "step " << k;
}

TEST_F(CudaOverlap, EngineOutputsMatchWithOverlapOnAndOff) {
  auto on = make(true);
  auto off = make(false);
  ASSERT_TRUE(on && off);
  const std::vector<int32_t> prompt = {'T', 'h', 'e', ' ', 'c', 'a', 't', ' ', 's', 'a', 't'};
  auto request = [&](int i) {
    runtime::GenerateRequest r;
    r.rid = "r" + std::to_string(i);
    r.input_ids = prompt;
    r.input_ids.push_back('0' + i);
    r.params.max_new_tokens = 20 + 7 * i;
    r.params.ignore_eos = i % 3 != 2;
    r.params.temperature = i % 2 == 0 ? 0.0f : 1.1f;
    r.params.top_k = 60;
    r.params.sampling_seed = 40 + i;
    return r;
  };
  // One request at a time: the batches are the same in both schedules (the GPU results are not
  // batch invariant), so the outputs must be equal token for token.
  for (int i = 0; i < 6; ++i) {
    auto ha = on->submit(request(i));
    auto hb = off->submit(request(i));
    ASSERT_TRUE(ha.is_ok() && hb.is_ok());
    auto a = (*ha)->wait();
    auto b = (*hb)->wait();
    ASSERT_TRUE(a.is_ok() && b.is_ok());
    EXPECT_EQ(a->output_ids, b->output_ids) << "request " << i;
    EXPECT_EQ(a->finish_reason.to_json(), b->finish_reason.to_json()) << "request " << i;
  }
  EXPECT_GT(on->stats().overlapped_steps, 20);
  EXPECT_EQ(off->stats().overlapped_steps, 0);
  // Many at once (with an abort in flight): every request completes with its length.
  std::vector<runtime::GenerateRequest> rs;
  for (int i = 0; i < 24; ++i) {
    runtime::GenerateRequest r = request(i % 6);
    r.rid = "m" + std::to_string(i);
    r.params.ignore_eos = true;
    rs.push_back(r);
  }
  auto hs = on->submit_batch(rs);
  ASSERT_TRUE(hs.is_ok());
  (*hs)[5]->abort();
  for (size_t i = 0; i < hs->size(); ++i) {
    auto out = (*hs)[i]->wait();
    ASSERT_TRUE(out.is_ok());
    if (i == 5) continue;
    EXPECT_EQ(out->completion_tokens, rs[i].params.max_new_tokens) << "request " << i;
  }
  for (int i = 0; i < 100 && !on->flush_cache().is_ok(); ++i) usleep(10000);
  EXPECT_EQ(on->stats().kv_used, 0);
}

}  // namespace
}  // namespace sgl

#endif  // SGL_WITH_CUDA
