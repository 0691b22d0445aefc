// Tensor parallelism (TpCudaBackend, tp_backend.h) against one GPU: the tiny random Llama and
// Qwen2 GGUF models of cuda_model_test.cpp on 2 GPUs vs the plain CudaBackend on one, the same
// batches in the same order: a mixed prefill of two prompts, a chunk over a cached prefix, decode
// steps of both, and a mixed batch of a decode token beside a new prompt. Also: greedy tokens
// and device sampling on the TP backend, the decode CUDA graphs with the NCCL calls captured
// (SGL_CUDA_TP_GRAPHS=1), errors before any collective leave the ranks usable, and splits that
// do not divide the heads are refused.
//
// The comparisons run with bf16 KV and again with fp8_e4m3 KV (tp=2 fp8 vs tp=1 fp8: each rank
// stores its half of the KV heads in fp8).
//
// The GPU tests skip unless the machine has 2 GPUs and NCCL (libnccl.so.2, or SGL_NCCL_LIBRARY)
// can be loaded. Tolerance with bf16 KV: the bf16 one of cuda_model_test.cpp (||tp2 - tp1|| /
// ||tp1|| < 5e-2 per row; the two differ only in f32 summation order, then bf16 rounding
// downstream of it) and top-1 agreement >= 90%. With fp8 KV that rounding happens before K and V
// are stored, where a tiny difference can move a value to the next fp8 code (2^-4 relative for
// e4m3): the fp8 tests' e4m3 bounds (cuda_fp8_kv_test.cpp: per row < 0.35, mean < 0.1, top-1
// >= 70%). A wrong shard (heads or columns of another rank, a missing all-reduce, K/V stored in
// the wrong format) gives errors near 1.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "cuda_test_util.h"

#ifdef SGL_WITH_CUDA

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/nccl.h"
#include "backend/cuda/tp_backend.h"
#include "backend/factory.h"
#include "models/loader.h"
#include "runtime/sampler.h"

