#include "support/utf8.h"

#include <gtest/gtest.h>

#include <random>

#include "support/fp16.h"
#include "support/status.h"

namespace sgl {
namespace {

TEST(Utf8, ValidatesWellFormedAndRejectsIllFormed) {
  EXPECT_TRUE(utf8::is_valid("hello"));
  EXPECT_TRUE(utf8::is_valid("caf\xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x98\x80"));
  EXPECT_FALSE(utf8::is_valid("\xC0\xAF"));          // overlong
  EXPECT_FALSE(utf8::is_valid("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(utf8::is_valid("\xF4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(utf8::is_valid("\xE4\xB8"));          // truncated
  EXPECT_FALSE(utf8::is_valid("\x80"));              // lone continuation
}

TEST(Utf8, CompletePrefixWaitsOnlyForTruncatedSequences) {
  EXPECT_EQ(utf8::complete_prefix_length("ab"), 2u);
  EXPECT_EQ(utf8::complete_prefix_length("a\xE4\xB8"), 1u);
  EXPECT_EQ(utf8::complete_prefix_length("a\xF0\x9F\x98"), 1u);
  EXPECT_EQ(utf8::complete_prefix_length("a\xF0\x9F\x98\x80"), 5u);
  EXPECT_EQ(utf8::complete_prefix_length("a\xFF"), 2u);  // can never complete: don't wait
  EXPECT_EQ(utf8::complete_prefix_length("a\xC3\x28"), 3u);
}

TEST(Utf8, EncodeDecodeRoundTripsEveryScalarValue) {
  for (uint32_t cp = 0; cp <= 0x10FFFF; cp += (cp < 0x3000 ? 1 : 97)) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    std::string s = utf8::encode(cp);
    uint32_t back;
    size_t len;
    ASSERT_TRUE(utf8::decode(s, 0, &back, &len));
    EXPECT_EQ(back, cp);
    EXPECT_EQ(len, s.size());
  }
}

TEST(Utf8, SanitizeReplacesMaximalSubparts) {
  EXPECT_EQ(utf8::sanitize("a\xE4\xB8z"), "a\xEF\xBF\xBDz");
  EXPECT_EQ(utf8::sanitize("\xFF\xFE"), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(Fp16, RoundTripsAllHalfValues) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = fp16_to_fp32(static_cast<uint16_t>(h));
    if (f != f) continue;  // NaN payloads need not round-trip exactly
    EXPECT_EQ(fp32_to_fp16(f), h) << h;
  }
}

TEST(Fp16, RoundsToNearestEven) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-70000.f, 70000.f);
  for (int i = 0; i < 100000; ++i) {
    float f = dist(rng);
    uint16_t h = fp32_to_fp16(f);
    float back = fp16_to_fp32(h);
    if (std::isinf(back)) continue;
    // No other half value is strictly closer.
    float up = fp16_to_fp32(static_cast<uint16_t>(h + 1));
    float dn = fp16_to_fp32(static_cast<uint16_t>(h - 1));
    EXPECT_LE(std::fabs(back - f), std::fabs(up - f));
    EXPECT_LE(std::fabs(back - f), std::fabs(dn - f));
  }
}

TEST(Status, ResultCarriesValueOrError) {
  Result<int> good = 3;
  EXPECT_TRUE(good.is_ok());
  EXPECT_EQ(*good, 3);
  Result<int> bad = invalid_argument("nope");
  EXPECT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().to_string(), "invalid argument: nope");
}

}  // namespace
}  // namespace sgl

namespace sgl {
namespace {
TEST(Status, QuoteForMessageEscapesAndBounds) {
  EXPECT_EQ(quote_for_message("abc"), "'abc'");
  EXPECT_EQ(quote_for_message(std::string_view("a\nb\x7f", 4)), "'a\\x0Ab\\x7F'");
  EXPECT_EQ(quote_for_message(std::string(300, 'x'), 5), "'xxxxx...'");
}
}  // namespace
}  // namespace sgl
