#include "grammar/json_schema.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "grammar/automaton.h"
#include "grammar/regex.h"

namespace sgl::grammar {

namespace {

using Json = nlohmann::ordered_json;

const std::set<std::string>& annotation_keywords() {
  static const std::set<std::string> k = {
      "title",      "description", "examples",  "default", "$schema", "$id",        "$comment",
      "deprecated", "readOnly",    "writeOnly", "$anchor", "$defs",   "definitions"};
  return k;
}

const std::set<std::string>& supported_keywords() {
  static const std::set<std::string> k = {"type",
                                          "enum",
                                          "const",
                                          "properties",
                                          "required",
                                          "additionalProperties",
                                          "items",
                                          "prefixItems",
                                          "minItems",
                                          "maxItems",
                                          "anyOf",
                                          "oneOf",
                                          "allOf",
                                          "$ref",
                                          "minLength",
                                          "maxLength",
                                          "pattern",
                                          "format",
                                          "minimum",
                                          "maximum",
                                          "exclusiveMinimum",
                                          "exclusiveMaximum",
                                          "uniqueItems"};
  return k;
}

bool is_constraint(const std::string& k) { return !annotation_keywords().count(k); }

std::string pointer_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

struct SchemaError {
  std::string message;
};

class SchemaCompiler {
 public:
  SchemaCompiler(Json root, WhitespacePolicy ws) : root_(std::move(root)), ws_(ws) {}

  GrammarIr& ir() { return ir_; }

  // Throws SchemaError (caught in json_schema_to_ir; never escapes this file).
  void compile() {
    int32_t rule = ir_.add_rule("root");
    ir_.set_root(rule);
    ir_.set_body(rule, gen(root_, "#", 0));
  }

  int32_t any_value() {
    if (any_rule_ >= 0) return ir_.ref(any_rule_);
    any_rule_ = ir_.add_rule("any-value");
    int32_t v = ir_.ref(any_rule_);
    int32_t member = ir_.seq({string_any(), colon(), v});
    int32_t obj =
        ir_.seq({ir_.byte('{'), ws(),
                 ir_.optional(ir_.seq({member, ir_.star(ir_.seq({comma(), member})), ws()})),
                 ir_.byte('}')});
    int32_t arr =
        ir_.seq({ir_.byte('['), ws(),
                 ir_.optional(ir_.seq({v, ir_.star(ir_.seq({comma(), v})), ws()})), ir_.byte(']')});
    int32_t body = ir_.alt({obj, arr, string_any(), number_node(), ir_.literal("true"),
                            ir_.literal("false"), ir_.literal("null")});
    ir_.set_body(any_rule_, body);
    return ir_.ref(any_rule_);
  }

 private:
  [[noreturn]] void fail(const std::string& ptr, const std::string& msg) {
    throw SchemaError{"JSON Schema " + ptr + ": " + msg};
  }

  // ---- whitespace ------------------------------------------------------------------------
  int32_t ws() {
    if (ws_ != WhitespacePolicy::kFlexible) return ir_.empty();
    ByteSet s;
    s.set(' ');
    s.set('\t');
    s.set('\n');
    s.set('\r');
    return ir_.star(ir_.bytes(s));
  }
  int32_t comma() {
    switch (ws_) {
      case WhitespacePolicy::kCompact:
        return ir_.byte(',');
      case WhitespacePolicy::kDefault:
        return ir_.literal(", ");
      case WhitespacePolicy::kFlexible:
        return ir_.seq({ws(), ir_.byte(','), ws()});
    }
    return -1;
  }
  int32_t colon() {
    switch (ws_) {
      case WhitespacePolicy::kCompact:
        return ir_.byte(':');
      case WhitespacePolicy::kDefault:
        return ir_.literal(": ");
      case WhitespacePolicy::kFlexible:
        return ir_.seq({ws(), ir_.byte(':'), ws()});
    }
    return -1;
  }

  // ---- strings ---------------------------------------------------------------------------
  int32_t hex() {
    ByteSet s;
    s.set_range('0', '9');
    s.set_range('a', 'f');
    s.set_range('A', 'F');
    return ir_.bytes(s);
  }
  // One character of a JSON string's content: an unescaped character or an escape sequence
  // (a \u escape is one non-surrogate code point, or a surrogate pair).
  int32_t string_unit() {
    if (unit_ >= 0) return unit_;
    int32_t plain = ir_.codepoint_set({{0, 0x1F}, {'"', '"'}, {'\\', '\\'}}, true);
    ByteSet simple;
    for (char c : std::string("\"\\/bfnrt")) simple.set(static_cast<uint8_t>(c));
    ByteSet nonsur_first, d;
    nonsur_first.set_range('0', '9');
    nonsur_first.set_range('a', 'c');
    nonsur_first.set_range('A', 'C');
    nonsur_first.set_range('e', 'f');
    nonsur_first.set_range('E', 'F');
    d.set('d');
    d.set('D');
    ByteSet lo07, hi_89ab, lo_cf;
    lo07.set_range('0', '7');
    hi_89ab.set_range('8', '9');
    hi_89ab.set_range('a', 'b');
    hi_89ab.set_range('A', 'B');
    lo_cf.set_range('c', 'f');
    lo_cf.set_range('C', 'F');
    int32_t u_single = ir_.alt({ir_.seq({ir_.bytes(nonsur_first), hex(), hex(), hex()}),
                                ir_.seq({ir_.bytes(d), ir_.bytes(lo07), hex(), hex()})});
    int32_t u_pair = ir_.seq({ir_.bytes(d), ir_.bytes(hi_89ab), hex(), hex(), ir_.literal("\\u"),
                              ir_.bytes(d), ir_.bytes(lo_cf), hex(), hex()});
    int32_t esc = ir_.seq(
        {ir_.byte('\\'),
         ir_.alt({ir_.bytes(simple), ir_.seq({ir_.byte('u'), ir_.alt({u_single, u_pair})})})});
    unit_ = ir_.alt({plain, esc});
    return unit_;
  }
  int32_t string_any() { return ir_.seq({ir_.byte('"'), ir_.star(string_unit()), ir_.byte('"')}); }

  int32_t regex_in_string(const std::string& pattern, const std::string& ptr, bool search) {
    return ir_.seq({ir_.byte('"'), pattern_body(ir_, pattern, ptr, search), ir_.byte('"')});
  }

  // The string content (no quotes) matching `pattern`, added to `ir`.
  int32_t pattern_body(GrammarIr& ir, const std::string& pattern, const std::string& ptr,
                       bool search) {
    int32_t first_node = ir.num_nodes();
    Result<int32_t> r = parse_regex(pattern, ir, "pattern at " + ptr);
    if (!r.is_ok()) throw SchemaError{r.status().message()};
    int32_t last_node = ir.num_nodes();
    // Characters that would need escaping inside a JSON string are not generated.
    for (int32_t i = first_node; i < last_node; ++i) {
      IrNode& n = ir.mutable_node(i);
      if (n.kind != NodeKind::kBytes) continue;
      for (int b = 0; b < 0x20; ++b) n.bytes.reset(static_cast<uint8_t>(b));
      n.bytes.reset('"');
      n.bytes.reset('\\');
      if (n.bytes.empty()) n.kind = NodeKind::kAlt;  // matches nothing
    }
    int32_t body = *r;
    if (search) {
      // JSON Schema patterns are unanchored (Python re.search): allow text around the match
      // unless the pattern is anchored with ^ / $.
      bool anchored_start = !pattern.empty() && pattern[0] == '^';
      bool anchored_end = false;
      if (!pattern.empty() && pattern.back() == '$') {
        size_t bs = 0;
        while (bs + 1 < pattern.size() && pattern[pattern.size() - 2 - bs] == '\\') ++bs;
        anchored_end = bs % 2 == 0;
      }
      int32_t any = ir.star(ir.codepoint_set({{0, 0x1F}, {'"', '"'}, {'\\', '\\'}}, true));
      std::vector<int32_t> parts;
      if (!anchored_start) parts.push_back(any);
      parts.push_back(body);
      if (!anchored_end) parts.push_back(any);
      body = ir.seq(std::move(parts));
    }
    return body;
  }

