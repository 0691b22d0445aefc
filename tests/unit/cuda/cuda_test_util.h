// Helpers of the CUDA tests: device buffers, bf16 conversions, the normalized error, and the skip
// rule (no CUDA in the build, or no GPU on the machine: GTEST_SKIP).
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#ifdef SGL_WITH_CUDA
#include <cuda_runtime.h>
#endif

#include "backend/forward_batch.h"
#include "model/gguf_writer.h"
#include "models/loader.h"
#include "runtime/sampler.h"
#include "support/fp16.h"
#include "support/status.h"

namespace sgl::cuda_test {

#ifdef SGL_WITH_CUDA
inline bool have_gpu() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return n > 0;
}

#define SGL_REQUIRE_GPU()                                             \
  do {                                                                \
    if (!::sgl::cuda_test::have_gpu()) GTEST_SKIP() << "no CUDA GPU"; \
  } while (0)

#define SGL_CUDA_ASSERT(call) \
  ASSERT_EQ((call), cudaSuccess) << cudaGetErrorString(cudaGetLastError())

// A device copy of a host vector (or an uninitialized buffer of n elements), freed on scope exit.
template <typename T>
class DevBuf {
 public:
  explicit DevBuf(size_t n) : n_(n) {
    if (cudaMalloc(&p_, std::max<size_t>(n, 1) * sizeof(T)) != cudaSuccess) p_ = nullptr;
    // Poison: every output the kernels must write is checked, so 0xFF bytes (NaN) show omissions.
    if (p_) cudaMemset(p_, 0xFF, std::max<size_t>(n, 1) * sizeof(T));
  }
  explicit DevBuf(const std::vector<T>& v) : DevBuf(v.size()) {
    if (p_ && !v.empty()) cudaMemcpy(p_, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
  }
  ~DevBuf() {
    if (p_) cudaFree(p_);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  T* get() const { return static_cast<T*>(p_); }
  std::vector<T> host() const {
    std::vector<T> v(n_);
    cudaDeviceSynchronize();
    if (n_) cudaMemcpy(v.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost);
    return v;
  }

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};
#endif

inline std::vector<float> random_floats(size_t n, std::mt19937& rng, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

inline std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = fp32_to_bf16(v[i]);
  return o;
}
inline std::vector<float> from_bf16(const std::vector<uint16_t>& v) {
  std::vector<float> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = bf16_to_fp32(v[i]);
  return o;
}
// Values exactly representable in bf16 (so CPU and GPU see the same inputs).
inline std::vector<float> bf16_round(const std::vector<float>& v) { return from_bf16(to_bf16(v)); }

// ||a - b|| / ||b|| (L2); +inf when any value of a is not finite.
inline double norm_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Sizes of a ragged batch of (n_past, n_new) sequences: new tokens, K/V rows in all, the longest.
struct RaggedSizes {
  int n_tokens = 0, total_kv = 0, max_kv = 1;
};
inline RaggedSizes ragged_sizes(const std::vector<std::pair<int, int>>& seqs) {
  RaggedSizes r;
  for (auto [p, nn] : seqs) {
    r.n_tokens += nn;
    r.total_kv += p + nn;
    r.max_kv = std::max(r.max_kv, p + nn);
  }
  return r;
}

// The slots 0 .. capacity-1 in random order: sequences take consecutive runs of it, so their
// K/V rows lie scattered through the pool as in a long-running server.
inline std::vector<int32_t> shuffled_slots(int capacity, std::mt19937& rng) {
  std::vector<int32_t> perm(capacity);
  for (int i = 0; i < capacity; ++i) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), rng);
  return perm;
}

