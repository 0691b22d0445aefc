// Fuzzes the chat-template interpreter (Jinja): parse + render of an arbitrary template with an
// arbitrary message list. Input: "<template>\n#--\n<messages JSON>\n#--\n<extra context JSON>".
// An empty template piece selects the default model's real template (SmolLM2), so the messages
// are fuzzed against it too. Messages that are not a JSON array become one user message whose
// content is that text. Tighter limits than the server's keep each run short; every failure must
// be a Status, never a crash, an exception or a hang.
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "tokenizer/chat_template.h"

namespace {

using Json = nlohmann::ordered_json;

sgl::tokenizer::jinja::Limits fuzz_limits() {
  sgl::tokenizer::jinja::Limits l;
  l.max_loop_iterations = 20000;
  l.max_output_bytes = 1u << 20;
  l.max_work_bytes = 32u << 20;
  l.max_steps = 400000;
  l.max_render_ms = 3000;
  return l;
}

const sgl::tokenizer::ChatTemplate& model_template() {
  static const sgl::tokenizer::ChatTemplate* t = [] {
    std::ifstream f(std::string(SGL_SOURCE_DIR) + "/tests/data/chat_templates/smollm2.jinja");
    std::stringstream ss;
    ss << f.rdbuf();
    auto r = sgl::tokenizer::ChatTemplate::parse(ss.str());
    if (!r.is_ok()) {
      std::fprintf(stderr, "fuzz_chat_template: %s\n", r.status().to_string().c_str());
      std::exit(1);
    }
    return new sgl::tokenizer::ChatTemplate(std::move(*r));
  }();
  return *t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sgl::fuzz::Pieces in(data, size);
  std::string_view source = in.take();
  std::string_view messages_text = in.take();
  std::string_view extra_text = in.take();

  Json messages = Json::parse(messages_text, nullptr, /*allow_exceptions=*/false);
  if (!messages.is_array()) {
    messages = Json::array({Json{{"role", "system"}, {"content", "You are terse."}},
                            Json{{"role", "user"}, {"content", std::string(messages_text)}}});
  }
  sgl::tokenizer::ChatTemplateOptions opts;
  opts.add_generation_prompt = size % 2 == 1;
  opts.bos_token = "<|im_start|>";
  opts.eos_token = "<|im_end|>";
  opts.clock = [] { return sgl::tokenizer::jinja::CivilTime{2026, 11, 26, 12, 0, 0}; };
  Json extra = Json::parse(extra_text, nullptr, /*allow_exceptions=*/false);
  if (extra.is_object()) opts.extra_context = extra;
  if (extra.is_array()) opts.tools = extra;

  if (source.empty()) {
    auto out = model_template().render(messages, opts);
    (void)out;
    return 0;
  }
  auto tmpl = sgl::tokenizer::ChatTemplate::parse(std::string(source), fuzz_limits());
  if (!tmpl.is_ok()) {
    FUZZ_CHECK(!tmpl.status().message().empty(), "a syntax error says what is wrong");
    return 0;
  }
  auto out = tmpl->render(messages, opts);
  if (out.is_ok()) FUZZ_CHECK(out->size() <= (1u << 20), "output limit holds");
  return 0;
}
