// Block formats: sizes against ggml_type.h, hand-built blocks with known values (independent of
// quant.cpp's code paths), and quantize -> dequantize round trips for every type.
#include "model/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <vector>

#include "support/fp16.h"
#include "test_util.h"

namespace sgl::model {
namespace {

using backend::cpu::testing::random_floats;
using backend::cpu::testing::row_bytes;

TEST(QuantTest, BlockSizesMatchGgmlTypeTable) {
  EXPECT_EQ(sizeof(BlockQ4_0), ggml_type_traits(GgmlType::kQ4_0).type_size);
  EXPECT_EQ(sizeof(BlockQ4_1), ggml_type_traits(GgmlType::kQ4_1).type_size);
  EXPECT_EQ(sizeof(BlockQ5_0), ggml_type_traits(GgmlType::kQ5_0).type_size);
  EXPECT_EQ(sizeof(BlockQ5_1), ggml_type_traits(GgmlType::kQ5_1).type_size);
  EXPECT_EQ(sizeof(BlockQ8_0), ggml_type_traits(GgmlType::kQ8_0).type_size);
  EXPECT_EQ(sizeof(BlockQ8_1), ggml_type_traits(GgmlType::kQ8_1).type_size);
  EXPECT_EQ(sizeof(BlockQ2_K), ggml_type_traits(GgmlType::kQ2_K).type_size);
  EXPECT_EQ(sizeof(BlockQ3_K), ggml_type_traits(GgmlType::kQ3_K).type_size);
  EXPECT_EQ(sizeof(BlockQ4_K), ggml_type_traits(GgmlType::kQ4_K).type_size);
  EXPECT_EQ(sizeof(BlockQ5_K), ggml_type_traits(GgmlType::kQ5_K).type_size);
  EXPECT_EQ(sizeof(BlockQ6_K), ggml_type_traits(GgmlType::kQ6_K).type_size);
  EXPECT_EQ(sizeof(BlockQ8_K), ggml_type_traits(GgmlType::kQ8_K).type_size);
  EXPECT_EQ(offsetof(BlockQ2_K, d), 80u);
  EXPECT_EQ(offsetof(BlockQ3_K, d), 108u);
  EXPECT_EQ(offsetof(BlockQ5_K, qs), 48u);
  EXPECT_EQ(offsetof(BlockQ6_K, d), 208u);
}

uint16_t h(float f) { return fp32_to_fp16(f); }

TEST(QuantTest, Q4_0AndQ4_1KnownValues) {
  BlockQ4_0 b{};
  b.d = h(0.5f);
  b.qs[0] = 0x3C;   // element 0: 12 -> (12-8)*0.5 = 2; element 16: 3 -> -2.5
  b.qs[15] = 0xF0;  // element 15: 0 -> -4; element 31: 15 -> 3.5
  float y[32];
  dequantize_row(GgmlType::kQ4_0, &b, y, 32);
  EXPECT_EQ(y[0], 2.0f);
  EXPECT_EQ(y[16], -2.5f);
  EXPECT_EQ(y[15], -4.0f);
  EXPECT_EQ(y[31], 3.5f);
  EXPECT_EQ(y[1], -4.0f);  // nibble 0

  BlockQ4_1 c{};
  c.d = h(0.25f);
  c.m = h(-1.0f);
  c.qs[3] = 0x51;  // element 3: 1 -> -0.75; element 19: 5 -> 0.25
  dequantize_row(GgmlType::kQ4_1, &c, y, 32);
  EXPECT_EQ(y[3], -0.75f);
  EXPECT_EQ(y[19], 0.25f);
  EXPECT_EQ(y[0], -1.0f);
}

TEST(QuantTest, Q5KnownValuesUseQhBitPerElement) {
  BlockQ5_0 b{};
  b.d = h(1.0f);
  const uint32_t qh = (1u << 2) | (1u << 20);  // element 2 and element 20 get bit 4
  std::memcpy(b.qh, &qh, 4);
  b.qs[2] = 0x07;  // element 2: 7 | 16 = 23 -> 7; element 18: 0 -> -16
  b.qs[4] = 0x30;  // element 4: 0 -> -16; element 20: 3 | 16 = 19 -> 3
  float y[32];
  dequantize_row(GgmlType::kQ5_0, &b, y, 32);
  EXPECT_EQ(y[2], 7.0f);
  EXPECT_EQ(y[18], -16.0f);
  EXPECT_EQ(y[4], -16.0f);
  EXPECT_EQ(y[20], 3.0f);

  BlockQ5_1 c{};
  c.d = h(0.5f);
  c.m = h(2.0f);
  std::memcpy(c.qh, &qh, 4);
  c.qs[2] = 0x07;
  dequantize_row(GgmlType::kQ5_1, &c, y, 32);
  EXPECT_EQ(y[2], 23 * 0.5f + 2.0f);
  EXPECT_EQ(y[18], 2.0f);
}

TEST(QuantTest, Q8KnownValues) {
  BlockQ8_0 b{};
  b.d = h(0.125f);
  b.qs[0] = -128;
  b.qs[31] = 127;
  float y[32];
  dequantize_row(GgmlType::kQ8_0, &b, y, 32);
  EXPECT_EQ(y[0], -16.0f);
  EXPECT_EQ(y[31], 15.875f);
  EXPECT_EQ(y[5], 0.0f);

  BlockQ8_K k{};
  k.d = 0.5f;
  k.qs[255] = -3;
  std::vector<float> yk(256);
  dequantize_row(GgmlType::kQ8_K, &k, yk.data(), 256);
  EXPECT_EQ(yk[255], -1.5f);
}

// Q2_K: element 128n + 32j + l is bits 2j of qs[32n + l], scale byte 8n + 2j + (l >= 16).
TEST(QuantTest, Q2_KKnownValues) {
  BlockQ2_K b{};
  b.d = h(0.5f);
  b.dmin = h(0.25f);
  // Element 128 + 32*2 + 17 = 209: n=1, j=2, l=17 -> qs[49] bits 4..5, scale byte 8+4+1 = 13.
  b.qs[49] = 3 << 4;
  b.scales[13] = static_cast<uint8_t>(6 | (4 << 4));  // scale 6, min 4
  // Element 5: n=0, j=0, l=5 -> qs[5] bits 0..1, scale byte 0.
  b.qs[5] = 2;
  b.scales[0] = static_cast<uint8_t>(3 | (1 << 4));
  std::vector<float> y(256);
  dequantize_row(GgmlType::kQ2_K, &b, y.data(), 256);
  EXPECT_EQ(y[209], 0.5f * 6 * 3 - 0.25f * 4);
  EXPECT_EQ(y[208], 0.5f * 6 * 0 - 0.25f * 4);  // l = 16, same group, q = 0
  EXPECT_EQ(y[5], 0.5f * 3 * 2 - 0.25f * 1);
  EXPECT_EQ(y[21], 0.0f);  // group 1 has scale byte 0
}

// Q3_K: 16 six-bit scales: low 4 bits in scales[0..7] (low nibble for groups 0..7, high nibble
// for 8..15), high 2 bits in scales[8 + g % 4] at bit 2 * (g / 4); value d * (sc - 32) * q with
// q = low2 - (hmask bit ? 0 : 4).
TEST(QuantTest, Q3_KKnownValues) {
  BlockQ3_K b{};
  b.d = h(0.25f);
  // Group 13 scale = 45 (low4 = 13, high2 = 2): low nibble goes to the high half of scales[5],
  // high bits to scales[8 + 1] bits 6..7.
  b.scales[5] = static_cast<uint8_t>(13 << 4);
  b.scales[9] = static_cast<uint8_t>(2 << 6);
  // Group 13 holds elements 208..223: n=1, j=2, l in 16..31. Element 210: l = 18.
  b.qs[32 + 18] = static_cast<uint8_t>(1 << 4);      // low2 = 1 at bits 4..5
  b.hmask[18] = static_cast<uint8_t>(1 << (4 + 2));  // high bit set -> q = 1
  // Element 211 (l = 19): low2 = 3, no high bit -> q = -1.
  b.qs[32 + 19] = static_cast<uint8_t>(3 << 4);
  std::vector<float> y(256);
  dequantize_row(GgmlType::kQ3_K, &b, y.data(), 256);
  EXPECT_EQ(y[210], 0.25f * (45 - 32) * 1);
  EXPECT_EQ(y[211], 0.25f * (45 - 32) * -1);
  EXPECT_EQ(y[212], 0.25f * (45 - 32) * -4);  // low2 = 0, no high bit
  // Group 0: scale byte 0 and high bits 0 -> sc = 0 - 32; q = -4 -> value 0.25 * -32 * -4.
  EXPECT_EQ(y[0], 0.25f * -32 * -4);
}

// Q4_K: 8 groups of 32; scales packed as in get_scale_min_k4.
TEST(QuantTest, Q4_KKnownValues) {
  BlockQ4_K b{};
  b.d = h(0.5f);
  b.dmin = h(0.125f);
  // Group 1 (j < 4): scale = scales[1] & 63, min = scales[5] & 63.
  b.scales[1] = 10;
  b.scales[5] = 3;
  // Group 6 (j >= 4): scale = (scales[10] & 15) | (scales[2] >> 6) << 4 = 5 | 2 << 4 = 37,
  //                   min = (scales[10] >> 4) | (scales[6] >> 6) << 4 = 9 | 1 << 4 = 25.
  b.scales[10] = static_cast<uint8_t>(5 | (9 << 4));
  b.scales[2] = static_cast<uint8_t>(2 << 6);
  b.scales[6] = static_cast<uint8_t>(1 << 6);
  // Element 32 + 7 = 39 (group 1): high nibble of qs[7]. Element 192 + 4 = 196 (group 6): low
  // nibble of qs[96 + 4].
  b.qs[7] = 0xB0;
  b.qs[100] = 0x0E;
  std::vector<float> y(256);
  dequantize_row(GgmlType::kQ4_K, &b, y.data(), 256);
  EXPECT_EQ(y[39], 0.5f * 10 * 11 - 0.125f * 3);
  EXPECT_EQ(y[7], 0.0f);  // group 0: scale 0, min 0
  EXPECT_EQ(y[196], 0.5f * 37 * 14 - 0.125f * 25);
  EXPECT_EQ(y[228], 0.0f);  // group 7 has scale 0 and min 0
}

TEST(QuantTest, Q5_KKnownValues) {
  BlockQ5_K b{};
  b.d = h(1.0f);
  b.dmin = h(0.5f);
  b.scales[2] = 2;  // group 2: scale 2
  b.scales[6] = 1;  // group 2: min 1
  // Group 2 = elements 64..95: element 64 + 5 is the low nibble of qs[32 + 5], fifth bit = bit 2
  // of qh[5]. Element 96 + 5 (group 3) would use bit 3.
  b.qs[37] = 0x09;
  b.qh[5] = 1 << 2;
  std::vector<float> y(256);
  dequantize_row(GgmlType::kQ5_K, &b, y.data(), 256);
  EXPECT_EQ(y[69], 1.0f * 2 * (9 + 16) - 0.5f * 1);
  EXPECT_EQ(y[70], 1.0f * 2 * 0 - 0.5f * 1);
}

// Q6_K: element 128n + 32k + l: low 4 bits from ql[64n + l + 32(k & 1)] (low nibble if k < 2),
// high 2 bits from qh[32n + l] bits 2k; scale scales[8n + 2k + l / 16]; value d * sc * (q - 32).
TEST(QuantTest, Q6_KKnownValues) {
  BlockQ6_K b{};
  b.d = h(0.5f);
  // Element 128 + 96 + 20 = 244: n=1, k=3, l=20: high nibble of ql[64 + 20 + 32], qh[32 + 20]
  // bits 6..7, scale index 8 + 6 + 1 = 15.
  b.ql[116] = 0x70;
  b.qh[52] = static_cast<uint8_t>(2 << 6);
  b.scales[15] = -3;
  // Element 40: n=0, k=1, l=8: low nibble of ql[40], qh[8] bits 2..3, scale index 2.
  b.ql[40] = 0x0F;
  b.qh[8] = static_cast<uint8_t>(3 << 2);
  b.scales[2] = 5;
  std::vector<float> y(256);
  dequantize_row(GgmlType::kQ6_K, &b, y.data(), 256);
  EXPECT_EQ(y[244], 0.5f * -3 * ((7 | (2 << 4)) - 32));
  EXPECT_EQ(y[40], 0.5f * 5 * (63 - 32));
  EXPECT_EQ(y[41], 0.5f * 5 * -32);
}

TEST(QuantTest, FloatTypesRoundTrip) {
  const auto x = random_floats(64, 1);
  std::vector<float> y(64);
  std::vector<uint8_t> buf(64 * 8);
  for (auto type : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16}) {
    quantize_row(type, x.data(), buf.data(), 64);
    dequantize_row(type, buf.data(), y.data(), 64);
    const float tol = type == GgmlType::kF32 ? 0.0f : (type == GgmlType::kF16 ? 1e-3f : 8e-3f);
    for (int i = 0; i < 64; ++i) EXPECT_NEAR(y[i], x[i], tol * std::fabs(x[i]) + 1e-7f) << i;
  }
  const double d[3] = {1.5, -2.25, 1e-3};
  float f[3];
  dequantize_row(GgmlType::kF64, d, f, 3);
  EXPECT_EQ(f[0], 1.5f);
  EXPECT_EQ(f[1], -2.25f);
  EXPECT_FALSE(can_quantize(GgmlType::kF64));
  EXPECT_FALSE(can_dequantize(GgmlType::kI32));
}

struct RoundTripCase {
  GgmlType type;
  double max_rel;  // max |error| relative to the largest |x| of the element's block
};

class QuantRoundTripTest : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(QuantRoundTripTest, ErrorIsBoundedByTheStep) {
  const auto [type, max_rel] = GetParam();
  const int64_t n = 2048;
  const auto x = random_floats(n, 7);
  std::vector<uint8_t> buf(row_bytes(type, n));
  std::vector<float> y(n);
  quantize_row(type, x.data(), buf.data(), n);
  dequantize_row(type, buf.data(), y.data(), n);
  const int bs = static_cast<int>(ggml_type_traits(type).block_size);
  double sq_err = 0, sq = 0;
  for (int64_t g = 0; g < n / bs; ++g) {
    double amax = 0;
    for (int i = 0; i < bs; ++i) amax = std::max(amax, std::fabs(double(x[g * bs + i])));
    for (int i = 0; i < bs; ++i) {
      const double e = std::fabs(double(y[g * bs + i]) - x[g * bs + i]);
      EXPECT_LE(e, max_rel * amax + 1e-6) << ggml_type_name(type) << " element " << g * bs + i;
      sq_err += e * e;
      sq += double(x[g * bs + i]) * x[g * bs + i];
    }
  }
  // On average the error is of the order of the bound (relative to the RMS, not the max).
  EXPECT_LT(std::sqrt(sq_err / sq), 1.5 * max_rel) << ggml_type_name(type);
  // Re-quantizing the dequantized values reproduces them (the grid is stable).
  if (type == GgmlType::kQ8_0 || type == GgmlType::kQ8_K) {
    std::vector<uint8_t> buf2(buf.size());
    std::vector<float> y2(n);
    quantize_row(type, y.data(), buf2.data(), n);
    dequantize_row(type, buf2.data(), y2.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y2[i], y[i], 1e-6 + 1e-3 * std::fabs(y[i]));
  }
}

// Bounds derived from each quantizer: half a step, plus a whole step where the grid is
// asymmetric (Q4_0, Q5_0, Q3_K, Q6_K put the largest magnitude on the long side), plus the
// rounding of quantized sub-block scales and mins for the K formats.
INSTANTIATE_TEST_SUITE_P(
    AllTypes, QuantRoundTripTest,
    ::testing::Values(RoundTripCase{GgmlType::kQ8_0, 0.005}, RoundTripCase{GgmlType::kQ8_1, 0.005},
                      RoundTripCase{GgmlType::kQ8_K, 0.005}, RoundTripCase{GgmlType::kQ4_0, 0.13},
                      RoundTripCase{GgmlType::kQ4_1, 0.075}, RoundTripCase{GgmlType::kQ5_0, 0.065},
                      RoundTripCase{GgmlType::kQ5_1, 0.035}, RoundTripCase{GgmlType::kQ6_K, 0.04},
                      RoundTripCase{GgmlType::kQ5_K, 0.07}, RoundTripCase{GgmlType::kQ4_K, 0.1},
                      RoundTripCase{GgmlType::kQ3_K, 0.3}, RoundTripCase{GgmlType::kQ2_K, 0.5}),
    [](const auto& info) { return std::string(ggml_type_name(info.param.type)); });

TEST(QuantTest, Q8_1StoresScaledSum) {
  const auto x = random_floats(32, 3);
  BlockQ8_1 b;
  quantize_row(GgmlType::kQ8_1, x.data(), &b, 32);
  int sum = 0;
  for (int j = 0; j < 32; ++j) sum += b.qs[j];
  EXPECT_NEAR(fp16_to_fp32(b.s), fp16_to_fp32(b.d) * sum,
              1e-3 * std::fabs(fp16_to_fp32(b.d) * sum) + 1e-6);
}

TEST(QuantTest, Q8_KBsumsAreGroupSums) {
  const auto x = random_floats(256, 4);
  BlockQ8_K b;
  quantize_row(GgmlType::kQ8_K, x.data(), &b, 256);
  for (int g = 0; g < 16; ++g) {
    int s = 0;
    for (int j = 0; j < 16; ++j) s += b.qs[16 * g + j];
    EXPECT_EQ(b.bsums[g], s);
  }
}

TEST(QuantTest, ZeroInputGivesZeros) {
  std::vector<float> x(256, 0.0f), y(256, 1.0f);
  for (auto type : {GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1,
                    GgmlType::kQ8_0, GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ4_K,
                    GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kQ8_K}) {
    std::vector<uint8_t> buf(row_bytes(type, 256));
    quantize_row(type, x.data(), buf.data(), 256);
    dequantize_row(type, buf.data(), y.data(), 256);
    for (float v : y) EXPECT_EQ(v, 0.0f) << ggml_type_name(type);
  }
}

}  // namespace
}  // namespace sgl::model
