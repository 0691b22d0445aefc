#include "tokenizer/jinja/template.h"

#include <ctime>

#include "support/utf8.h"
#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/interpreter.h"
#include "tokenizer/jinja/lexer.h"
#include "tokenizer/jinja/parser.h"

namespace sgl::tokenizer::jinja {

CivilTime local_now() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  CivilTime t;
  t.year = tm.tm_year + 1900;
  t.month = tm.tm_mon + 1;
  t.day = tm.tm_mday;
  t.hour = tm.tm_hour;
  t.minute = tm.tm_min;
  t.second = tm.tm_sec;
  return t;
}

Result<Template> Template::parse(std::string_view source, const Limits& limits) {
  if (!utf8::is_valid(source)) {
    return invalid_argument("template syntax error: the template is not valid UTF-8");
  }
  try {
    std::string normalized = normalize_newlines(source);
    SGL_ASSIGN_OR_RETURN(std::unique_ptr<Program> program,
                         parse_program(normalized, limits.max_nesting_depth));
    return Template(std::shared_ptr<const Program>(std::move(program)), limits);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kResourceExhausted, "template syntax error: out of memory");
  }
}

Result<std::string> Template::render(const Variables& variables, const Clock& clock) const {
  try {
    Renderer renderer(*program_, limits_, clock);
    return renderer.render(variables);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kResourceExhausted, "template error: out of memory");
  } catch (const std::exception& e) {
    // Nothing in the renderer throws by design; this keeps a library bug from escaping.
    return internal_error(std::string("template error: ") + e.what());
  }
}

}  // namespace sgl::tokenizer::jinja