namespace sgl::cuda_test {
namespace {

bool have_two_gpus() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return n >= 2;
}

#define SGL_REQUIRE_TP2()                                                                         \
  do {                                                                                            \
    if (!have_two_gpus()) GTEST_SKIP() << "tensor parallelism needs 2 GPUs";                      \
    if (auto v = backend::cuda::nccl_version(); !v.is_ok()) GTEST_SKIP() << v.status().message(); \
  } while (0)

class CudaTpTest : public TinyModelTest {
 protected:
  void SetUp() override {
    SGL_REQUIRE_TP2();
    load_tiny("cuda_tp");
  }
  static backend::CudaBackendOptions options(bool graphs,
                                             backend::KvDtype kv = backend::KvDtype::kBF16,
                                             backend::WeightDtype w = backend::WeightDtype::kAuto) {
    backend::CudaBackendOptions o;
    o.kv_capacity = 600;
    o.progress = false;
    o.cuda_graphs = graphs;
    o.kv_dtype = kv;
    o.dtype = w;
    return o;
  }
  void two_gpus_match_one(backend::KvDtype kv,
                          backend::WeightDtype w = backend::WeightDtype::kAuto);
  void decode_graphs_with_nccl(backend::KvDtype kv);
};

// RowStats with bounds per KV type (the file comment says why).
struct RowCheck : RowStats {
  explicit RowCheck(backend::KvDtype kv) : fp8(backend::kv_dtype_is_fp8(kv)) {}
  bool fp8;
  double row_tol() const { return fp8 ? 0.35 : 5e-2; }
  int top1_min(int n) const { return fp8 ? n * 7 / 10 : n * 9 / 10; }
  void add(const backend::Logits& got, const backend::Logits& ref, const char* what) {
    RowStats::add(got, ref, row_tol(), what);
  }
  void expect_overall() const {
    EXPECT_GE(top1_same, top1_min(rows));
    if (fp8) {
      EXPECT_LT(mean(), 0.1);
    }
  }
};

const char* kv_name(backend::KvDtype kv) {
  return kv == backend::KvDtype::kFp8E4M3 ? "fp8_e4m3 KV" : "bf16 KV";
}

TEST_P(CudaTpTest, TwoGpusMatchOne) { two_gpus_match_one(backend::KvDtype::kBF16); }
TEST_P(CudaTpTest, TwoGpusMatchOneFp8Kv) { two_gpus_match_one(backend::KvDtype::kFp8E4M3); }
// f16 weights (--dtype float16) on both sides: every rank uploads its shard in f16.
TEST_P(CudaTpTest, TwoGpusMatchOneF16Weights) {
  two_gpus_match_one(backend::KvDtype::kBF16, backend::WeightDtype::kF16);
}

void CudaTpTest::two_gpus_match_one(backend::KvDtype kv, backend::WeightDtype w) {
  auto one = backend::CudaBackend::create(*model_, options(false, kv, w));
  ASSERT_TRUE(one.is_ok()) << one.status().to_string();
  auto tp = backend::TpCudaBackend::create(*model_, options(false, kv, w), 2);
  ASSERT_TRUE(tp.is_ok()) << tp.status().to_string();
  ASSERT_EQ((*tp)->tp_size(), 2);
  EXPECT_EQ((*tp)->kv_capacity(), 600);
  EXPECT_EQ((*tp)->config().n_head, GetParam().n_head);  // the model's, not a rank's
  // Each rank holds half the KV heads: half the pool bytes of the one-GPU backend.
  EXPECT_EQ((*tp)->rank(1).kv_bytes() * 2, (*one)->kv_bytes());
  if (w == backend::WeightDtype::kF16)
    for (int r = 0; r < 2; ++r)
      EXPECT_EQ((*tp)->rank(r).weight_dtype(), backend::WeightDtype::kF16);

  std::mt19937 rng(11);
  const int len_a = 100, len_b = 40, len_c = 48, split = 70, steps = 4;
  auto a = random_tokens(len_a + steps + 1, rng), b = random_tokens(len_b + steps, rng),
       c = random_tokens(len_c, rng);
  std::vector<int32_t> slots_a, slots_b, slots_c;
  for (int i = 0; i < len_a + steps + 1; ++i) slots_a.push_back(300 - 2 * i);  // scattered
  for (int i = 0; i < len_b + steps; ++i) slots_b.push_back(310 + 3 * i);
  for (int i = 0; i < len_c; ++i) slots_c.push_back(450 + i);

  RowCheck check(kv);
  int greedy_same = 0, greedy_rows = 0;
  auto both = [&](const backend::ForwardBatch& fb, const char* what) {
    backend::Logits l1, l2;
    ASSERT_TRUE((*one)->forward(fb, &l1).is_ok()) << what;
    auto st = (*tp)->forward(fb, &l2);
    ASSERT_TRUE(st.is_ok()) << what << ": " << st.to_string();
    check.add(l2, l1, what);
    // Greedy on the TP backend (rewrites the same K/V): the argmax of its own logits exactly,
    // and mostly the one-GPU argmax.
    std::vector<int32_t> g;
    ASSERT_TRUE((*tp)->forward_greedy(fb, &g).is_ok()) << what;
    ASSERT_EQ(static_cast<int>(g.size()), l2.n_rows);
    for (int r = 0; r < l2.n_rows; ++r) {
      EXPECT_EQ(g[r], runtime::Sampler::argmax(row_of(l2, r))) << what << " row " << r;
      greedy_same += g[r] == runtime::Sampler::argmax(row_of(l1, r));
      ++greedy_rows;
    }
  };
  backend::ForwardBatch fb;
  // Mixed prefill: A's first chunk and B (both on the tensor-core prefill kernel).
  fb.add_sequence(a.data(), split, 0, slots_a.data(), false);
  fb.add_sequence(b.data(), len_b, 0, slots_b.data(), false);
  for (int i = 0; i < split + len_b; ++i) fb.logit_rows.push_back(i);
  both(fb, "mixed prefill");
  // A's second chunk over its cached prefix.
  fb.clear();
  fb.add_sequence(a.data() + split, len_a - split, split, slots_a.data(), false);
  for (int i = 0; i < len_a - split; ++i) fb.logit_rows.push_back(i);
  both(fb, "cached-prefix chunk");
  // Decode steps of A and B together.
  for (int s = 0; s < steps; ++s) {
    fb.clear();
    fb.add_sequence(&a[len_a + s], 1, len_a + s, slots_a.data(), true);
    fb.add_sequence(&b[len_b + s], 1, len_b + s, slots_b.data(), true);
    both(fb, "decode");
  }
  // Mixed: A decodes beside C's whole prompt (every row's logits).
  fb.clear();
  fb.add_sequence(&a[len_a + steps], 1, len_a + steps, slots_a.data(), false);
  fb.add_sequence(c.data(), len_c, 0, slots_c.data(), false);
  for (int i = 0; i < 1 + len_c; ++i) fb.logit_rows.push_back(i);
  both(fb, "mixed decode + prefill");

  check.expect_overall();
  EXPECT_GE(greedy_same, check.top1_min(greedy_rows));
  std::printf(
      "[ %s %s, %s weights ] tp=2 vs tp=1: worst row error %.3g, mean %.3g over %d rows, top-1 "
      "same %d, greedy same %d/%d\n",
      GetParam().arch.c_str(), kv_name(kv), w == backend::WeightDtype::kF16 ? "f16" : "bf16",
      check.worst, check.mean(), check.rows, check.top1_same, greedy_same, greedy_rows);
}

// Decode batches through the CUDA graphs with the NCCL all-reduces captured in them
// (SGL_CUDA_TP_GRAPHS=1), against the one-GPU eager path: each padded size planned, captured,
// then replayed with new contents.
TEST_P(CudaTpTest, DecodeGraphsWithNccl) { decode_graphs_with_nccl(backend::KvDtype::kBF16); }
TEST_P(CudaTpTest, DecodeGraphsWithNcclFp8Kv) {
  decode_graphs_with_nccl(backend::KvDtype::kFp8E4M3);
}

void CudaTpTest::decode_graphs_with_nccl(backend::KvDtype kv) {
  setenv("SGL_CUDA_TP_GRAPHS", "1", 1);
  auto tp = backend::TpCudaBackend::create(*model_, options(true, kv), 2);
  unsetenv("SGL_CUDA_TP_GRAPHS");
  ASSERT_TRUE(tp.is_ok()) << tp.status().to_string();
  auto one = backend::CudaBackend::create(*model_, options(false, kv));
  ASSERT_TRUE(one.is_ok()) << one.status().to_string();
  constexpr int kSeqs = 5;
  std::mt19937 rng(21);
  std::vector<std::vector<int32_t>> toks(kSeqs), slots(kSeqs);
  std::vector<int> len(kSeqs);
  for (int i = 0; i < kSeqs; ++i) {
    len[i] = 5 + 7 * i;
    toks[i] = random_tokens(len[i] + 12, rng);
    for (int j = 0; j < len[i] + 12; ++j) slots[i].push_back(i + kSeqs * j);
  }
  RowCheck check(kv);
  auto both = [&](const backend::ForwardBatch& fb) {
    backend::Logits l1, l2;
    ASSERT_TRUE((*one)->forward(fb, &l1).is_ok());
    auto st = (*tp)->forward(fb, &l2);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    check.add(l2, l1, "graph decode");
  };
  backend::ForwardBatch fb;
  for (int i = 0; i < kSeqs; ++i) fb.add_sequence(toks[i].data(), len[i], 0, slots[i].data(), true);
  both(fb);
  auto decode = [&](const std::vector<int>& ids) {
    backend::ForwardBatch d;
    for (int i : ids) d.add_sequence(&toks[i][len[i]], 1, len[i], slots[i].data(), true);
    both(d);
    for (int i : ids) ++len[i];
  };
  for (int s = 0; s < 4; ++s) decode({0, 1, 2});        // size 4: plan, capture, replay, replay
  for (int s = 0; s < 3; ++s) decode({4});              // size 1
  decode({3, 1, 0, 4});                                 // size 4 replayed, other contents
  for (int s = 0; s < 3; ++s) decode({0, 1, 2, 3, 4});  // size 8
  check.expect_overall();
  std::printf(
      "[ %s %s ] tp=2 graphs vs tp=1 eager: worst row error %.3g, mean %.3g over %d "
      "rows, top-1 same %d\n",
      GetParam().arch.c_str(), kv_name(kv), check.worst, check.mean(), check.rows, check.top1_same);
}

// Device sampling on rank 0: greedy rows give the greedy tokens; seeded rows are reproducible;
// a bad row and a bad batch are errors found before any rank starts (no rank left waiting in an
// all-reduce), and the backend keeps working.
TEST_P(CudaTpTest, SamplingAndErrorsLeaveRanksUsable) {
  auto tp = backend::TpCudaBackend::create(*model_, options(false), 2);
  ASSERT_TRUE(tp.is_ok()) << tp.status().to_string();
  std::mt19937 rng(5);
  auto p = random_tokens(20, rng);
  std::vector<int32_t> slots(20);
  for (int i = 0; i < 20; ++i) slots[i] = 2 * i;
  backend::ForwardBatch fb;
  fb.add_sequence(p.data(), 20, 0, slots.data(), false);
  fb.logit_rows = {3, 19};
  std::vector<int32_t> greedy, sampled, again;
  ASSERT_TRUE((*tp)->forward_greedy(fb, &greedy).is_ok());
  std::vector<backend::SampleRow> rows(2);
  rows[0].temperature = 0.0f;
  rows[1].temperature = 0.0f;
  ASSERT_TRUE((*tp)->forward_sample(fb, rows, &sampled).is_ok());
  EXPECT_EQ(sampled, greedy);
  rows[0].temperature = rows[1].temperature = 1.0f;
  rows[0].u = 0.3;
  rows[1].u = 0.9;
  ASSERT_TRUE((*tp)->forward_sample(fb, rows, &sampled).is_ok());
  ASSERT_TRUE((*tp)->forward_sample(fb, rows, &again).is_ok());
  EXPECT_EQ(sampled, again);
  for (int32_t t : sampled) EXPECT_LT(t, static_cast<int32_t>(kTinyVocab));

  rows[1].u = 1.5;  // out of [0, 1)
  EXPECT_FALSE((*tp)->forward_sample(fb, rows, &sampled).is_ok());
  backend::Logits lg;
  backend::ForwardBatch bad;
  const int32_t tok[1] = {1}, far[1] = {600};
  bad.add_sequence(tok, 1, 0, far, true);  // slot beyond the pool
  EXPECT_FALSE((*tp)->forward(bad, &lg).is_ok());
  const int32_t big[1] = {static_cast<int32_t>(kTinyVocab) + 3};
  bad.clear();
  bad.add_sequence(big, 1, 0, slots.data(), true);  // token out of range
  EXPECT_FALSE((*tp)->forward(bad, &lg).is_ok());
  ASSERT_TRUE((*tp)->forward_greedy(fb, &again).is_ok());
  EXPECT_EQ(again, greedy);
}

INSTANTIATE_TEST_SUITE_P(
    Tiny, CudaTpTest,
    ::testing::Values(TinyModelSpec{"llama", 64, 2, 128, 4, 2, 16, false, true, false, 1},
                      TinyModelSpec{"qwen2", 128, 2, 256, 4, 2, 64, true, false, true, 2}),
    [](const auto& info) { return info.param.arch; });

// A split that does not divide the heads (or the MLP width) is refused before any GPU or NCCL
// work, with the numbers; so is a shard without an all-reduce. No GPU needed.
TEST(CudaTp, BadSplitIsAnError) {
  model::ModelConfig c;
  c.arch = "llama";
  c.n_vocab = 320;
  c.n_embd = 64;
  c.n_layer = 1;
  c.n_ff = 128;
  c.n_head = 4;
  c.n_head_kv = 2;
  c.head_dim = 16;
  backend::CudaBackendOptions o;
  o.progress = false;
  auto three = backend::TpCudaBackend::create_dummy(c, o, 3);
  ASSERT_FALSE(three.is_ok());
  EXPECT_NE(three.status().message().find("must divide"), std::string::npos)
      << three.status().to_string();
  c.n_head_kv = 1;  // 4 query heads over 2 GPUs, but one KV head
  auto kv = backend::TpCudaBackend::create_dummy(c, o, 2);
  ASSERT_FALSE(kv.is_ok());
  EXPECT_NE(kv.status().message().find("KV heads (1)"), std::string::npos)
      << kv.status().to_string();
  EXPECT_FALSE(backend::TpCudaBackend::create_dummy(c, o, 1).is_ok());  // not a split
  c.n_head_kv = 2;
  o.tp_size = 2;  // a shard, but nothing to sum the partial results with
  auto lone = backend::CudaBackend::create_dummy(c, o);
  ASSERT_FALSE(lone.is_ok());
  EXPECT_NE(lone.status().message().find("all-reduce"), std::string::npos);
  // Through the factory: tp_size < 1, and a split on the CPU.
  backend::BackendOptions bo;
  bo.device = "cuda";
  bo.tp_size = 0;
  EXPECT_FALSE(backend::create_dummy_backend(c, bo).is_ok());
  bo.device = "cpu";
  bo.tp_size = 2;
  auto cpu = backend::create_dummy_backend(c, bo);
  ASSERT_FALSE(cpu.is_ok());
  EXPECT_NE(cpu.status().message().find("--device cuda"), std::string::npos);
}

}  // namespace
}  // namespace sgl::cuda_test

#else  // !SGL_WITH_CUDA

TEST(CudaTp, SkippedWithoutCuda) { GTEST_SKIP() << "built without CUDA (-DSGL_CUDA=ON)"; }

#endif
