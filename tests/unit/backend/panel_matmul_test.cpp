// Weights repacked into panels (PackedWeights, WeightLayout::kPanels: Q4_1 and Q8_0, 16 rows
// interleaved) and their kernels, on every ISA path.
//
// The panel arithmetic is defined per row by the portable reference (matmul_panel_ref in
// kernels_generic.h): each block's integer dot exactly, then acc = fma(isum, d_w * d_x, acc)
// [+ fma(m_w, s_x, acc)] block after block. The AVX-512 kernel computes that in each lane, so the
// tests assert bit-identity across ISAs (and hence against the reference), bit-identity whatever
// the batch, tile, thread count and the row's place in its panel, and closeness to a double
// reference on the dequantized weights within the activation-quantization bound.
//
// Error model: activations are quantized like llama.cpp's Q8_1 / Q8_0 blocks: q = round(x * 127 /
// amax), d = amax / 127 rounded to f16, s = d * sum(q) rounded to f16. Per element the activation
// error is at most amax / 254 (rounding of q) + 127 * |d - d16| <= amax * (1/254 + 1/2048); a
// Q4_1 block adds |m| * |s16 - d16 * sum(q)| <= |m| * amax * 32 * 2^-10 over its 32 values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/kernel_table.h"
#include "backend/cpu/matmul.h"
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


float block_min(const Weights& w, int64_t r, int64_t b) {
  if (w.type != GgmlType::kQ4_1) return 0.0f;
  uint16_t h;
  std::memcpy(&h, w.bytes.data() + r * w.stride + b * 20 + 2, 2);
  return fp16_to_fp32(h);
}

// y [n_tokens, n_out] against the double reference; returns the normalized RMS error.
double check_panels(const Weights& w, const std::vector<float>& x, int n_tokens,
                    const std::vector<float>& y) {
  const int64_t n_in = w.n_in, n_out = w.n_out, nb = n_in / 32;
  double se = 0, sr = 0;
  for (int t = 0; t < n_tokens; ++t) {
    const float* xt = x.data() + static_cast<size_t>(t) * n_in;
    std::vector<double> amax(static_cast<size_t>(nb), 0.0);
    for (int64_t i = 0; i < n_in; ++i)
      amax[i / 32] = std::max(amax[i / 32], std::fabs(double(xt[i])));
    for (int64_t r = 0; r < n_out; ++r) {
      const float* wr = w.dequant.data() + r * n_in;
      double ref = 0, abs_sum = 0, bound = 0;
      for (int64_t i = 0; i < n_in; ++i) {
        ref += double(wr[i]) * xt[i];
        abs_sum += std::fabs(double(wr[i]) * xt[i]);
        bound += std::fabs(double(wr[i])) * amax[i / 32] * (1.0 / 254 + 1.0 / 2048);
      }
      for (int64_t b = 0; b < nb; ++b)
        bound += std::fabs(double(block_min(w, r, b))) * amax[b] * 32.0 / 1024.0;
      const double got = y[static_cast<size_t>(t) * n_out + r];
      EXPECT_LE(std::fabs(got - ref), bound * 1.001 + 5e-5 * abs_sum + 1e-6)
          << "token " << t << " row " << r << " ref " << ref << " got " << got;
      se += (got - ref) * (got - ref);
      sr += ref * ref;
    }
  }
  return sr > 0 ? std::sqrt(se / sr) : 0.0;
}

class PanelTest : public ::testing::TestWithParam<GgmlType> {};

TEST_P(PanelTest, PackedLayoutAndSize) {
  const GgmlType type = GetParam();
  const Weights w = make_weights(type, 37, 96, 1);
  const PackedWeights p = PackedWeights::force(view(w));
  ASSERT_TRUE(p.packed());
  EXPECT_EQ(p.view().layout, WeightLayout::kPanels);
  EXPECT_EQ(p.view().n_out, 37);
  EXPECT_EQ(p.view().n_in, 96);
  // 3 panels of 16 rows; same bytes per row as the file's blocks, the last panel padded.
  EXPECT_EQ(p.bytes(), 3 * detail::panel_bytes(type, 96));
  EXPECT_EQ(detail::panel_bytes(type, 96), (16 * w.stride + 63) / 64 * 64);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p.view().data) % 64, 0u);
  // The constructor packs only where the ISA has its own panel kernel.
  const PackedWeights auto_packed(view(w));
  EXPECT_EQ(auto_packed.packed(), detail::kernels().native_panels);
  // Moving keeps the view valid.
  PackedWeights moved = PackedWeights::force(view(w));
  const void* data = moved.view().data;
  PackedWeights other(std::move(moved));
  EXPECT_EQ(other.view().data, data);
  EXPECT_FALSE(moved.packed());  // NOLINT(bugprone-use-after-move)
}

