// Attention against a naive double-precision softmax(q k^T) v, on every ISA path, and its
// batch invariance.
#include "backend/cpu/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "support/fp16.h"
#include "support/thread_pool.h"
#include "test_util.h"

namespace sgl::backend::cpu {
namespace {

using model::GgmlType;
using testing::isa_str;
using testing::IsaScope;
using testing::random_floats;
using testing::supported_isas;

// A KV pool with a sequence of n_kv tokens at shuffled slots.
struct Kv {
  GgmlType type;
  int n_head_kv, head_dim, n_slots;
  std::vector<uint8_t> k, v;
  std::vector<int32_t> slots;

  float get(const std::vector<uint8_t>& pool, size_t idx) const {
    switch (type) {
      case GgmlType::kF32:
        return reinterpret_cast<const float*>(pool.data())[idx];
      case GgmlType::kBF16:
        return bf16_to_fp32(reinterpret_cast<const uint16_t*>(pool.data())[idx]);
      default:
        return fp16_to_fp32(reinterpret_cast<const uint16_t*>(pool.data())[idx]);
    }
  }
};

Kv make_kv(GgmlType type, int n_head_kv, int head_dim, int n_kv, uint32_t seed) {
  Kv kv{type, n_head_kv, head_dim, n_kv + 97, {}, {}, {}};
  const size_t elem = type == GgmlType::kF32 ? 4 : 2;
  const int64_t row = static_cast<int64_t>(n_head_kv) * head_dim;
  kv.k.assign(static_cast<size_t>(kv.n_slots) * row * elem, 0);
  kv.v.assign(kv.k.size(), 0);
  std::vector<int32_t> perm(static_cast<size_t>(kv.n_slots));
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937 rng(seed);
  std::shuffle(perm.begin(), perm.end(), rng);
  kv.slots.assign(perm.begin(), perm.begin() + n_kv);
  const auto kf = random_floats(static_cast<size_t>(n_kv) * row, seed + 1, 1.5f);
  const auto vf = random_floats(static_cast<size_t>(n_kv) * row, seed + 2);
  store_kv(type, kv.k.data(), kv.v.data(), row, kf.data(), vf.data(), kv.slots.data(), n_kv);
  return kv;
}

AttentionParams params(const Kv& kv, const std::vector<float>& q, const std::vector<int32_t>& pos,
                       int n_head, std::vector<float>* out) {
  AttentionParams p;
  p.q = q.data();
  p.positions = pos.data();
  p.n_tokens = static_cast<int>(pos.size());
  p.n_head = n_head;
  p.n_head_kv = kv.n_head_kv;
  p.head_dim = kv.head_dim;
  p.k_cache = kv.k.data();
  p.v_cache = kv.v.data();
  p.kv_type = kv.type;
  p.slots = kv.slots.data();
  p.n_kv = static_cast<int>(kv.slots.size());
  p.out = out->data();
  return p;
}

void check_reference(const Kv& kv, const std::vector<float>& q, const std::vector<int32_t>& pos,
                     int n_head, const std::vector<float>& out) {
  const int hd = kv.head_dim, group = n_head / kv.n_head_kv;
  const double scale = 1.0 / std::sqrt(double(hd));
  const size_t row = static_cast<size_t>(kv.n_head_kv) * hd;
  for (size_t i = 0; i < pos.size(); ++i) {
    for (int h = 0; h < n_head; ++h) {
      const int kh = h / group;
      const float* qi = q.data() + (i * n_head + h) * hd;
      std::vector<double> s(static_cast<size_t>(pos[i]) + 1);
      double mx = -1e300;
      for (int j = 0; j <= pos[i]; ++j) {
        const size_t base = static_cast<size_t>(kv.slots[j]) * row + static_cast<size_t>(kh) * hd;
        double dot = 0;
        for (int d = 0; d < hd; ++d) dot += double(qi[d]) * kv.get(kv.k, base + d);
        s[j] = dot * scale;
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (double& e : s) sum += (e = std::exp(e - mx));
      for (int d = 0; d < hd; ++d) {
        double ref = 0, vmax = 0;
        for (int j = 0; j <= pos[i]; ++j) {
          const size_t base = static_cast<size_t>(kv.slots[j]) * row + static_cast<size_t>(kh) * hd;
          ref += s[j] / sum * kv.get(kv.v, base + d);
          vmax = std::max(vmax, std::fabs(double(kv.get(kv.v, base + d))));
        }
        const double got = out[(i * n_head + h) * hd + d];
        ASSERT_NEAR(got, ref, 2e-5 * vmax + 1e-6) << "query " << i << " head " << h << " dim " << d;
      }
    }
  }
}

struct Case {
  GgmlType kv_type;
  int n_head, n_head_kv, head_dim;
  int n_kv;
  std::vector<int32_t> positions;
};

std::vector<int32_t> range(int from, int to) {
  std::vector<int32_t> v(static_cast<size_t>(to - from));
  std::iota(v.begin(), v.end(), from);
  return v;
}

TEST(AttentionTest, MatchesReference) {
  const std::vector<Case> cases = {
      // SmolLM2 shape: 9 query heads over 3 KV heads, head_dim 64.
      {GgmlType::kF16, 9, 3, 64, 40, range(0, 40)},               // prefill from 0
      {GgmlType::kF16, 9, 3, 64, 1201, {1200}},                   // decode, long context
      {GgmlType::kBF16, 9, 3, 64, 1100, range(1050, 1100)},       // chunked prefill, long
      {GgmlType::kF32, 9, 3, 64, 300, {5, 299, 64, 63, 128, 0}},  // unordered positions
      {GgmlType::kF16, 4, 4, 128, 200, range(190, 200)},          // MHA, head_dim 128
      {GgmlType::kF16, 8, 1, 80, 70, range(60, 70)},              // group of 8, head_dim 80
      {GgmlType::kF32, 6, 2, 72, 90, {0, 33, 89}},                // head_dim 72 (scalar path)
  };
  ThreadPool pool(2);
  uint32_t seed = 1;
  for (const Case& c : cases) {
    const Kv kv = make_kv(c.kv_type, c.n_head_kv, c.head_dim, c.n_kv, seed += 10);
    const auto q = random_floats(c.positions.size() * c.n_head * c.head_dim, seed + 5, 0.5f);
    for (Isa isa : supported_isas()) {
      IsaScope scope(isa);
      SCOPED_TRACE(isa_str(isa) + " kv " + std::string(model::ggml_type_name(c.kv_type)) +
                   " heads " + std::to_string(c.n_head) + "/" + std::to_string(c.n_head_kv) +
                   " hd " + std::to_string(c.head_dim) + " n_kv " + std::to_string(c.n_kv));
      std::vector<float> out(q.size(), 7.0f);
      attention(params(kv, q, c.positions, c.n_head, &out), &pool);
      check_reference(kv, q, c.positions, c.n_head, out);
    }
  }
}

TEST(AttentionTest, CustomScaleAndSharpSoftmax) {
  const Kv kv = make_kv(GgmlType::kF32, 1, 16, 130, 3);
  auto q = random_floats(16, 4, 30.0f);  // large scores: softmax close to one-hot
  const std::vector<int32_t> pos = {129};
  std::vector<float> out(16), ref_out(16);
  AttentionParams p = params(kv, q, pos, 1, &out);
  p.scale = 0.5f;
  attention(p, nullptr);
  // Same as the default scale with q multiplied by 0.5 * sqrt(16).
  std::vector<float> q2 = q;
  for (float& v : q2) v *= 2.0f;
  attention(params(kv, q2, pos, 1, &ref_out), nullptr);
  for (int d = 0; d < 16; ++d) EXPECT_NEAR(out[d], ref_out[d], 1e-5f);
  for (float v : out) EXPECT_TRUE(std::isfinite(v));
}

// A query's output is bit-identical alone, in a batch, with 1 or 2 threads, and through
// attention_range.
TEST(AttentionTest, BatchInvariance) {
  ThreadPool one(1), two(2);
  for (GgmlType type : {GgmlType::kF16, GgmlType::kBF16, GgmlType::kF32}) {
    const Kv kv = make_kv(type, 3, 64, 300, 21);
    const std::vector<int32_t> pos = range(230, 300);
    const auto q = random_floats(pos.size() * 9 * 64, 22);
    for (Isa isa : supported_isas()) {
      IsaScope scope(isa);
      SCOPED_TRACE(isa_str(isa) + " " + std::string(model::ggml_type_name(type)));
      std::vector<float> all1(q.size()), all2(q.size());
      attention(params(kv, q, pos, 9, &all1), &one);
      attention(params(kv, q, pos, 9, &all2), &two);
      EXPECT_EQ(0, std::memcmp(all1.data(), all2.data(), all1.size() * sizeof(float)));
      const size_t per = 9 * 64;
      for (size_t i : {size_t{0}, size_t{13}, size_t{69}}) {
        const std::vector<float> qi(q.begin() + i * per, q.begin() + (i + 1) * per);
        const std::vector<int32_t> pi = {pos[i]};
        std::vector<float> alone(per);
        attention(params(kv, qi, pi, 9, &alone), &two);
        EXPECT_EQ(0, std::memcmp(alone.data(), all1.data() + i * per, per * sizeof(float))) << i;
      }
      // attention_range over KV head 1 and queries 5..11 writes the same values.
      std::vector<float> part(q.size(), 0.0f);
      const AttentionParams p = params(kv, q, pos, 9, &part);
      std::vector<float> scratch(attention_scratch_size(p) + 16);
      attention_range(p, 1, 5, 12, scratch.data());
      for (int i = 5; i < 12; ++i)
        EXPECT_EQ(0, std::memcmp(part.data() + i * per + 3 * 64, all1.data() + i * per + 3 * 64,
                                 3 * 64 * sizeof(float)));
    }
  }
}

}  // namespace
}  // namespace sgl::backend::cpu
