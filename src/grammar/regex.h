// Regex front end: the regular-expression dialect users write for constrained decoding, parsed
// into the grammar IR with whole-output match semantics (Python re.fullmatch).
//
// Supported: literals (any UTF-8 text), escapes (\n \t \r \f \v \a \0 \xHH \uHHHH \UHHHHHHHH and
// escaped punctuation), \d \D \w \W \s \S (ASCII meaning, as JSON Schema's ECMA-262 and Python's
// re.ASCII), classes [...] and negated classes [^...] with ranges, `.` (any code point but \n),
// groups (...), (?:...), (?P<name>...), (?<name>...), alternation |, quantifiers ? * + {m} {m,}
// {,n} {m,n} (lazy suffix ? accepted: it does not change the language), ^ at the start and $ at
// the end (no-ops under whole-output matching). Classes, `.` and negated classes match whole
// UTF-8 characters; invalid UTF-8 never matches.
// Rejected with kInvalidArgument naming the byte offset: backreferences, lookaround, word
// boundaries, inline flags, possessive quantifiers, anchors elsewhere, unbalanced parentheses.
#pragma once

#include <cstdint>
#include <string_view>

#include "grammar/ir.h"
#include "support/status.h"

namespace sgl::grammar {

// Parses `pattern` and returns the node matching it, added to `ir`. Error messages start with
// `what` (e.g. "regex" or "pattern at /properties/x") and name the byte offset in the pattern.
Result<int32_t> parse_regex(std::string_view pattern, GrammarIr& ir,
                            std::string_view what = "regex");

// A whole grammar whose root rule is the regex.
Result<GrammarIr> regex_to_ir(std::string_view pattern);

}  // namespace sgl::grammar
