// Fuzzes HTTP request-body parsing as the server does it, without a server: the body bytes go
// through parse_json_object (depth guard, UTF-8 check), then into every route's parser (native
// /generate, OpenAI /v1/completions and /v1/chat/completions, /tokenize, /detokenize,
// /abort_request). Parsed sampling parameters are validated as the server would, and a parsed
// chat request's messages are rendered with the default model's chat template as handle_chat
// does. Every bad body must come back as a Status.
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "fuzz_util.h"
#include "server/json_fields.h"
#include "server/protocol.h"
#include "tokenizer/chat_template.h"

namespace {

const sgl::tokenizer::ChatTemplate& model_template() {
  static const sgl::tokenizer::ChatTemplate* t = [] {
    std::ifstream f(std::string(SGL_SOURCE_DIR) + "/tests/data/chat_templates/smollm2.jinja");
    std::stringstream ss;
    ss << f.rdbuf();
    auto r = sgl::tokenizer::ChatTemplate::parse(ss.str());
    if (!r.is_ok()) std::abort();
    return new sgl::tokenizer::ChatTemplate(std::move(*r));
  }();
  return *t;
}

void check_error(const sgl::Status& s) {
  FUZZ_CHECK(!s.is_ok() && !s.message().empty(), "an error names what is wrong");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sgl::server;
  constexpr int32_t kVocab = 49152, kContext = 8192;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto body = parse_json_object(text);
  if (!body.is_ok()) {
    check_error(body.status());
    return 0;
  }
  if (auto g = parse_generate_request(*body); g.is_ok()) {
    FUZZ_CHECK(g->params.size() == g->prompts.size() && g->rids.size() == g->prompts.size(),
               "one params and one rid per prompt");
    FUZZ_CHECK(g->choices() <= kMaxChoicesPerRequest, "choices are bounded");
    for (const auto& p : g->params) (void)p.validate(kVocab, kContext);
  } else {
    check_error(g.status());
  }
  if (auto c = parse_completion_request(*body); c.is_ok()) {
    (void)c->common.params.validate(kVocab, kContext);
  } else {
    check_error(c.status());
  }
  if (auto c = parse_chat_request(*body); c.is_ok()) {
    (void)c->common.params.validate(kVocab, kContext);
    sgl::tokenizer::ChatTemplateOptions opts;
    opts.add_generation_prompt = true;
    opts.tools = c->tools;
    opts.extra_context = c->template_kwargs;
    opts.clock = [] { return sgl::tokenizer::jinja::CivilTime{2026, 11, 26, 12, 0, 0}; };
    (void)model_template().render(c->messages, opts);
  } else {
    check_error(c.status());
  }
  if (auto t = parse_tokenize_request(*body); !t.is_ok()) check_error(t.status());
  if (auto d = parse_detokenize_request(*body); !d.is_ok()) check_error(d.status());
  if (auto a = parse_abort_request(*body); !a.is_ok()) check_error(a.status());
  return 0;
}