// A tiny random Llama-family model written as GGUF with f32 weights (cuda_model_test.cpp,
// cuda_tp_test.cpp): GPT-2 byte tokens + control tokens up to kTinyVocab. f16_matrices: the
// weight matrices as F16 tensors instead (an f16 checkpoint); big_weight != 0: the first element
// of blk.0.ffn_down.weight is set to it (a value beyond f16's range, say).
struct TinyModelSpec {
  std::string arch = "llama";
  uint32_t n_embd = 64, n_layer = 2, n_ff = 128, n_head = 4, n_head_kv = 2, head_dim = 16;
  bool bias = false, rope_freqs = false, tied = false;
  uint32_t seed = 1;
  bool f16_matrices = false;
  float big_weight = 0.0f;
};

constexpr uint32_t kTinyVocab = 320;

inline Status write_tiny_gguf(const std::string& path, const TinyModelSpec& s) {
  std::mt19937 rng(s.seed);
  model::GgufWriter w;
  const std::string a = s.arch + ".";
  // GPT-2's 256 byte symbols (bytes_to_unicode: printable Latin-1 bytes stand for themselves,
  // the others for U+0100 onwards in byte order) + control tokens up to kTinyVocab.
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const uint32_t cp = printable ? b : next++;
    std::string u;
    if (cp < 0x80) {
      u += char(cp);
    } else {
      u += char(0xC0 | (cp >> 6));
      u += char(0x80 | (cp & 0x3F));
    }
    tokens.push_back(u);
    types.push_back(1);
  }
  while (tokens.size() < kTinyVocab) {
    tokens.push_back("<|extra_" + std::to_string(tokens.size()) + "|>");
    types.push_back(3);
  }
  w.add_string("general.architecture", s.arch)
      .add_u32(a + "context_length", 1024)
      .add_u32(a + "embedding_length", s.n_embd)
      .add_u32(a + "block_count", s.n_layer)
      .add_u32(a + "feed_forward_length", s.n_ff)
      .add_u32(a + "attention.head_count", s.n_head)
      .add_u32(a + "attention.head_count_kv", s.n_head_kv)
      .add_u32(a + "attention.key_length", s.head_dim)
      .add_u32(a + "attention.value_length", s.head_dim)
      .add_u32(a + "rope.dimension_count", s.head_dim)
      .add_f32(a + "rope.freq_base", 10000.0f)
      .add_f32(a + "attention.layer_norm_rms_epsilon", 1e-5f)
      .add_string("tokenizer.ggml.model", "gpt2")
      .add_string("tokenizer.ggml.pre", "default")
      .add_string_array("tokenizer.ggml.tokens", tokens)
      .add_i32_array("tokenizer.ggml.token_type", types)
      .add_string_array("tokenizer.ggml.merges", {})
      .add_u32("tokenizer.ggml.eos_token_id", kTinyVocab - 1)
      .add_bool("tokenizer.ggml.add_bos_token", false);
  auto normal = [&](size_t n, float mean, float sd) {
    std::normal_distribution<float> d(mean, sd);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
  };
  auto matrix = [&](const std::string& name, uint64_t n_in, uint64_t n_out, float scale) {
    std::vector<float> v = normal(n_in * n_out, 0, scale / std::sqrt(float(n_in)));
    if (s.big_weight != 0.0f && name == "blk.0.ffn_down.weight") v[0] = s.big_weight;
    if (!s.f16_matrices) {
      w.add_f32_tensor(name, {n_in, n_out}, v);
      return;
    }
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = fp32_to_fp16(v[i]);
    w.add_tensor(name, {n_in, n_out}, model::GgmlType::kF16, h.data(), h.size() * 2);
  };
  const uint64_t E = s.n_embd, F = s.n_ff, Q = uint64_t{s.n_head} * s.head_dim,
                 KV = uint64_t{s.n_head_kv} * s.head_dim;
  matrix("token_embd.weight", E, kTinyVocab, std::sqrt(float(E)));
  w.add_f32_tensor("output_norm.weight", {E}, normal(E, 1, 0.2f));
  if (!s.tied) matrix("output.weight", E, kTinyVocab, 4);
  if (s.rope_freqs) {
    std::uniform_real_distribution<float> u(-1.4f, 1.4f);
    std::vector<float> f(s.head_dim / 2);
    for (float& x : f) x = std::exp(u(rng));
    w.add_f32_tensor("rope_freqs.weight", {s.head_dim / 2}, f);
  }
  for (uint32_t l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    w.add_f32_tensor(p + "attn_norm.weight", {E}, normal(E, 1, 0.2f));
    matrix(p + "attn_q.weight", E, Q, 2);
    matrix(p + "attn_k.weight", E, KV, 2);
    matrix(p + "attn_v.weight", E, KV, 1);
    if (s.bias) {
      w.add_f32_tensor(p + "attn_q.bias", {Q}, normal(Q, 0, 0.5f));
      w.add_f32_tensor(p + "attn_k.bias", {KV}, normal(KV, 0, 0.5f));
      w.add_f32_tensor(p + "attn_v.bias", {KV}, normal(KV, 0, 0.5f));
    }
    matrix(p + "attn_output.weight", Q, E, 1);
    w.add_f32_tensor(p + "ffn_norm.weight", {E}, normal(E, 1, 0.2f));
    matrix(p + "ffn_gate.weight", E, F, 1.5f);
    matrix(p + "ffn_up.weight", E, F, 1);
    matrix(p + "ffn_down.weight", F, E, 1);
  }
  return w.write_file(path);
}

