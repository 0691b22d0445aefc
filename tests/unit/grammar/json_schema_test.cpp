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

// A decimal string for k / 10^4, without trailing fraction zeros (plus `pad` extra zeros).
std::string decimal(int64_t k, int pad = 0) {
  std::string out = k < 0 ? "-" : "";
  int64_t a = k < 0 ? -k : k;
  out += std::to_string(a / 10000);
  std::string frac = std::to_string(a % 10000);
  frac = std::string(4 - frac.size(), '0') + frac;
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  if (!frac.empty() || pad > 0) out += "." + frac + std::string(pad, '0');
  return out;
}

TEST(JsonSchema, FractionalNumberBoundsAreExactDecimals) {
  struct Bounds {
    bool has_lo;
    int64_t lo;  // in units of 1e-4
    bool lo_inc;
    bool has_hi;
    int64_t hi;
    bool hi_inc;
  };
  for (Bounds b : {Bounds{true, 1000, true, true, 27500, true},
                   Bounds{true, -15000, false, true, 2500, false},
                   Bounds{true, -50, true, false, 0, true}, Bounds{false, 0, true, true, 10, false},
                   Bounds{true, 5000, true, true, 5000, true},
                   Bounds{true, -72500, true, true, -1250, true},
                   Bounds{true, -5000, true, true, 0, false},
                   Bounds{true, 3, false, true, 19999, true}}) {
    std::string schema = "{\"type\":\"number\"";
    if (b.has_lo)
      schema += std::string(b.lo_inc ? ",\"minimum\":" : ",\"exclusiveMinimum\":") + decimal(b.lo);
    if (b.has_hi)
      schema += std::string(b.hi_inc ? ",\"maximum\":" : ",\"exclusiveMaximum\":") + decimal(b.hi);
    schema += "}";
    auto r = compile_grammar(GrammarKind::kJsonSchema, schema, byte_vocab());
    ASSERT_TRUE(r.is_ok()) << schema << ": " << r.status().to_string();
    for (int64_t k = -90000; k <= 90000; k += (k > -300 && k < 300) ? 1 : 37) {
      for (int64_t x : {k, b.lo + k % 5, b.hi + k % 5}) {
        bool in = (!b.has_lo || x > b.lo || (x == b.lo && b.lo_inc)) &&
                  (!b.has_hi || x < b.hi || (x == b.hi && b.hi_inc));
        ASSERT_EQ(full_match(*r, decimal(x)), in) << schema << " x=" << decimal(x);
        ASSERT_EQ(full_match(*r, decimal(x, 2)), in) << schema << " x=" << decimal(x, 2);
      }
    }
    EXPECT_FALSE(full_match(*r, "1e0")) << schema;  // no exponent once bounded
  }
  // Fraction digits beyond the bound's: 0.1 < 0.10000000001, and an exclusive bound rejects the
  // bound itself however it is written.
  auto g = *compile_grammar(GrammarKind::kJsonSchema, R"({"type":"number","exclusiveMinimum":0.1})",
                            byte_vocab());
  EXPECT_TRUE(full_match(g, "0.10000000001"));
  EXPECT_FALSE(full_match(g, "0.1000000000"));
  EXPECT_FALSE(full_match(g, "0.0999999999"));
  auto empty = compile_grammar(GrammarKind::kJsonSchema,
                               R"({"type":"number","minimum":0.75,"exclusiveMaximum":0.75})",
                               byte_vocab());
  ASSERT_FALSE(empty.is_ok());
  EXPECT_NE(empty.status().message().find("empty"), std::string::npos);
}

