#include "grammar/regex.h"

#include <string>
#include <vector>

#include "support/utf8.h"

namespace sgl::grammar {

namespace {

constexpr int32_t kMaxRepeat = 10000;
constexpr int kMaxNesting = 256;  // bounds recursion on hostile input

class RegexParser {
 public:
  RegexParser(std::string_view p, GrammarIr& ir, std::string_view what)
      : p_(p), ir_(ir), what_(what) {}

  Result<int32_t> parse() {
    size_t end = p_.size();
    if (!p_.empty() && p_[0] == '^') pos_ = 1;
    // A trailing unescaped '$' is an anchor: count the backslashes before it.
    if (end > pos_ && p_[end - 1] == '$') {
      size_t bs = 0;
      while (end - 1 - bs > pos_ && p_[end - 2 - bs] == '\\') ++bs;
      if (bs % 2 == 0) end -= 1;
    }
    end_ = end;
    int32_t n = parse_alt();
    if (!error_.empty()) return invalid_argument(error_);
    if (pos_ < end_) {
      if (p_[pos_] == ')') return invalid_argument(err_at(pos_, "unbalanced ')'"));
      return invalid_argument(err_at(pos_, "unexpected character"));
    }
    return n;
  }

 private:
  std::string err_at(size_t pos, std::string_view msg) {
    return std::string(what_) + " at offset " + std::to_string(pos) + ": " + std::string(msg);
  }
  void fail(size_t pos, std::string_view msg) {
    if (error_.empty()) error_ = err_at(pos, msg);
  }
  bool ok() const { return error_.empty(); }
  bool at_end() const { return pos_ >= end_; }
  char peek() const { return p_[pos_]; }

  int32_t parse_alt() {
    std::vector<int32_t> alts{parse_seq()};
    while (ok() && !at_end() && peek() == '|') {
      ++pos_;
      alts.push_back(parse_seq());
    }
    return ir_.alt(std::move(alts));
  }

  int32_t parse_seq() {
    std::vector<int32_t> items;
    while (ok() && !at_end() && peek() != '|' && peek() != ')') {
      int32_t atom = parse_atom();
      if (!ok()) return -1;
      atom = parse_quantifiers(atom);
      if (!ok()) return -1;
      items.push_back(atom);
    }
    return ir_.seq(std::move(items));
  }

  // Parses "{m}", "{m,}", "{,n}", "{m,n}" at pos_; returns false (pos_ unchanged) if the text
  // is not a quantifier (Python then reads '{' as a literal).
  bool parse_braces(int32_t* lo, int32_t* hi) {
    size_t q = pos_ + 1;
    auto number = [&](int64_t* v) {
      size_t start = q;
      *v = 0;
      while (q < end_ && p_[q] >= '0' && p_[q] <= '9') {
        *v = std::min<int64_t>(*v * 10 + (p_[q] - '0'), int64_t{1} << 40);
        ++q;
      }
      return q > start;
    };
    int64_t a = 0, b = 0;
    bool has_a = number(&a);
    if (q < end_ && p_[q] == '}') {
      if (!has_a) return false;
      b = a;
    } else if (q < end_ && p_[q] == ',') {
      ++q;
      bool has_b = number(&b);
      if (q >= end_ || p_[q] != '}') return false;
      if (!has_a) a = 0;
      if (!has_b) b = -1;
    } else {
      return false;
    }
    if (a > kMaxRepeat || b > kMaxRepeat) {
      fail(pos_, "repetition count above " + std::to_string(kMaxRepeat));
      return false;
    }
    if (b >= 0 && b < a) {
      fail(pos_, "repetition {m,n} with n < m");
      return false;
    }
    *lo = static_cast<int32_t>(a);
    *hi = b < 0 ? kUnbounded : static_cast<int32_t>(b);
    pos_ = q + 1;
    return true;
  }