  // `pattern` together with minLength/maxLength: the product of the pattern's DFA with a
  // code-point counter (0..max_len, or saturating at min_len when unbounded), pruned to states
  // that can still reach acceptance, written as one rule per product state. With a maximum the
  // rule graph is acyclic (every cycle of the pattern reads a code point); without one the
  // saturated states refer to each other, so the grammar runs on the pushdown back end.
  // `what` names the keyword ("pattern" or "format"); a format's regex is matched whole.
  int32_t pattern_with_length(const std::string& pattern, int64_t min_len, int64_t max_len,
                              const std::string& ptr, const std::string& what) {
    GrammarIr sub;
    int32_t root = sub.add_rule(what);
    sub.set_body(root, pattern_body(sub, pattern, ptr + "/" + what, what == "pattern"));
    sub.set_root(root);
    Result<Dfa> built = build_dfa(sub, 4000);
    if (!built.is_ok()) {
      if (built.status().code() == StatusCode::kResourceExhausted)
        fail(ptr, "'" + what + "' together with 'minLength'/'maxLength': the automaton is too "
                  "large (over 4000 states)");
      fail(ptr + "/" + what, "the " + what + " matches no string");
    }
    const Dfa& dfa = *built;
    const int64_t cap = max_len >= 0 ? max_len : min_len;
    constexpr size_t kMaxProduct = 50000;
    // Product states (q, count), discovered breadth-first.
    std::map<std::pair<int32_t, int64_t>, int32_t> index;
    std::vector<std::pair<int32_t, int64_t>> states;
    std::vector<std::vector<std::pair<ByteSet, int32_t>>> edges;
    auto intern = [&](int32_t q, int64_t c) {
      auto [it, inserted] =
          index.emplace(std::make_pair(q, c), static_cast<int32_t>(states.size()));
      if (inserted) {
        if (states.size() >= kMaxProduct)
          fail(ptr, "'" + what + "' together with 'minLength'/'maxLength': more than 50000 "
                           "(state, length) pairs");
        states.push_back({q, c});
        edges.emplace_back();
      }
      return it->second;
    };
    // Per byte class: the bytes starting a code point and the UTF-8 continuation bytes.
    std::vector<ByteSet> class_lead(dfa.num_classes), class_cont(dfa.num_classes);
    for (int b = 0; b < 256; ++b)
      ((b & 0xC0) == 0x80 ? class_cont : class_lead)[dfa.byte_class[b]].set(
          static_cast<uint8_t>(b));
    intern(dfa.start, 0);
    for (size_t i = 0; i < states.size(); ++i) {
      const auto [q, c] = states[i];
      for (int32_t cl = 0; cl < dfa.num_classes; ++cl) {
        const int32_t to = dfa.trans[q * dfa.num_classes + cl];
        if (to < 0) continue;
        const ByteSet& lead = class_lead[cl];
        const ByteSet& cont = class_cont[cl];
        // intern() may grow `edges`: take the target before touching edges[i].
        if (!cont.empty()) {
          const int32_t t = intern(to, c);
          edges[i].push_back({cont, t});
        }
        if (!lead.empty() && (max_len < 0 || c + 1 <= cap)) {
          const int32_t t = intern(to, std::min(c + 1, cap));
          edges[i].push_back({lead, t});
        }
      }
    }
    // Live states: can reach (accepting q, count >= min_len).
    const size_t n = states.size();
    std::vector<uint8_t> live(n, 0);
    std::vector<std::vector<int32_t>> preds(n);
    std::vector<int32_t> work;
    for (size_t i = 0; i < n; ++i) {
      for (const auto& [set, to] : edges[i]) preds[to].push_back(static_cast<int32_t>(i));
      if (dfa.accepting[states[i].first] && states[i].second >= min_len) {
        live[i] = 1;
        work.push_back(static_cast<int32_t>(i));
      }
    }
    while (!work.empty()) {
      const int32_t x = work.back();
      work.pop_back();
      for (int32_t p : preds[x])
        if (!live[p]) live[p] = 1, work.push_back(p);
    }
    if (!live[0])
      fail(ptr, "no string matches '" + what + "' together with 'minLength'/'maxLength'");
    std::vector<int32_t> rule(n, -1);
    for (size_t i = 0; i < n; ++i)
      if (live[i]) rule[i] = ir_.add_rule(what + "-length@" + ptr);
    for (size_t i = 0; i < n; ++i) {
      if (!live[i]) continue;
      // Merge the byte sets leading to the same live state.
      std::vector<std::pair<ByteSet, int32_t>> merged;
      for (const auto& [set, to] : edges[i]) {
        if (!live[to]) continue;
        auto it = std::find_if(merged.begin(), merged.end(),
                               [to = to](auto& m) { return m.second == to; });
        if (it == merged.end())
          merged.push_back({set, to});
        else
          it->first |= set;
      }
      std::vector<int32_t> alts;
      if (dfa.accepting[states[i].first] && states[i].second >= min_len)
        alts.push_back(ir_.empty());
      for (const auto& [set, to] : merged)
        alts.push_back(ir_.seq({ir_.bytes(set), ir_.ref(rule[to])}));
      ir_.set_body(rule[i], ir_.alt(std::move(alts)));
    }
    return ir_.ref(rule[0]);
  }

  int32_t gen_string(const Json& s, const std::string& ptr) {
    int64_t min_len = 0, max_len = -1;
    if (s.contains("minLength")) min_len = get_count(s, "minLength", ptr);
    if (s.contains("maxLength")) max_len = get_count(s, "maxLength", ptr);
    if (max_len >= 0 && max_len < min_len) fail(ptr, "maxLength < minLength: no string matches");
    if (min_len > 10000 || max_len > 10000)
      fail(ptr, "minLength/maxLength above 10000 are not supported");
    bool has_len = s.contains("minLength") || s.contains("maxLength");
    if (s.contains("pattern") && s.contains("format"))
      fail(ptr, "'pattern' together with 'format' is not supported");
    const bool bounded_len = has_len && (min_len > 0 || max_len >= 0);
    if (s.contains("pattern")) {
      if (!s["pattern"].is_string()) fail(ptr + "/pattern", "must be a string");
      if (bounded_len)
        return ir_.seq({ir_.byte('"'),
                        pattern_with_length(s["pattern"].get<std::string>(), min_len, max_len, ptr,
                                            "pattern"),
                        ir_.byte('"')});
      return regex_in_string(s["pattern"].get<std::string>(), ptr + "/pattern", true);
    }
    if (s.contains("format")) {
      if (!s["format"].is_string()) fail(ptr + "/format", "must be a string");
      std::string f = s["format"].get<std::string>();
      static const std::map<std::string, std::string> kFormats = {
          {"date", R"(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]))"},
          {"time",
           R"(([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|z|[+-]([01]\d|2[0-3]):[0-5]\d))"},
          {"date-time",
           R"(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|z|[+-]([01]\d|2[0-3]):[0-5]\d))"},
          {"email",
           R"([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*)"},
          {"uuid",
           R"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"},
          {"uri", R"([A-Za-z][A-Za-z0-9+.\-]*:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*)"},
          {"ipv4", R"((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})"},
      };
      auto it = kFormats.find(f);
      if (it == kFormats.end()) fail(ptr + "/format", "unsupported format '" + f + "'");
      if (bounded_len)
        return ir_.seq({ir_.byte('"'),
                        pattern_with_length(it->second, min_len, max_len, ptr, "format"),
                        ir_.byte('"')});
      return regex_in_string(it->second, ptr + "/format", false);
    }
    return ir_.seq({ir_.byte('"'),
                    ir_.repeat(string_unit(), static_cast<int32_t>(min_len),
                               max_len < 0 ? kUnbounded : static_cast<int32_t>(max_len)),
                    ir_.byte('"')});
  }

