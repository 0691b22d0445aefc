// Sampling on the GPU (sampling.cu, CudaBackend::forward_sample) against the host sampler.
//
// The reference is runtime::Sampler::sample itself on the same (masked) logits: a SamplerState
// seeded with s draws its first uniform number exactly as Rng(s).next_double() does, so the GPU
// kernel gets that u and must return the host's token. Rows mix every filter (temperature, top-k,
// min-p, top-p), grammar bitsets, vocabulary limits, bf16-rounded logits (many ties, which both
// sides break by id) and vocabulary sizes that are and are not multiples of 4. Keep-set tests
// sweep u over every kept entry of a row. The engine test runs a tiny random model on the GPU
// with regex and JSON-schema constraints through Engine::step's device path.
//
// DISABLED_Timing (run with --gtest_also_run_disabled_tests) prints kernel and forward timings on
// the Llama-3.1-8B shape; it asserts nothing about speed.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "cuda_test_util.h"

#ifdef SGL_WITH_CUDA

#include <nlohmann/json.hpp>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/sampling.h"
#include "grammar/grammar.h"
#include "model/gguf_writer.h"
#include "model/model_config.h"
#include "models/loader.h"
#include "runtime/sampler.h"
#include "sgl/engine.h"

namespace sgl::cuda_test {
namespace {

using backend::cuda::SampleParams;
using runtime::Rng;
using runtime::Sampler;
using runtime::SamplerState;
using runtime::SamplingParams;

// One test row: its logits and how to sample them.
struct Case {
  int n = 0;
  std::vector<float> logits;
  SampleParams p;
  std::vector<uint32_t> mask;  // used when p.mask_offset >= 0 (offset filled by run_gpu)
  uint64_t seed = 0;
};

// The host's answer: vocabulary limit and mask as the engine applies them, then Sampler::sample
// with a state seeded like the row (its one draw is the u the GPU got).
int32_t host_sample(const Case& c) {
  std::vector<float> lg = c.logits;
  if (c.p.vocab_limit > 0 && c.p.vocab_limit < c.n)
    std::fill(lg.begin() + c.p.vocab_limit, lg.end(), -INFINITY);
  if (c.p.mask_offset >= 0)
    grammar::apply_mask(lg, std::span<const uint32_t>(c.mask.data(), c.p.mask_words));
  SamplingParams sp;
  sp.temperature = c.p.temperature;
  sp.top_k = c.p.top_k;
  sp.top_p = c.p.top_p;
  sp.min_p = c.p.min_p;
  SamplerState st(sp, {}, c.seed);
  std::vector<std::pair<float, int32_t>> scratch;
  return Sampler::sample(lg, sp, st, scratch);
}

// Runs launch_sample over rows of one vocabulary size (work separate or in place).
std::vector<int32_t> run_gpu(std::vector<Case>& cases, bool in_place) {
  const int n = cases.at(0).n;
  std::vector<float> all;
  std::vector<SampleParams> params;
  std::vector<uint32_t> masks;
  for (Case& c : cases) {
    EXPECT_EQ(c.n, n);
    all.insert(all.end(), c.logits.begin(), c.logits.end());
    SampleParams p = c.p;
    if (p.mask_offset >= 0) {
      p.mask_offset = static_cast<int32_t>(masks.size());
      masks.insert(masks.end(), c.mask.begin(), c.mask.begin() + c.p.mask_words);
    }
    params.push_back(p);
  }
  if (masks.empty()) masks.push_back(0);
  DevBuf<float> d_logits(all);
  DevBuf<float> d_work(in_place ? 1 : all.size());
  DevBuf<SampleParams> d_params(params);
  DevBuf<uint32_t> d_masks(masks);
  DevBuf<int32_t> d_out(cases.size());
  backend::cuda::launch_sample(d_logits.get(), in_place ? d_logits.get() : d_work.get(),
                               static_cast<int>(cases.size()), n, d_params.get(), d_masks.get(),
                               d_out.get(), nullptr);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  return d_out.host();
}

double first_draw(uint64_t seed) { return Rng(seed).next_double(); }

std::vector<float> normal_logits(int n, float scale, bool bf16, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return bf16 ? bf16_round(v) : v;
}

std::vector<uint32_t> random_mask(int n_words, double density, std::mt19937& rng) {
  std::bernoulli_distribution keep(density);
  std::vector<uint32_t> m(n_words, 0);
  for (int i = 0; i < n_words * 32; ++i)
    if (keep(rng)) m[i / 32] |= 1u << (i % 32);
  return m;
}

bool allowed(const Case& c, int id) {
  const int limit = c.p.vocab_limit > 0 ? std::min(c.p.vocab_limit, c.n) : c.n;
  if (id < 0 || id >= limit) return false;
  if (c.p.mask_offset < 0) return true;
  return id < 32 * c.p.mask_words && ((c.mask[id / 32] >> (id % 32)) & 1u);
}

TEST(CudaSampling, GreedyEqualsHostArgmaxWithTies) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(1);
  for (int n : {1000, 4097, 128256}) {
    std::vector<Case> cases;
    for (int r = 0; r < 12; ++r) {
      Case c;
      c.n = n;
      c.logits = normal_logits(n, 2.0f, r % 2 == 0, rng);
      // The maximum at two ids (lowest wins) in some rows; all -inf in one (index 0).
      if (r % 3 == 0) {
        const int a = static_cast<int>(rng() % n), b = static_cast<int>(rng() % n);
        c.logits[a] = c.logits[b] = 50.0f;
      }
      if (r == 5) std::fill(c.logits.begin(), c.logits.end(), -INFINITY);
      c.p.temperature = 0.0f;
      cases.push_back(std::move(c));
    }
    const auto got = run_gpu(cases, false);
    for (size_t r = 0; r < cases.size(); ++r)
      EXPECT_EQ(got[r], Sampler::argmax(cases[r].logits)) << "n " << n << " row " << r;
  }
}

// Random rows with every filter combination: the GPU's token equals the host sampler's.
TEST(CudaSampling, MatchesHostSamplerForTheSameDraw) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(2);
  const float temps[] = {0.0f, 0.3f, 0.7f, 1.0f, 1.6f};
  const int top_ks[] = {-1, 1, 2, 7, 50, 1000};
  const float top_ps[] = {1.0f, 0.95f, 0.8f, 0.5f, 0.1f};
  const float min_ps[] = {0.0f, 0.0f, 0.02f, 0.3f};
  const float scales[] = {0.5f, 2.0f, 4.0f, 10.0f};
  int checked = 0, sampled = 0;
  for (int n : {3001, 32000, 128256}) {
    for (bool in_place : {false, true}) {
      std::vector<Case> cases;
      const int rows = n == 128256 ? 24 : 96;
      for (int r = 0; r < rows; ++r) {
        Case c;
        c.n = n;
        c.logits = normal_logits(n, scales[rng() % 4], rng() % 2 == 0, rng);
        c.p.temperature = temps[rng() % 5];
        c.p.top_k = top_ks[rng() % 6];
        c.p.top_p = top_ps[rng() % 5];
        c.p.min_p = min_ps[rng() % 4];
        if (rng() % 4 == 0) c.p.vocab_limit = n - static_cast<int>(rng() % 500) - 1;
        if (rng() % 3 == 0) {
          // A grammar bitset; sometimes shorter than the vocabulary (the rest is masked).
          const int words = (n + 31) / 32 - (rng() % 2 == 0 ? 0 : 3);
          c.mask = random_mask(words, rng() % 2 == 0 ? 0.5 : 0.01, rng);
          c.p.mask_offset = 0;
          c.p.mask_words = words;
        }
        c.seed = rng();
        c.p.u = first_draw(c.seed);
        sampled += c.p.temperature > 0 ? 1 : 0;
        cases.push_back(std::move(c));
      }
      const auto got = run_gpu(cases, in_place);
      for (size_t r = 0; r < cases.size(); ++r) {
        const Case& c = cases[r];
        const int32_t want = host_sample(c);
        EXPECT_EQ(got[r], want) << "n " << n << " row " << r << " T " << c.p.temperature
                                << " top_k " << c.p.top_k << " top_p " << c.p.top_p << " min_p "
                                << c.p.min_p << " u " << c.p.u << " limit " << c.p.vocab_limit
                                << " mask " << (c.p.mask_offset >= 0);
        EXPECT_TRUE(allowed(c, got[r])) << "row " << r << " token " << got[r];
        ++checked;
      }
    }
  }
  EXPECT_GT(sampled, checked / 2);
}

