// Data-driven interpreter test: ~240 snippets (expressions, filters, tests, whitespace control,
// loops, scoping, macros, runtime errors) rendered by Python jinja2 configured like transformers
// (tests/data/chat_templates/make_golden.py -> jinja_cases.json). Every output must match
// byte-for-byte; where jinja2 failed we must fail too, with the same message.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tokenizer/jinja/json.h"
#include "tokenizer/jinja/template.h"

namespace sgl::tokenizer::jinja {
namespace {

using nlohmann::ordered_json;

ordered_json load_cases() {
  std::ifstream in(std::string(SGL_TEST_DATA_DIR) + "/chat_templates/jinja_cases.json",
                   std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ordered_json::parse(ss.str());
}

CivilTime fixed_now() {
  CivilTime t;
  t.year = 2025;
  t.month = 3;
  t.day = 9;
  t.hour = 14;
  t.minute = 5;
  t.second = 9;
  return t;
}

TEST(JinjaCases, MatchJinja2) {
  ordered_json data = load_cases();
  ASSERT_EQ(data["now"], "2025-03-09T14:05:09");
  int n = 0;
  for (const auto& c : data["cases"]) {
    std::string src = c["template"];
    SCOPED_TRACE(src);
    ++n;
    Variables vars;
    for (auto it = c["context"].begin(); it != c["context"].end(); ++it) {
      auto v = from_json(it.value());
      ASSERT_TRUE(v.is_ok());
      vars.emplace_back(it.key(), *v);
    }
    auto tmpl = Template::parse(src);
    ASSERT_TRUE(tmpl.is_ok()) << tmpl.status().to_string();
    auto out = tmpl->render(vars, fixed_now);
    if (c.contains("expected")) {
      ASSERT_TRUE(out.is_ok()) << out.status().to_string();
      EXPECT_EQ(*out, c["expected"].get<std::string>());
      continue;
    }
    ASSERT_FALSE(out.is_ok()) << "jinja2: " << c["error"]["message"] << "; we rendered: " << *out;
    std::string expected = c["error"]["message"];
    const std::string& got = out.status().message();
    if (c["error"]["raise"].get<bool>()) {
      EXPECT_EQ(got, expected);
    } else {
      // "template error at line N: <Python exception type>: <Python message>"
      ASSERT_GE(got.size(), expected.size()) << got;
      EXPECT_EQ(got.substr(got.size() - expected.size()), expected) << got;
      EXPECT_EQ(got.rfind("template error at line ", 0), 0u) << got;
    }
  }
  EXPECT_GE(n, 200);
}

TEST(JinjaCases, RejectWhatJinja2Rejects) {
  ordered_json data = load_cases();
  ASSERT_GE(data["syntax_errors"].size(), 15u);
  for (const auto& s : data["syntax_errors"]) {
    std::string src = s;
    auto tmpl = Template::parse(src);
    EXPECT_FALSE(tmpl.is_ok()) << src;
    if (!tmpl.is_ok()) {
      EXPECT_EQ(tmpl.status().message().rfind("template syntax error at line ", 0), 0u)
          << tmpl.status().message();
    }
  }
}

}  // namespace
}  // namespace sgl::tokenizer::jinja