TEST_P(PanelTest, MatchesReferenceAndIsBitIdenticalOnEveryIsa) {
  const GgmlType type = GetParam();
  ThreadPool pool(2);
  uint32_t seed = 300;
  // Odd row counts (partial last panels), one-block rows, rows of 25 blocks, tiles of 1-8 tokens
  // and their tails.
  for (int64_t n_in : {32, 96, 800, 1536}) {
    for (int64_t n_out : {1, 15, 16, 17, 50}) {
      for (int n_tokens : {1, 2, 3, 8, 9, 17}) {
        const Weights w = make_weights(type, n_out, n_in, seed++);
        const PackedWeights p = PackedWeights::force(view(w));
        const auto x = random_floats(static_cast<size_t>(n_in) * n_tokens, seed++);
        std::vector<float> first;
        for (Isa isa : supported_isas()) {
          IsaScope scope(isa);
          SCOPED_TRACE(isa_str(isa) + " n_out " + std::to_string(n_out) + " n_in " +
                       std::to_string(n_in) + " n_tokens " + std::to_string(n_tokens));
          std::vector<float> y(static_cast<size_t>(n_out) * n_tokens, -1.0f);
          matmul(p.view(), x.data(), y.data(), n_tokens, n_tokens % 2 ? &pool : nullptr);
          const double rms = check_panels(w, x, n_tokens, y);
          EXPECT_LT(rms, 2.5e-2);
          if (first.empty()) {
            first = y;
          } else {
            EXPECT_EQ(0, std::memcmp(first.data(), y.data(), y.size() * sizeof(float)));
          }
        }
      }
    }
  }
}

TEST_P(PanelTest, RandomBlockPayloads) {
  // Every bit pattern of the quants (Q8_0's -128 included) and random f16 scales and mins.
  const GgmlType type = GetParam();
  const Weights w = make_random_payload_weights(type, 29, 224, 77);
  const PackedWeights p = PackedWeights::force(view(w));
  const auto x = random_floats(224 * 6, 78);
  std::vector<float> first;
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    SCOPED_TRACE(isa_str(isa));
    std::vector<float> y(29 * 6);
    matmul(p.view(), x.data(), y.data(), 6, nullptr);
    check_panels(w, x, 6, y);
    if (first.empty()) {
      first = y;
    } else {
      EXPECT_EQ(0, std::memcmp(first.data(), y.data(), y.size() * sizeof(float)));
    }
  }
}

TEST_P(PanelTest, BatchInvariance) {
  // A token's row is bit-identical alone, in batches of 5 (tile tails), in one batch of 70
  // (tiles of 8 and more than one token chunk), with 1 or 2 threads; a row's result does not
  // depend on its place in a panel (the same row at another offset).
  const GgmlType type = GetParam();
  const int n_tokens = 70;
  const int64_t n_in = 576, n_out = 203;
  const Weights w = make_weights(type, n_out, n_in, 9);
  const PackedWeights p = PackedWeights::force(view(w));
  const auto x = random_floats(static_cast<size_t>(n_in) * n_tokens, 10);
  ThreadPool one(1), two(2);
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    SCOPED_TRACE(isa_str(isa));
    const size_t n = static_cast<size_t>(n_out) * n_tokens;
    std::vector<float> alone(n), batch5(n), all_1(n), all_2(n);
    for (int t = 0; t < n_tokens; ++t)
      matmul(p.view(), x.data() + t * n_in, alone.data() + t * n_out, 1, nullptr);
    for (int t = 0; t < n_tokens; t += 5)
      matmul(p.view(), x.data() + t * n_in, batch5.data() + t * n_out, std::min(5, n_tokens - t),
             &two);
    matmul(p.view(), x.data(), all_1.data(), n_tokens, &one);
    matmul(p.view(), x.data(), all_2.data(), n_tokens, &two);
    EXPECT_EQ(0, std::memcmp(alone.data(), batch5.data(), n * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(alone.data(), all_1.data(), n * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(alone.data(), all_2.data(), n * sizeof(float)));
  }
  // Rows 5.. of w as their own matrix: every row moves to another lane of another panel.
  Weights shifted = w;
  shifted.n_out = n_out - 5;
  shifted.bytes.erase(shifted.bytes.begin(), shifted.bytes.begin() + 5 * w.stride);
  const PackedWeights ps = PackedWeights::force(view(shifted));
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    std::vector<float> a(static_cast<size_t>(n_out) * 3), b(static_cast<size_t>(n_out - 5) * 3);
    matmul(p.view(), x.data(), a.data(), 3, nullptr);
    matmul(ps.view(), x.data(), b.data(), 3, nullptr);
    for (int t = 0; t < 3; ++t)
      EXPECT_EQ(0, std::memcmp(a.data() + t * n_out + 5, b.data() + t * (n_out - 5),
                               (n_out - 5) * sizeof(float)))
          << isa_str(isa) << " token " << t;
  }
}

