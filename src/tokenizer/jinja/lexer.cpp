#include "tokenizer/jinja/lexer.h"

#include <algorithm>
#include <charconv>
#include <optional>

#include "support/utf8.h"
#include "tokenizer/jinja/pystr.h"

namespace sgl::tokenizer::jinja {

SourceMap::SourceMap(std::string_view source) : source_(source) {
  line_starts_.push_back(0);
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\n') line_starts_.push_back(i + 1);
  }
}

uint32_t SourceMap::line(size_t pos) const {
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), pos);
  return static_cast<uint32_t>(it - line_starts_.begin());
}

uint32_t SourceMap::column(size_t pos) const {
  size_t start = line_starts_[line(pos) - 1];
  pos = std::min(pos, source_.size());
  return static_cast<uint32_t>(py::length(source_.substr(start, pos - start)) + 1);
}

std::string SourceMap::describe(size_t pos) const {
  return "line " + std::to_string(line(pos)) + ", column " + std::to_string(column(pos));
}

std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    char c = source[i];
    if (c == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(c);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Byte length of the Python-whitespace code point at s[pos], or 0.
size_t space_len(std::string_view s, size_t pos) {
  if (pos >= s.size()) return 0;
  unsigned char b = static_cast<unsigned char>(s[pos]);
  if (b < 0x80) return py::is_space(b) ? 1 : 0;
  uint32_t cp;
  size_t len;
  if (!utf8::decode(s, pos, &cp, &len)) return 0;
  return py::is_space(cp) ? len : 0;
}

size_t skip_spaces(std::string_view s, size_t pos) {
  while (size_t n = space_len(s, pos)) pos += n;
  return pos;
}

bool all_spaces(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    size_t n = space_len(s, pos);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes the body of a string literal with Python's unicode-escape rules (what jinja2 applies).
// Returns an error message, or "" on success.
std::string decode_string(std::string_view body, std::string* out) {
  size_t i = 0;
  while (i < body.size()) {
    char c = body[i];
    if (c != '\\') {
      out->push_back(c);
      ++i;
      continue;
    }
    if (i + 1 >= body.size()) return "\\ at end of string";
    char e = body[i + 1];
    i += 2;
    switch (e) {
      case '\n':
        break;  // line continuation
      case '\\':
        out->push_back('\\');
        break;
      case '\'':
        out->push_back('\'');
        break;
      case '"':
        out->push_back('"');
        break;
      case 'a':
        out->push_back('\a');
        break;
      case 'b':
        out->push_back('\b');
        break;
      case 'f':
        out->push_back('\f');
        break;
      case 'n':
        out->push_back('\n');
        break;
      case 'r':
        out->push_back('\r');
        break;
      case 't':
        out->push_back('\t');
        break;
      case 'v':
        out->push_back('\v');
        break;
      case '0':
      case '1':
      case '2':
      case '3':
      case '4':
      case '5':
      case '6':
      case '7': {
        uint32_t v = e - '0';
        for (int k = 0; k < 2 && i < body.size() && body[i] >= '0' && body[i] <= '7'; ++k) {
          v = v * 8 + (body[i++] - '0');
        }
        py::append_cp(*out, v);
        break;
      }
      case 'x':
      case 'u':
      case 'U': {
        int digits = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
        uint32_t v = 0;
        for (int k = 0; k < digits; ++k) {
          int h = i < body.size() ? hex_value(body[i]) : -1;
          if (h < 0) {
            return std::string("truncated \\") + e + std::string(digits, 'X') + " escape";
          }
          v = v * 16 + h;
          ++i;
        }
        if (v > 0x10FFFF) return "illegal Unicode character";
        if (v >= 0xD800 && v <= 0xDFFF) return "surrogate code points are not supported";
        py::append_cp(*out, v);
        break;
      }
      case 'N':
        return "named Unicode escapes (\\N{...}) are not supported";
      default:
        out->push_back('\\');
        out->push_back(e);
        break;
    }
  }
  return "";
}

class Lexer {
 public:
  explicit Lexer(std::string_view src) : src_(src), map_(src) {}

  Result<std::vector<Token>> run() {
    while (pos_ < src_.size()) {
      SGL_RETURN_IF_ERROR(lex_root());
    }
    push(TokenKind::kEof, src_.size());
    return std::move(tokens_);
  }

 private:
  Status error(size_t pos, const std::string& msg) const {
    return invalid_argument("template syntax error at " + map_.describe(pos) + ": " + msg);
  }

  Token& push(TokenKind kind, size_t pos, std::string text = {}) {
    tokens_.push_back(Token{kind, static_cast<uint32_t>(pos), std::move(text)});
    return tokens_.back();
  }

  // Emits the text before a tag, applying '-' stripping or lstrip_blocks.
  void emit_text(std::string_view text, size_t text_pos, char sign, bool lstrip_eligible) {
    if (sign == '-') {
      text = text.substr(0, py::strip(text, std::nullopt, false, true).size());
    } else if (sign != '+' && lstrip_eligible) {
      size_t nl = text.rfind('\n');
      size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting_) && l_pos < text.size() && all_spaces(text.substr(l_pos))) {
        text = text.substr(0, l_pos);
      }
    }
    if (!text.empty()) push(TokenKind::kData, text_pos, std::string(text));
  }

  // Matches `{%[-+]?\s*raw\s*(-%}\s*|%})` at `p`; on success sets *end past it.
  bool match_raw_begin(size_t p, size_t* end) const {
    size_t q = p + 2;
    if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ++q;
    q = skip_spaces(src_, q);
    if (src_.compare(q, 3, "raw") != 0) return false;
    q = skip_spaces(src_, q + 3);
    if (src_.compare(q, 3, "-%}") == 0) {
      *end = skip_spaces(src_, q + 3);
      return true;
    }
    if (src_.compare(q, 2, "%}") == 0) {
      *end = q + 2;
      return true;
    }
    return false;
  }

  // Matches the block end `+%}`, `-%}\s*` or `%}\n?` at pos_.
  bool match_block_end(size_t q, size_t* end) const {
    if (src_.compare(q, 3, "+%}") == 0) {
      *end = q + 3;
      return true;
    }
    if (src_.compare(q, 3, "-%}") == 0) {
      *end = skip_spaces(src_, q + 3);
      return true;
    }
    if (src_.compare(q, 2, "%}") == 0) {
      *end = q + 2;
      if (*end < src_.size() && src_[*end] == '\n') ++*end;  // trim_blocks
      return true;
    }
    return false;
  }

  void finish_tag(size_t end) {
    line_starting_ = end > 0 && src_[end - 1] == '\n';
    pos_ = end;
  }

  Status lex_root() {
    size_t p = pos_;
    while (true) {
      p = src_.find('{', p);
      if (p == std::string_view::npos || p + 1 >= src_.size()) {
        push(TokenKind::kData, pos_, std::string(src_.substr(pos_)));
        pos_ = src_.size();
        return Status::ok();
      }
      char k = src_[p + 1];
      if (k == '{' || k == '%' || k == '#') break;
      ++p;
    }
    char kind = src_[p + 1];
    size_t after = p + 2;
    char sign =
        (after < src_.size() && (src_[after] == '-' || src_[after] == '+')) ? src_[after] : 0;
    std::string_view text = src_.substr(pos_, p - pos_);
    size_t raw_end = 0;
    bool raw = kind == '%' && match_raw_begin(p, &raw_end);
    emit_text(text, pos_, sign, kind != '{');
    if (raw) return lex_raw(p, raw_end);
    if (kind == '#') return lex_comment(p, after + (sign ? 1 : 0));
    push(kind == '{' ? TokenKind::kVariableBegin : TokenKind::kBlockBegin, p);
    pos_ = after + (sign ? 1 : 0);
    return lex_tag(kind == '%', p);
  }

  Status lex_comment(size_t begin, size_t q) {
    for (; q + 1 < src_.size(); ++q) {
      if (src_[q] == '+' && src_.compare(q + 1, 2, "#}") == 0) {
        finish_tag(q + 3);
        return Status::ok();
      }
      if (src_[q] == '-' && src_.compare(q + 1, 2, "#}") == 0) {
        finish_tag(skip_spaces(src_, q + 3));
        return Status::ok();
      }
      if (src_[q] == '#' && src_[q + 1] == '}') {
        size_t end = q + 2;
        if (end < src_.size() && src_[end] == '\n') ++end;
        finish_tag(end);
        return Status::ok();
      }
    }
    return error(begin, "missing end of comment tag");
  }

  Status lex_raw(size_t begin, size_t body_start) {
    // line_starting for the body's lstrip follows the raw-begin match.
    line_starting_ = body_start > 0 && src_[body_start - 1] == '\n';
    for (size_t q = src_.find("{%", body_start); q != std::string_view::npos;
         q = src_.find("{%", q + 1)) {
      size_t r = q + 2;
      char sign = 0;
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) sign = src_[r++];
      r = skip_spaces(src_, r);
      if (src_.compare(r, 6, "endraw") != 0) continue;
      r = skip_spaces(src_, r + 6);
      size_t end;
      if (!match_block_end(r, &end)) continue;
      emit_text(src_.substr(body_start, q - body_start), body_start, sign, true);
      finish_tag(end);
      return Status::ok();
    }
    return error(begin, "missing end of raw directive");
  }

  Status lex_tag(bool block, size_t begin) {
    std::vector<char> balance;
    while (true) {
      if (pos_ >= src_.size()) {
        return error(begin, std::string("unexpected end of template inside a '") +
                                (block ? "{%" : "{{") + "' tag");
      }
      if (balance.empty()) {
        size_t end;
        if (block && match_block_end(pos_, &end)) {
          push(TokenKind::kBlockEnd, pos_);
          finish_tag(end);
          return Status::ok();
        }
        if (!block) {
          if (src_.compare(pos_, 3, "-}}") == 0) {
            push(TokenKind::kVariableEnd, pos_);
            finish_tag(skip_spaces(src_, pos_ + 3));
            return Status::ok();
          }
          if (src_.compare(pos_, 2, "}}") == 0) {
            push(TokenKind::kVariableEnd, pos_);
            finish_tag(pos_ + 2);
            return Status::ok();
          }
        }
      }
      if (size_t n = space_len(src_, pos_)) {
        pos_ = skip_spaces(src_, pos_ + n);
        continue;
      }
      if (lex_float()) continue;
      SGL_ASSIGN_OR_RETURN(bool got_int, lex_integer());
      if (got_int) continue;
      if (lex_name()) continue;
      char c = src_[pos_];
      if (c == '\'' || c == '"') {
        SGL_ASSIGN_OR_RETURN(bool got_string, lex_string());
        if (got_string) continue;
      }
      SGL_RETURN_IF_ERROR(lex_operator(balance));
    }
  }

  // (\d+_)*\d+ starting at q; returns the end or q if no digit.
  size_t digit_run(size_t q) const {
    if (q >= src_.size() || !is_digit(src_[q])) return q;
    while (q < src_.size() && is_digit(src_[q])) ++q;
    while (q + 1 < src_.size() && src_[q] == '_' && is_digit(src_[q + 1])) {
      ++q;
      while (q < src_.size() && is_digit(src_[q])) ++q;
    }
    return q;
  }

  // e[+-]?digits at q; returns the end or q.
  size_t exponent(size_t q) const {
    if (q >= src_.size() || (src_[q] != 'e' && src_[q] != 'E')) return q;
    size_t r = q + 1;
    if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) ++r;
    size_t e = digit_run(r);
    return e == r ? q : e;
  }

  bool lex_float() {
    if (pos_ > 0 && src_[pos_ - 1] == '.') return false;
    size_t int_end = digit_run(pos_);
    if (int_end == pos_) return false;
    size_t end = 0;
    if (int_end + 1 < src_.size() && src_[int_end] == '.' && is_digit(src_[int_end + 1])) {
      size_t frac_end = digit_run(int_end + 1);
      size_t exp_end = exponent(frac_end);
      end = exp_end;
    } else {
      size_t exp_end = exponent(int_end);
      if (exp_end == int_end) return false;
      end = exp_end;
    }
    std::string text;
    for (size_t i = pos_; i < end; ++i) {
      if (src_[i] != '_') text.push_back(src_[i]);
    }
    double v = 0;
    std::from_chars(text.data(), text.data() + text.size(), v);
    Token& t = push(TokenKind::kFloat, pos_, std::string(src_.substr(pos_, end - pos_)));
    t.float_value = v;
    pos_ = end;
    return true;
  }

  Result<bool> lex_integer() {
    size_t q = pos_;
    if (q >= src_.size() || !is_digit(src_[q])) return false;
    int base = 10;
    size_t end = q;
    auto run = [&](size_t start, auto valid) {
      // (_?[valid])+
      size_t r = start, last = start;
      while (r < src_.size()) {
        size_t t = r;
        if (src_[t] == '_') ++t;
        if (t < src_.size() && valid(src_[t])) {
          r = t + 1;
          last = r;
        } else {
          break;
        }
      }
      return last;
    };
    if (src_[q] == '0' && q + 1 < src_.size()) {
      char p = src_[q + 1];
      if (p == 'b' || p == 'B') {
        base = 2;
        end = run(q + 2, [](char c) { return c == '0' || c == '1'; });
      } else if (p == 'o' || p == 'O') {
        base = 8;
        end = run(q + 2, [](char c) { return c >= '0' && c <= '7'; });
      } else if (p == 'x' || p == 'X') {
        base = 16;
        end = run(q + 2, [](char c) { return hex_value(c) >= 0; });
      }
      if (end == q + 2) {  // "0b" with no digits: only the zero matches
        base = 10;
        end = q;
      }
    }
    if (base == 10) {
      // 0(_?0)* or [1-9](_?\d)*: run() returns q + 1 when nothing follows the first digit.
      if (src_[q] == '0') {
        end = run(q + 1, [](char c) { return c == '0'; });
      } else {
        end = run(q + 1, [](char c) { return is_digit(c); });
      }
    }
    std::string digits;
    for (size_t i = (base == 10 ? q : q + 2); i < end; ++i) {
      if (src_[i] != '_') digits.push_back(src_[i]);
    }
    uint64_t v = 0;
    auto res = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
    if (res.ec != std::errc() || v > static_cast<uint64_t>(INT64_MAX)) {
      return error(pos_, "integer literal too large");
    }
    Token& t = push(TokenKind::kInteger, pos_, std::string(src_.substr(pos_, end - pos_)));
    t.int_value = static_cast<int64_t>(v);
    pos_ = end;
    return true;
  }

  // Length of an identifier character at q (ASCII letter, digit, '_' or a non-ASCII word char).
  size_t ident_char(size_t q, bool first) const {
    unsigned char b = static_cast<unsigned char>(src_[q]);
    if (b < 0x80) {
      bool ok = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || b == '_' ||
                (!first && b >= '0' && b <= '9');
      return ok ? 1 : 0;
    }
    uint32_t cp;
    size_t len;
    if (!utf8::decode(src_, q, &cp, &len)) return 0;
    if (first ? py::is_alpha(cp) : py::is_word(cp)) return len;
    return 0;
  }

  bool lex_name() {
    size_t n = ident_char(pos_, true);
    if (n == 0) return false;
    size_t q = pos_ + n;
    while (q < src_.size()) {
      size_t m = ident_char(q, false);
      if (m == 0) break;
      q += m;
    }
    push(TokenKind::kName, pos_, std::string(src_.substr(pos_, q - pos_)));
    pos_ = q;
    return true;
  }

  Result<bool> lex_string() {
    char quote = src_[pos_];
    size_t q = pos_ + 1;
    while (q < src_.size() && src_[q] != quote) {
      if (src_[q] == '\\') {
        if (q + 1 >= src_.size()) return false;
        q += 2;
      } else {
        ++q;
      }
    }
    if (q >= src_.size()) return false;  // unterminated: reported as an unexpected char
    std::string value;
    std::string err = decode_string(src_.substr(pos_ + 1, q - pos_ - 1), &value);
    if (!err.empty()) return error(pos_, err);
    push(TokenKind::kString, pos_, std::move(value));
    pos_ = q + 1;
    return true;
  }

  Status lex_operator(std::vector<char>& balance) {
    static constexpr std::string_view kTwo[] = {"**", "//", "==", "!=", ">=", "<="};
    for (std::string_view op : kTwo) {
      if (src_.compare(pos_, 2, op) == 0) {
        push(TokenKind::kOperator, pos_, std::string(op));
        pos_ += 2;
        return Status::ok();
      }
    }
    char c = src_[pos_];
    static constexpr std::string_view kOne = "+-/*%~[](){}><=.:|,;";
    if (kOne.find(c) == std::string_view::npos) {
      uint32_t cp;
      size_t len = 1;
      std::string msg = "unexpected char ";
      if (!utf8::decode(src_, pos_, &cp, &len)) len = 1;
      py::append_repr(msg, src_.substr(pos_, len));
      return error(pos_, msg);
    }
    if (c == '(' || c == '[' || c == '{') {
      balance.push_back(c == '(' ? ')' : (c == '[' ? ']' : '}'));
    } else if (c == ')' || c == ']' || c == '}') {
      if (balance.empty()) return error(pos_, std::string("unexpected '") + c + "'");
      char expected = balance.back();
      balance.pop_back();
      if (expected != c) {
        return error(pos_, std::string("unexpected '") + c + "', expected '" + expected + "'");
      }
    }
    push(TokenKind::kOperator, pos_, std::string(1, c));
    ++pos_;
    return Status::ok();
  }

  std::string_view src_;
  SourceMap map_;
  size_t pos_ = 0;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

}  // namespace

Result<std::vector<Token>> tokenize(std::string_view source) { return Lexer(source).run(); }

}  // namespace sgl::tokenizer::jinja