  int32_t parse_quantifiers(int32_t atom) {
    bool quantified = false;
    while (ok() && !at_end()) {
      char c = peek();
      int32_t lo, hi;
      size_t qpos = pos_;
      if (c == '*') {
        lo = 0, hi = kUnbounded, ++pos_;
      } else if (c == '+') {
        lo = 1, hi = kUnbounded, ++pos_;
      } else if (c == '?') {
        lo = 0, hi = 1, ++pos_;
      } else if (c == '{') {
        if (!parse_braces(&lo, &hi)) return atom;
      } else {
        return atom;
      }
      if (quantified) {
        fail(qpos, "multiple repeat");
        return -1;
      }
      quantified = true;
      if (!at_end() && peek() == '?') {
        ++pos_;  // lazy: same language
      } else if (!at_end() && peek() == '+') {
        fail(pos_, "possessive quantifiers are not supported");
        return -1;
      }
      atom = ir_.repeat(atom, lo, hi);
    }
    return atom;
  }

  bool read_hex(size_t digits, uint32_t* out) {
    return read_hex_digits(p_.substr(0, end_), &pos_, digits, out);
  }

  // Reads one code point of literal text at pos_.
  uint32_t read_literal_cp() {
    uint32_t cp;
    size_t len;
    if (!utf8::decode(p_, pos_, &cp, &len)) {
      fail(pos_, "invalid UTF-8 in pattern");
      pos_ += len;
      return 0;
    }
    pos_ += len;
    return cp;
  }

  // An escape after '\' (pos_ points past the backslash). Either sets *cp (a single code point)
  // and returns true, or appends a class to *ranges / *negated and returns false.
  bool parse_escape(uint32_t* cp, std::vector<CodepointRange>* ranges, bool* negated,
                    bool in_class) {
    size_t at = pos_ - 1;
    if (at_end()) {
      fail(at, "trailing backslash");
      return true;
    }
    char c = p_[pos_++];
    *negated = false;
    switch (c) {
      case 'n':
        *cp = '\n';
        return true;
      case 't':
        *cp = '\t';
        return true;
      case 'r':
        *cp = '\r';
        return true;
      case 'f':
        *cp = '\f';
        return true;
      case 'v':
        *cp = '\v';
        return true;
      case 'a':
        *cp = '\a';
        return true;
      case '0':
        *cp = 0;
        return true;
      case 'x':
        if (!read_hex(2, cp)) fail(at, "bad \\x escape");
        return true;
      case 'u':
        if (!read_hex(4, cp)) fail(at, "bad \\u escape");
        return true;
      case 'U':
        if (!read_hex(8, cp) || *cp > 0x10FFFF) fail(at, "bad \\U escape");
        return true;
      case 'd':
      case 'D':
        ranges->push_back({'0', '9'});
        *negated = c == 'D';
        return false;
      case 'w':
      case 'W':
        ranges->insert(ranges->end(), {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}});
        *negated = c == 'W';
        return false;
      case 's':
      case 'S':
        ranges->insert(ranges->end(), {{'\t', '\r'}, {' ', ' '}});
        *negated = c == 'S';
        return false;
      case 'b':
        if (in_class) {
          *cp = '\b';
          return true;
        }
        fail(at, "word boundaries (\\b) are not supported");
        return true;
      default:
        break;
    }
    if (c >= '1' && c <= '9') {
      fail(at, "backreferences are not supported");
      return true;
    }
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      fail(at, std::string("unsupported escape \\") + c);
      return true;
    }
    --pos_;
    *cp = read_literal_cp();
    return true;
  }

