// matmul on every ISA path against a double-precision reference on the dequantized weights.
//
// Error model: quantized weights are multiplied with int8-quantized activations, so each
// product carries the activation rounding error |x - x_q| <= amax(block of x) / 254. The tests
// assert that hard bound per output element (plus f32 summation slack), and a much tighter
// normalized RMS error.
//
// Bit-identity across ISA paths (asserted below): K-quant matmuls are identical on every path
// (exact integer sums, same scalar f32 epilogue); avx2 and avx2vnni are identical for every
// type. The 32-block and float-weight kernels sum in different orders on scalar / avx2 /
// avx512 and differ in the last bits.
#include "backend/cpu/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "support/thread_pool.h"
#include "test_util.h"

namespace sgl::backend::cpu {
namespace {

using model::GgmlType;
using testing::isa_str;
using testing::IsaScope;
using testing::make_random_payload_weights;
using testing::make_weights;
using testing::random_floats;
using testing::supported_isas;
using testing::view;
using testing::Weights;


bool is_float_type(GgmlType t) {
  return t == GgmlType::kF32 || t == GgmlType::kF16 || t == GgmlType::kBF16;
}
bool is_k_type(GgmlType t) {
  return t == GgmlType::kQ2_K || t == GgmlType::kQ3_K || t == GgmlType::kQ4_K ||
         t == GgmlType::kQ5_K || t == GgmlType::kQ6_K;
}

// Checks y [n_tokens, n_out] against the reference; returns the normalized RMS error.
double check_against_reference(const Weights& w, const std::vector<float>& x, int n_tokens,
                               const std::vector<float>& y) {
  const int64_t n_in = w.n_in, n_out = w.n_out;
  // Activation quantization block: none for float weights, 256 for K formats (and Q8_K's
  // dequantize fallback, which runs in f32), 32 otherwise.
  const bool act_quant = !is_float_type(w.type) && w.type != GgmlType::kQ8_K;
  const int qblock = is_k_type(w.type) ? 256 : 32;
  double se = 0, sr = 0;
  for (int t = 0; t < n_tokens; ++t) {
    const float* xt = x.data() + static_cast<size_t>(t) * n_in;
    std::vector<double> amax(static_cast<size_t>(n_in / qblock + 1), 0.0);
    for (int64_t i = 0; i < n_in; ++i)
      amax[i / qblock] = std::max(amax[i / qblock], std::fabs(double(xt[i])));
    for (int64_t r = 0; r < n_out; ++r) {
      const float* wr = w.dequant.data() + r * n_in;
      double ref = 0, abs_sum = 0, qbound = 0;
      for (int64_t i = 0; i < n_in; ++i) {
        ref += double(wr[i]) * xt[i];
        abs_sum += std::fabs(double(wr[i]) * xt[i]);
        qbound += std::fabs(double(wr[i])) * amax[i / qblock] / 254.0;
      }
      const double got = y[static_cast<size_t>(t) * n_out + r];
      const double bound = (act_quant ? qbound * 1.001 : 0.0) + 5e-5 * abs_sum + 1e-6;
      EXPECT_LE(std::fabs(got - ref), bound)
          << "token " << t << " row " << r << " ref " << ref << " got " << got;
      se += (got - ref) * (got - ref);
      sr += ref * ref;
    }
  }
  return sr > 0 ? std::sqrt(se / sr) : 0.0;
}

struct Shape {
  int64_t n_out, n_in;
  int n_tokens;
};

std::vector<Shape> shapes_for(GgmlType type) {
  std::vector<int64_t> n_ins;
  if (is_k_type(type) || type == GgmlType::kQ8_K) {
    n_ins = {256, 768, 4096};
  } else if (is_float_type(type)) {
    n_ins = {37, 576, 1000};
  } else {
    n_ins = {32, 96, 800, 1536, 4096};  // 800 = 25 blocks: not a multiple of 4 or 8 blocks
  }
  std::vector<Shape> shapes;
  for (int64_t n_in : n_ins)
    for (int n_tokens : {1, 3, 17, 64}) shapes.push_back({n_in >= 4096 ? 19 : 37, n_in, n_tokens});
  shapes.push_back({1, n_ins[1], 5});
  shapes.push_back({7, n_ins[0], 2});
  return shapes;
}

class MatmulTypeTest : public ::testing::TestWithParam<GgmlType> {};

TEST_P(MatmulTypeTest, MatchesReferenceOnEveryIsa) {
  const GgmlType type = GetParam();
  ThreadPool pool(2);
  uint32_t seed = 100;
  for (const Shape& s : shapes_for(type)) {
    const Weights w = make_weights(type, s.n_out, s.n_in, seed++);
    const auto x = random_floats(static_cast<size_t>(s.n_in) * s.n_tokens, seed++);
    for (Isa isa : supported_isas()) {
      IsaScope scope(isa);
      SCOPED_TRACE(isa_str(isa) + " n_out " + std::to_string(s.n_out) + " n_in " +
                   std::to_string(s.n_in) + " n_tokens " + std::to_string(s.n_tokens));
      std::vector<float> y(static_cast<size_t>(s.n_out) * s.n_tokens, -1.0f);
      matmul(view(w), x.data(), y.data(), s.n_tokens, s.n_tokens % 2 ? &pool : nullptr);
      const double rms = check_against_reference(w, x, s.n_tokens, y);
      EXPECT_LT(rms, is_float_type(type) ? 5e-6 : 2.5e-2);
    }
  }
}

TEST_P(MatmulTypeTest, RandomBlockPayloadsMatchReference) {
  const GgmlType type = GetParam();
  if (is_float_type(type)) GTEST_SKIP() << "float weights have no block payload";
  const int64_t n_in = is_k_type(type) || type == GgmlType::kQ8_K ? 512 : 224;
  const Weights w = make_random_payload_weights(type, 29, n_in, 77);
  const auto x = random_floats(static_cast<size_t>(n_in) * 6, 78);
  ThreadPool pool(2);
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    SCOPED_TRACE(isa_str(isa));
    std::vector<float> y(29 * 6);
    matmul(view(w), x.data(), y.data(), 6, &pool);
    check_against_reference(w, x, 6, y);
  }
}

TEST_P(MatmulTypeTest, PaddedRowStrideAndOutputStride) {
  const GgmlType type = GetParam();
  const int64_t n_in = is_k_type(type) || type == GgmlType::kQ8_K ? 256 : 64;
  const Weights packed = make_weights(type, 9, n_in, 5);
  const Weights padded = make_weights(type, 9, n_in, 5, /*pad=*/6);
  const auto x = random_floats(static_cast<size_t>(n_in) * 3, 6);
  std::vector<float> y1(9 * 3), y2(20 * 3, 123.0f);
  matmul(view(packed), x.data(), y1.data(), 3, nullptr);
  const MatmulOutput out{view(padded), y2.data() + 4, 20};
  matmul_multi(std::span<const MatmulOutput>(&out, 1), x.data(), 0, 3, nullptr);
  for (int t = 0; t < 3; ++t) {
    for (int r = 0; r < 9; ++r) EXPECT_EQ(y2[t * 20 + 4 + r], y1[t * 9 + r]);
    EXPECT_EQ(y2[t * 20 + 3], 123.0f);  // untouched around the columns
    EXPECT_EQ(y2[t * 20 + 13], 123.0f);
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatmulTypeTest,
                         ::testing::Values(GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16,
                                           GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0,
                                           GgmlType::kQ5_1, GgmlType::kQ8_0, GgmlType::kQ8_1,
                                           GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ4_K,
                                           GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kQ8_K),
                         [](const auto& info) {
                           return std::string(model::ggml_type_name(info.param));
                         });

// A row of y is bit-identical whether computed alone, in batches of 5, or in one batch of 64,
// with 1 or 2 threads.
TEST(MatmulTest, BatchInvariance) {
  const int n_tokens = 64;
  ThreadPool one(1), two(2);
  for (GgmlType type :
       {GgmlType::kQ4_1, GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ5_1, GgmlType::kQ5_0,
        GgmlType::kQ4_K, GgmlType::kQ6_K, GgmlType::kF16, GgmlType::kBF16, GgmlType::kF32}) {
    const int64_t n_in = is_k_type(type) ? 768 : 576, n_out = 203;
    const Weights w = make_weights(type, n_out, n_in, 9);
    const auto x = random_floats(static_cast<size_t>(n_in) * n_tokens, 10);
    for (Isa isa : supported_isas()) {
      IsaScope scope(isa);
      SCOPED_TRACE(isa_str(isa) + " " + std::string(model::ggml_type_name(type)));
      const size_t n = static_cast<size_t>(n_out) * n_tokens;
      std::vector<float> alone(n), batch5_1(n), batch5_2(n), all_1(n), all_2(n);
      for (int t = 0; t < n_tokens; ++t)
        matmul(view(w), x.data() + t * n_in, alone.data() + t * n_out, 1, nullptr);
      for (int t = 0; t < n_tokens; t += 5) {
        const int nt = std::min(5, n_tokens - t);
        matmul(view(w), x.data() + t * n_in, batch5_1.data() + t * n_out, nt, &one);
        matmul(view(w), x.data() + t * n_in, batch5_2.data() + t * n_out, nt, &two);
      }
      matmul(view(w), x.data(), all_1.data(), n_tokens, &one);
      matmul(view(w), x.data(), all_2.data(), n_tokens, &two);
      EXPECT_EQ(0, std::memcmp(alone.data(), batch5_1.data(), n * sizeof(float)));
      EXPECT_EQ(0, std::memcmp(alone.data(), batch5_2.data(), n * sizeof(float)));
      EXPECT_EQ(0, std::memcmp(alone.data(), all_1.data(), n * sizeof(float)));
      EXPECT_EQ(0, std::memcmp(alone.data(), all_2.data(), n * sizeof(float)));
    }
  }
}

// Larger batches take the token-chunked task split (more than 64 tokens) and stay invariant.
TEST(MatmulTest, BatchInvarianceAcrossTokenChunks) {
  const int n_tokens = 150;
  const Weights w = make_weights(GgmlType::kQ4_1, 64, 576, 11);
  const auto x = random_floats(576 * n_tokens, 12);
  ThreadPool two(2);
  std::vector<float> all(64 * n_tokens), alone(64);
  matmul(view(w), x.data(), all.data(), n_tokens, &two);
  for (int t : {0, 63, 64, 100, 149}) {
    matmul(view(w), x.data() + t * 576, alone.data(), 1, nullptr);
    EXPECT_EQ(0, std::memcmp(alone.data(), all.data() + t * 64, 64 * sizeof(float))) << t;
  }
}

TEST(MatmulTest, AvxVnniAndAvx2AreBitIdentical) {
  if (!isa_supported(Isa::kAvx2Vnni)) GTEST_SKIP() << "no AVX-VNNI on this CPU";
  for (GgmlType type :
       {GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ8_0,
        GgmlType::kQ8_1, GgmlType::kQ4_K, GgmlType::kQ6_K, GgmlType::kQ3_K}) {
    const int64_t n_in = is_k_type(type) ? 512 : 800;
    const Weights w = make_random_payload_weights(type, 31, n_in, 21);
    const auto x = random_floats(static_cast<size_t>(n_in) * 7, 22);
    std::vector<float> a(31 * 7), b(31 * 7);
    {
      IsaScope s(Isa::kAvx2);
      matmul(view(w), x.data(), a.data(), 7, nullptr);
    }
    {
      IsaScope s(Isa::kAvx2Vnni);
      matmul(view(w), x.data(), b.data(), 7, nullptr);
    }
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)))
        << model::ggml_type_name(type);
  }
}

