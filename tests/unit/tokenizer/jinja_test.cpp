// Unit tests of the Jinja interpreter beyond the jinja2-generated cases (jinja_cases_test.cpp):
// limits and sandboxing, error positions, value plumbing, and robustness against random and
// mutated input.
#include "tokenizer/jinja/template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tokenizer/jinja/json.h"
#include "tokenizer/jinja/pystr.h"
#include "tokenizer/jinja/value.h"

namespace sgl::tokenizer::jinja {
namespace {

// Renders `src` with `vars`; returns the output or "ERROR: <message>".
std::string render(std::string_view src, const Variables& vars = {},
                   const Limits& limits = Limits()) {
  auto t = Template::parse(src, limits);
  if (!t.is_ok()) return "ERROR: " + t.status().message();
  auto out = t->render(vars);
  if (!out.is_ok()) return "ERROR: " + out.status().message();
  return *out;
}

Status render_status(std::string_view src, const Limits& limits = Limits()) {
  auto t = Template::parse(src, limits);
  if (!t.is_ok()) return t.status();
  auto out = t->render({});
  return out.is_ok() ? Status::ok() : out.status();
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(Jinja, RendersBasics) {
  EXPECT_EQ(render("Hello {{ name }}!", {{"name", Value::string("world")}}), "Hello world!");
  EXPECT_EQ(render("{% for x in xs %}{{ x }},{% endfor %}",
                   {{"xs", Value::list({Value::integer(1), Value::string("a")})}}),
            "1,a,");
  EXPECT_EQ(render("{{ missing }}|{{ missing is defined }}"), "|False");
}

TEST(Jinja, ParseOnceRenderManyTimes) {
  auto t = Template::parse("{{ n * 2 }}");
  ASSERT_TRUE(t.is_ok());
  Template copy = *t;  // cheap copies share the parsed program
  for (int i = 0; i < 5; ++i) {
    auto out = copy.render({{"n", Value::integer(i)}});
    ASSERT_TRUE(out.is_ok());
    EXPECT_EQ(*out, std::to_string(2 * i));
  }
}

TEST(Jinja, SyntaxErrorsNameLineAndColumn) {
  auto t = Template::parse("a\n\n  {{ 1 + }}");
  ASSERT_FALSE(t.is_ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(t.status().message(), "line 3, column 10")) << t.status().message();

  t = Template::parse("{{ x | nope }}");
  ASSERT_FALSE(t.is_ok());
  EXPECT_EQ(t.status().message(),
            "template syntax error at line 1, column 8: no filter named 'nope'");

  t = Template::parse("{% for x in y %}\n{% if x %}\n");
  ASSERT_FALSE(t.is_ok());
  EXPECT_TRUE(contains(t.status().message(), "'endif'")) << t.status().message();
  EXPECT_TRUE(contains(t.status().message(), "line 2")) << t.status().message();

  t = Template::parse("é {{ 'x' !}}");  // columns count code points
  ASSERT_FALSE(t.is_ok());
  EXPECT_TRUE(contains(t.status().message(), "line 1, column 10")) << t.status().message();

  t = Template::parse("{% include 'x' %}");
  ASSERT_FALSE(t.is_ok());
  EXPECT_TRUE(contains(t.status().message(), "not supported")) << t.status().message();

  t = Template::parse(std::string("bad \xff utf8"));
  ASSERT_FALSE(t.is_ok());
  EXPECT_TRUE(contains(t.status().message(), "UTF-8"));
}

TEST(Jinja, RuntimeErrorsNameTheLine) {
  EXPECT_EQ(render("a\nb\n{{ 1 / 0 }}"),
            "ERROR: template error at line 3: ZeroDivisionError: division by zero");
  EXPECT_EQ(render("{% for m in ms %}\n{{ m.x.y }}\n{% endfor %}",
                   {{"ms", Value::list({Value::dict(Dict())})}}),
            "ERROR: template error at line 2: UndefinedError: 'dict object' has no attribute 'x'");
}

TEST(Jinja, RaiseExceptionCarriesTheMessageVerbatim) {
  auto t =
      Template::parse("{% if true %}\n{{ raise_exception('Roles must alternate!') }}{% endif %}");
  ASSERT_TRUE(t.is_ok());
  auto out = t->render({});
  ASSERT_FALSE(out.is_ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status().message(), "Roles must alternate!");
}

TEST(Jinja, SandboxRefusesMutation) {
  EXPECT_EQ(render("{% set l = [1] %}{{ l.append(2) }}"),
            "ERROR: template error at line 1: SecurityError: access to attribute 'append' of "
            "'list' object is unsafe.");
  EXPECT_TRUE(contains(render("{{ {}.update(a=1) }}"), "SecurityError"));
  EXPECT_TRUE(contains(render("{{ {}.setdefault('a') }}"), "SecurityError"));
  // Reading the attribute is allowed (it is an unusable Undefined), calling it is not.
  EXPECT_EQ(render("{% set l = [1] %}[{{ l.pop }}]"), "[]");
  EXPECT_TRUE(contains(render("{{ ''.__class__.__mro__ }}"), "SecurityError"));
}

TEST(Jinja, LoopIterationLimit) {
  Status st = render_status("{% for i in range(100000000) %}{% endfor %}");
  ASSERT_FALSE(st.is_ok());
  EXPECT_TRUE(contains(st.message(), "Range too big")) << st.message();

  st = render_status(
      "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(contains(st.message(), "loop iterations")) << st.message();

  Limits small;
  small.max_loop_iterations = 10;
  EXPECT_TRUE(render_status("{% for i in range(10) %}{% endfor %}", small).is_ok());
  EXPECT_FALSE(render_status("{% for i in range(11) %}{% endfor %}", small).is_ok());
}

TEST(Jinja, OutputLimit) {
  Status st = render_status("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}");
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(contains(st.message(), "output exceeds")) << st.message();

  Limits small;
  small.max_output_bytes = 100;
  EXPECT_TRUE(render_status("{{ 'x' * 100 }}", small).is_ok());
  EXPECT_FALSE(render_status("{{ 'x' * 101 }}", small).is_ok());
  // Captured blocks count too.
  EXPECT_FALSE(render_status("{% set s %}{{ 'x' * 101 }}{% endset %}", small).is_ok());
}

TEST(Jinja, WorkBudgetStopsQuadraticBlowup) {
  Status st = render_status(
      "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
      "{% endfor %}");
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);

  st = render_status("{{ 'x' * 9223372036854775807 }}");
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);

  st = render_status("{{ [1, 2] * 9223372036854775807 }}");
  ASSERT_FALSE(st.is_ok());

  st = render_status(
      "{% set ns = namespace(s='') %}{% for i in range(100000) %}{% set ns.s = ns.s ~ 'abcdefgh' "
      "%}{% endfor %}");
  ASSERT_FALSE(st.is_ok());  // 100k appends of a growing string: quadratic copying
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
}

TEST(Jinja, LinearScansCountAgainstTheBudget) {
  // 10^6 membership tests against a 10^5-element list would take minutes; the work budget
  // stops it.
  Limits limits;
  limits.max_work_bytes = 16u << 20;  // same mechanism as the default, reached sooner
  Status st = render_status(
      "{% set l = range(100000)|list %}{% for i in range(1000) %}{% for j in range(1000) %}"
      "{{ 99999 in l }}{% endfor %}{% endfor %}",
      limits);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  st = render_status(
      "{% set l = range(100000)|list %}{% for i in range(1000) %}{% for j in range(1000) %}"
      "{{ l == l }}{{ l.count(3) }}{% endfor %}{% endfor %}",
      limits);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
}

TEST(Jinja, DeepNestingIsRejectedCleanly) {
  std::string parens = std::string(5000, '(') + "1" + std::string(5000, ')');
  Status st = render_status("{{ " + parens + " }}");
  ASSERT_FALSE(st.is_ok());
  EXPECT_TRUE(contains(st.message(), "nesting exceeds")) << st.message();

  std::string lists = std::string(5000, '[') + std::string(5000, ']');
  EXPECT_FALSE(render_status("{{ " + lists + " }}").is_ok());

  std::string nots;
  for (int i = 0; i < 5000; ++i) nots += "not ";
  EXPECT_FALSE(render_status("{{ " + nots + "x }}").is_ok());
  EXPECT_FALSE(render_status("{{ " + std::string(5000, '-') + "1 }}").is_ok());

  std::string chain = "{{ x";
  for (int i = 0; i < 5000; ++i) chain += ".a";
  EXPECT_FALSE(render_status(chain + " }}").is_ok());

  std::string sum = "{{ 1";
  for (int i = 0; i < 5000; ++i) sum += " + 1";
  EXPECT_FALSE(render_status(sum + " }}").is_ok());

  std::string ifs;
  for (int i = 0; i < 1000; ++i) ifs += "{% if true %}";
  for (int i = 0; i < 1000; ++i) ifs += "{% endif %}";
  EXPECT_FALSE(render_status(ifs).is_ok());

  // Within the limit everything works.
  std::string ok = std::string(60, '(') + "7" + std::string(60, ')');
  EXPECT_EQ(render("{{ " + ok + " }}"), "7");
}

TEST(Jinja, DeepValuesAndRecursionAreBounded) {
  Status st = render_status(
      "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}"
      "{% endfor %}{{ ns.x }}");
  ASSERT_FALSE(st.is_ok());
  EXPECT_TRUE(contains(st.message(), "nested deeper")) << st.message();

  st = render_status("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(contains(st.message(), "macro calls nested")) << st.message();

  // A namespace that contains itself prints like Python's recursive repr, and is freed.
  EXPECT_EQ(render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}"),
            "<Namespace {'me': <Namespace {...}>}>");
  // Shared sub-values would print exponentially large: printing is capped and the output limit
  // fails the render instead of exhausting memory.
  Status st2 = render_status(
      "{% set ns = namespace(v=[1]) %}{% for i in range(60) %}{% set ns.v = [ns.v, ns.v] %}"
      "{% endfor %}{{ ns.v }}");
  ASSERT_FALSE(st2.is_ok());
  EXPECT_EQ(st2.code(), StatusCode::kResourceExhausted);
  // ...and so would comparing two such values: the comparison gives up instead of hanging.
  EXPECT_EQ(render("{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(60) %}"
                   "{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}"
                   "{{ ns.a == ns.b }}"),
            "False");
}

TEST(Jinja, StepLimit) {
  Limits small;
  small.max_steps = 1000;
  Status st = render_status("{% for i in range(10000) %}{{ i }}{% endfor %}", small);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
}

TEST(Jinja, ClockIsInjectable) {
  auto t = Template::parse("{{ strftime_now('%Y-%m-%d %H:%M %A %B') }}");
  ASSERT_TRUE(t.is_ok());
  CivilTime fixed;
  fixed.year = 2024;
  fixed.month = 2;
  fixed.day = 29;
  fixed.hour = 23;
  fixed.minute = 59;
  auto out = t->render({}, [&] { return fixed; });
  ASSERT_TRUE(out.is_ok());
  EXPECT_EQ(*out, "2024-02-29 23:59 Thursday February");
  // The default clock is the local system time.
  auto now = t->render({});
  ASSERT_TRUE(now.is_ok());
  EXPECT_GE(std::stoi(now->substr(0, 4)), 2024);
}

TEST(Jinja, JsonValuesKeepOrderAndTypes) {
  auto j = nlohmann::ordered_json::parse(
      R"({"z": 1, "a": [true, null, 2.5, "s"], "m": {"k": 18446744073709551615}})");
  auto v = from_json(j);
  ASSERT_TRUE(v.is_ok());
  EXPECT_EQ(repr(*v), "{'z': 1, 'a': [True, None, 2.5, 's'], 'm': {'k': 1.8446744073709552e+19}}");
  auto s = to_json(*v, JsonDumpOptions());
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(*s, R"({"z": 1, "a": [true, null, 2.5, "s"], "m": {"k": 1.8446744073709552e+19}})");

  // Ill-formed UTF-8 from the caller is repaired rather than passed into the template.
  nlohmann::ordered_json bad = std::string(
      "a\xff"
      "b");
  auto b = from_json(bad);
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(b->as_string(),
            "a\xEF\xBF\xBD"
            "b");

  // Deep JSON is refused rather than recursed into.
  nlohmann::ordered_json deep = nlohmann::ordered_json::array();
  for (int i = 0; i < 600; ++i) deep = nlohmann::ordered_json::array({deep});
  EXPECT_FALSE(from_json(deep).is_ok());
}

TEST(Jinja, PythonStrings) {
  EXPECT_EQ(py::length("héllo🎉"), 6u);
  EXPECT_EQ(py::split("  a  b ", std::nullopt, -1), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(py::rsplit("a,b,c", std::string(","), 1), (std::vector<std::string>{"a,b", "c"}));
  EXPECT_EQ(py::strip("\u3000 x\t\n", std::nullopt, true, true), "x");
  EXPECT_EQ(py::title("hello wORLD"), "Hello World");
  EXPECT_EQ(py::upper("straße"), "STRASSE");
  EXPECT_EQ(py::center("ab", 7, U'*'), "***ab**");
  EXPECT_EQ(format_float(1e16), "1e+16");
  EXPECT_EQ(format_float(123456789012345678.0), "1.2345678901234568e+17");
  EXPECT_EQ(format_float(0.0001), "0.0001");
  EXPECT_EQ(format_float(0.00001), "1e-05");
  EXPECT_EQ(format_float(-0.0), "-0.0");
  std::string r;
  py::append_repr(r, "it's \"q\"\n\x01");
  EXPECT_EQ(r, "'it\\'s \"q\"\\n\\x01'");
}

// Random bytes and mutated real templates must never crash, hang or leak: every input ends in
// output or a Status.
TEST(Jinja, FuzzRandomAndMutatedTemplates) {
  std::mt19937 rng(1234);
  std::vector<std::string> seeds;
  const char* names[] = {"smollm2", "llama3_3", "llama3_2",     "qwen2_5",
                         "qwen3",   "mixtral",  "mistral_nemo", "gemma2",
                         "gemma3",  "phi3",     "phi3_5",       "deepseek_r1_distill"};
  for (const char* n : names) {
    std::ifstream in(std::string(SGL_TEST_DATA_DIR) + "/chat_templates/" + n + ".jinja",
                     std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    ASSERT_FALSE(ss.str().empty()) << n;
    seeds.push_back(ss.str());
  }
  auto messages = from_json(nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "sys"},
    {"role": "user", "content": "hi {{ there }}"},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "abcdefghi", "type": "function",
      "function": {"name": "f", "arguments": {"x": 1}}}]},
    {"role": "tool", "content": "42"},
    {"role": "user", "content": [{"type": "text", "text": "part"}]}])"));
  ASSERT_TRUE(messages.is_ok());
  Variables vars = {{"messages", *messages},
                    {"add_generation_prompt", Value::boolean(true)},
                    {"bos_token", Value::string("<s>")},
                    {"eos_token", Value::string("</s>")},
                    {"tools", Value::none()}};
  Limits limits;
  limits.max_loop_iterations = 20000;
  limits.max_output_bytes = 1 << 20;
  limits.max_work_bytes = 8 << 20;
  limits.max_steps = 200000;
  const std::string alphabet = "{}%#-+()[]'\"|.,:~=<>!*/ \n\tabcdefghijklmnopqrstuvwxyz0123456789_";
  const char* tokens[] = {"{%",     "%}",         "{{",     "}}",   "{#",   "#}",     "for ",
                          "endfor", "if ",        "endif",  "else", "set ", "macro ", "endmacro",
                          "loop.",  "namespace(", "range(", "|",    " is ", " in ",   "not ",
                          "raw",    "endraw",     "-",      "+",    "**",   "~"};
  int parsed = 0, rendered = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string src;
    if (iter % 10 == 0) {
      // Random bytes, valid UTF-8 or not.
      size_t n = rng() % 200;
      for (size_t i = 0; i < n; ++i) src.push_back(static_cast<char>(rng() % 256));
    } else {
      src = seeds[rng() % seeds.size()];
      int edits = 1 + rng() % 6;
      for (int e = 0; e < edits && !src.empty(); ++e) {
        size_t pos = rng() % src.size();
        switch (rng() % 4) {
          case 0:
            src.erase(pos, 1 + rng() % 8);
            break;
          case 1:
            src.insert(pos, 1, alphabet[rng() % alphabet.size()]);
            break;
          case 2:
            src.insert(pos, tokens[rng() % (sizeof(tokens) / sizeof(tokens[0]))]);
            break;
          default:
            src[pos] = alphabet[rng() % alphabet.size()];
            break;
        }
      }
    }
    auto t = Template::parse(src, limits);
    if (!t.is_ok()) {
      EXPECT_FALSE(t.status().message().empty());
      continue;
    }
    ++parsed;
    auto out = t->render(vars);
    if (out.is_ok()) ++rendered;
  }
  // The mutations leave most templates parseable and some renderable: the loop really
  // exercises the renderer, not just the parser.
  EXPECT_GT(parsed, 300);
  EXPECT_GT(rendered, 100);
}