  int64_t get_count(const Json& s, const char* key, const std::string& ptr) {
    const Json& v = s[key];
    if (!v.is_number_integer() &&
        !(v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()))
      fail(ptr + "/" + key, "must be a non-negative integer");
    double d = v.get<double>();
    if (d < 0) fail(ptr + "/" + key, "must be a non-negative integer");
    return d > 1e15 ? int64_t{1000000000000000} : static_cast<int64_t>(d);
  }

  // ---- numbers ---------------------------------------------------------------------------
  int32_t digit() {
    ByteSet s;
    s.set_range('0', '9');
    return ir_.bytes(s);
  }
  int32_t byte_range(char lo, char hi) {
    ByteSet s;
    s.set_range(static_cast<uint8_t>(lo), static_cast<uint8_t>(hi));
    return ir_.bytes(s);
  }
  int32_t number_node() {
    int32_t int_part = ir_.alt({ir_.byte('0'), ir_.seq({byte_range('1', '9'), ir_.star(digit())})});
    ByteSet e, pm;
    e.set('e');
    e.set('E');
    pm.set('+');
    pm.set('-');
    return ir_.seq(
        {ir_.optional(ir_.byte('-')), int_part,
         ir_.optional(ir_.seq({ir_.byte('.'), ir_.plus(digit())})),
         ir_.optional(ir_.seq({ir_.bytes(e), ir_.optional(ir_.bytes(pm)), ir_.plus(digit())}))});
  }
  int32_t integer_node() {
    int32_t int_part = ir_.alt({ir_.byte('0'), ir_.seq({byte_range('1', '9'), ir_.star(digit())})});
    return ir_.seq({ir_.optional(ir_.byte('-')), int_part});
  }

  // Decimal strings of the same length with lo <= value <= hi.
  int32_t digits_range(const std::string& lo, const std::string& hi) {
    if (lo.empty()) return ir_.empty();
    if (lo[0] == hi[0]) return ir_.seq({ir_.byte(lo[0]), digits_range(lo.substr(1), hi.substr(1))});
    size_t n = lo.size() - 1;
    std::string nines(n, '9'), zeros(n, '0');
    std::vector<int32_t> alts;
    char mid_lo = lo[0], mid_hi = hi[0];
    if (lo.substr(1) != zeros) {
      alts.push_back(ir_.seq({ir_.byte(lo[0]), digits_range(lo.substr(1), nines)}));
      mid_lo = static_cast<char>(lo[0] + 1);
    }
    bool hi_full = hi.substr(1) == nines;
    if (!hi_full) mid_hi = static_cast<char>(hi[0] - 1);
    if (mid_lo <= mid_hi)
      alts.push_back(
          ir_.seq({byte_range(mid_lo, mid_hi),
                   ir_.repeat(digit(), static_cast<int32_t>(n), static_cast<int32_t>(n))}));
    if (!hi_full) alts.push_back(ir_.seq({ir_.byte(hi[0]), digits_range(zeros, hi.substr(1))}));
    return ir_.alt(std::move(alts));
  }

  // Non-negative integers without leading zeros in [a, b] (b < 0: unbounded).
  int32_t uint_range(int64_t a, int64_t b) {
    std::string as = std::to_string(a);
    size_t la = as.size();
    size_t lb = b < 0 ? la : std::to_string(b).size();
    std::vector<int32_t> alts;
    for (size_t len = la; len <= lb; ++len) {
      int64_t lo = len == la ? a : static_cast<int64_t>(std::pow(10.0, len - 1));
      int64_t hi = (b >= 0 && len == lb) ? b : static_cast<int64_t>(std::pow(10.0, len)) - 1;
      if (lo > hi) continue;
      alts.push_back(digits_range(std::to_string(lo), std::to_string(hi)));
    }
    if (b < 0)
      alts.push_back(ir_.seq(
          {byte_range('1', '9'), ir_.repeat(digit(), static_cast<int32_t>(la), kUnbounded)}));
    return ir_.alt(std::move(alts));
  }

  struct Bound {
    bool present = false;
    double value = 0;
    bool inclusive = true;
    const char* keyword = "";
  };

  void read_bounds(const Json& s, const std::string& ptr, Bound* lo, Bound* hi) {
    auto num = [&](const char* k) {
      if (!s[k].is_number()) fail(ptr + "/" + k, "must be a number");
      return s[k].get<double>();
    };
    auto tighten_lo = [&](double v, bool inc, const char* k) {
      if (!lo->present || v > lo->value || (v == lo->value && !inc)) *lo = {true, v, inc, k};
    };
    auto tighten_hi = [&](double v, bool inc, const char* k) {
      if (!hi->present || v < hi->value || (v == hi->value && !inc)) *hi = {true, v, inc, k};
    };
    if (s.contains("minimum")) tighten_lo(num("minimum"), true, "minimum");
    if (s.contains("exclusiveMinimum"))
      tighten_lo(num("exclusiveMinimum"), false, "exclusiveMinimum");
    if (s.contains("maximum")) tighten_hi(num("maximum"), true, "maximum");
    if (s.contains("exclusiveMaximum"))
      tighten_hi(num("exclusiveMaximum"), false, "exclusiveMaximum");
  }

  int32_t gen_integer(const Json& s, const std::string& ptr) {
    Bound lo, hi;
    read_bounds(s, ptr, &lo, &hi);
    if (!lo.present && !hi.present) return integer_node();
    const double kLimit = 1e15;
    if ((lo.present && std::fabs(lo.value) > kLimit) ||
        (hi.present && std::fabs(hi.value) > kLimit))
      fail(ptr, "integer bounds beyond 1e15 are not supported");
    int64_t a = 0, b = 0;
    if (lo.present)
      a = static_cast<int64_t>(lo.inclusive ? std::ceil(lo.value) : std::floor(lo.value) + 1);
    if (hi.present)
      b = static_cast<int64_t>(hi.inclusive ? std::floor(hi.value) : std::ceil(hi.value) - 1);
    if (lo.present && hi.present && a > b) fail(ptr, "the integer range is empty");
    std::vector<int32_t> alts;
    if (!hi.present || b >= 0)
      alts.push_back(uint_range(lo.present ? std::max<int64_t>(a, 0) : 0, hi.present ? b : -1));
    if (!lo.present || a < 0) {
      int64_t mlo = (hi.present && b < 0) ? -b : 1;
      int64_t mhi = lo.present ? -a : -1;
      alts.push_back(ir_.seq({ir_.byte('-'), uint_range(mlo, mhi)}));
    }
    return ir_.alt(std::move(alts));
  }