TEST(CudaSampling, TopK1IsGreedy) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(3);
  std::vector<Case> cases;
  for (int r = 0; r < 32; ++r) {
    Case c;
    c.n = 50000;
    c.logits = normal_logits(c.n, 3.0f, r % 2 == 1, rng);
    c.p.temperature = 1.5f;
    c.p.top_k = 1;
    c.p.u = (r + 0.5) / 32;
    cases.push_back(std::move(c));
  }
  const auto got = run_gpu(cases, false);
  for (size_t r = 0; r < cases.size(); ++r)
    EXPECT_EQ(got[r], Sampler::argmax(cases[r].logits)) << "row " << r;
}

// Bitsets and the vocabulary limit: over many draws at a high temperature, nothing outside them
// comes out, and the draws spread over the allowed ids.
TEST(CudaSampling, MaskedIdsAndIdsPastTheLimitAreNeverDrawn) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(4);
  const int n = 20000, limit = 19000;
  std::vector<float> logits = normal_logits(n, 1.0f, false, rng);
  // The largest logits sit where nothing may be drawn.
  for (int i = limit; i < n; ++i) logits[i] = 30.0f;
  std::vector<uint32_t> mask = random_mask((n + 31) / 32, 0.3, rng);
  std::vector<Case> cases;
  for (int r = 0; r < 512; ++r) {
    Case c;
    c.n = n;
    c.logits = logits;
    c.p.temperature = r % 64 == 0 ? 0.0f : 2.0f;
    c.p.vocab_limit = limit;
    c.p.mask_offset = 0;
    c.p.mask_words = static_cast<int32_t>(mask.size());
    c.mask = mask;
    c.p.u = (r + 0.5) / 512;
    cases.push_back(std::move(c));
  }
  const auto got = run_gpu(cases, true);
  std::set<int32_t> distinct;
  for (size_t r = 0; r < cases.size(); ++r) {
    EXPECT_TRUE(allowed(cases[r], got[r])) << "row " << r << " token " << got[r];
    distinct.insert(got[r]);
  }
  EXPECT_GT(distinct.size(), 300u);  // ~5700 allowed ids of similar weight, 504 sampled rows
}

