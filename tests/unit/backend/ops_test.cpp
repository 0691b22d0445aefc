// Elementwise kernels and RoPE on every ISA path against double-precision references.
#include "backend/cpu/ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/cpu/attention.h"
#include "support/fp16.h"
#include "test_util.h"

namespace sgl::backend::cpu {
namespace {

using model::GgmlType;
using testing::isa_str;
using testing::IsaScope;
using testing::random_floats;
using testing::supported_isas;

TEST(OpsTest, RmsNormMatchesReference) {
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    for (int64_t n : {7, 64, 100, 576}) {
      SCOPED_TRACE(isa_str(isa) + " n " + std::to_string(n));
      const int rows = 3;
      auto x = random_floats(static_cast<size_t>(n) * rows, 1, 3.0f);
      const auto w = random_floats(static_cast<size_t>(n), 2);
      std::vector<float> y(x.size());
      rms_norm(x.data(), w.data(), y.data(), rows, n, 1e-5f);
      for (int r = 0; r < rows; ++r) {
        double ss = 0;
        for (int64_t i = 0; i < n; ++i) ss += double(x[r * n + i]) * x[r * n + i];
        const double scale = 1.0 / std::sqrt(ss / n + 1e-5);
        for (int64_t i = 0; i < n; ++i) {
          const double ref = x[r * n + i] * scale * w[i];
          EXPECT_NEAR(y[r * n + i], ref, 2e-6 * std::fabs(ref) + 1e-6);
        }
      }
      // In place gives the same bits.
      std::vector<float> inplace = x;
      rms_norm(inplace.data(), w.data(), inplace.data(), rows, n, 1e-5f);
      EXPECT_EQ(0, std::memcmp(inplace.data(), y.data(), y.size() * sizeof(float)));
    }
  }
}

TEST(OpsTest, SiluMulMatchesReference) {
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    SCOPED_TRACE(isa_str(isa));
    auto g = random_floats(1541, 3, 4.0f);
    g[0] = 100.0f;
    g[1] = -100.0f;
    g[2] = 0.0f;
    g[1540] = -90.0f;
    const auto u = random_floats(1541, 4);
    std::vector<float> y(g.size());
    silu_mul(g.data(), u.data(), y.data(), static_cast<int64_t>(g.size()));
    for (size_t i = 0; i < g.size(); ++i) {
      const double ref = g[i] / (1.0 + std::exp(-double(g[i]))) * u[i];
      ASSERT_TRUE(std::isfinite(y[i])) << i;
      EXPECT_NEAR(y[i], ref, 1e-6 * std::fabs(ref) + 1e-6) << i << " g " << g[i];
    }
  }
}

TEST(OpsTest, SoftmaxMatchesReference) {
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    for (int64_t n : {1, 5, 16, 49, 1000}) {
      SCOPED_TRACE(isa_str(isa) + " n " + std::to_string(n));
      auto x = random_floats(static_cast<size_t>(n), 5, 5.0f);
      x[0] += 1000.0f;  // large logits must not overflow
      std::vector<float> y = x;
      softmax(y.data(), n);
      double mx = x[0];
      for (float v : x) mx = std::max(mx, double(v));
      double sum = 0;
      for (float v : x) sum += std::exp(v - mx);
      double total = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double ref = std::exp(x[i] - mx) / sum;
        EXPECT_NEAR(y[i], ref, 1e-6 * ref + 1e-9);
        total += y[i];
      }
      EXPECT_NEAR(total, 1.0, 1e-5);
    }
  }
}

TEST(OpsTest, AddIsExact) {
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    const auto a = random_floats(103, 6), b = random_floats(103, 7);
    std::vector<float> y(103);
    add(a.data(), b.data(), y.data(), 103);
    for (int i = 0; i < 103; ++i) EXPECT_EQ(y[i], a[i] + b[i]);
  }
}

// Reference rotation in double precision.
void rope_reference(const RopeParams& p, const std::vector<int32_t>& pos, std::vector<double>* x,
                    int n_heads) {
  const int d = p.rope_dim == 0 ? p.head_dim : p.rope_dim;
  for (size_t t = 0; t < pos.size(); ++t)
    for (int h = 0; h < n_heads; ++h) {
      double* v = x->data() + (t * n_heads + h) * p.head_dim;
      for (int i = 0; i < d / 2; ++i) {
        double theta = pos[t] * double(p.freq_scale) * std::pow(double(p.freq_base), -2.0 * i / d);
        if (p.freq_factors != nullptr) theta /= p.freq_factors[i];
        const int a = p.layout == RopeLayout::kNorm ? 2 * i : i;
        const int b = p.layout == RopeLayout::kNorm ? 2 * i + 1 : i + d / 2;
        const double x0 = v[a], x1 = v[b];
        v[a] = x0 * std::cos(theta) - x1 * std::sin(theta);
        v[b] = x0 * std::sin(theta) + x1 * std::cos(theta);
      }
    }
}

