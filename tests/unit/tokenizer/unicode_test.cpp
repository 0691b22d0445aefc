#include "tokenizer/unicode.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "model/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace sgl::tokenizer {
namespace {

using namespace unicode;

TEST(Unicode, CategoriesFollowLlamaCpp) {
  EXPECT_EQ(flags('A'), kLetter);
  EXPECT_EQ(flags('z'), kLetter);
  EXPECT_EQ(flags('5'), kNumber);
  EXPECT_EQ(flags(' '), kWhitespace | kSeparator);
  EXPECT_EQ(flags('\n'), kWhitespace | kControl);
  EXPECT_EQ(flags('\t'), kWhitespace | kControl);
  EXPECT_EQ(flags(0x1C), kControl);  // Python's isspace() says yes; White_Space says no
  EXPECT_EQ(flags(0x85), kWhitespace | kControl);
  EXPECT_EQ(flags(0xA0), kWhitespace | kSeparator);
  EXPECT_EQ(flags(0x3000), kWhitespace | kSeparator);
  EXPECT_EQ(flags(0x2028), kWhitespace | kSeparator);
  EXPECT_EQ(flags(0x200B), kControl);  // zero width space is Cf, not whitespace
  EXPECT_EQ(flags('$'), kSymbol);
  EXPECT_EQ(flags('+'), kSymbol);
  EXPECT_EQ(flags('_'), kPunctuation);
  EXPECT_EQ(flags('\''), kPunctuation);
  EXPECT_EQ(flags(0x4E2D), kLetter);   // 中
  EXPECT_EQ(flags(0x0661), kNumber);   // Arabic-Indic one
  EXPECT_EQ(flags(0x00B2), kNumber);   // superscript two (No)
  EXPECT_EQ(flags(0x2160), kNumber);   // Roman numeral one (Nl)
  EXPECT_EQ(flags(0x0301), kMark);     // combining acute
  EXPECT_EQ(flags(0x1F600), kSymbol);  // emoji
  EXPECT_EQ(flags(0xE000), kControl);  // private use (Co)
  EXPECT_EQ(flags(0xD800), kControl);  // surrogate (Cs)
  EXPECT_EQ(flags(0x0378), 0);         // unassigned
  EXPECT_EQ(flags(0x10FFFF), 0);
  EXPECT_EQ(flags(0x110000), 0);
  EXPECT_EQ(flags(0xFFFFFFFF), 0);
  EXPECT_STREQ(kUnicodeVersion, "15.1.0");
}

TEST(Unicode, TablesAreSortedAndCoverEverything) {
  ASSERT_GT(kNumCodepointRanges, 1000u);
  EXPECT_EQ(kCodepointRanges[0].start, 0u);
  for (size_t i = 1; i < kNumCodepointRanges; ++i) {
    ASSERT_LT(kCodepointRanges[i - 1].start, kCodepointRanges[i].start);
    ASSERT_NE(kCodepointRanges[i - 1].flags, kCodepointRanges[i].flags);
    // The lookup agrees with the ranges at both ends of every range.
    EXPECT_EQ(flags(kCodepointRanges[i].start), kCodepointRanges[i].flags);
    EXPECT_EQ(flags(kCodepointRanges[i].start - 1), kCodepointRanges[i - 1].flags);
  }
}

TEST(Unicode, LenientDecodingMatchesLlamaCpp) {
  size_t len = 0;
  EXPECT_EQ(decode_lenient("a", 0, &len), 'a');
  EXPECT_EQ(len, 1u);
  EXPECT_EQ(decode_lenient("\xC3\xA9", 0, &len), 0xE9u);
  EXPECT_EQ(len, 2u);
  EXPECT_EQ(decode_lenient("\xF0\x9F\x98\x80", 0, &len), 0x1F600u);
  EXPECT_EQ(len, 4u);
  // Overlong forms and surrogates are accepted, as llama.cpp does.
  EXPECT_EQ(decode_lenient("\xC0\xAF", 0, &len), static_cast<uint32_t>('/'));
  EXPECT_EQ(len, 2u);
  EXPECT_EQ(decode_lenient("\xE0\x80\x80", 0, &len), 0u);
  EXPECT_EQ(len, 3u);
  EXPECT_EQ(decode_lenient("\xED\xA0\x80", 0, &len), 0xD800u);
  EXPECT_EQ(len, 3u);
  // Invalid: one byte becomes U+FFFD.
  EXPECT_EQ(decode_lenient("\xFF", 0, &len), kReplacement);
  EXPECT_EQ(len, 1u);
  EXPECT_EQ(decode_lenient("\x80", 0, &len), kReplacement);
  EXPECT_EQ(len, 1u);
  EXPECT_EQ(decode_lenient("\xE4\xB8", 0, &len), kReplacement);  // truncated
  EXPECT_EQ(len, 1u);
  EXPECT_EQ(decode_lenient("\xE4\x41\x41", 0, &len), kReplacement);  // bad continuation
  EXPECT_EQ(len, 1u);
  // Past U+10FFFF (llama.cpp aborts there): invalid byte.
  EXPECT_EQ(decode_lenient("\xF4\x90\x80\x80", 0, &len), kReplacement);
  EXPECT_EQ(len, 1u);
  EXPECT_EQ(decode_lenient("\xF7\xBF\xBF\xBF", 0, &len), kReplacement);
  EXPECT_EQ(len, 1u);
}

TEST(Unicode, ByteAlphabetIsABijection) {
  EXPECT_EQ(byte_to_codepoint(' '), 0x120u);   // Ġ
  EXPECT_EQ(byte_to_codepoint('\n'), 0x10Au);  // Ċ
  EXPECT_EQ(byte_to_codepoint('A'), static_cast<uint32_t>('A'));
  EXPECT_EQ(byte_to_codepoint(0xAD), 0x143u);
  EXPECT_EQ(byte_to_codepoint(0xFF), 0xFFu);
  for (int b = 0; b < 256; ++b) {
    EXPECT_EQ(codepoint_to_byte(byte_to_codepoint(static_cast<uint8_t>(b))), b);
  }
  EXPECT_EQ(codepoint_to_byte(' '), -1);
  EXPECT_EQ(codepoint_to_byte(0x144), -1);
  EXPECT_EQ(codepoint_to_byte(0x4E2D), -1);
}

// Optional exhaustive check: every code point, in several contexts, tokenized by llama.cpp
// (tests/data/tokenizer/make_unicode_sweep.py writes the file; ~200 MB, not committed).
TEST(Unicode, SweepOfEveryCodepointMatchesLlamaCpp) {
  const char* path = std::getenv("SGL_UNICODE_SWEEP");
  if (path == nullptr || !std::filesystem::exists(path)) {
    GTEST_SKIP() << "set SGL_UNICODE_SWEEP to the output of make_unicode_sweep.py";
  }
  auto gguf = model::GgufFile::open(testing::default_model_path());
  ASSERT_TRUE(gguf.is_ok()) << gguf.status().to_string();
  auto tok = Tokenizer::from_gguf(*gguf);
  ASSERT_TRUE(tok.is_ok());
  std::ifstream in(path);
  std::string line;
  int lines = 0;
  int mismatches = 0;
  while (std::getline(in, line)) {
    const size_t sp = line.find(' ');
    ASSERT_NE(sp, std::string::npos);
    std::string text;
    for (size_t i = 0; i + 1 < sp; i += 2) {
      text += static_cast<char>(std::stoi(line.substr(i, 2), nullptr, 16));
    }
    std::string got;
    for (int32_t id : tok->encode(text, false, false)) {
      if (!got.empty()) got += ',';
      got += std::to_string(id);
    }
    if (got != line.substr(sp + 1) && ++mismatches <= 10) {
      ADD_FAILURE() << "line " << lines << ": " << testing::escaped(text);
    }
    ++lines;
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_GT(lines, 60000);
}

}  // namespace
}  // namespace sgl::tokenizer