TEST(Jinja, FuzzRandomExpressions) {
  std::mt19937 rng(99);
  const char* atoms[] = {"1",           "2.5",      "'s'",  "none",     "true", "x",
                         "[1, 2]",      "{'a': 1}", "(1,)", "range(3)", "x.a",  "x[0]",
                         "'abc'[::-1]", "missing",  "-3",   "ns"};
  const char* ops[] = {" + ", " - ",  " * ", " / ",  " // ",  " % ",  " ** ",
                       " ~ ", " == ", " < ", " in ", " and ", " or ", " if true else "};
  const char* filters[] = {"|length",  "|list",      "|string",        "|tojson", "|first",
                           "|sort",    "|join(',')", "|upper",         "|int",    "|default(0)",
                           "|reverse", "|unique",    "|map('string')", "|select", "|sum",
                           "|trim",    "|items",     "|dictsort"};
  Variables vars = {{"x", Value::list({Value::integer(1)})}};
  for (int iter = 0; iter < 2000; ++iter) {
    std::string expr = atoms[rng() % 16];
    int n = rng() % 5;
    for (int i = 0; i < n; ++i) {
      expr += ops[rng() % 14];
      expr += atoms[rng() % 16];
      if (rng() % 2) expr = "(" + expr + ")" + filters[rng() % 18];
    }
    std::string src = "{% set ns = namespace(v=1) %}{{ " + expr + " }}";
    auto t = Template::parse(src);
    ASSERT_TRUE(t.is_ok()) << src << ": " << t.status().message();
    auto out = t->render(vars);
    if (!out.is_ok()) {
      EXPECT_FALSE(out.status().message().empty()) << src;
    }
  }
}

}  // namespace
}  // namespace sgl::tokenizer::jinja
