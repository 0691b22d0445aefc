// ChatTemplate API tests: the context it builds (messages, tools, special tokens, extra
// variables), input validation, and the default model's template read from its GGUF file.
#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "model/gguf.h"

namespace sgl::tokenizer {
namespace {

using nlohmann::ordered_json;

ChatTemplate parse_or_die(const std::string& src) {
  auto t = ChatTemplate::parse(src);
  EXPECT_TRUE(t.is_ok()) << t.status().to_string();
  return std::move(t).value();
}

TEST(ChatTemplate, ExposesTheTransformersContext) {
  ChatTemplate t = parse_or_die(
      "{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools }}|{{ documents }}|"
      "{{ messages|length }}|{{ enable_thinking }}|{{ custom }}");
  ChatTemplateOptions o;
  o.bos_token = "<s>";
  o.eos_token = "</s>";
  o.add_generation_prompt = true;
  o.extra_context = {{"enable_thinking", false}, {"custom", {{"k", 1}}}};
  auto out = t.render(ordered_json::array({{{"role", "user"}, {"content", "x"}}}), o);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(*out, "<s>|</s>|True|None|None|1|False|{'k': 1}");
}

TEST(ChatTemplate, ExtraContextOverridesStandardVariables) {
  ChatTemplate t = parse_or_die("{{ add_generation_prompt }} {{ eos_token }}");
  ChatTemplateOptions o;
  o.eos_token = "</s>";
  o.extra_context = {{"add_generation_prompt", true}, {"eos_token", "<eos>"}};
  auto out = t.render(ordered_json::array(), o);
  ASSERT_TRUE(out.is_ok());
  EXPECT_EQ(*out, "True <eos>");
}

TEST(ChatTemplate, ToolsAndMessageFieldsPassThroughInOrder) {
  ChatTemplate t = parse_or_die(
      "{{ tools|tojson }}\n{% for m in messages %}{{ m.tool_calls|tojson }}{{ m.content is none "
      "}}{% endfor %}");
  ChatTemplateOptions o;
  o.tools = ordered_json::parse(R"([{"type": "function", "function": {"name": "f"}}])");
  auto msgs = ordered_json::parse(
      R"([{"role": "assistant", "content": null, "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": {"b": 1, "a": 2}}}]}])");
  auto out = t.render(msgs, o);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(*out,
            "[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]\n"
            "[{\"id\": \"1\", \"function\": {\"name\": \"f\", \"arguments\": {\"b\": 1, \"a\": "
            "2}}}]True");

  // nlohmann::json (std::map) input works too; its keys come out sorted.
  nlohmann::json plain = nlohmann::json::parse(msgs.dump());
  out = t.render(plain, o);
  ASSERT_TRUE(out.is_ok());
  EXPECT_NE(out->find("{\"a\": 2, \"b\": 1}"), std::string::npos) << *out;
}

TEST(ChatTemplate, ValidatesInputs) {
  ChatTemplate t = parse_or_die("{{ messages }}");
  ChatTemplateOptions o;
  EXPECT_FALSE(t.render(ordered_json::object(), o).is_ok());
  o.tools = ordered_json::object();
  EXPECT_FALSE(t.render(ordered_json::array(), o).is_ok());
  o.tools.reset();
  o.extra_context = ordered_json::array();
  EXPECT_FALSE(t.render(ordered_json::array(), o).is_ok());

  auto bad = ChatTemplate::parse("{% for m in messages %}");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("line 1"), std::string::npos);
}

TEST(ChatTemplate, RaiseExceptionMessageIsReturnedAsIs) {
  ChatTemplate t = parse_or_die(
      "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
      "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') "
      "}}{% endif %}{% endfor %}ok");
  auto msgs = ordered_json::parse(
      R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])");
  auto out = t.render(msgs, ChatTemplateOptions());
  ASSERT_FALSE(out.is_ok());
  EXPECT_EQ(out.status().message(),
            "Conversation roles must alternate user/assistant/user/assistant/...");
}

TEST(ChatTemplate, LongConversation) {
  ChatTemplate t = parse_or_die(
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
      "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
      "'<|im_start|>assistant\\n' }}{% endif %}");
  ordered_json msgs = ordered_json::array();
  std::string expected;
  for (int i = 0; i < 100; ++i) {
    std::string role = i % 2 ? "assistant" : "user";
    std::string content = "message number " + std::to_string(i) + " with some text";
    msgs.push_back({{"role", role}, {"content", content}});
    expected += "<|im_start|>" + role + "\n" + content + "<|im_end|>\n";
  }
  expected += "<|im_start|>assistant\n";
  ChatTemplateOptions o;
  o.add_generation_prompt = true;
  for (int rep = 0; rep < 3; ++rep) {
    auto out = t.render(msgs, o);
    ASSERT_TRUE(out.is_ok());
    EXPECT_EQ(*out, expected);
  }
}

// The default model ships its chat template in GGUF metadata; it must parse and render the
// SmolLM2 ChatML prompt.
TEST(ChatTemplate, DefaultModelTemplateFromGguf) {
  std::string path = std::string(SGL_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "default model not downloaded";
  auto gguf = model::GgufFile::open(path);
  ASSERT_TRUE(gguf.is_ok()) << gguf.status().to_string();
  auto src = gguf->get_string("tokenizer.chat_template");
  ASSERT_TRUE(src.is_ok()) << src.status().to_string();
  auto t = ChatTemplate::parse(*src);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  ChatTemplateOptions o;
  o.add_generation_prompt = true;
  auto out = t->render(ordered_json::parse(R"([{"role": "user", "content": "What is 2+2?"}])"), o);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(*out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
            "Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
}

}  // namespace
}  // namespace sgl::tokenizer