TEST(OpsTest, RopeMatchesReferenceForBothLayouts) {
  const std::vector<int32_t> positions = {0, 1, 7, 100, 4095, 5000};
  std::vector<float> factors(32);
  for (int i = 0; i < 32; ++i) factors[i] = 1.0f + 0.25f * i;
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    for (RopeLayout layout : {RopeLayout::kNorm, RopeLayout::kNeox}) {
      for (int variant = 0; variant < 3; ++variant) {
        RopeParams p;
        p.layout = layout;
        p.head_dim = 64;
        p.freq_base = variant == 0 ? 10000.0f : 500000.0f;
        if (variant == 1) {
          p.freq_scale = 0.25f;
          p.freq_factors = factors.data();
        }
        if (variant == 2) p.rope_dim = 32;  // partial rotary: dims 32..63 untouched
        SCOPED_TRACE(isa_str(isa) + (layout == RopeLayout::kNorm ? " norm" : " neox") +
                     " variant " + std::to_string(variant));
        const int n_heads = 3;
        const int n = static_cast<int>(positions.size());
        const auto x0 = random_floats(static_cast<size_t>(n) * n_heads * 64, 8);
        std::vector<float> x = x0;
        const int d = p.rope_dim == 0 ? 64 : p.rope_dim;
        std::vector<float> table(static_cast<size_t>(n) * d);
        rope_table(p, positions.data(), n, table.data());
        rope_apply(p, table.data(), x.data(), n, n_heads);
        std::vector<double> ref(x0.begin(), x0.end());
        rope_reference(p, positions, &ref, n_heads);
        for (size_t i = 0; i < x.size(); ++i) {
          EXPECT_NEAR(x[i], ref[i], 2e-6 * (std::fabs(ref[i]) + 1.0)) << i;
          if (variant == 2 && i % 64 >= 32) {
            EXPECT_EQ(x[i], x0[i]);
          }
        }
      }
    }
  }
}

// Adjacent-pair rotation of interleaved data equals rotate-half of the de-interleaved data (the
// GGUF Q/K permutation): an identity independent of the reference above.
TEST(OpsTest, RopeNormEqualsNeoxOnPermutedData) {
  const int hd = 64;
  const std::vector<int32_t> positions = {3, 1234};
  const auto x = random_floats(2 * hd, 9);
  std::vector<float> a = x, b(2 * hd);
  for (int t = 0; t < 2; ++t)
    for (int i = 0; i < hd / 2; ++i) {
      b[t * hd + i] = x[t * hd + 2 * i];
      b[t * hd + hd / 2 + i] = x[t * hd + 2 * i + 1];
    }
  RopeParams pn, px;
  pn.head_dim = px.head_dim = hd;
  pn.layout = RopeLayout::kNorm;
  px.layout = RopeLayout::kNeox;
  std::vector<float> table(2 * hd);
  rope_table(pn, positions.data(), 2, table.data());
  rope_apply(pn, table.data(), a.data(), 2, 1);
  rope_apply(px, table.data(), b.data(), 2, 1);
  for (int t = 0; t < 2; ++t)
    for (int i = 0; i < hd / 2; ++i) {
      EXPECT_NEAR(a[t * hd + 2 * i], b[t * hd + i], 1e-6);
      EXPECT_NEAR(a[t * hd + 2 * i + 1], b[t * hd + hd / 2 + i], 1e-6);
    }
}

TEST(OpsTest, RopeHonoursTokenStride) {
  // Q rows inside a fused QKV buffer: stride larger than n_heads * head_dim.
  RopeParams p;
  p.head_dim = 16;
  const std::vector<int32_t> positions = {5, 9};
  const auto x0 = random_floats(2 * 48, 10);
  std::vector<float> x = x0, packed(2 * 32);
  for (int t = 0; t < 2; ++t) std::memcpy(&packed[t * 32], &x0[t * 48], 32 * sizeof(float));
  std::vector<float> table(2 * 16);
  rope_table(p, positions.data(), 2, table.data());
  rope_apply(p, table.data(), x.data(), 2, 2, 48);
  rope_apply(p, table.data(), packed.data(), 2, 2);
  for (int t = 0; t < 2; ++t) {
    for (int i = 0; i < 32; ++i) EXPECT_EQ(x[t * 48 + i], packed[t * 32 + i]);
    for (int i = 32; i < 48; ++i) EXPECT_EQ(x[t * 48 + i], x0[t * 48 + i]);
  }
}

TEST(OpsTest, EmbeddingLookupDequantizesOneRow) {
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_1, GgmlType::kQ6_K, GgmlType::kF16}) {
    const auto w = testing::make_weights(type, 10, 256, 11);
    const WeightView v{type, 10, 256, w.data(), w.stride};
    std::vector<float> row(256);
    embedding_lookup(v, 7, row.data());
    for (int i = 0; i < 256; ++i) EXPECT_EQ(row[i], w.dequant[7 * 256 + i]);
  }
}

TEST(OpsTest, KvStoreConvertsLikeScalarConversions) {
  std::vector<float> v = random_floats(64, 12, 100.0f);
  const float specials[] = {0.0f,
                            -0.0f,
                            1e-8f,
                            -3e-6f,
                            65504.0f,
                            65520.0f,
                            1e30f,
                            -1e-40f,
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            1.00390625f,
                            1.01171875f};
  for (size_t i = 0; i < sizeof(specials) / sizeof(float); ++i) v[i] = specials[i];
  v[20] = std::numeric_limits<float>::quiet_NaN();
  const int32_t slot = 2;
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    SCOPED_TRACE(isa_str(isa));
    std::vector<uint16_t> k16(4 * 64), v16(4 * 64);
    store_kv(GgmlType::kF16, k16.data(), v16.data(), 64, v.data(), v.data(), &slot, 1);
    std::vector<uint16_t> kb(4 * 64), vb(4 * 64);
    store_kv(GgmlType::kBF16, kb.data(), vb.data(), 64, v.data(), v.data(), &slot, 1);
    for (int i = 0; i < 64; ++i) {
      EXPECT_EQ(k16[2 * 64 + i], fp32_to_fp16(v[i])) << i << " " << v[i];
      EXPECT_EQ(kb[2 * 64 + i], fp32_to_bf16(v[i])) << i << " " << v[i];
    }
    EXPECT_EQ(k16[0], 0);  // other slots untouched
  }
}

}  // namespace
}  // namespace sgl::backend::cpu