// Fixture base of the tiny-model tests (cuda_model_test.cpp, cuda_tp_test.cpp): the parameter's
// model written to a temporary GGUF, loaded into model_, the file removed afterwards. Derived
// fixtures call load_tiny() from SetUp after their skip checks.
class TinyModelTest : public ::testing::TestWithParam<TinyModelSpec> {
 protected:
  void load_tiny(const std::string& tag) {
    path_ = (std::filesystem::temp_directory_path() /
             ("sgl_" + tag + "_" + std::to_string(getpid()) + "_" + GetParam().arch + ".gguf"))
                .string();
    ASSERT_TRUE(write_tiny_gguf(path_, GetParam()).is_ok());
    auto m = models::load_model(path_);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    model_ = std::move(*m);
  }
  void TearDown() override {
    if (!path_.empty()) std::filesystem::remove(path_);
  }
  std::string path_;
  std::unique_ptr<models::LoadedModel> model_;
};

inline std::vector<int32_t> random_tokens(int n, std::mt19937& rng) {
  std::vector<int32_t> t(n);
  for (auto& x : t) x = int32_t(rng() % (kTinyVocab - 1));
  return t;
}

inline std::vector<float> row_of(const backend::Logits& l, int r) {
  return std::vector<float>(l.row(r), l.row(r) + l.n_vocab);
}

// Logits compared row by row against a reference: the worst and mean normalized error, and how
// many rows agree on the top-1 token. add() also expects each row's error below tol (when > 0).
struct RowStats {
  double worst = 0, sum = 0;
  int rows = 0, top1_same = 0;
  double mean() const { return rows > 0 ? sum / rows : 0.0; }
  double add(const std::vector<float>& got, const std::vector<float>& ref, double tol = 0,
             const std::string& what = "") {
    const double e = norm_err(got, ref);
    worst = std::max(worst, e);
    sum += e;
    top1_same += runtime::Sampler::argmax(got) == runtime::Sampler::argmax(ref);
    ++rows;
    if (tol > 0) EXPECT_LT(e, tol) << what << " row " << rows - 1;
    return e;
  }
  void add(const backend::Logits& got, const backend::Logits& ref, double tol = 0,
           const std::string& what = "") {
    ASSERT_EQ(got.n_rows, ref.n_rows) << what;
    ASSERT_EQ(got.n_vocab, ref.n_vocab) << what;
    for (int r = 0; r < ref.n_rows; ++r) add(row_of(got, r), row_of(ref, r), tol, what);
  }
};

}  // namespace sgl::cuda_test
