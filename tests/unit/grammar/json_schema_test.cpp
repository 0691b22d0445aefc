// JSON Schema front end against Python jsonschema answers
// (tests/data/grammar/make_schema_cases.py): acceptance equals validity for instances in the
// grammar's canonical form, and no invalid instance is ever accepted, under all three whitespace
// policies.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "grammar/grammar.h"
#include "grammar/json_schema.h"
#include "test_util.h"

namespace sgl::grammar {
namespace {

using testing::byte_vocab;
using testing::full_match;

nlohmann::json load_cases() {
  return nlohmann::json::parse(testing::read_file(testing::data_path("schema_cases.json")));
}

struct PolicyCase {
  WhitespacePolicy policy;
  std::vector<const char*> forms;
};

TEST(JsonSchema, CorpusMatchesJsonschema) {
  nlohmann::json data = load_cases();
  ASSERT_GE(data["cases"].size(), 200u);
  const PolicyCase policies[] = {
      {WhitespacePolicy::kCompact, {"compact"}},
      {WhitespacePolicy::kDefault, {"default"}},
      {WhitespacePolicy::kFlexible, {"compact", "default", "indent"}},
  };
  size_t checked = 0, valid_checked = 0, n_pda = 0;
  for (const auto& c : data["cases"]) {
    std::string schema = c["schema"];
    for (const PolicyCase& pc : policies) {
      GrammarOptions opts;
      opts.whitespace = pc.policy;
      auto g = compile_grammar(GrammarKind::kJsonSchema, schema, byte_vocab(), opts);
      ASSERT_TRUE(g.is_ok()) << schema << ": " << g.status().to_string();
      if (!(*g)->is_dfa()) ++n_pda;
      for (const auto& inst : c["instances"]) {
        bool valid = inst["valid"];
        bool canonical = inst["canonical"];
        for (const char* form : pc.forms) {
          std::string text = inst[form];
          bool accepted = full_match(*g, text);
          if (!valid) {
            EXPECT_FALSE(accepted)
                << "invalid instance accepted\nschema: " << schema << "\ninstance: " << text;
          } else if (canonical) {
            EXPECT_TRUE(accepted) << "valid instance rejected\nschema: " << schema
                                  << "\ninstance: " << text
                                  << "\npolicy: " << static_cast<int>(pc.policy);
            ++valid_checked;
          }
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 10000u);
  EXPECT_GT(valid_checked, 3000u);
  EXPECT_GT(n_pda, 0u);  // the recursive schemas ran on the pushdown back end
}

TEST(JsonSchema, UnsupportedKeywordsAreNamedErrors) {
  nlohmann::json data = load_cases();
  ASSERT_GE(data["errors"].size(), 10u);
  for (const auto& e : data["errors"]) {
    std::string schema = e["schema"];
    auto r = json_schema_to_ir(schema, WhitespacePolicy::kDefault);
    ASSERT_FALSE(r.is_ok()) << schema;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    const std::string& msg = r.status().message();
    EXPECT_NE(msg.find(e["keyword"].get<std::string>()), std::string::npos) << msg;
    EXPECT_NE(msg.find("JSON Schema " + e["pointer"].get<std::string>()), std::string::npos) << msg;
  }
}

TEST(JsonSchema, MalformedSchemas) {
  for (const char* s :
       {"{", "[1,2]", "{\"type\":\"strin\"}",
        "{\"type\":\"integer\",\"minimum\":5,"
        "\"maximum\":4}",
        "{\"$ref\":\"#/$defs/missing\"}", "false", "{\"type\":\"string\",\"pattern\":\"(a\"}"}) {
    auto r = json_schema_to_ir(s, WhitespacePolicy::kDefault);
    EXPECT_FALSE(r.is_ok()) << s;
    if (!r.is_ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << s;
    }
  }
}

TEST(JsonSchema, ForcedTextFollowsWhitespacePolicy) {
  const std::string schema =
      R"({"type":"object","properties":{"name":{"type":"string"}},"required":["name"]})";
  struct Want {
    WhitespacePolicy p;
    const char* text;
  };
  for (Want w :
       {Want{WhitespacePolicy::kDefault, "{\"name\": \""},
        Want{WhitespacePolicy::kCompact, "{\"name\":\""}, Want{WhitespacePolicy::kFlexible, "{"}}) {
    GrammarOptions opts;
    opts.whitespace = w.p;
    auto g = compile_grammar(GrammarKind::kJsonSchema, schema, byte_vocab(), opts);
    ASSERT_TRUE(g.is_ok());
    Matcher m(*g);
    EXPECT_EQ(m.forced_text(), w.text);
  }
  // After the string closes, the rest is forced too.
  auto g = *compile_grammar(GrammarKind::kJsonSchema, schema, byte_vocab());
  Matcher m(g);
  ASSERT_TRUE(m.accept_bytes("{\"name\": \"bob\""));
  EXPECT_EQ(m.forced_text(), "}");
  ASSERT_TRUE(m.accept_bytes("}"));
  EXPECT_TRUE(m.can_end());
  EXPECT_EQ(m.forced_text(), "");
}

TEST(JsonSchema, ForcedTextOfEnumPrefixAndRecursiveSchema) {
  auto g = *compile_grammar(GrammarKind::kJsonSchema, R"({"enum":["alpha-one","alpha-two"]})",
                            byte_vocab());
  Matcher m(g);
  EXPECT_EQ(m.forced_text(), "\"alpha-");
  auto rec = *compile_grammar(
      GrammarKind::kJsonSchema,
      R"({"type":"object","properties":{"kids":{"type":"array","items":{"$ref":"#"}}},"required":["kids"]})",
      byte_vocab());
  EXPECT_FALSE(rec->is_dfa());
  Matcher r(rec);
  EXPECT_EQ(r.forced_text(), "{\"kids\": [");
  ASSERT_TRUE(r.accept_bytes("{\"kids\": [{"));
  EXPECT_EQ(r.forced_text(), "\"kids\": [");
}

TEST(JsonSchema, IntegerRangesAreExact) {
  struct Range {
    int lo, hi;
  };
  for (Range rg : {Range{0, 0}, Range{-7, 3}, Range{5, 5}, Range{-120, -100}, Range{9, 101},
                   Range{-1001, 999}, Range{37, 4096}}) {
    std::string schema = "{\"type\":\"integer\",\"minimum\":" + std::to_string(rg.lo) +
                         ",\"maximum\":" + std::to_string(rg.hi) + "}";
    auto g = *compile_grammar(GrammarKind::kJsonSchema, schema, byte_vocab());
    for (int x = rg.lo - 1200; x <= rg.hi + 1200; ++x) {
      bool in = x >= rg.lo && x <= rg.hi;
      ASSERT_EQ(full_match(g, std::to_string(x)), in) << schema << " x=" << x;
    }
    EXPECT_FALSE(full_match(g, "-0"));
    EXPECT_FALSE(full_match(g, "00"));
  }
}

}  // namespace
}  // namespace sgl::grammar
