// Chat templates: turns a list of chat messages into the prompt text a model expects, by
// rendering the model's Jinja chat template (tokenizer.chat_template in GGUF metadata,
// chat_template in tokenizer_config.json, or a --chat-template file) exactly as Hugging Face
// transformers' apply_chat_template(..., tokenize=False) does.
//
// The context a template sees matches transformers: `messages`, `tools` (None when absent),
// `documents` (None), `add_generation_prompt`, `bos_token`, `eos_token`, plus any extra
// variables (e.g. enable_thinking, date_string, custom_tools), and the globals
// raise_exception() and strftime_now().
//
// A ChatTemplate is parsed once and is immutable; render() is const and thread-safe.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "support/status.h"
#include "tokenizer/jinja/template.h"

namespace sgl::tokenizer {

struct ChatTemplateOptions {
  bool add_generation_prompt = false;
  std::string bos_token;
  std::string eos_token;
  // Tool schemas (a JSON array), passed as `tools`; absent -> None, as transformers does.
  std::optional<nlohmann::ordered_json> tools;
  // Extra template variables (a JSON object), e.g. {"enable_thinking": false}. They are set
  // after the standard ones and may override them.
  nlohmann::ordered_json extra_context = nlohmann::ordered_json::object();
  // Supplies the time for strftime_now(); empty means the local system time.
  jinja::Clock clock;
};

class ChatTemplate {
 public:
  // Compiles a template. Errors are syntax errors with line and column.
  static Result<ChatTemplate> parse(std::string source,
                                    const jinja::Limits& limits = jinja::Limits());

  // Renders `messages` (a JSON array of {"role": ..., "content": ..., ...} objects; content may
  // be a string, null or a list of parts; other fields such as tool_calls pass through).
  // JSON objects keep their key order, which matters for templates that print them with
  // tojson, so prefer ordered_json for request data. A template's raise_exception(msg)
  // fails with exactly `msg`; other failures carry the template line.
  Result<std::string> render(const nlohmann::ordered_json& messages,
                             const ChatTemplateOptions& options) const;
  Result<std::string> render(const nlohmann::json& messages,
                             const ChatTemplateOptions& options) const;

  const std::string& source() const { return source_; }

 private:
  ChatTemplate(std::string source, jinja::Template tmpl)
      : source_(std::move(source)), template_(std::move(tmpl)) {}

  std::string source_;
  jinja::Template template_;
};

}  // namespace sgl::tokenizer
