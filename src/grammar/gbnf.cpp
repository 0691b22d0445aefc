#include "grammar/gbnf.h"

#include <map>
#include <string>
#include <vector>

#include "support/utf8.h"

namespace sgl::grammar {

namespace {

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

class GbnfParser {
 public:
  explicit GbnfParser(std::string_view s) : s_(s) {}

  Result<GrammarIr> parse() {
    skip_space(true);
    while (ok() && pos_ < s_.size()) {
      size_t name_pos = pos_;
      std::string name = parse_name();
      if (name.empty()) {
        fail(pos_, "expected a rule name");
        break;
      }
      skip_space(false);
      if (s_.substr(pos_, 3) != "::=") {
        fail(pos_, "expected '::=' after rule name '" + name + "'");
        break;
      }
      pos_ += 3;
      int32_t rule = rule_id(name, name_pos);
      if (defined_.count(name)) {
        fail(name_pos, "rule '" + name + "' is defined twice");
        break;
      }
      defined_[name] = name_pos;
      int32_t body = parse_alternatives(false);
      if (!ok()) break;
      ir_.set_body(rule, body);
      skip_space(true);
    }
    if (!ok()) return invalid_argument(error_);
    for (const auto& [name, pos] : first_use_) {
      if (!defined_.count(name))
        return invalid_argument(where(pos) + ": undefined rule '" + name + "'");
    }
    auto root = rules_.find("root");
    if (root == rules_.end() || !defined_.count("root"))
      return invalid_argument("GBNF grammar: no 'root' rule");
    ir_.set_root(root->second);
    return std::move(ir_);
  }

 private:
  bool ok() const { return error_.empty(); }

  std::string where(size_t pos) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    return "GBNF line " + std::to_string(line) + ", column " + std::to_string(col);
  }

  void fail(size_t pos, const std::string& msg) {
    if (error_.empty()) error_ = where(pos) + ": " + msg;
  }

  // Skips blanks and comments; newlines too when newline_ok.
  void skip_space(bool newline_ok) {
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == ' ' || c == '\t' || (newline_ok && (c == '\n' || c == '\r'))) {
        ++pos_;
      } else if (c == '#') {
        while (pos_ < s_.size() && s_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }

  std::string parse_name() {
    size_t start = pos_;
    while (pos_ < s_.size() && is_name_char(s_[pos_])) ++pos_;
    return std::string(s_.substr(start, pos_ - start));
  }

  int32_t rule_id(const std::string& name, size_t pos) {
    auto it = rules_.find(name);
    if (it != rules_.end()) return it->second;
    int32_t r = ir_.add_rule(name);
    rules_[name] = r;
    first_use_.emplace(name, pos);
    return r;
  }

  int32_t parse_alternatives(bool nested) {
    std::vector<int32_t> alts{parse_sequence(nested)};
    while (ok()) {
      // A '|' may start the next line (a superset of llama.cpp, which needs it on the same line).
      size_t save = pos_;
      skip_space(true);
      if (pos_ < s_.size() && s_[pos_] == '|') {
        ++pos_;
        skip_space(true);
        alts.push_back(parse_sequence(nested));
      } else {
        pos_ = save;
        break;
      }
    }
    return ir_.alt(std::move(alts));
  }

  int32_t parse_sequence(bool nested) {
    std::vector<int32_t> items;
    skip_space(nested);
    while (ok() && pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == '|' || c == ')' || c == '\n' || c == '\r') break;
      // The next rule's "name ::=" ends this sequence (a rule on one line without newline).
      int32_t atom = parse_atom(nested);
      if (!ok()) return -1;
      atom = parse_postfix(atom);
      if (!ok()) return -1;
      items.push_back(atom);
      skip_space(nested);
    }
    return ir_.seq(std::move(items));
  }

  bool read_hex(size_t n, uint32_t* out) {
    return read_hex_digits(s_, &pos_, n, out);
  }

  // One (possibly escaped) character of a literal or class.
  uint32_t parse_char() {
    size_t at = pos_;
    if (s_[pos_] == '\\') {
      ++pos_;
      if (pos_ >= s_.size()) {
        fail(at, "unterminated escape");
        return 0;
      }
      char e = s_[pos_++];
      uint32_t v = 0;
      switch (e) {
        case 'n':
          return '\n';
        case 'r':
          return '\r';
        case 't':
          return '\t';
        case '0':
          return 0;
        case 'x':
          if (!read_hex(2, &v)) fail(at, "bad \\x escape");
          return v;
        case 'u':
          if (!read_hex(4, &v)) fail(at, "bad \\u escape");
          return v;
        case 'U':
          if (!read_hex(8, &v) || v > 0x10FFFF) fail(at, "bad \\U escape");
          return v;
        default:
          if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9')) {
            fail(at, std::string("unknown escape \\") + e);
            return 0;
          }
          return static_cast<uint8_t>(e);
      }
    }
    uint32_t cp;
    size_t len;
    if (!utf8::decode(s_, pos_, &cp, &len)) {
      fail(at, "invalid UTF-8");
      pos_ += len;
      return 0;
    }
    pos_ += len;
    return cp;
  }

