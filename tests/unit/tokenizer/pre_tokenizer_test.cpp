#include "tokenizer/pre_tokenizer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_util.h"

namespace sgl::tokenizer {
namespace {

std::vector<std::string> words(std::string_view pre, std::string_view text) {
  std::optional<PreTokenizerSpec> spec = find_pre_tokenizer(pre);
  EXPECT_TRUE(spec.has_value()) << pre;
  if (!spec) return {};
  PreTokenizeScratch scratch;
  pre_tokenize(spec->stages, text, scratch);
  std::vector<std::string> out;
  uint32_t start = 0;
  for (uint32_t end : scratch.word_ends) {
    out.emplace_back(scratch.text.substr(start, end - start));
    start = end;
  }
  EXPECT_EQ(start, scratch.text.size());
  return out;
}

using W = std::vector<std::string>;

TEST(PreTokenizer, Gpt2) {
  EXPECT_EQ(words("gpt-2", "Hello world"), (W{"Hello", " world"}));
  EXPECT_EQ(words("gpt-2", "a  b"), (W{"a", " ", " b"}));
  EXPECT_EQ(words("gpt-2", "a   "), (W{"a", "   "}));
  EXPECT_EQ(words("gpt-2", "I'm they'LL"), (W{"I", "'m", " they", "'", "LL"}));
  EXPECT_EQ(words("gpt-2", " 123 456"), (W{" 123", " 456"}));
  EXPECT_EQ(words("gpt-2", "a \n b"), (W{"a", " \n", " b"}));
  EXPECT_EQ(words("gpt-2", ""), W{});
}

TEST(PreTokenizer, Llama3) {
  EXPECT_EQ(words("llama-bpe", "abc1234567"), (W{"abc", "123", "456", "7"}));
  EXPECT_EQ(words("llama3", "\n\n  x"), (W{"\n\n", " ", " x"}));
  EXPECT_EQ(words("llama3", "I'M HERE"), (W{"I", "'M", " HERE"}));
  EXPECT_EQ(words("llama3", "hi!!\n\nthere"), (W{"hi", "!!\n\n", "there"}));
  EXPECT_EQ(words("llama3", ".abc"), (W{".abc"}));
}

TEST(PreTokenizer, Qwen2AndSmolLm) {
  EXPECT_EQ(words("qwen2", "a1b22"), (W{"a", "1", "b", "2", "2"}));
  EXPECT_EQ(words("smollm", "abc123 def"), (W{"abc", "1", "2", "3", " def"}));
  EXPECT_EQ(words("smollm", "x 1"), (W{"x", " ", "1"}));
}

TEST(PreTokenizer, DefaultPipeline) {
  EXPECT_EQ(words("default", "hello, world!!! 12345"),
            (W{"hello", ",", " world", "!!!", " ", "123", "45"}));
  EXPECT_EQ(words("", "a+b"), (W{"a", "+", "b"}));
}

TEST(PreTokenizer, InvalidUtf8IsReencodedLikeLlamaCpp) {
  // An invalid byte becomes U+FFFD (a symbol), an overlong '/' becomes '/'.
  EXPECT_EQ(words("gpt-2",
                  "a\xFF"
                  "b"),
            (W{"a", "\xEF\xBF\xBD", "b"}));
  EXPECT_EQ(words("gpt-2",
                  "a\xC0\xAF"
                  "b"),
            (W{"a", "/", "b"}));
  EXPECT_EQ(words("gpt-2", "\xE4\xB8"), (W{"\xEF\xBF\xBD\xEF\xBF\xBD"}));
}

TEST(PreTokenizer, UnknownNames) {
  EXPECT_FALSE(find_pre_tokenizer("no-such-pre").has_value());
  EXPECT_FALSE(find_pre_tokenizer("deepseek-llm").has_value());  // known to llama.cpp, not here
  auto smol = find_pre_tokenizer("smollm");
  ASSERT_TRUE(smol.has_value());
  EXPECT_FALSE(smol->clean_spaces);
  EXPECT_FALSE(smol->ignore_merges);
  auto l3 = find_pre_tokenizer("llama-bpe");
  ASSERT_TRUE(l3.has_value());
  EXPECT_TRUE(l3->ignore_merges);
  EXPECT_TRUE(l3->add_bos);
  EXPECT_EQ(l3->name, "llama3");
}

// Against Python's `regex` module (pretok_golden.json, made by make_pretok_golden.py).
TEST(PreTokenizer, MatchesPythonRegex) {
  std::ifstream in(testing::data_path("pretok_golden.json"));
  ASSERT_TRUE(in.good());
  const nlohmann::json golden = nlohmann::json::parse(in);
  int n = 0;
  for (const auto& c : golden["cases"]) {
    const std::string text = c["text"].get<std::string>();
    for (const auto& [pre, expected] : c["words"].items()) {
      EXPECT_EQ(words(pre, text), expected.get<W>())
          << pre << ": \"" << testing::escaped(text) << "\"";
      ++n;
    }
  }
  EXPECT_GE(n, 6 * 300);
}

}  // namespace
}  // namespace sgl::tokenizer
