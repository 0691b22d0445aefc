#include <gtest/gtest.h>

#include <random>

#include <nlohmann/json.hpp>

#include "grammar/gbnf.h"
#include "grammar/grammar.h"
#include "test_util.h"

namespace sgl::grammar {
namespace {

using testing::byte_vocab;
using testing::full_match;

// JSON syntax per RFC 8259; nlohmann's parser also rejects numbers that overflow a double, which
// the JSON grammar allows, so those count as syntactically valid here.
bool json_syntax_ok(const std::string& text) {
  try {
    nlohmann::json parsed = nlohmann::json::parse(text);
    (void)parsed;
    return true;
  } catch (const nlohmann::json::parse_error& e) {
    return false;
  } catch (const nlohmann::json::out_of_range& e) {
    return true;
  }
}

CompiledGrammarPtr gbnf(const std::string& text) {
  auto r = compile_grammar(GrammarKind::kGbnf, text, byte_vocab());
  EXPECT_TRUE(r.is_ok()) << text << "\n" << r.status().to_string();
  return r.is_ok() ? *r : nullptr;
}

TEST(Gbnf, Features) {
  auto g = gbnf(R"(
# a comment line
root ::= greeting " " name{1,2} tail   # trailing comment
greeting ::= "hi" | "hello"
  | "hey"
name ::= [A-Z] [a-z]* ("-" [A-Z] [a-z]*)?
tail ::= "!"? [^a-z\n]? "\u00e9"* .?
)");
  ASSERT_TRUE(g);
  EXPECT_TRUE(g->is_dfa());
  EXPECT_TRUE(full_match(g, "hi Bob"));
  EXPECT_TRUE(full_match(g, "hey Ann-MarieBob!"));
  EXPECT_TRUE(full_match(g, "hello Zoe!X\xc3\xa9\xc3\xa9\xe2\x82\xac"));
  EXPECT_FALSE(full_match(g, "hi bob"));
  EXPECT_FALSE(full_match(g, "hi BobAnnCat"));
  EXPECT_FALSE(full_match(g, "yo Bob"));
}

TEST(Gbnf, JsonGrammarAgreesWithJsonParser) {
  auto g = gbnf(testing::read_file(testing::data_path("json.gbnf")));
  ASSERT_TRUE(g);
  EXPECT_FALSE(g->is_dfa());
  nlohmann::json cases =
      nlohmann::json::parse(testing::read_file(testing::data_path("schema_cases.json")));
  std::mt19937 rng(7);
  const std::string noise = "{}[]\",:0123456789.-+eE \\utrfaln";
  size_t n_valid = 0, n_checked = 0;
  for (const auto& c : cases["cases"]) {
    for (const auto& inst : c["instances"]) {
      for (const char* form : {"compact", "indent"}) {
        std::string text = inst[form];
        ASSERT_TRUE(nlohmann::json::accept(text));
        EXPECT_TRUE(full_match(g, text)) << text;
        ++n_valid;
        // A one-byte mutation; the grammar must agree with the JSON parser. (Skip texts with a
        // \u escape: the grammar, like many, does not pair surrogates.)
        std::string m = text;
        size_t pos = rng() % (m.size() + 1);
        switch (rng() % 3) {
          case 0:
            m.insert(m.begin() + pos, noise[rng() % noise.size()]);
            break;
          case 1:
            if (pos < m.size()) m.erase(pos, 1);
            break;
          default:
            if (pos < m.size()) m[pos] = noise[rng() % noise.size()];
        }
        if (m.find("\\u") != std::string::npos) continue;
        EXPECT_EQ(full_match(g, m), json_syntax_ok(m)) << m;
        ++n_checked;
      }
    }
  }
  EXPECT_GT(n_valid, 5000u);
  EXPECT_GT(n_checked, 5000u);
}

TEST(Gbnf, ErrorsHavePositions) {
  struct Case {
    const char* text;
    const char* want;
  };
  for (Case c :
       {Case{"root ::= \"a\" (\"b\"", "line 1, column 14"},
        Case{"root ::= \"a\"\nx ::= [a-", "line 2, column 7"},
        Case{"root ::= undefined-rule", "undefined rule 'undefined-rule'"},
        Case{"other ::= \"a\"", "no 'root' rule"},
        Case{"root ::= \"a\"\nroot ::= \"b\"", "defined twice"},
        Case{"root ::= \"unterminated", "line 1, column 10"}, Case{"root \"a\"", "expected '::='"},
        Case{"root ::= \"a\"{3,1}", "n < m"}, Case{"root ::= \"\\q\"", "unknown escape"},
        Case{"root ::= \"a\" ) ", "line 1, column 14"}}) {
    auto r = gbnf_to_ir(c.text);
    if (r.is_ok()) {
      // Some errors surface only when compiling (e.g. stray ')').
      auto g = compile_grammar(GrammarKind::kGbnf, c.text, byte_vocab());
      ASSERT_FALSE(g.is_ok()) << c.text;
      EXPECT_NE(g.status().message().find(c.want), std::string::npos) << g.status().message();
      continue;
    }
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.want), std::string::npos)
        << c.text << " -> " << r.status().message();
  }
}