TEST(JsonSchema, OneOfNeedsProvablyDisjointAlternatives) {
  for (const char* bad :
       {R"({"oneOf":[{"type":"string"},{"minLength":2}]})",
        R"({"oneOf":[{"type":"number"},{"type":"integer"}]})",
        R"({"oneOf":[{"enum":["a","b"]},{"enum":["b","c"]}]})",
        R"({"oneOf":[{"type":"object","properties":{"k":{"const":1}},"required":["k"]},
                     {"type":"object","properties":{"k":{"const":1.0}},"required":["k"]}]})",
        // Disjoint in fact, but not by these rules: "k" is optional in the first.
        R"({"oneOf":[{"type":"object","properties":{"k":{"const":"a"}}},
                     {"type":"object","properties":{"k":{"const":"b"}},"required":["k"]}]})",
        R"({"type":"array","items":{"oneOf":[{"type":"string"},true]}})"}) {
    auto r = json_schema_to_ir(bad, WhitespacePolicy::kCompact);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_NE(r.status().message().find("oneOf"), std::string::npos) << r.status().message();
  }
  // A hostile schema (recursive references under wide oneOfs) ends in an error, quickly.
  std::string wide = R"({"oneOf":[)";
  for (int i = 0; i < 12; ++i) wide += std::string(i ? "," : "") + R"({"$ref":"#"})";
  wide += "]}";
  auto hostile = json_schema_to_ir(wide, WhitespacePolicy::kCompact);
  ASSERT_FALSE(hostile.is_ok());
  EXPECT_NE(hostile.status().message().find("oneOf"), std::string::npos)
      << hostile.status().message();
  auto r = json_schema_to_ir(R"({"type":"array","items":{"oneOf":[{"type":"string"},true]}})",
                             WhitespacePolicy::kCompact);
  EXPECT_NE(r.status().message().find("#/items/oneOf"), std::string::npos)
      << r.status().message();
  const char* tagged = R"({"oneOf":[
      {"type":"object","properties":{"kind":{"const":"a"},"x":{"type":"integer"}},"required":["kind","x"]},
      {"type":"object","properties":{"kind":{"enum":["b","c"]},"y":{"type":"string"}},"required":["kind","y"]},
      {"type":"null"}]})";
  GrammarOptions compact;
  compact.whitespace = WhitespacePolicy::kCompact;
  auto g = compile_grammar(GrammarKind::kJsonSchema, tagged, byte_vocab(), compact);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  EXPECT_TRUE(full_match(*g, R"({"kind":"a","x":1})"));
  EXPECT_TRUE(full_match(*g, R"({"kind":"c","y":"s"})"));
  EXPECT_TRUE(full_match(*g, "null"));
  EXPECT_FALSE(full_match(*g, R"({"kind":"a","y":"s"})"));
  EXPECT_FALSE(full_match(*g, R"({"kind":"d","x":1})"));
  for (const char* ok : {R"({"oneOf":[{"type":"integer"},{"type":"string"},{"type":"boolean"}]})",
                         R"({"oneOf":[{"const":1},{"const":2},{"enum":["1",[1]]}]})",
                         R"({"$defs":{"a":{"type":"object","properties":{"t":{"const":"a"}},"required":["t"]},
                                      "b":{"type":"object","properties":{"t":{"type":"integer"}},"required":["t"]}},
                             "oneOf":[{"$ref":"#/$defs/a"},{"$ref":"#/$defs/b"}]})"}) {
    auto ok_r = compile_grammar(GrammarKind::kJsonSchema, ok, byte_vocab());
    EXPECT_TRUE(ok_r.is_ok()) << ok << ": " << ok_r.status().to_string();
  }
}

TEST(JsonSchema, PatternWithLengthIsExact) {
  GrammarOptions compact;
  compact.whitespace = WhitespacePolicy::kCompact;
  // Anchored: [a-c]+ with 2..4 characters, over every string of {a,b,c,d} up to 5 long.
  auto g = *compile_grammar(GrammarKind::kJsonSchema,
                            R"({"type":"string","pattern":"^[a-c]+$","minLength":2,"maxLength":4})",
                            byte_vocab(), compact);
  EXPECT_TRUE(g->is_dfa());
  // Unanchored (re.search): contains "b", at most 3 characters.
  auto h = *compile_grammar(GrammarKind::kJsonSchema,
                            R"({"type":"string","pattern":"b","maxLength":3})", byte_vocab(),
                            compact);
  std::vector<std::string> strings{""};
  for (size_t i = 0; i < strings.size() && strings[i].size() < 5; ++i)
    for (char c : std::string("abcd")) strings.push_back(strings[i] + c);
  for (const std::string& s : strings) {
    bool abc = s.find('d') == std::string::npos;
    EXPECT_EQ(full_match(g, "\"" + s + "\""), abc && s.size() >= 2 && s.size() <= 4) << s;
    EXPECT_EQ(full_match(h, "\"" + s + "\""), s.find('b') != std::string::npos && s.size() <= 3)
        << s;
  }
  // Lengths count code points.
  auto u = *compile_grammar(GrammarKind::kJsonSchema,
                            R"({"type":"string","pattern":"^.+$","minLength":2,"maxLength":3})",
                            byte_vocab(), compact);
  EXPECT_FALSE(full_match(u, "\"\xC3\xA9\""));
  EXPECT_TRUE(full_match(u, "\"\xC3\xA9\xC3\xA9\""));
  EXPECT_TRUE(full_match(u, "\"a\xF0\x9F\x98\x80z\""));
  EXPECT_FALSE(full_match(u, "\"\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\""));
  // minLength alone: the saturated counter loops, so the grammar runs on the pushdown back end.
  auto m = *compile_grammar(GrammarKind::kJsonSchema,
                            R"({"type":"string","pattern":"^[0-9]+$","minLength":3})",
                            byte_vocab(), compact);
  EXPECT_FALSE(m->is_dfa());
  EXPECT_FALSE(full_match(m, "\"12\""));
  EXPECT_TRUE(full_match(m, "\"123\""));
  EXPECT_TRUE(full_match(m, "\"123456789012\""));
  EXPECT_FALSE(full_match(m, "\"123a\""));
  // format + maxLength.
  auto e = *compile_grammar(GrammarKind::kJsonSchema,
                            R"({"type":"string","format":"email","maxLength":6})", byte_vocab(),
                            compact);
  EXPECT_TRUE(full_match(e, "\"a@b.co\""));
  EXPECT_FALSE(full_match(e, "\"ab@c.de\""));
  EXPECT_FALSE(full_match(e, "\"abcdef\""));
  // Impossible combinations are errors naming the keywords.
  for (const char* bad : {R"({"type":"string","format":"date","maxLength":9})",
                          R"({"type":"string","pattern":"^ab$","minLength":3})"}) {
    auto r = json_schema_to_ir(bad, WhitespacePolicy::kCompact);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_NE(r.status().message().find("minLength"), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace sgl::grammar