  // A non-negative decimal: integer part and fraction digits without trailing zeros.
  struct Decimal {
    int64_t ip = 0;
    std::string frac;
  };
  // |v| as the shortest decimal that reads back as v (what JSON parsers and Python print), so the
  // bound 0.1 is the decimal 0.1. REQUIRES: |v| <= 1e15.
  Decimal to_decimal(double v, const std::string& ptr, const char* keyword) {
    char buf[400];
    auto r = std::to_chars(buf, buf + sizeof buf, std::fabs(v), std::chars_format::fixed);
    std::string text = r.ec == std::errc() ? std::string(buf, r.ptr) : std::string();
    size_t dot = text.find('.');
    Decimal d;
    d.frac = dot == std::string::npos ? "" : text.substr(dot + 1);
    while (!d.frac.empty() && d.frac.back() == '0') d.frac.pop_back();
    if (text.empty() || d.frac.size() > 40)
      fail(ptr, std::string("'") + keyword + "' " + Json(v).dump() +
                    " is not supported: more than 40 fraction digits");
    d.ip = std::stoll(text.substr(0, dot));
    return d;
  }

  // Digit strings D after position k of a fraction (the digits before k equal the digits of each
  // bound still "tight") such that 0.D >= 0.lo (> when !lo_inc) while lo_on and 0.D <= 0.hi (<
  // when !hi_inc) while hi_on. `nonempty`: at least one digit. -1 when no string qualifies.
  int32_t frac_digits(const std::string& lo, bool lo_inc, bool lo_on, const std::string& hi,
                      bool hi_inc, bool hi_on, size_t k, bool nonempty) {
    const bool lo_done = !lo_on || k >= lo.size();
    const bool hi_done = !hi_on || k >= hi.size();
    if (lo_done && hi_done && !nonempty) {
      // Both tight bounds have only zeros left: D's remainder compares with zero.
      if (!lo_on && !hi_on) return ir_.star(digit());
      if (lo_on && !hi_on)
        return lo_inc ? ir_.star(digit())
                      : ir_.seq({ir_.star(ir_.byte('0')), byte_range('1', '9'), ir_.star(digit())});
      if (!lo_on) return hi_inc ? ir_.star(ir_.byte('0')) : -1;
      return lo_inc && hi_inc ? ir_.star(ir_.byte('0')) : -1;
    }
    std::vector<int32_t> alts;
    if (!nonempty) {
      // D ends here (its remaining digits are zeros); a bound with digits left is nonzero there.
      bool end_ok = (!lo_on || (k >= lo.size() && lo_inc)) && (!hi_on || k < hi.size() || hi_inc);
      if (end_ok) alts.push_back(ir_.empty());
    }
    const char ld = lo_on ? (k < lo.size() ? lo[k] : '0') : '0';
    const char hd = hi_on ? (k < hi.size() ? hi[k] : '0') : '9';
    auto add = [&](char d, bool l, bool h) {
      int32_t rest = frac_digits(lo, lo_inc, l, hi, hi_inc, h, k + 1, false);
      if (rest >= 0) alts.push_back(ir_.seq({ir_.byte(static_cast<uint8_t>(d)), rest}));
    };
    if (ld <= hd) {
      if (lo_on && hi_on && ld == hd) {
        add(ld, true, true);
      } else {
        char free_lo = ld, free_hi = hd;
        if (lo_on) add(ld, true, false), ++free_lo;
        if (hi_on) add(hd, false, true), --free_hi;
        if (free_lo <= free_hi)
          alts.push_back(ir_.seq({byte_range(free_lo, free_hi), ir_.star(digit())}));
      }
    }
    if (alts.empty()) return -1;
    return ir_.alt(std::move(alts));
  }

  // The optional fraction ("" or "." digits) after an integer part, under the same constraints
  // as frac_digits. -1 when none qualifies.
  int32_t frac_part(const std::string& lo, bool lo_inc, bool lo_on, const std::string& hi,
                    bool hi_inc, bool hi_on) {
    std::vector<int32_t> alts;
    if ((!lo_on || (lo.empty() && lo_inc)) && (!hi_on || !hi.empty() || hi_inc))
      alts.push_back(ir_.empty());
    int32_t d = frac_digits(lo, lo_inc, lo_on, hi, hi_inc, hi_on, 0, true);
    if (d >= 0) alts.push_back(ir_.seq({ir_.byte('.'), d}));
    if (alts.empty()) return -1;
    return ir_.alt(std::move(alts));
  }

  // Decimal magnitudes I(.F)? with L <= m (L < m when !l_inc) and, if has_u, m <= U (m < U).
  // Appends alternatives.
  void magnitude_range(const Decimal& L, bool l_inc, bool has_u, const Decimal& U, bool u_inc,
                       std::vector<int32_t>& alts) {
    if (!has_u || L.ip + 1 <= U.ip - 1)
      alts.push_back(
          ir_.seq({uint_range(L.ip + 1, has_u ? U.ip - 1 : -1),
                   frac_part("", true, false, "", true, false)}));
    if (!has_u || L.ip <= U.ip) {
      const bool same = has_u && U.ip == L.ip;
      int32_t f = frac_part(L.frac, l_inc, true, same ? U.frac : "", u_inc, same);
      if (f >= 0) alts.push_back(ir_.seq({ir_.literal(std::to_string(L.ip)), f}));
    }
    if (has_u && U.ip > L.ip) {
      int32_t f = frac_part("", true, false, U.frac, u_inc, true);
      if (f >= 0) alts.push_back(ir_.seq({ir_.literal(std::to_string(U.ip)), f}));
    }
  }

  // Numbers (no exponent once bounded) compared with the bounds as exact decimals.
  int32_t gen_number(const Json& s, const std::string& ptr) {
    Bound lo, hi;
    read_bounds(s, ptr, &lo, &hi);
    if (!lo.present && !hi.present) return number_node();
    for (const Bound* b : {&lo, &hi}) {
      if (b->present && !(std::fabs(b->value) <= 1e15))
        fail(ptr, std::string("'") + b->keyword + "' " + Json(b->value).dump() +
                      " is not supported: bounds of type 'number' must be within 1e15");
    }
    Decimal lo_d, hi_d;
    if (lo.present) lo_d = to_decimal(lo.value, ptr, lo.keyword);
    if (hi.present) hi_d = to_decimal(hi.value, ptr, hi.keyword);
    if (lo.present && hi.present &&
        (lo.value > hi.value || (lo.value == hi.value && !(lo.inclusive && hi.inclusive))))
      fail(ptr, "the number range is empty");
    const Decimal zero;
    std::vector<int32_t> alts;
    // x >= 0 (written without '-').
    if (!hi.present || hi.value > 0 || (hi.value == 0 && hi.inclusive)) {
      const bool lo_pos = lo.present && lo.value >= 0;
      magnitude_range(lo_pos ? lo_d : zero, lo_pos ? lo.inclusive : true, hi.present,
                      hi.present ? hi_d : zero, hi.inclusive, alts);
    }
    // x < 0: '-' then a magnitude m > 0.
    if (!lo.present || lo.value < 0) {
      const bool hi_neg = hi.present && hi.value < 0;
      std::vector<int32_t> neg;
      magnitude_range(hi_neg ? hi_d : zero, hi_neg ? hi.inclusive : false, lo.present,
                      lo.present ? lo_d : zero, lo.inclusive, neg);
      if (!neg.empty()) alts.push_back(ir_.seq({ir_.byte('-'), ir_.alt(std::move(neg))}));
    }
    if (alts.empty()) fail(ptr, "the number range is empty");
    return ir_.alt(std::move(alts));
  }

