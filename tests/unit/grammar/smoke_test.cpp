#include <gtest/gtest.h>

#include "grammar/grammar.h"
#include "test_util.h"

namespace sgl::grammar {
namespace {

using testing::byte_vocab;
using testing::full_match;

CompiledGrammarPtr compile_ok(GrammarKind kind, const std::string& text, GrammarOptions opts = {}) {
  auto r = compile_grammar(kind, text, byte_vocab(), opts);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? *r : nullptr;
}

TEST(GrammarSmoke, RegexBasics) {
  auto g = compile_ok(GrammarKind::kRegex, "a(b|c)*d{2}");
  ASSERT_TRUE(g);
  EXPECT_TRUE(g->is_dfa());
  EXPECT_TRUE(full_match(g, "add"));
  EXPECT_TRUE(full_match(g, "abcbdd"));
  EXPECT_FALSE(full_match(g, "abd"));
  EXPECT_FALSE(full_match(g, "xdd"));
}

TEST(GrammarSmoke, GbnfRecursive) {
  auto g = compile_ok(GrammarKind::kGbnf, "root ::= \"(\" root \")\" | \"x\"\n");
  ASSERT_TRUE(g);
  EXPECT_FALSE(g->is_dfa());
  EXPECT_TRUE(full_match(g, "x"));
  EXPECT_TRUE(full_match(g, "((x))"));
  EXPECT_FALSE(full_match(g, "((x)"));
  EXPECT_FALSE(full_match(g, "(x))"));
}

TEST(GrammarSmoke, JsonSchemaForcedText) {
  auto g = compile_ok(
      GrammarKind::kJsonSchema,
      R"({"type":"object","properties":{"name":{"type":"string"}},"required":["name"]})");
  ASSERT_TRUE(g);
  Matcher m(g);
  EXPECT_EQ(m.forced_text(), "{\"name\": \"");
  EXPECT_TRUE(full_match(g, "{\"name\": \"bob\"}"));
  EXPECT_FALSE(full_match(g, "{}"));
}

TEST(GrammarSmoke, HostileNestingIsAnErrorNotACrash) {
  const int n = 20000;
  std::string regex = std::string(n, '(') + "a" + std::string(n, ')');
  auto r = compile_grammar(GrammarKind::kRegex, regex, byte_vocab());
  EXPECT_FALSE(r.is_ok());
  auto g = compile_grammar(GrammarKind::kGbnf, "root ::= " + regex, byte_vocab());
  EXPECT_FALSE(g.is_ok());
  std::string schema;
  for (int i = 0; i < n; ++i) schema += "{\"items\":";
  schema += "true";
  for (int i = 0; i < n; ++i) schema += "}";
  auto j = compile_grammar(GrammarKind::kJsonSchema, schema, byte_vocab());
  EXPECT_FALSE(j.is_ok());
  // Large but legal: falls back to the pushdown back end instead of failing.
  auto big = compile_grammar(GrammarKind::kRegex, "(a{1000}b){1000}", byte_vocab());
  ASSERT_TRUE(big.is_ok()) << big.status().to_string();
  EXPECT_FALSE((*big)->is_dfa());
  Matcher m(*big);
  EXPECT_EQ(m.forced_text(5), "aaaaa");
}

}  // namespace
}  // namespace sgl::grammar