TEST_P(PanelTest, OutputStrideAndMultiWithRowLayouts) {
  // A partial last panel never writes past its columns; panels mix with row-layout weights in
  // one matmul_multi, each output bit-identical to its own call.
  const GgmlType type = GetParam();
  const int64_t n_in = 256;
  const Weights a = make_weights(type, 21, n_in, 5);
  const Weights b = make_weights(GgmlType::kQ4_0, 7, n_in, 6);
  const PackedWeights pa = PackedWeights::force(view(a));
  const auto x = random_floats(static_cast<size_t>(n_in) * 11, 7);
  ThreadPool pool(2);
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    SCOPED_TRACE(isa_str(isa));
    const size_t ld = 40;
    std::vector<float> fused(ld * 11, 123.0f);
    const MatmulOutput outs[] = {{pa.view(), fused.data() + 2, ld},
                                 {view(b), fused.data() + 25, ld}};
    matmul_multi(outs, x.data(), 0, 11, &pool);
    std::vector<float> ya(21 * 11), yb(7 * 11);
    matmul(pa.view(), x.data(), ya.data(), 11, nullptr);
    matmul(view(b), x.data(), yb.data(), 11, nullptr);
    for (int t = 0; t < 11; ++t) {
      EXPECT_EQ(0, std::memcmp(ya.data() + t * 21, fused.data() + t * ld + 2, 21 * sizeof(float)));
      EXPECT_EQ(0, std::memcmp(yb.data() + t * 7, fused.data() + t * ld + 25, 7 * sizeof(float)));
      EXPECT_EQ(fused[t * ld + 1], 123.0f);
      EXPECT_EQ(fused[t * ld + 23], 123.0f);
      EXPECT_EQ(fused[t * ld + 24], 123.0f);
      EXPECT_EQ(fused[t * ld + 32], 123.0f);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(PanelTypes, PanelTest, ::testing::Values(GgmlType::kQ4_1, GgmlType::kQ8_0),
                         [](const auto& info) {
                           return std::string(model::ggml_type_name(info.param));
                         });

TEST(PanelTest, OtherTypesAreNotPacked) {
  for (GgmlType type : {GgmlType::kQ4_0, GgmlType::kQ5_1, GgmlType::kQ4_K, GgmlType::kF16}) {
    const Weights w = make_weights(type, 16, 256, 3);
    const PackedWeights p = PackedWeights::force(view(w));
    EXPECT_FALSE(p.packed()) << model::ggml_type_name(type);
    EXPECT_EQ(p.view().data, w.data());
    EXPECT_EQ(p.view().layout, WeightLayout::kRows);
  }
}

// The Q8_1-style activation blocks: every ISA's quantizer gives the same bytes, with q, d and s
// as llama.cpp's x86 quantize_row_q8_1 defines them (recomputed here from the definition).
TEST(PanelTest, ActivationBlocksMatchTheDefinition) {
  const int64_t n_in = 800;
  auto x = random_floats(n_in, 90, 3.0f);
  for (int j = 64; j < 96; ++j) x[j] = 0.0f;             // an all-zero block
  for (int j = 96; j < 128; ++j) x[j] = 0.5f * (j % 3);  // exact ties at .5 after scaling
  const detail::Q8BlkLayout lay = detail::q8blk_layout(n_in);
  std::vector<uint8_t> want(lay.row_bytes, 0);
  {
    auto* qs = reinterpret_cast<int8_t*>(want.data() + lay.qs_off);
    auto* d = reinterpret_cast<float*>(want.data() + lay.d_off);
    auto* s = reinterpret_cast<float*>(want.data() + lay.s_off);
    auto* c = reinterpret_cast<int32_t*>(want.data() + lay.c_off);
    for (int64_t b = 0; b < lay.nb; ++b) {
      float amax = 0.0f;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
      const float df = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
      int sum = 0;
      for (int j = 0; j < 32; ++j) {
        const int q = static_cast<int>(std::nearbyint(x[b * 32 + j] * id));
        qs[b * 32 + j] = static_cast<int8_t>(q);
        sum += q;
      }
      d[b] = fp16_to_fp32(fp32_to_fp16(df));
      s[b] = fp16_to_fp32(fp32_to_fp16(df * static_cast<float>(sum)));
      c[b] = -128 * sum;
    }
  }
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    std::vector<uint8_t> got(lay.row_bytes, 0);
    detail::kernels().quantize_q8blk(x.data(), n_in, got.data());
    EXPECT_EQ(0, std::memcmp(want.data(), got.data(), lay.row_bytes)) << isa_str(isa);
  }
}

}  // namespace
}  // namespace sgl::backend::cpu