// The kept set of top-k / min-p / top-p, computed here by sorting, on logits with distinct
// values: u at the middle of each kept entry's share of the cumulative mass must draw exactly that
// entry, in the order the host walks (probability order with top-p, id order without). Large sets
// are subsampled, always with their last 200 entries (the top-p boundary).
TEST(CudaSampling, KeepSetsEqualTheHostDefinition) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(5);
  struct Filter {
    float temperature, top_p, min_p;
    int top_k;
  };
  const Filter filters[] = {{0.8f, 0.6f, 0.0f, -1},  {1.0f, 1.0f, 0.05f, -1},
                            {1.2f, 0.9f, 0.01f, 60}, {0.5f, 1.0f, 0.0f, 25},
                            {1.0f, 0.3f, 0.0f, -1},  {1.0f, 0.95f, 0.0f, 400}};
  for (const Filter& f : filters) {
    const int n = 50000;
    // Distinct values: a random permutation of an evenly spaced grid (spacing 1e-4, far above
    // float resolution here), plus a little noise that keeps the order.
    std::vector<float> logits(n);
    std::uniform_real_distribution<float> jitter(0.0f, 2e-5f);
    for (int i = 0; i < n; ++i) logits[i] = -2.5f + 1e-4f * static_cast<float>(i) + jitter(rng);
    std::shuffle(logits.begin(), logits.end(), rng);
    const float maxl = *std::max_element(logits.begin(), logits.end());
    std::vector<std::pair<float, int32_t>> cand;  // (p, id), p as the host computes it
    for (int i = 0; i < n; ++i) {
      const float e = std::exp((logits[i] - maxl) * (1.0f / f.temperature));
      if (e > 0.0f && e >= f.min_p) cand.emplace_back(e, i);
    }
    std::sort(cand.begin(), cand.end(), [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    if (f.top_k > 0 && static_cast<size_t>(f.top_k) < cand.size()) cand.resize(f.top_k);
    if (f.top_p < 1.0f) {
      double total = 0, cum = 0;
      for (const auto& c : cand) total += c.first;
      size_t keep = 0;
      while (keep < cand.size()) {
        cum += cand[keep++].first;
        if (cum >= f.top_p * total) break;
      }
      cand.resize(keep);
    } else {
      std::sort(cand.begin(), cand.end(),
                [](const auto& a, const auto& b) { return a.second < b.second; });
    }
    ASSERT_GT(cand.size(), 3u);
    double total = 0;
    for (const auto& c : cand) total += c.first;
    const size_t stride = cand.size() > 1200 ? cand.size() / 1000 : 1;
    std::vector<Case> cases;
    std::vector<int32_t> want;
    double before = 0;
    for (size_t i = 0; i < cand.size(); ++i) {
      const double u = (before + 0.5 * cand[i].first) / total;
      before += cand[i].first;
      if (i % stride != 0 && i + 200 < cand.size()) continue;
      Case k;
      k.n = n;
      k.logits = logits;
      k.p.temperature = f.temperature;
      k.p.top_p = f.top_p;
      k.p.min_p = f.min_p;
      k.p.top_k = f.top_k;
      k.p.u = u;
      cases.push_back(std::move(k));
      want.push_back(cand[i].second);
    }
    const auto got = run_gpu(cases, false);
    int wrong = 0;
    for (size_t i = 0; i < want.size(); ++i) wrong += got[i] != want[i] ? 1 : 0;
    EXPECT_EQ(wrong, 0) << "filter T " << f.temperature << " top_p " << f.top_p << " min_p "
                        << f.min_p << " top_k " << f.top_k << ": " << cand.size() << " kept, "
                        << want.size() << " checked";
    std::printf("keep set T %.1f top_p %.2f min_p %.2f top_k %d: %zu kept, %zu checked\n",
                f.temperature, f.top_p, f.min_p, f.top_k, cand.size(), want.size());
  }
}

TEST(CudaSampling, DeterministicAndInPlaceAgrees) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(6);
  std::vector<Case> cases;
  for (int r = 0; r < 64; ++r) {
    Case c;
    c.n = 32768;
    c.logits = normal_logits(c.n, 2.0f, r % 2 == 0, rng);
    c.p.temperature = 1.0f;
    c.p.top_p = r % 3 == 0 ? 1.0f : 0.9f;
    c.p.top_k = r % 4 == 0 ? 40 : -1;
    c.p.u = static_cast<double>(rng()) / 4294967296.0;
    cases.push_back(std::move(c));
  }
  const auto a = run_gpu(cases, false);
  const auto b = run_gpu(cases, true);
  const auto c = run_gpu(cases, false);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
}

