// GBNF front end: llama.cpp's grammar syntax parsed into the grammar IR.
//
//   root ::= "a" rule | [0-9]+ ( "x" | "y" )? other{2,4}   # comment
//
// Rules `name ::= alternatives` (names: letters, digits, '-', '_'); string literals "..." with
// escapes \n \t \r \\ \" \xHH \uHHHH \UHHHHHHHH; character classes [a-z], [^"\\]; `.` any
// character; grouping ( ); alternation |; repetition * + ? {m} {m,} {m,n}. The start rule is
// `root`. Left recursion is rejected (by the pushdown back end) with the rule named.
#pragma once

#include <string_view>

#include "grammar/ir.h"
#include "support/status.h"

namespace sgl::grammar {

// kInvalidArgument with "line L, column C" for syntax errors, undefined rules, a missing root.
Result<GrammarIr> gbnf_to_ir(std::string_view text);

}  // namespace sgl::grammar