  int32_t parse_atom(bool nested) {
    size_t at = pos_;
    char c = s_[pos_];
    if (c == '"') {
      ++pos_;
      std::string bytes;
      while (true) {
        if (pos_ >= s_.size() || s_[pos_] == '\n') {
          fail(at, "unterminated string literal");
          return -1;
        }
        if (s_[pos_] == '"') {
          ++pos_;
          break;
        }
        uint32_t cp = parse_char();
        if (!ok()) return -1;
        if (cp >= 0xD800 && cp <= 0xDFFF) {
          fail(at, "surrogate code point in literal");
          return -1;
        }
        utf8::append(bytes, cp);
      }
      return ir_.literal(bytes);
    }
    if (c == '[') {
      ++pos_;
      bool negate = false;
      if (pos_ < s_.size() && s_[pos_] == '^') {
        negate = true;
        ++pos_;
      }
      std::vector<CodepointRange> ranges;
      while (true) {
        if (pos_ >= s_.size() || s_[pos_] == '\n') {
          fail(at, "unterminated character class");
          return -1;
        }
        if (s_[pos_] == ']') {
          ++pos_;
          break;
        }
        uint32_t lo = parse_char();
        if (!ok()) return -1;
        uint32_t hi = lo;
        if (pos_ + 1 < s_.size() && s_[pos_] == '-' && s_[pos_ + 1] != ']') {
          size_t dash = pos_++;
          hi = parse_char();
          if (!ok()) return -1;
          if (hi < lo) {
            fail(dash, "bad character range (end before start)");
            return -1;
          }
        }
        ranges.push_back({lo, hi});
      }
      return ir_.codepoint_set(std::move(ranges), negate);
    }
    if (c == '(') {
      if (++depth_ > 256) {
        fail(at, "parentheses nested too deeply");
        return -1;
      }
      ++pos_;
      skip_space(true);
      int32_t inner = parse_alternatives(true);
      if (!ok()) return -1;
      skip_space(true);
      if (pos_ >= s_.size() || s_[pos_] != ')') {
        fail(at, "missing ')'");
        return -1;
      }
      ++pos_;
      --depth_;
      return inner;
    }
    if (c == '.') {
      ++pos_;
      return ir_.codepoint_set({}, true);
    }
    if (is_name_char(c)) {
      std::string name = parse_name();
      size_t save = pos_;
      skip_space(nested);
      if (s_.substr(pos_, 3) == "::=") {
        fail(at, "missing newline before the definition of rule '" + name + "'");
        return -1;
      }
      pos_ = save;
      return ir_.ref(rule_id(name, at));
    }
    fail(at, std::string("unexpected character '") + c + "'");
    return -1;
  }

  int32_t parse_postfix(int32_t atom) {
    if (pos_ >= s_.size()) return atom;
    char c = s_[pos_];
    size_t at = pos_;
    if (c == '*') {
      ++pos_;
      return ir_.star(atom);
    }
    if (c == '+') {
      ++pos_;
      return ir_.plus(atom);
    }
    if (c == '?') {
      ++pos_;
      return ir_.optional(atom);
    }
    if (c != '{') return atom;
    ++pos_;
    auto number = [&](int64_t* v) {
      size_t start = pos_;
      *v = 0;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
        *v = std::min<int64_t>(*v * 10 + (s_[pos_] - '0'), 1 << 30);
        ++pos_;
      }
      return pos_ > start;
    };
    skip_space(false);
    int64_t lo = 0, hi = 0;
    bool has_lo = number(&lo);
    skip_space(false);
    if (pos_ < s_.size() && s_[pos_] == '}') {
      if (!has_lo) {
        fail(at, "empty repetition {}");
        return -1;
      }
      hi = lo;
    } else if (pos_ < s_.size() && s_[pos_] == ',') {
      ++pos_;
      skip_space(false);
      if (!number(&hi)) hi = -1;
      skip_space(false);
      if (pos_ >= s_.size() || s_[pos_] != '}') {
        fail(at, "expected '}' in repetition");
        return -1;
      }
    } else {
      fail(at, "bad repetition");
      return -1;
    }
    ++pos_;
    if (lo > 10000 || hi > 10000) {
      fail(at, "repetition count above 10000");
      return -1;
    }
    if (hi >= 0 && hi < lo) {
      fail(at, "repetition {m,n} with n < m");
      return -1;
    }
    return ir_.repeat(atom, static_cast<int32_t>(lo),
                      hi < 0 ? kUnbounded : static_cast<int32_t>(hi));
  }

  std::string_view s_;
  size_t pos_ = 0;
  int depth_ = 0;
  std::string error_;
  GrammarIr ir_;
  std::map<std::string, int32_t> rules_;
  std::map<std::string, size_t> defined_;
  std::map<std::string, size_t> first_use_;
};

}  // namespace

Result<GrammarIr> gbnf_to_ir(std::string_view text) {
  GbnfParser p(text);
  return p.parse();
}

}  // namespace sgl::grammar
