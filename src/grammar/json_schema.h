// JSON Schema front end: a schema (draft 2020-12 subset) becomes a grammar IR whose language is
// a set of valid instances written in one canonical layout (properties in schema order, the
// chosen whitespace policy). Every accepted output is valid; the keywords we cannot enforce are
// errors naming the keyword and its JSON pointer (see docs/structured_outputs.md for the list).
#pragma once

#include <string_view>

#include "grammar/ir.h"
#include "support/status.h"

namespace sgl::grammar {

// How JSON Schema grammars place whitespace between JSON tokens.
enum class WhitespacePolicy {
  kCompact,   // none: {"a":1,"b":[1,2]}
  kDefault,   // Python json.dumps defaults: {"a": 1, "b": [1, 2]}
  kFlexible,  // any run of [ \t\n\r] around structural characters (e.g. indented output)
};

// kInvalidArgument for malformed JSON, malformed or unsupported schemas (message names the
// keyword and the JSON pointer, e.g. "unsupported keyword 'patternProperties' at /properties/a").
Result<GrammarIr> json_schema_to_ir(std::string_view schema_text, WhitespacePolicy ws);

// The grammar of any JSON value under the whitespace policy (recursive).
GrammarIr any_json_ir(WhitespacePolicy ws);

}  // namespace sgl::grammar
