// Jinja lexer: splits template source into data and tag tokens exactly as jinja2's lexer does
// with trim_blocks=True and lstrip_blocks=True (the settings transformers uses for chat
// templates): `-` on either side of a tag strips whitespace, `+` disables the block trimming,
// raw blocks pass their body through, comments vanish.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "support/status.h"

namespace sgl::tokenizer::jinja {

enum class TokenKind : uint8_t {
  kData,           // template text between tags (text holds it)
  kVariableBegin,  // {{
  kVariableEnd,    // }}
  kBlockBegin,     // {%
  kBlockEnd,       // %}
  kName,           // identifier (text)
  kString,         // string literal (text holds the decoded value)
  kInteger,        // int_value
  kFloat,          // float_value
  kOperator,       // text holds the operator, e.g. "**" or "("
  kEof,
};

struct Token {
  TokenKind kind;
  uint32_t pos = 0;  // byte offset in the normalized source
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;

  bool is_op(std::string_view op) const { return kind == TokenKind::kOperator && text == op; }
  bool is_name(std::string_view name) const { return kind == TokenKind::kName && text == name; }
};

// Line/column lookup for error messages over the normalized source.
class SourceMap {
 public:
  explicit SourceMap(std::string_view source);
  // 1-based line of byte offset `pos`.
  uint32_t line(size_t pos) const;
  // 1-based column (in code points) of byte offset `pos`.
  uint32_t column(size_t pos) const;
  // "line L, column C".
  std::string describe(size_t pos) const;

 private:
  std::string_view source_;
  std::vector<size_t> line_starts_;
};

// Applies jinja2's newline handling: \r\n and \r become \n and one trailing newline is dropped
// (keep_trailing_newline=False).
std::string normalize_newlines(std::string_view source);

// Tokenizes normalized source (see normalize_newlines). REQUIRES: `source` is valid UTF-8.
// Errors name the line and column.
Result<std::vector<Token>> tokenize(std::string_view source);

}  // namespace sgl::tokenizer::jinja
