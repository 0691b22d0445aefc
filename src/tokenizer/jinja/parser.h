// Jinja parser: tokens -> Program. Follows jinja2's grammar and operator precedence (including
// its quirks: `**` is left-associative, filters bind tighter than arithmetic, `a if b` without
// else yields Undefined). Unknown filters and tests, and tags outside the supported set, are
// syntax errors. The tree's height is limited so that rendering cannot overflow the stack.
#pragma once

#include <memory>
#include <string_view>

#include "support/status.h"
#include "tokenizer/jinja/ast.h"

namespace sgl::tokenizer::jinja {

// Parses normalized template source (see normalize_newlines). `max_depth` bounds the nesting
// of blocks and expressions. Errors read "template syntax error at line L, column C: ...".
Result<std::unique_ptr<Program>> parse_program(std::string_view source, int max_depth);

}  // namespace sgl::tokenizer::jinja
