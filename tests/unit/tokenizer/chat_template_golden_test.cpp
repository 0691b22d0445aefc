// Golden test: every case in tests/data/chat_templates/golden.json (rendered by Python jinja2
// configured like transformers; see make_golden.py there) must render byte-for-byte the same,
// and must fail exactly where jinja2 failed (with the same message for raise_exception).
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/chat_template.h"

namespace sgl::tokenizer {
namespace {

using nlohmann::ordered_json;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string data_dir() { return std::string(SGL_TEST_DATA_DIR) + "/chat_templates/"; }

jinja::CivilTime golden_now() {
  jinja::CivilTime t;
  t.year = 2025;
  t.month = 3;
  t.day = 9;
  t.hour = 14;
  t.minute = 5;
  t.second = 9;
  return t;
}

TEST(ChatTemplateGolden, RendersEveryCaseLikeJinja2) {
  std::string text = read_file(data_dir() + "golden.json");
  ASSERT_FALSE(text.empty()) << "missing golden.json";
  ordered_json golden = ordered_json::parse(text);
  ASSERT_EQ(golden["now"], "2025-03-09T14:05:09");

  std::map<std::string, ChatTemplate> templates;
  std::set<std::string> seen_templates;
  int n_ok = 0, n_err = 0, n_raise = 0;
  for (const auto& c : golden["cases"]) {
    std::string name = c["template"].get<std::string>() + "/" + c["name"].get<std::string>();
    SCOPED_TRACE(name);
    std::string tname = c["template"];
    seen_templates.insert(tname);
    auto it = templates.find(tname);
    if (it == templates.end()) {
      auto parsed = ChatTemplate::parse(read_file(data_dir() + tname + ".jinja"));
      ASSERT_TRUE(parsed.is_ok()) << parsed.status().to_string();
      it = templates.emplace(tname, std::move(parsed).value()).first;
    }
    ChatTemplateOptions opts;
    opts.add_generation_prompt = c["add_generation_prompt"];
    opts.bos_token = c["bos_token"];
    opts.eos_token = c["eos_token"];
    if (!c["tools"].is_null()) opts.tools = c["tools"];
    opts.extra_context = c["extra_context"];
    opts.clock = golden_now;
    Result<std::string> out = it->second.render(c["messages"], opts);
    if (c.contains("expected")) {
      ++n_ok;
      ASSERT_TRUE(out.is_ok()) << out.status().to_string();
      EXPECT_EQ(*out, c["expected"].get<std::string>());
    } else {
      ++n_err;
      const auto& err = c["error"];
      ASSERT_FALSE(out.is_ok()) << "jinja2 failed with: " << err["message"]
                                << "\nbut we rendered:\n"
                                << *out;
      if (err["raise"].get<bool>()) {
        ++n_raise;
        EXPECT_EQ(out.status().message(), err["message"].get<std::string>());
      } else {
        // A runtime error of the template, reported with its line.
        EXPECT_NE(out.status().message().find("template error at line"), std::string::npos)
            << out.status().message();
      }
    }
  }
  EXPECT_EQ(seen_templates.size(), 12u);
  EXPECT_GE(n_ok, 120);
  EXPECT_GE(n_raise, 10);
  EXPECT_GE(n_err, n_raise);
}

// Rendering is const and shares only the immutable parsed template: concurrent renders of one
// ChatTemplate must all produce the golden output.
TEST(ChatTemplateGolden, ConcurrentRendersAgree) {
  ordered_json golden = ordered_json::parse(read_file(data_dir() + "golden.json"));
  auto parsed = ChatTemplate::parse(read_file(data_dir() + "llama3_3.jinja"));
  ASSERT_TRUE(parsed.is_ok());
  const ChatTemplate& tmpl = *parsed;
  std::vector<const ordered_json*> cases;
  for (const auto& c : golden["cases"]) {
    if (c["template"] == "llama3_3" && c.contains("expected")) cases.push_back(&c);
  }
  ASSERT_GE(cases.size(), 5u);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 20; ++rep) {
        const ordered_json& c = *cases[(t + rep) % cases.size()];
        ChatTemplateOptions opts;
        opts.add_generation_prompt = c["add_generation_prompt"];
        opts.bos_token = c["bos_token"];
        opts.eos_token = c["eos_token"];
        if (!c["tools"].is_null()) opts.tools = c["tools"];
        opts.extra_context = c["extra_context"];
        opts.clock = golden_now;
        auto out = tmpl.render(c["messages"], opts);
        if (!out.is_ok() || *out != c["expected"].get<std::string>()) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace sgl::tokenizer