// ---------------------------------------------------------------- the engine on the GPU

class CudaEngineSampling : public ::testing::Test {
 protected:
  void SetUp() override {
    SGL_REQUIRE_GPU();
    path_ = (std::filesystem::temp_directory_path() /
             ("sgl_cuda_sampling_" + std::to_string(getpid()) + ".gguf"))
                .string();
    TinyModelSpec spec;  // a tiny random Llama with a byte-level tokenizer (cuda_test_util.h)
    spec.seed = 9;
    ASSERT_TRUE(write_tiny_gguf(path_, spec).is_ok());
  }
  void TearDown() override {
    if (!path_.empty()) std::filesystem::remove(path_);
  }
  std::unique_ptr<runtime::Engine> make() {
    runtime::EngineOptions o;
    o.device = "cuda";
    o.max_total_tokens = 4096;
    o.threads = 2;
    auto e = runtime::Engine::create(path_, o);
    EXPECT_TRUE(e.is_ok()) << e.status().to_string();
    return e.is_ok() ? std::move(e).value() : nullptr;
  }
  static runtime::GenerateOutput run(runtime::Engine& e, runtime::GenerateRequest r) {
    auto h = e.submit(std::move(r));
    EXPECT_TRUE(h.is_ok()) << h.status().to_string();
    if (!h.is_ok()) return {};
    auto out = (*h)->wait();
    EXPECT_TRUE(out.is_ok());
    return out.is_ok() ? std::move(out).value() : runtime::GenerateOutput{};
  }
  std::string path_;
};

