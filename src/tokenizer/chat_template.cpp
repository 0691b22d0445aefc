#include "tokenizer/chat_template.h"

#include "tokenizer/jinja/json.h"

namespace sgl::tokenizer {

Result<ChatTemplate> ChatTemplate::parse(std::string source, const jinja::Limits& limits) {
  SGL_ASSIGN_OR_RETURN(jinja::Template tmpl, jinja::Template::parse(source, limits));
  return ChatTemplate(std::move(source), std::move(tmpl));
}

namespace {

template <typename Json>
Result<std::string> render_impl(const jinja::Template& tmpl, const Json& messages,
                                const ChatTemplateOptions& options) {
  if (!messages.is_array()) {
    return invalid_argument("chat template: messages must be a JSON array");
  }
  if (options.tools && !options.tools->is_array() && !options.tools->is_null()) {
    return invalid_argument("chat template: tools must be a JSON array");
  }
  if (!options.extra_context.is_object()) {
    return invalid_argument("chat template: extra context must be a JSON object");
  }
  jinja::Variables vars;
  SGL_ASSIGN_OR_RETURN(jinja::Value msgs, jinja::from_json(messages));
  vars.emplace_back("messages", std::move(msgs));
  jinja::Value tools = jinja::Value::none();
  if (options.tools) {
    SGL_ASSIGN_OR_RETURN(tools, jinja::from_json(*options.tools));
  }
  vars.emplace_back("tools", std::move(tools));
  vars.emplace_back("documents", jinja::Value::none());
  vars.emplace_back("add_generation_prompt", jinja::Value::boolean(options.add_generation_prompt));
  vars.emplace_back("bos_token", jinja::Value::string(options.bos_token));
  vars.emplace_back("eos_token", jinja::Value::string(options.eos_token));
  for (auto it = options.extra_context.begin(); it != options.extra_context.end(); ++it) {
    SGL_ASSIGN_OR_RETURN(jinja::Value v, jinja::from_json(it.value()));
    bool replaced = false;
    for (auto& [name, value] : vars) {
      if (name == it.key()) {
        value = v;
        replaced = true;
      }
    }
    if (!replaced) vars.emplace_back(it.key(), std::move(v));
  }
  return tmpl.render(vars, options.clock);
}

}  // namespace

Result<std::string> ChatTemplate::render(const nlohmann::ordered_json& messages,
                                         const ChatTemplateOptions& options) const {
  return render_impl(template_, messages, options);
}

Result<std::string> ChatTemplate::render(const nlohmann::json& messages,
                                         const ChatTemplateOptions& options) const {
  return render_impl(template_, messages, options);
}

}  // namespace sgl::tokenizer