TEST(Gbnf, LeftRecursionIsRejectedByName) {
  for (const char* text :
       {"root ::= root \"a\" | \"a\"", "root ::= x\nx ::= y \"b\"\ny ::= \"\"? x | \"c\"",
        "root ::= e\ne ::= e \"+\" t | t\nt ::= [0-9]"}) {
    auto r = compile_grammar(GrammarKind::kGbnf, text, byte_vocab());
    ASSERT_FALSE(r.is_ok()) << text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("left recursion"), std::string::npos)
        << r.status().message();
  }
  // The usual rewrite works, and so do nullable repetitions and right recursion.
  auto g = gbnf("root ::= t (\"+\" t)*\nt ::= [0-9]+ | \"(\" root \")\"");
  ASSERT_TRUE(g);
  EXPECT_TRUE(full_match(g, "1+(2+3)+(4)"));
  EXPECT_FALSE(full_match(g, "1+(2+3"));
  auto n = gbnf("root ::= (\"a\"? \"b\"?)* \"c\"");
  ASSERT_TRUE(n);
  EXPECT_TRUE(full_match(n, "ababbc"));
  auto rr = gbnf("root ::= \"a\" root | \"\"");
  ASSERT_TRUE(rr);
  EXPECT_TRUE(full_match(rr, "aaaa"));
  EXPECT_TRUE(full_match(rr, ""));
}

TEST(Gbnf, PushdownRollbackAndForcedText) {
  auto g = gbnf("root ::= \"<\" root \">\" | \"x\" item*\nitem ::= \",\" [0-9]");
  ASSERT_TRUE(g);
  Matcher m(g);
  ASSERT_TRUE(m.accept_bytes("<<"));
  ASSERT_TRUE(m.accept_bytes("x"));
  EXPECT_FALSE(m.can_end());
  EXPECT_FALSE(m.accept_bytes("y"));
  EXPECT_TRUE(m.accept_bytes(",1>"));
  EXPECT_EQ(m.forced_text(), ">");
  m.rollback(1);
  EXPECT_EQ(m.forced_text(), "");  // "," or ">" may follow
  EXPECT_TRUE(m.accept_bytes(">>"));
  EXPECT_TRUE(m.can_end());
  m.rollback(3);
  EXPECT_EQ(m.num_steps(), 0u);
  EXPECT_EQ(m.forced_text(), "");  // "<" or "x"
  EXPECT_TRUE(m.accept_bytes("x,2,3"));
  EXPECT_TRUE(m.can_end());
}

}  // namespace
}  // namespace sgl::grammar