  int32_t parse_class() {
    size_t start = pos_ - 1;
    bool negate = false;
    if (!at_end() && peek() == '^') {
      negate = true;
      ++pos_;
    }
    std::vector<CodepointRange> ranges;
    bool first = true;
    while (true) {
      if (at_end()) {
        fail(start, "unterminated character class");
        return -1;
      }
      if (peek() == ']' && !first) {
        ++pos_;
        break;
      }
      first = false;
      // One class item: a code point (possibly starting a range) or an escape class.
      uint32_t lo;
      if (peek() == '\\') {
        ++pos_;
        std::vector<CodepointRange> cls;
        bool neg;
        if (!parse_escape(&lo, &cls, &neg, true)) {
          if (neg) {
            cls = normalize_ranges(std::move(cls));
            std::vector<CodepointRange> inv;
            uint32_t next = 0;
            for (auto [a, b] : cls) {
              if (a > next) inv.push_back({next, a - 1});
              next = b + 1;
            }
            inv.push_back({next, 0x10FFFF});
            cls = std::move(inv);
          }
          ranges.insert(ranges.end(), cls.begin(), cls.end());
          if (!ok()) return -1;
          continue;
        }
      } else {
        lo = read_literal_cp();
      }
      if (!ok()) return -1;
      uint32_t hi = lo;
      if (pos_ + 1 < end_ && peek() == '-' && p_[pos_ + 1] != ']') {
        size_t dash = pos_;
        ++pos_;
        if (peek() == '\\') {
          ++pos_;
          std::vector<CodepointRange> cls;
          bool neg;
          if (!parse_escape(&hi, &cls, &neg, true)) {
            fail(dash, "bad character range");
            return -1;
          }
        } else {
          hi = read_literal_cp();
        }
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

  int32_t parse_atom() {
    size_t at = pos_;
    char c = peek();
    switch (c) {
      case '(': {
        if (++depth_ > kMaxNesting) {
          fail(at, "groups nested too deeply");
          return -1;
        }
        ++pos_;
        if (!at_end() && peek() == '?') {
          if (p_.substr(pos_, 2) == "?:") {
            pos_ += 2;
          } else if (p_.substr(pos_, 3) == "?P<" ||
                     (p_.substr(pos_, 2) == "?<" && p_.substr(pos_, 3) != "?<=" &&
                      p_.substr(pos_, 3) != "?<!")) {
            size_t close = p_.find('>', pos_);
            if (close == std::string_view::npos || close >= end_) {
              fail(at, "unterminated group name");
              return -1;
            }
            pos_ = close + 1;
          } else if (p_.substr(pos_, 2) == "?=" || p_.substr(pos_, 2) == "?!" ||
                     p_.substr(pos_, 3) == "?<=" || p_.substr(pos_, 3) == "?<!") {
            fail(at, "lookaround assertions are not supported");
            return -1;
          } else {
            fail(at, "unsupported group syntax (inline flags, conditionals)");
            return -1;
          }
        }
        int32_t inner = parse_alt();
        if (!ok()) return -1;
        if (at_end() || peek() != ')') {
          fail(at, "missing ')'");
          return -1;
        }
        ++pos_;
        --depth_;
        return inner;
      }
      case '[':
        ++pos_;
        return parse_class();
      case '.':
        ++pos_;
        return ir_.codepoint_set({{'\n', '\n'}}, true);
      case '*':
      case '+':
      case '?':
        fail(at, "nothing to repeat");
        return -1;
      case '{': {
        int32_t lo, hi;
        size_t save = pos_;
        if (parse_braces(&lo, &hi)) {
          pos_ = save;
          fail(at, "nothing to repeat");
          return -1;
        }
        ++pos_;
        return ir_.byte('{');
      }
      case '^':
        fail(at, "'^' is only supported at the start of the pattern");
        return -1;
      case '$':
        fail(at, "'$' is only supported at the end of the pattern");
        return -1;
      case '\\': {
        ++pos_;
        uint32_t cp = 0;
        std::vector<CodepointRange> cls;
        bool neg;
        if (parse_escape(&cp, &cls, &neg, false)) {
          if (!ok()) return -1;
          return literal_cp(cp);
        }
        return ir_.codepoint_set(std::move(cls), neg);
      }
      default:
        return literal_cp(read_literal_cp());
    }
  }

  int32_t literal_cp(uint32_t cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) {
      fail(pos_, "surrogate code points cannot be matched");
      return -1;
    }
    return ir_.literal(utf8::encode(cp));
  }

  std::string_view p_;
  GrammarIr& ir_;
  std::string_view what_;
  size_t pos_ = 0;
  size_t end_ = 0;
  int depth_ = 0;
  std::string error_;
};

}  // namespace

Result<int32_t> parse_regex(std::string_view pattern, GrammarIr& ir, std::string_view what) {
  RegexParser parser(pattern, ir, what);
  return parser.parse();
}

Result<GrammarIr> regex_to_ir(std::string_view pattern) {
  GrammarIr ir;
  int32_t rule = ir.add_rule("root");
  SGL_ASSIGN_OR_RETURN(int32_t body, parse_regex(pattern, ir));
  ir.set_body(rule, body);
  ir.set_root(rule);
  return ir;
}

}  // namespace sgl::grammar