  // ---- const / enum ----------------------------------------------------------------------
  int32_t gen_const(const Json& v) {
    if (v.is_object()) {
      std::vector<int32_t> parts{ir_.byte('{'), ws()};
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) parts.push_back(comma());
        first = false;
        parts.push_back(ir_.literal(Json(it.key()).dump(-1, ' ', true)));
        parts.push_back(colon());
        parts.push_back(gen_const(it.value()));
      }
      parts.push_back(ws());
      parts.push_back(ir_.byte('}'));
      return ir_.seq(std::move(parts));
    }
    if (v.is_array()) {
      std::vector<int32_t> parts{ir_.byte('['), ws()};
      for (size_t i = 0; i < v.size(); ++i) {
        if (i) parts.push_back(comma());
        parts.push_back(gen_const(v[i]));
      }
      parts.push_back(ws());
      parts.push_back(ir_.byte(']'));
      return ir_.seq(std::move(parts));
    }
    return ir_.literal(v.dump(-1, ' ', true));
  }

  static bool type_matches(const Json& v, const std::string& t) {
    if (t == "null") return v.is_null();
    if (t == "boolean") return v.is_boolean();
    if (t == "string") return v.is_string();
    if (t == "number") return v.is_number();
    if (t == "integer")
      return v.is_number_integer() ||
             (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
    if (t == "object") return v.is_object();
    if (t == "array") return v.is_array();
    return false;
  }

  std::vector<std::string> types_of(const Json& s, const std::string& ptr) {
    std::vector<std::string> out;
    static const std::set<std::string> kTypes = {"null",    "boolean", "string", "number",
                                                 "integer", "object",  "array"};
    auto add = [&](const Json& t) {
      if (!t.is_string() || !kTypes.count(t.get<std::string>()))
        fail(ptr + "/type", "unknown type " + t.dump());
      out.push_back(t.get<std::string>());
    };
    if (s["type"].is_array()) {
      for (const Json& t : s["type"]) add(t);
      if (out.empty()) fail(ptr + "/type", "empty type list");
    } else {
      add(s["type"]);
    }
    return out;
  }

  // ---- arrays ----------------------------------------------------------------------------
  int32_t gen_array(const Json& s, const std::string& ptr, int depth) {
    if (s.contains("uniqueItems") && s["uniqueItems"] != Json(false))
      fail(ptr + "/uniqueItems", "uniqueItems: true is not supported");
    std::vector<int32_t> prefix;
    if (s.contains("prefixItems")) {
      if (!s["prefixItems"].is_array()) fail(ptr + "/prefixItems", "must be an array");
      for (size_t i = 0; i < s["prefixItems"].size(); ++i)
        prefix.push_back(
            gen(s["prefixItems"][i], ptr + "/prefixItems/" + std::to_string(i), depth + 1));
    }
    const int64_t k = static_cast<int64_t>(prefix.size());
    int64_t min_n = s.contains("minItems") ? get_count(s, "minItems", ptr) : 0;
    int64_t max_n = s.contains("maxItems") ? get_count(s, "maxItems", ptr) : -1;
    int32_t item = -1;
    if (s.contains("items")) {
      const Json& it = s["items"];
      if (it.is_array())
        fail(ptr + "/items", "items as an array is not supported (use prefixItems)");
      if (it == Json(false)) {
        max_n = max_n < 0 ? k : std::min(max_n, k);
      } else {
        item = gen(it, ptr + "/items", depth + 1);
      }
    } else {
      item = any_value();
    }
    if (max_n >= 0 && min_n > max_n) fail(ptr, "no array length satisfies minItems/maxItems/items");
    if (min_n > 10000 || max_n > 10000)
      fail(ptr, "minItems/maxItems above 10000 are not supported");
    auto elem = [&](int64_t i) { return i < k ? prefix[i] : item; };
    // tail(i): what follows once i >= 1 elements are written.
    std::function<int32_t(int64_t)> tail = [&](int64_t i) -> int32_t {
      if (max_n >= 0 && i >= max_n) return ir_.empty();
      if (i >= k) {
        int32_t lo = static_cast<int32_t>(std::max<int64_t>(0, min_n - i));
        int32_t hi = max_n < 0 ? kUnbounded : static_cast<int32_t>(max_n - i);
        return ir_.repeat(ir_.seq({comma(), item}), lo, hi);
      }
      int32_t rest = ir_.seq({comma(), elem(i), tail(i + 1)});
      return i >= min_n ? ir_.optional(rest) : rest;
    };
    std::vector<int32_t> parts{ir_.byte('['), ws()};
    if (max_n != 0) {
      int32_t body = ir_.seq({elem(0), tail(1), ws()});
      parts.push_back(min_n == 0 ? ir_.optional(body) : body);
    }
    parts.push_back(ir_.byte(']'));
    return ir_.seq(std::move(parts));
  }

  // ---- objects ---------------------------------------------------------------------------
  // The rest of a key (after the opening quote) that differs from every name in `names` (ASCII
  // names only) given that `prefix` was written: a walk down the names' trie that may leave it
  // at any point with a character (or escape) no name continues with.
  int32_t key_except(const std::vector<std::string>& names, const std::string& prefix) {
    if (names.empty()) return ir_.seq({ir_.star(string_unit()), ir_.byte('"')});
    std::set<char> next;
    bool is_name = false;
    for (const std::string& n : names) {
      if (n.compare(0, prefix.size(), prefix) != 0) continue;
      if (n.size() == prefix.size())
        is_name = true;
      else
        next.insert(n[prefix.size()]);
    }
    std::vector<CodepointRange> excluded{{0, 0x1F}, {'"', '"'}, {'\\', '\\'}};
    for (char c : next) excluded.push_back({static_cast<uint8_t>(c), static_cast<uint8_t>(c)});
    // Escapes that can never spell a name character: \" \\ \b \f \n \r \t (names hold none of
    // them) and \u escapes of non-ASCII code points.
    ByteSet simple;
    for (char c : std::string("\"\\bfnrt")) simple.set(static_cast<uint8_t>(c));
    ByteSet not0;
    not0.set_range('1', '9');
    not0.set_range('a', 'f');
    not0.set_range('A', 'F');
    ByteSet not07;
    not07.set_range('8', '9');
    not07.set_range('a', 'f');
    not07.set_range('A', 'F');
    // \u escapes >= 0x80 that are not lone surrogates: first digit != 0, or 00[8-f]x.
    int32_t u_nonascii = ir_.alt({
        ir_.seq({ir_.bytes(not0), hex(), hex(), hex()}),
        ir_.seq({ir_.byte('0'), ir_.bytes(not0), hex(), hex()}),
        ir_.seq({ir_.byte('0'), ir_.byte('0'), ir_.bytes(not07), hex()}),
    });
    int32_t diverge =
        ir_.alt({ir_.codepoint_set(excluded, true), ir_.seq({ir_.byte('\\'), ir_.bytes(simple)}),
                 ir_.seq({ir_.literal("\\u"), u_nonascii})});
    std::vector<int32_t> alts;
    if (!is_name) alts.push_back(ir_.byte('"'));
    alts.push_back(ir_.seq({diverge, ir_.star(string_unit()), ir_.byte('"')}));
    for (char c : next) alts.push_back(ir_.seq({ir_.byte(c), key_except(names, prefix + c)}));
    return ir_.alt(std::move(alts));
  }

  int32_t gen_object(const Json& s, const std::string& ptr, int depth) {
    struct Prop {
      std::string name;
      int32_t member;
      bool required;
    };
    std::vector<Prop> props;
    std::set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) fail(ptr + "/required", "must be an array of strings");
      for (const Json& r : s["required"]) {
        if (!r.is_string()) fail(ptr + "/required", "must be an array of strings");
        required.insert(r.get<std::string>());
      }
    }
    // additionalProperties absent: strict (no other properties) when `properties` is given,
    // any other property otherwise ({"type": "object"} means any object).
    int32_t extra_value = -1;
    bool extra_allowed = s.contains("additionalProperties")
                             ? s["additionalProperties"] != Json(false)
                             : !s.contains("properties");
    auto extra_value_node = [&]() {
      if (extra_value < 0) {
        extra_value =
            !s.contains("additionalProperties") || s["additionalProperties"] == Json(true)
                ? any_value()
                : gen(s["additionalProperties"], ptr + "/additionalProperties", depth + 1);
      }
      return extra_value;
    };
    std::set<std::string> declared;
    if (s.contains("properties")) {
      if (!s["properties"].is_object()) fail(ptr + "/properties", "must be an object");
      for (auto it = s["properties"].begin(); it != s["properties"].end(); ++it) {
        const std::string& name = it.key();
        std::string pptr = ptr + "/properties/" + pointer_escape(name);
        if (it.value() == Json(false)) {
          if (required.count(name)) fail(pptr, "required property has schema false");
          declared.insert(name);
          continue;
        }
        int32_t value = gen(it.value(), pptr, depth + 1);
        int32_t member = ir_.seq({ir_.literal(Json(name).dump(-1, ' ', true)), colon(), value});
        props.push_back({name, member, required.count(name) > 0});
        declared.insert(name);
      }
    }
    for (const std::string& r : required) {
      if (declared.count(r)) continue;
      // Required but not listed: its value follows additionalProperties (any value if absent).
      if (s.contains("additionalProperties") && s["additionalProperties"] == Json(false))
        fail(ptr + "/required",
             "required property '" + r + "' is not allowed by additionalProperties: false");
      int32_t value = extra_value_node();
      props.push_back(
          {r, ir_.seq({ir_.literal(Json(r).dump(-1, ' ', true)), colon(), value}), true});
      declared.insert(r);
    }
    int32_t extra_pair = -1;
    if (extra_allowed) {
      std::vector<std::string> names;
      for (const std::string& n : declared) {
        for (char c : n)
          if (static_cast<uint8_t>(c) >= 0x80 || static_cast<uint8_t>(c) < 0x20 || c == '"' ||
              c == '\\')
            fail(ptr + "/additionalProperties",
                 "additional properties next to non-ASCII or escaped property names are not "
                 "supported");
        names.push_back(n);
      }
      extra_pair = ir_.seq({ir_.byte('"'), key_except(names, ""), colon(), extra_value_node()});
    }
    const size_t n = props.size();
    // T[i]: members i.. after at least one member was written; R[i]: none written yet.
    std::vector<int32_t> T(n + 1), R(n + 1);
    T[n] = extra_pair >= 0 ? ir_.star(ir_.seq({comma(), extra_pair})) : ir_.empty();
    R[n] = extra_pair >= 0 ? ir_.optional(ir_.seq({extra_pair, T[n]})) : ir_.empty();
    for (size_t i = n; i-- > 0;) {
      int32_t with = ir_.seq({comma(), props[i].member});
      T[i] =
          props[i].required ? ir_.seq({with, T[i + 1]}) : ir_.seq({ir_.optional(with), T[i + 1]});
      int32_t start_here = ir_.seq({props[i].member, T[i + 1]});
      R[i] = props[i].required ? start_here : ir_.alt({start_here, R[i + 1]});
    }
    return ir_.seq({ir_.byte('{'), ws(), R[0], ws(), ir_.byte('}')});
  }

  // ---- $ref / allOf ----------------------------------------------------------------------
  const Json& resolve(const std::string& ref, const std::string& ptr) {
    if (ref.empty() || ref[0] != '#')
      fail(ptr + "/$ref", "only local references ('#...') are supported: '" + ref + "'");
    const Json* cur = &root_;
    size_t i = 1;
    if (i < ref.size() && ref[i] != '/')
      fail(ptr + "/$ref", "anchor references are not supported: '" + ref + "'");
    while (i < ref.size()) {
      size_t j = ref.find('/', i + 1);
      std::string tok = ref.substr(i + 1, j == std::string::npos ? std::string::npos : j - i - 1);
      std::string un;
      for (size_t k = 0; k < tok.size(); ++k) {
        if (tok[k] == '~' && k + 1 < tok.size() && (tok[k + 1] == '0' || tok[k + 1] == '1')) {
          un += tok[k + 1] == '0' ? '~' : '/';
          ++k;
        } else if (tok[k] == '%' && k + 2 < tok.size()) {
          un += static_cast<char>(std::stoi(tok.substr(k + 1, 2), nullptr, 16));
          k += 2;
        } else {
          un += tok[k];
        }
      }
      if (cur->is_object() && cur->contains(un)) {
        cur = &(*cur)[un];
      } else if (cur->is_array() && !un.empty() &&
                 un.find_first_not_of("0123456789") == std::string::npos &&
                 std::stoul(un) < cur->size()) {
        cur = &(*cur)[std::stoul(un)];
      } else {
        fail(ptr + "/$ref", "unresolvable reference '" + ref + "'");
      }
      if (j == std::string::npos) break;
      i = j;
    }
    return *cur;
  }

  // Replaces a top-level $ref by the referenced schema merged with the siblings.
  Json inline_ref(const Json& s, const std::string& ptr, int depth) {
    if (!s.is_object() || !s.contains("$ref")) return s;
    if (depth > 32) fail(ptr, "$ref chain too deep");
    if (!s["$ref"].is_string()) fail(ptr + "/$ref", "must be a string");
    Json target = inline_ref(resolve(s["$ref"].get<std::string>(), ptr), ptr, depth + 1);
    Json rest = s;
    rest.erase("$ref");
    return merge(target, rest, ptr);
  }

  Json merge(const Json& a0, const Json& b0, const std::string& ptr) {
    if (a0 == Json(true)) return b0;
    if (b0 == Json(true)) return a0;
    if (a0 == Json(false) || b0 == Json(false))
      fail(ptr, "allOf with a false schema matches nothing");
    if (!a0.is_object() || !b0.is_object()) fail(ptr, "schema must be an object or a boolean");
    Json a = a0;
    for (auto it = b0.begin(); it != b0.end(); ++it) {
      const std::string& k = it.key();
      const Json& bv = it.value();
      if (!a.contains(k)) {
        a[k] = bv;
        continue;
      }
      Json& av = a[k];
      if (av == bv || annotation_keywords().count(k)) continue;
      if (k == "properties") {
        for (auto p = bv.begin(); p != bv.end(); ++p) {
          if (av.contains(p.key()))
            av[p.key()] = Json{{"allOf", Json::array({av[p.key()], p.value()})}};
          else
            av[p.key()] = p.value();
        }
      } else if (k == "required") {
        for (const Json& r : bv)
          if (std::find(av.begin(), av.end(), r) == av.end()) av.push_back(r);
      } else if (k == "type") {
        Json al = av.is_array() ? av : Json::array({av});
        Json bl = bv.is_array() ? bv : Json::array({bv});
        Json out = Json::array();
        for (const Json& t : al) {
          for (const Json& u : bl) {
            if (t == u)
              out.push_back(t);
            else if (t == "number" && u == "integer")
              out.push_back(u);
            else if (t == "integer" && u == "number")
              out.push_back(t);
          }
        }
        if (out.empty())
          fail(ptr, "allOf: the types " + av.dump() + " and " + bv.dump() + " do not intersect");
        av = out.size() == 1 ? out[0] : out;
      } else if (k == "minimum" || k == "exclusiveMinimum" || k == "minLength" || k == "minItems") {
        if (bv > av) av = bv;
      } else if (k == "maximum" || k == "exclusiveMaximum" || k == "maxLength" || k == "maxItems") {
        if (bv < av) av = bv;
      } else if (k == "enum") {
        Json out = Json::array();
        for (const Json& v : av)
          if (std::find(bv.begin(), bv.end(), v) != bv.end()) out.push_back(v);
        av = out;
      } else if (k == "allOf") {
        for (const Json& x : bv) av.push_back(x);
      } else if (k == "additionalProperties" || k == "items") {
        if (av == Json(false) || bv == Json(false))
          av = false;
        else
          av = Json{{"allOf", Json::array({av, bv})}};
      } else {
        fail(ptr, "allOf: cannot merge differing values of '" + k + "'");
      }
    }
    return a;
  }

  // ---- oneOf: disjointness -----------------------------------------------------------------
  // Kinds of JSON values, as bits: a schema's kinds over-approximate the values it accepts.
  enum : int {
    kKNull = 1,
    kKBool = 2,
    kKString = 4,
    kKInt = 8,    // integer-valued numbers
    kKFrac = 16,  // other numbers
    kKObject = 32,
    kKArray = 64,
    kKAll = 127
  };
  static int kind_of_value(const Json& v) {
    if (v.is_null()) return kKNull;
    if (v.is_boolean()) return kKBool;
    if (v.is_string()) return kKString;
    if (v.is_number())
      return (v.is_number_integer() || std::floor(v.get<double>()) == v.get<double>()) ? kKInt
                                                                                       : kKFrac;
    if (v.is_object()) return kKObject;
    return kKArray;
  }
  // The disjointness analysis gives up (answers "may overlap") after this many steps, so hostile
  // schemas (recursive $refs under wide oneOfs) cannot make it exponential.
  static constexpr int kMaxAnalysisSteps = 5000;
  int value_kinds(const Json& s0, const std::string& ptr, int depth) {
    if (s0.is_boolean()) return s0.get<bool>() ? kKAll : 0;
    if (!s0.is_object() || depth > 16 || ++analysis_steps_ > kMaxAnalysisSteps) return kKAll;
    const Json s = inline_ref(s0, ptr, 0);
    int k = kKAll;
    if (s.contains("type")) {
      static const std::map<std::string, int> kBits = {
          {"null", kKNull},     {"boolean", kKBool},          {"string", kKString},
          {"integer", kKInt},   {"number", kKInt | kKFrac},   {"object", kKObject},
          {"array", kKArray}};
      int t = 0;
      for (const std::string& name : types_of(s, ptr)) t |= kBits.at(name);
      k &= t;
    }
    if (s.contains("const")) k &= kind_of_value(s["const"]);
    if (s.contains("enum") && s["enum"].is_array()) {
      int e = 0;
      for (const Json& v : s["enum"]) e |= kind_of_value(v);
      k &= e;
    }
    if (s.contains("allOf") && s["allOf"].is_array())
      for (const Json& sub : s["allOf"]) k &= value_kinds(sub, ptr, depth + 1);
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!s.contains(key) || !s[key].is_array()) continue;
      int u = 0;
      for (const Json& sub : s[key]) u |= value_kinds(sub, ptr, depth + 1);
      k &= u;
    }
    return k;
  }
  // The values of const/enum (nullopt-like: false when the schema lists none).
  static bool listed_values(const Json& s, std::vector<Json>* out) {
    if (!s.is_object()) return false;
    if (s.contains("const")) {
      out->assign(1, s["const"]);
      if (s.contains("enum") && s["enum"].is_array() &&
          std::find(s["enum"].begin(), s["enum"].end(), s["const"]) == s["enum"].end())
        out->clear();
      return true;
    }
    if (s.contains("enum") && s["enum"].is_array()) {
      out->assign(s["enum"].begin(), s["enum"].end());
      return true;
    }
    return false;
  }
  static bool is_required(const Json& s, const std::string& name) {
    if (!s.contains("required") || !s["required"].is_array()) return false;
    return std::find(s["required"].begin(), s["required"].end(), Json(name)) != s["required"].end();
  }
  // True only if no JSON value can be valid under both schemas: disjoint kinds, disjoint
  // const/enum values, or objects with a property required by both whose schemas are disjoint.
  bool provably_disjoint(const Json& a0, const Json& b0, const std::string& ptr, int depth) {
    if (depth > 8 || ++analysis_steps_ > kMaxAnalysisSteps) return false;
    const Json a = inline_ref(a0, ptr, 0), b = inline_ref(b0, ptr, 0);
    const int common = value_kinds(a, ptr, 0) & value_kinds(b, ptr, 0);
    if (common == 0) return true;
    std::vector<Json> va, vb;
    if (listed_values(a, &va) && listed_values(b, &vb)) {
      bool shared = false;
      for (const Json& x : va)
        for (const Json& y : vb) shared = shared || x == y;
      if (!shared) return true;
    }
    if (common == kKObject && a.is_object() && b.is_object() && a.contains("properties") &&
        b.contains("properties") && a["properties"].is_object() && b["properties"].is_object()) {
      for (auto it = a["properties"].begin(); it != a["properties"].end(); ++it) {
        const std::string& name = it.key();
        if (!b["properties"].contains(name) || !is_required(a, name) || !is_required(b, name))
          continue;
        if (provably_disjoint(it.value(), b["properties"][name], ptr, depth + 1)) return true;
      }
    }
    return false;
  }

  // ---- dispatch --------------------------------------------------------------------------
  int32_t gen(const Json& s, const std::string& ptr, int depth) {
    if (depth > 128) fail(ptr, "schema nested too deeply");
    if (s.is_boolean()) {
      if (s.get<bool>()) return any_value();
      fail(ptr, "schema 'false' matches nothing");
    }
    if (!s.is_object()) fail(ptr, "schema must be an object or a boolean");
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (!supported_keywords().count(it.key()) && !annotation_keywords().count(it.key()))
        fail(ptr, "unsupported keyword '" + it.key() + "'");
    }
    if (s.contains("$ref")) {
      bool siblings = false;
      for (auto it = s.begin(); it != s.end(); ++it)
        if (it.key() != "$ref" && is_constraint(it.key())) siblings = true;
      if (!s["$ref"].is_string()) fail(ptr + "/$ref", "must be a string");
      if (siblings) return gen(inline_ref(s, ptr, 0), ptr, depth + 1);
      std::string ref = s["$ref"].get<std::string>();
      auto found = ref_rules_.find(ref);
      if (found != ref_rules_.end()) return ir_.ref(found->second);
      const Json& target = resolve(ref, ptr);
      int32_t rule = ir_.add_rule(ref);
      ref_rules_[ref] = rule;
      ir_.set_body(rule, gen(target, ref, depth + 1));
      return ir_.ref(rule);
    }
    if (s.contains("allOf")) {
      if (!s["allOf"].is_array() || s["allOf"].empty())
        fail(ptr + "/allOf", "must be a non-empty array");
      Json merged = s;
      merged.erase("allOf");
      for (size_t i = 0; i < s["allOf"].size(); ++i)
        merged = merge(merged, inline_ref(s["allOf"][i], ptr + "/allOf/" + std::to_string(i), 0),
                       ptr + "/allOf/" + std::to_string(i));
      return gen(merged, ptr, depth + 1);
    }
    if (s.contains("anyOf") || s.contains("oneOf")) {
      if (s.contains("anyOf") && s.contains("oneOf"))
        fail(ptr, "'anyOf' together with 'oneOf' is not supported");
      const char* key = s.contains("anyOf") ? "anyOf" : "oneOf";
      const Json& subs = s[key];
      if (!subs.is_array() || subs.empty()) fail(ptr + "/" + key, "must be a non-empty array");
      Json base = s;
      base.erase(key);
      bool has_base = false;
      for (auto it = base.begin(); it != base.end(); ++it)
        if (is_constraint(it.key())) has_base = true;
      if (std::string(key) == "oneOf") {
        // An alternation gives "at least one"; it equals "exactly one" when no value can match
        // two alternatives. Enforced only where that is provable; otherwise an error.
        std::vector<Json> resolved;
        for (size_t i = 0; i < subs.size(); ++i) {
          std::string sp = ptr + "/oneOf/" + std::to_string(i);
          resolved.push_back(has_base ? merge(base, inline_ref(subs[i], sp, 0), sp)
                                      : inline_ref(subs[i], sp, 0));
        }
        for (size_t i = 0; i < resolved.size(); ++i)
          for (size_t j = i + 1; j < resolved.size(); ++j)
            if (!provably_disjoint(resolved[i], resolved[j], ptr, 0))
              fail(ptr + "/oneOf",
                   "cannot enforce 'oneOf': alternatives " + std::to_string(i) + " and " +
                       std::to_string(j) +
                       " may both match a value (make them disjoint by 'type', by 'const'/'enum', "
                       "or by a required property with disjoint values; or use 'anyOf')");
      }
      std::vector<int32_t> alts;
      for (size_t i = 0; i < subs.size(); ++i) {
        std::string sp = ptr + "/" + key + "/" + std::to_string(i);
        alts.push_back(has_base ? gen(merge(base, inline_ref(subs[i], sp, 0), sp), sp, depth + 1)
                                : gen(subs[i], sp, depth + 1));
      }
      return ir_.alt(std::move(alts));
    }
    std::vector<std::string> types;
    if (s.contains("type")) types = types_of(s, ptr);
    if (s.contains("enum") || s.contains("const")) {
      for (auto it = s.begin(); it != s.end(); ++it) {
        const std::string& k = it.key();
        if (k != "enum" && k != "const" && k != "type" && is_constraint(k))
          fail(ptr, "'" + k + "' together with 'enum'/'const' is not supported");
      }
      std::vector<Json> values;
      if (s.contains("const")) values.push_back(s["const"]);
      if (s.contains("enum")) {
        if (!s["enum"].is_array()) fail(ptr + "/enum", "must be an array");
        std::vector<Json> ev(s["enum"].begin(), s["enum"].end());
        if (s.contains("const")) {
          bool found = std::find(ev.begin(), ev.end(), s["const"]) != ev.end();
          if (!found) values.clear();
        } else {
          values = ev;
        }
      }
      std::vector<int32_t> alts;
      for (const Json& v : values) {
        bool ok = types.empty();
        for (const std::string& t : types) ok = ok || type_matches(v, t);
        if (ok) alts.push_back(gen_const(v));
      }
      if (alts.empty()) fail(ptr, "no value satisfies 'enum'/'const' (and 'type')");
      return ir_.alt(std::move(alts));
    }
    if (types.empty()) {
      // No type: infer from the keywords present (restricting to those types is sound).
      static const std::map<std::string, std::string> kKeywordType = {
          {"properties", "object"},
          {"required", "object"},
          {"additionalProperties", "object"},
          {"items", "array"},
          {"prefixItems", "array"},
          {"minItems", "array"},
          {"maxItems", "array"},
          {"uniqueItems", "array"},
          {"minLength", "string"},
          {"maxLength", "string"},
          {"pattern", "string"},
          {"format", "string"},
          {"minimum", "number"},
          {"maximum", "number"},
          {"exclusiveMinimum", "number"},
          {"exclusiveMaximum", "number"}};
      std::set<std::string> inferred;
      for (auto it = s.begin(); it != s.end(); ++it) {
        auto f = kKeywordType.find(it.key());
        if (f != kKeywordType.end()) inferred.insert(f->second);
      }
      if (inferred.empty()) return any_value();
      types.assign(inferred.begin(), inferred.end());
    }
    std::vector<int32_t> alts;
    for (const std::string& t : types) {
      if (t == "null")
        alts.push_back(ir_.literal("null"));
      else if (t == "boolean")
        alts.push_back(ir_.alt({ir_.literal("true"), ir_.literal("false")}));
      else if (t == "string")
        alts.push_back(gen_string(s, ptr));
      else if (t == "integer")
        alts.push_back(gen_integer(s, ptr));
      else if (t == "number")
        alts.push_back(gen_number(s, ptr));
      else if (t == "array")
        alts.push_back(gen_array(s, ptr, depth));
      else if (t == "object")
        alts.push_back(gen_object(s, ptr, depth));
    }
    return ir_.alt(std::move(alts));
  }

  Json root_;
  WhitespacePolicy ws_;
  GrammarIr ir_;
  std::map<std::string, int32_t> ref_rules_;
  int analysis_steps_ = 0;  // oneOf disjointness analysis, over the whole schema
  int32_t any_rule_ = -1;
  int32_t unit_ = -1;
};

}  // namespace

Result<GrammarIr> json_schema_to_ir(std::string_view schema_text, WhitespacePolicy ws) {
  Json schema = Json::parse(schema_text, nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded()) return invalid_argument("JSON Schema: not valid JSON");
  try {
    SchemaCompiler c(std::move(schema), ws);
    c.compile();
    return std::move(c.ir());
  } catch (const SchemaError& e) {
    return invalid_argument(e.message);
  } catch (const std::exception& e) {
    return invalid_argument(std::string("JSON Schema: malformed schema: ") + e.what());
  }
}

GrammarIr any_json_ir(WhitespacePolicy ws) {
  SchemaCompiler c(Json(true), ws);
  c.compile();
  return std::move(c.ir());
}

}  // namespace sgl::grammar