TEST_F(CudaEngineSampling, ConstrainedSeededGenerationOnTheDevice) {
  auto e = make();
  ASSERT_TRUE(e);
  const std::vector<int32_t> prompt = {'H', 'i', ' ', 't', 'h', 'e', 'r', 'e', ':', ' '};
  auto request = [&](const std::string& rid) {
    runtime::GenerateRequest r;
    r.rid = rid;
    r.input_ids = prompt;
    r.params.max_new_tokens = 64;
    r.params.temperature = 1.0f;
    r.params.top_p = 0.95f;
    r.params.sampling_seed = 1234;
    r.params.regex = std::string(R"([a-z]{3,6}-\d{4})");
    return r;
  };
  const runtime::GenerateOutput a = run(*e, request("a"));
  EXPECT_EQ(a.finish_reason.kind, runtime::FinishReason::kStop) << a.text;
  EXPECT_TRUE(std::regex_match(a.text, std::regex(R"([a-z]{3,6}-\d{4})"))) << a.text;
  const int64_t device_tokens = e->stats().device_sampled_tokens;
  EXPECT_GE(device_tokens, 1);  // jump-forward may append the forced rest
  // The same seed: the same tokens (the host RNG is the only source of randomness).
  const runtime::GenerateOutput b = run(*e, request("b"));
  EXPECT_EQ(a.output_ids, b.output_ids);

  // Unconstrained seeded sampling: many device samples, reproducible; a different seed differs.
  auto free_req = [&](uint64_t seed) {
    runtime::GenerateRequest r;
    r.rid = "f" + std::to_string(seed);
    r.input_ids = prompt;
    r.params.max_new_tokens = 40;
    r.params.ignore_eos = true;
    r.params.temperature = 1.3f;
    r.params.top_k = 100;
    r.params.min_p = 0.01f;
    r.params.sampling_seed = seed;
    return r;
  };
  const auto f1 = run(*e, free_req(5)), f2 = run(*e, free_req(5)), f3 = run(*e, free_req(6));
  EXPECT_EQ(f1.output_ids.size(), 40u);
  EXPECT_EQ(f1.output_ids, f2.output_ids);
  EXPECT_NE(f1.output_ids, f3.output_ids);
  for (int32_t t : f1.output_ids) EXPECT_LT(t, static_cast<int32_t>(kTinyVocab));

  // A JSON schema: valid JSON with the required fields.
  runtime::GenerateRequest j;
  j.rid = "j";
  j.input_ids = prompt;
  j.params.max_new_tokens = 200;
  j.params.temperature = 0.8f;
  j.params.sampling_seed = 77;
  j.params.json_schema = std::string(
      R"({"type":"object","properties":{"name":{"type":"string","maxLength":8},)"
      R"("age":{"type":"integer","minimum":0,"maximum":120}},"required":["name","age"],)"
      R"("additionalProperties":false})");
  const auto jo = run(*e, j);
  EXPECT_EQ(jo.finish_reason.kind, runtime::FinishReason::kStop) << jo.text;
  auto parsed = nlohmann::json::parse(jo.text, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << jo.text;
  EXPECT_TRUE(parsed["name"].is_string()) << jo.text;
  EXPECT_TRUE(parsed["age"].is_number_integer()) << jo.text;
  EXPECT_GT(e->stats().device_sampled_tokens, device_tokens + 80);

  // A request that needs the host path (logprobs) still works beside it.
  runtime::GenerateRequest lp = free_req(5);
  lp.params.return_logprob = true;
  const auto lo = run(*e, lp);
  EXPECT_EQ(lo.output_logprobs.size(), 40u);
}

// ---------------------------------------------------------------- timing (not a pass/fail test)

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

TEST(CudaSampling, DISABLED_Timing) {
  SGL_REQUIRE_GPU();
  // 1. The kernel alone: 64 rows x 128256 (Llama-3) logits, 8 rotating input sets.
  const int rows = 64, n = 128256, sets = 8;
  std::mt19937 rng(7);
  std::vector<float> host(static_cast<size_t>(rows) * n * sets);
  std::normal_distribution<float> d(0.0f, 3.0f);
  for (float& x : host) x = d(rng);
  DevBuf<float> logits(host), work(static_cast<size_t>(rows) * n);
  DevBuf<int32_t> out(rows);
  DevBuf<uint32_t> masks(std::vector<uint32_t>(1, 0));
  struct Mode {
    const char* name;
    float temperature, top_p, min_p;
    int top_k;
  };
  const Mode modes[] = {{"greedy", 0.0f, 1.0f, 0.0f, -1},     {"T=1 (all)", 1.0f, 1.0f, 0.0f, -1},
                        {"min_p=0.05", 1.0f, 1.0f, 0.05f, -1}, {"top_k=50", 1.0f, 1.0f, 0.0f, 50},
                        {"top_p=0.9", 1.0f, 0.9f, 0.0f, -1},
                        {"top_k=50 top_p=0.9", 0.7f, 0.9f, 0.0f, 50}};
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::printf("sample kernel, %d rows x %d vocab (median of 40, CUDA events):\n", rows, n);
  for (const Mode& m : modes) {
    std::vector<SampleParams> ps(rows);
    for (int r = 0; r < rows; ++r) {
      ps[r].temperature = m.temperature;
      ps[r].top_p = m.top_p;
      ps[r].min_p = m.min_p;
      ps[r].top_k = m.top_k;
      ps[r].u = (r + 0.5) / rows;
    }
    DevBuf<SampleParams> dp(ps);
    std::vector<double> ms;
    for (int it = 0; it < 45; ++it) {
      const float* in = logits.get() + static_cast<size_t>(it % sets) * rows * n;
      cudaEventRecord(e0);
      backend::cuda::launch_sample(in, work.get(), rows, n, dp.get(), masks.get(), out.get(),
                                   nullptr);
      cudaEventRecord(e1);
      cudaEventSynchronize(e1);
      float t = 0;
      cudaEventElapsedTime(&t, e0, e1);
      if (it >= 5) ms.push_back(t);
    }
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    std::printf("  %-20s %8.1f us\n", m.name, 1000 * median(ms));
  }

  // 2. Decode steps of batch 64 on the Llama-3.1-8B shape (dummy weights): forward (logits copied
  // to the host) + host sampling, against forward_sample.
  // From the repository root when run there (a GPU machine with a copy of the tree), else the
  // source tree this binary was built from.
  std::string cfg_path = "tests/data/configs/llama-3.1-8b.json";
  if (!std::filesystem::exists(cfg_path))
    cfg_path = std::string(SGL_TEST_DATA_DIR) + "/configs/llama-3.1-8b.json";
  auto cfg = model::ModelConfig::from_hf_config_file(cfg_path);
  ASSERT_TRUE(cfg.is_ok()) << cfg.status().to_string();
  backend::CudaBackendOptions o;
  o.kv_dtype = backend::KvDtype::kBF16;
  o.kv_capacity = 64 * 300;
  o.progress = false;
  auto be = backend::CudaBackend::create_dummy(*cfg, o);
  ASSERT_TRUE(be.is_ok()) << be.status().to_string();
  auto& b = **be;
  const int ctx = 256;
  std::vector<std::vector<int32_t>> toks(rows), slots(rows);
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i <= ctx; ++i) {
      toks[r].push_back(static_cast<int32_t>(rng() % 128000));
      slots[r].push_back(r * 300 + i);
    }
  {
    backend::ForwardBatch pre;
    for (int r = 0; r < rows; ++r) pre.add_sequence(toks[r].data(), ctx, 0, slots[r].data(), true);
    backend::Logits lg;
    ASSERT_TRUE(b.forward(pre, &lg).is_ok());
  }
  backend::ForwardBatch dec;
  for (int r = 0; r < rows; ++r) dec.add_sequence(&toks[r][ctx], 1, ctx, slots[r].data(), true);
  std::vector<backend::SampleRow> srows(rows);
  for (int r = 0; r < rows; ++r) {
    srows[r].temperature = 0.8f;
    srows[r].top_p = 0.9f;
    srows[r].top_k = 50;
    srows[r].u = (r + 0.5) / rows;
  }
  std::vector<backend::SampleRow> grows(rows);
  for (auto& g : grows) g.temperature = 0.0f;
  SamplingParams sp;
  sp.temperature = 0.8f;
  sp.top_p = 0.9f;
  sp.top_k = 50;
  using Clk = std::chrono::steady_clock;
  auto secs = [](Clk::time_point a, Clk::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  std::vector<double> t_fwd, t_host, t_dev, t_dev_greedy, t_greedy;
  backend::Logits lg;
  std::vector<int32_t> tokens;
  std::vector<std::pair<float, int32_t>> scratch;
  for (int it = 0; it < 23; ++it) {
    auto t0 = Clk::now();
    ASSERT_TRUE(b.forward(dec, &lg).is_ok());
    auto t1 = Clk::now();
    for (int r = 0; r < rows; ++r) {
      SamplerState st(sp, {}, static_cast<uint64_t>(r));
      Sampler::sample(std::span<const float>(lg.row(r), n), sp, st, scratch);
    }
    auto t2 = Clk::now();
    ASSERT_TRUE(b.forward_sample(dec, srows, &tokens).is_ok());
    auto t3 = Clk::now();
    ASSERT_TRUE(b.forward_sample(dec, grows, &tokens).is_ok());
    auto t4 = Clk::now();
    ASSERT_TRUE(b.forward_greedy(dec, &tokens).is_ok());
    auto t5 = Clk::now();
    if (it < 3) continue;
    t_fwd.push_back(secs(t0, t1));
    t_host.push_back(secs(t1, t2));
    t_dev.push_back(secs(t2, t3));
    t_dev_greedy.push_back(secs(t3, t4));
    t_greedy.push_back(secs(t4, t5));
  }
  std::printf("decode step, batch %d at %d context, Llama-3.1-8B shape (median of 20):\n", rows,
              ctx);
  std::printf("  forward (logits to host)         %8.3f ms\n", 1000 * median(t_fwd));
  std::printf("  + host Sampler::sample, 64 rows  %8.3f ms (top_k 50, top_p 0.9)\n",
              1000 * median(t_host));
  std::printf("  forward_sample top_k 50 top_p .9 %8.3f ms\n", 1000 * median(t_dev));
  std::printf("  forward_sample greedy            %8.3f ms\n", 1000 * median(t_dev_greedy));
  std::printf("  forward_greedy (existing)        %8.3f ms\n", 1000 * median(t_greedy));
}

}  // namespace
}  // namespace sgl::cuda_test

#endif  // SGL_WITH_CUDA