TEST(MatmulTest, KQuantsAreBitIdenticalAcrossIsas) {
  for (GgmlType type :
       {GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K}) {
    const Weights w = make_weights(type, 23, 1024, 31);
    const auto x = random_floats(1024 * 5, 32);
    std::vector<float> ref(23 * 5), y(23 * 5);
    {
      IsaScope s(Isa::kScalar);
      matmul(view(w), x.data(), ref.data(), 5, nullptr);
    }
    for (Isa isa : supported_isas()) {
      IsaScope s(isa);
      matmul(view(w), x.data(), y.data(), 5, nullptr);
      EXPECT_EQ(0, std::memcmp(ref.data(), y.data(), y.size() * sizeof(float)))
          << model::ggml_type_name(type) << " " << isa_str(isa);
    }
  }
}

TEST(MatmulTest, MultiEqualsSeparateCalls) {
  const int64_t n_in = 768;
  const int n_tokens = 9;
  const Weights q = make_weights(GgmlType::kQ4_1, 96, n_in, 41);
  const Weights k = make_weights(GgmlType::kQ8_0, 32, n_in, 42);
  const Weights v = make_weights(GgmlType::kQ4_K, 32, n_in, 43);
  const Weights f = make_weights(GgmlType::kF16, 5, n_in, 44);
  const auto x = random_floats(static_cast<size_t>(n_in) * n_tokens, 45);
  ThreadPool pool(2);
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    SCOPED_TRACE(isa_str(isa));
    const size_t ld = 96 + 32 + 32 + 5;
    std::vector<float> fused(ld * n_tokens);
    const MatmulOutput outs[] = {{view(q), fused.data(), ld},
                                 {view(k), fused.data() + 96, ld},
                                 {view(v), fused.data() + 128, ld},
                                 {view(f), fused.data() + 160, ld}};
    MatmulWorkspace ws;
    matmul_multi(outs, x.data(), 0, n_tokens, &pool, &ws);
    int col = 0;
    for (const Weights* w : {&q, &k, &v, &f}) {
      std::vector<float> y(static_cast<size_t>(w->n_out) * n_tokens);
      matmul(view(*w), x.data(), y.data(), n_tokens, nullptr);
      for (int t = 0; t < n_tokens; ++t)
        EXPECT_EQ(0, std::memcmp(y.data() + t * w->n_out, fused.data() + t * ld + col,
                                 w->n_out * sizeof(float)));
      col += static_cast<int>(w->n_out);
    }
  }
}

TEST(MatmulTest, WorkspaceStopsGrowing) {
  const Weights w = make_weights(GgmlType::kQ4_1, 16, 576, 51);
  const auto x = random_floats(576 * 32, 52);
  std::vector<float> y(16 * 32);
  MatmulWorkspace ws;
  matmul(view(w), x.data(), y.data(), 32, nullptr, &ws);
  const size_t cap = ws.capacity();
  EXPECT_GT(cap, 0u);
  for (int i = 0; i < 5; ++i) matmul(view(w), x.data(), y.data(), 1 + i * 7, nullptr, &ws);
  EXPECT_EQ(ws.capacity(), cap);
}

TEST(MatmulTest, ZeroTokensAndSupportQuery) {
  const Weights w = make_weights(GgmlType::kQ4_1, 4, 32, 1);
  float y = 42.0f;
  matmul(view(w), nullptr, &y, 0, nullptr);
  EXPECT_EQ(y, 42.0f);
  EXPECT_TRUE(matmul_supported(GgmlType::kQ4_1));
  EXPECT_TRUE(matmul_supported(GgmlType::kQ8_K));
  EXPECT_FALSE(matmul_supported(GgmlType::kI32));
}

}  // namespace
}  // namespace sgl::backend::cpu
