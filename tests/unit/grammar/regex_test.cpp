// Regex front end against Python re.fullmatch answers (tests/data/grammar/make_regex_cases.py),
// on both back ends (DFA, and the pushdown recognizer forced by a DFA state cap of 1).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "grammar/grammar.h"
#include "grammar/regex.h"
#include "test_util.h"

namespace sgl::grammar {
namespace {

using testing::byte_vocab;

nlohmann::json load_cases() {
  return nlohmann::json::parse(testing::read_file(testing::data_path("regex_cases.json")));
}

void check_corpus(int32_t max_dfa_states, bool expect_dfa) {
  nlohmann::json data = load_cases();
  ASSERT_GE(data["cases"].size(), 100u);
  size_t checked = 0;
  for (const auto& c : data["cases"]) {
    std::string pattern = c["pattern"];
    GrammarOptions opts;
    opts.max_dfa_states = max_dfa_states;
    auto g = compile_grammar(GrammarKind::kRegex, pattern, byte_vocab(), opts);
    ASSERT_TRUE(g.is_ok()) << pattern << ": " << g.status().to_string();
    if (expect_dfa) {
      EXPECT_TRUE((*g)->is_dfa()) << pattern;
    }
    for (const auto& item : c["strings"]) {
      std::string s = item["s"];
      bool expected = item["match"];
      Matcher m(*g);
      size_t fed = testing::feed_bytes(m, s);
      bool got = fed == s.size() && m.can_end();
      EXPECT_EQ(got, expected) << "pattern " << pattern << " string '" << s << "' fed " << fed;
      if (expected) {
        // Every prefix of a matching string was viable, and EOS is allowed at the end only.
        EXPECT_EQ(fed, s.size());
        EXPECT_TRUE(m.accept(256)) << pattern;
        EXPECT_TRUE(m.is_terminated());
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 1000u);
}

TEST(Regex, CorpusMatchesPythonOnDfa) { check_corpus(20000, true); }
TEST(Regex, CorpusMatchesPythonOnPushdown) { check_corpus(1, false); }

TEST(Regex, ErrorsNameTheOffset) {
  nlohmann::json data = load_cases();
  for (const auto& e : data["errors"]) {
    std::string pattern = e["pattern"];
    auto r = regex_to_ir(pattern);
    ASSERT_FALSE(r.is_ok()) << pattern;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("offset " + std::to_string(e["offset"].get<int>())),
              std::string::npos)
        << pattern << ": " << r.status().message();
  }
}

TEST(Regex, DotNeverMatchesInvalidUtf8) {
  auto g = *compile_grammar(GrammarKind::kRegex, ".*", byte_vocab());
  EXPECT_TRUE(testing::full_match(g, "h\xc3\xa9llo"));
  EXPECT_FALSE(testing::full_match(g, "\xc3"));              // truncated
  EXPECT_FALSE(testing::full_match(g, "\xc3\x28"));          // bad continuation
  EXPECT_FALSE(testing::full_match(g, "\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(testing::full_match(g, "\xc0\xaf"));          // overlong
  EXPECT_FALSE(testing::full_match(g, "\xf4\x90\x80\x80"));  // > U+10FFFF
  auto neg = *compile_grammar(GrammarKind::kRegex, "[^a]*", byte_vocab());
  EXPECT_FALSE(testing::full_match(neg, "\xff"));
  EXPECT_TRUE(testing::full_match(neg, "\xf0\x9f\x98\x80"));
}

TEST(Regex, EmptyLanguageIsAnError) {
  auto r = compile_grammar(GrammarKind::kRegex, "[^\\x00-\\U0010FFFF]", byte_vocab());
  EXPECT_FALSE(r.is_ok());
}

TEST(Regex, DeadEndsArePruned) {
  // After "a" the only way on is "b"; a byte leading nowhere is rejected immediately.
  auto g = *compile_grammar(GrammarKind::kRegex, "ab|a[^\\x00-\\U0010FFFF]", byte_vocab());
  Matcher m(g);
  EXPECT_TRUE(m.accept_bytes("a"));
  EXPECT_EQ(m.forced_text(), "b");
}

}  // namespace
}  // namespace sgl::grammar
