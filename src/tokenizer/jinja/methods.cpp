// Methods of builtin types (str, dict, list, tuple, loop), string formatting (% and
// str.format) and the argument helpers the builtins share.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja/builtin_util.h"
#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/interpreter.h"
#include "tokenizer/jinja/pystr.h"

namespace sgl::tokenizer::jinja {

// str.format(*args, **kwargs) (defined at the end of this file).
Result<std::string> str_format(Renderer& r, std::string_view fmt, CallArgs& args);

// --- argument helpers -----------------------------------------------------------------------

Result<BoundArgs> bind_args(std::string_view what, CallArgs& args,
                            std::initializer_list<std::string_view> names) {
  BoundArgs b;
  size_t n = names.size();
  if (args.positional.size() > n) {
    return type_error(std::string(what) + "() takes at most " + std::to_string(n) +
                      " argument(s) (" + std::to_string(args.positional.size()) + " given)");
  }
  for (size_t i = 0; i < args.positional.size(); ++i) {
    b.values[i] = args.positional[i];
    b.given[i] = true;
  }
  for (auto& [key, value] : args.keyword) {
    size_t i = 0;
    for (std::string_view name : names) {
      if (name == key) break;
      ++i;
    }
    if (i == n) {
      return type_error(std::string(what) + "() got an unexpected keyword argument '" + key + "'");
    }
    if (b.given[i]) {
      return type_error(std::string(what) + "() got multiple values for argument '" + key + "'");
    }
    b.values[i] = value;
    b.given[i] = true;
  }
  return b;
}

Result<int64_t> int_arg(const Value& v, std::string_view what) {
  if (v.is_integral()) return v.as_int();
  return type_error(std::string(what) + ": an integer is required, not '" + type_name(v) + "'");
}

Result<std::string> str_arg(const Value& v, std::string_view what) {
  if (v.is_string()) return v.as_string();
  return type_error(std::string(what) + ": must be str, not " + type_name(v));
}

Result<std::optional<std::string>> opt_str_arg(const BoundArgs& b, size_t i,
                                               std::string_view what) {
  if (!b.has(i) || b[i].is_none()) return std::optional<std::string>();
  SGL_ASSIGN_OR_RETURN(std::string s, str_arg(b[i], what));
  return std::optional<std::string>(std::move(s));
}

namespace {

// Python's int()/float() strip whitespace and accept decimal digits of any script.
std::string strip_ws(std::string_view s) {
  std::string stripped = py::strip(s, std::nullopt, true, true);
  if (py::is_ascii(stripped)) return stripped;
  std::string out;
  for (char32_t c : py::decode(stripped)) {
    int d = c >= 0x80 ? py::decimal_value(c) : -1;
    if (d >= 0) {
      out.push_back(static_cast<char>('0' + d));
    } else {
      py::append_cp(out, c);
    }
  }
  return out;
}

// Removes '_' that sit between two digits (Python numeric literal rule); returns false on a
// misplaced underscore.
bool remove_underscores(std::string_view s, std::string* out, int base) {
  auto is_d = [&](char c) {
    if (base == 16) return std::isxdigit(static_cast<unsigned char>(c)) != 0;
    return c >= '0' && c <= '9';
  };
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (i == 0 || i + 1 >= s.size() || !is_d(s[i - 1]) || !is_d(s[i + 1])) return false;
      continue;
    }
    out->push_back(s[i]);
  }
  return true;
}

}  // namespace

std::optional<double> parse_python_float(std::string_view text) {
  std::string s = strip_ws(text);
  if (s.empty()) return std::nullopt;
  std::string lower = py::lower(s);
  std::string_view body = lower;
  bool neg = false;
  if (body[0] == '+' || body[0] == '-') {
    neg = body[0] == '-';
    body.remove_prefix(1);
  }
  if (body == "inf" || body == "infinity") return neg ? -HUGE_VAL : HUGE_VAL;
  if (body == "nan") return std::nan("");
  // [digits][.digits][e[+-]digits] with at least one mantissa digit.
  size_t i = 0, digits = 0;
  while (i < body.size() && (std::isdigit(static_cast<unsigned char>(body[i])) || body[i] == '_')) {
    digits += body[i] != '_';
    ++i;
  }
  if (i < body.size() && body[i] == '.') {
    ++i;
    while (i < body.size() &&
           (std::isdigit(static_cast<unsigned char>(body[i])) || body[i] == '_')) {
      digits += body[i] != '_';
      ++i;
    }
  }
  if (digits == 0) return std::nullopt;
  if (i < body.size() && body[i] == 'e') {
    ++i;
    if (i < body.size() && (body[i] == '+' || body[i] == '-')) ++i;
    size_t e0 = i;
    while (i < body.size() &&
           (std::isdigit(static_cast<unsigned char>(body[i])) || body[i] == '_')) {
      ++i;
    }
    if (i == e0) return std::nullopt;
  }
  if (i != body.size()) return std::nullopt;
  std::string clean;
  // Underscores must sit between digits.
  for (size_t k = 0; k < body.size(); ++k) {
    if (body[k] == '_') {
      if (k == 0 || k + 1 >= body.size() ||
          !std::isdigit(static_cast<unsigned char>(body[k - 1])) ||
          !std::isdigit(static_cast<unsigned char>(body[k + 1]))) {
        return std::nullopt;
      }
      continue;
    }
    clean.push_back(body[k]);
  }
  double v = 0;
  auto res = std::from_chars(clean.data(), clean.data() + clean.size(), v);
  if (res.ec == std::errc::result_out_of_range) {
    v = HUGE_VAL;  // Python's float() overflows to inf only via "inf"; large literals are inf
  } else if (res.ec != std::errc() || res.ptr != clean.data() + clean.size()) {
    return std::nullopt;
  }
  return neg ? -v : v;
}

std::optional<int64_t> parse_python_int(std::string_view text, int base) {
  std::string s = strip_ws(text);
  if (s.empty()) return std::nullopt;
  std::string_view body = s;
  bool neg = false;
  if (body[0] == '+' || body[0] == '-') {
    neg = body[0] == '-';
    body.remove_prefix(1);
  }
  if (base == 16 && body.size() > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X')) {
    body.remove_prefix(2);
  } else if (base == 8 && body.size() > 2 && body[0] == '0' && (body[1] == 'o' || body[1] == 'O')) {
    body.remove_prefix(2);
  } else if (base == 2 && body.size() > 2 && body[0] == '0' && (body[1] == 'b' || body[1] == 'B')) {
    body.remove_prefix(2);
  }
  std::string clean;
  if (body.empty() || !remove_underscores(body, &clean, base)) return std::nullopt;
  uint64_t v = 0;
  auto res = std::from_chars(clean.data(), clean.data() + clean.size(), v, base);
  if (res.ec != std::errc() || res.ptr != clean.data() + clean.size()) return std::nullopt;
  if (v > static_cast<uint64_t>(INT64_MAX) + (neg ? 1 : 0)) return std::nullopt;
  return neg ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
}

// --- method tables --------------------------------------------------------------------------

namespace {

using MethodFn = Result<Value> (*)(Renderer& r, const Value& self, CallArgs& args);

struct MethodEntry {
  std::string_view name;
  MethodFn fn;  // nullptr: the sandbox refuses it
};

Result<Value> str_value(Renderer& r, std::string s) { return r.make_string(std::move(s)); }

Result<Value> list_of_strings(Renderer& r, std::vector<std::string> parts) {
  ValueList items;
  items.reserve(parts.size());
  size_t bytes = 0;
  for (auto& p : parts) {
    bytes += p.size() + sizeof(Value);
    items.push_back(Value::string(std::move(p)));
  }
  SGL_RETURN_IF_ERROR(r.charge(bytes));
  return Value::list(std::move(items));
}

// Optional int bound at position i (None allowed).
Result<std::optional<int64_t>> opt_int(const BoundArgs& b, size_t i, std::string_view what) {
  if (!b.has(i) || b[i].is_none()) return std::optional<int64_t>();
  SGL_ASSIGN_OR_RETURN(int64_t v, int_arg(b[i], what));
  return std::optional<int64_t>(v);
}

Result<char32_t> fill_char(const BoundArgs& b, size_t i) {
  if (!b.has(i)) return U' ';
  if (!b[i].is_string() || py::length(b[i].as_string()) != 1) {
    return type_error("The fill character must be exactly one character long");
  }
  return py::decode(b[i].as_string())[0];
}

#define STR_SELF (self.as_string())

Result<Value> s_upper(Renderer& r, const Value& self, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("upper", a, {}).status());
  return str_value(r, py::upper(STR_SELF));
}
Result<Value> s_lower(Renderer& r, const Value& self, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("lower", a, {}).status());
  return str_value(r, py::lower(STR_SELF));
}
Result<Value> s_swapcase(Renderer& r, const Value& self, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("swapcase", a, {}).status());
  return str_value(r, py::swapcase(STR_SELF));
}
Result<Value> s_title(Renderer& r, const Value& self, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("title", a, {}).status());
  return str_value(r, py::title(STR_SELF));
}
Result<Value> s_capitalize(Renderer& r, const Value& self, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("capitalize", a, {}).status());
  return str_value(r, py::capitalize(STR_SELF));
}

template <bool kLeft, bool kRight>
Result<Value> s_strip(Renderer& r, const Value& self, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("strip", a, {"chars"}));
  SGL_ASSIGN_OR_RETURN(std::optional<std::string> chars, opt_str_arg(b, 0, "strip arg"));
  return str_value(r, py::strip(STR_SELF, chars, kLeft, kRight));
}

template <bool kReverse>
Result<Value> s_split(Renderer& r, const Value& self, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("split", a, {"sep", "maxsplit"}));
  SGL_ASSIGN_OR_RETURN(std::optional<std::string> sep, opt_str_arg(b, 0, "split"));
  int64_t maxsplit = -1;
  if (b.has(1)) {
    SGL_ASSIGN_OR_RETURN(maxsplit, int_arg(b[1], "split"));
  }
  if (sep && sep->empty()) return value_error("empty separator");
  SGL_RETURN_IF_ERROR(r.charge(STR_SELF.size() * 2));
  return list_of_strings(
      r, kReverse ? py::rsplit(STR_SELF, sep, maxsplit) : py::split(STR_SELF, sep, maxsplit));
}

Result<Value> s_splitlines(Renderer& r, const Value& self, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("splitlines", a, {"keepends"}));
  return list_of_strings(r, py::splitlines(STR_SELF, b.has(0) && truthy(b[0])));
}

Result<Value> s_replace(Renderer& r, const Value& self, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("replace", a, {"old", "new", "count"}));
  if (!b.has(0) || !b.has(1)) return type_error("replace() takes at least 2 arguments");
  SGL_ASSIGN_OR_RETURN(std::string old_s, str_arg(b[0], "replace() argument 1"));
  SGL_ASSIGN_OR_RETURN(std::string new_s, str_arg(b[1], "replace() argument 2"));
  int64_t count = -1;
  if (b.has(2)) {
    SGL_ASSIGN_OR_RETURN(count, int_arg(b[2], "replace"));
  }
  // Bound the result before building it: at most one replacement per position.
  size_t worst = STR_SELF.size() + (py::length(STR_SELF) + 1) * new_s.size();
  SGL_RETURN_IF_ERROR(r.charge(worst));
  return Value::string(py::replace(STR_SELF, old_s, new_s, count));
}

template <bool kStarts>
Result<Value> s_startswith(Renderer& r, const Value& self, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(
      BoundArgs b, bind_args(kStarts ? "startswith" : "endswith", a, {"prefix", "start", "end"}));
  if (!b.has(0)) return type_error("startswith() takes at least 1 argument (0 given)");
  SGL_ASSIGN_OR_RETURN(std::optional<int64_t> start, opt_int(b, 1, "startswith"));
  SGL_ASSIGN_OR_RETURN(std::optional<int64_t> end, opt_int(b, 2, "startswith"));
  std::string_view s = STR_SELF;
  std::string window;
  if (start || end) {
    auto [lo, hi] = py::clamp_range(start, end, static_cast<int64_t>(py::length(s)));
    if (start && *start > static_cast<int64_t>(py::length(s))) return Value::boolean(false);
    size_t bl = py::byte_offset(s, lo), bh = py::byte_offset(s, std::max(lo, hi));
    window = std::string(s.substr(bl, bh - bl));
    s = window;
  }
  auto test = [&](const Value& p) -> Result<bool> {
    if (!p.is_string()) {
      return type_error(std::string(kStarts ? "startswith" : "endswith") +
                        " first arg must be str or a tuple of str, not " + type_name(p));
    }
    const std::string& x = p.as_string();
    if (x.size() > s.size()) return false;
    return kStarts ? s.compare(0, x.size(), x) == 0
                   : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (b[0].is_tuple()) {
    for (const Value& p : b[0].items()) {
      SGL_ASSIGN_OR_RETURN(bool ok, test(p));
      if (ok) return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  SGL_ASSIGN_OR_RETURN(bool ok, test(b[0]));
  return Value::boolean(ok);
}

template <bool kReverse, bool kRaise>
Result<Value> s_find(Renderer& r, const Value& self, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("find", a, {"sub", "start", "end"}));
  SGL_RETURN_IF_ERROR(r.charge(self.as_string().size() / 16));
  if (!b.has(0)) return type_error("find() takes at least 1 argument (0 given)");
  SGL_ASSIGN_OR_RETURN(std::string sub, str_arg(b[0], "find()"));
  SGL_ASSIGN_OR_RETURN(std::optional<int64_t> start, opt_int(b, 1, "find"));
  SGL_ASSIGN_OR_RETURN(std::optional<int64_t> end, opt_int(b, 2, "find"));
  int64_t pos = py::find(STR_SELF, sub, start, end, kReverse);
  if (kRaise && pos < 0) return value_error("substring not found");
  return Value::integer(pos);
}

Result<Value> s_count(Renderer& r, const Value& self, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("count", a, {"sub", "start", "end"}));
  SGL_RETURN_IF_ERROR(r.charge(self.as_string().size() / 16));
  if (!b.has(0)) return type_error("count() takes at least 1 argument (0 given)");
  SGL_ASSIGN_OR_RETURN(std::string sub, str_arg(b[0], "count()"));
  SGL_ASSIGN_OR_RETURN(std::optional<int64_t> start, opt_int(b, 1, "count"));
  SGL_ASSIGN_OR_RETURN(std::optional<int64_t> end, opt_int(b, 2, "count"));
  return Value::integer(py::count(STR_SELF, sub, start, end));
}

Result<Value> s_join(Renderer& r, const Value& self, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("join", a, {"iterable"}));
  if (!b.has(0)) return type_error("join() takes exactly one argument (0 given)");
  SGL_ASSIGN_OR_RETURN(Sequence seq, r.iterate(b[0]));
  std::string out;
  size_t i = 0;
  for (const Value& x : seq.get()) {
    if (!x.is_string()) {
      return type_error("sequence item " + std::to_string(i) + ": expected str instance, " +
                        type_name(x) + " found");
    }
    if (i++) out += STR_SELF;
    out += x.as_string();
    SGL_RETURN_IF_ERROR(r.charge(x.as_string().size() + STR_SELF.size()));
  }
  return Value::string(std::move(out));
}

template <int kMode>  // 0 center, 1 ljust, 2 rjust
Result<Value> s_justify(Renderer& r, const Value& self, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("center", a, {"width", "fillchar"}));
  if (!b.has(0)) return type_error("center() takes at least 1 argument (0 given)");
  SGL_ASSIGN_OR_RETURN(int64_t width, int_arg(b[0], "center"));
  SGL_ASSIGN_OR_RETURN(char32_t fill, fill_char(b, 1));
  SGL_RETURN_IF_ERROR(r.charge(static_cast<size_t>(std::max<int64_t>(width, 0)) * 4));
  if (kMode == 0) return Value::string(py::center(STR_SELF, width, fill));
  if (kMode == 1) return Value::string(py::ljust(STR_SELF, width, fill));
  return Value::string(py::rjust(STR_SELF, width, fill));
}

Result<Value> s_expandtabs(Renderer& r, const Value& self, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("expandtabs", a, {"tabsize"}));
  int64_t tabsize = 8;
  if (b.has(0)) {
    SGL_ASSIGN_OR_RETURN(tabsize, int_arg(b[0], "expandtabs"));
  }
  if (tabsize > 1000) return value_error("tabsize too large");
  SGL_RETURN_IF_ERROR(
      r.charge(self.as_string().size() * static_cast<size_t>(std::max<int64_t>(tabsize, 1))));
  return Value::string(py::expandtabs(self.as_string(), tabsize));
}

Result<Value> s_zfill(Renderer& r, const Value& self, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("zfill", a, {"width"}));
  if (!b.has(0)) return type_error("zfill() takes exactly one argument (0 given)");
  SGL_ASSIGN_OR_RETURN(int64_t width, int_arg(b[0], "zfill"));
  SGL_RETURN_IF_ERROR(r.charge(static_cast<size_t>(std::max<int64_t>(width, 0))));
  return Value::string(py::zfill(STR_SELF, width));
}

template <bool kPrefix>
Result<Value> s_remove_affix(Renderer& r, const Value& self, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b,
                       bind_args(kPrefix ? "removeprefix" : "removesuffix", a, {"affix"}));
  if (!b.has(0)) return type_error("removeprefix() takes exactly one argument (0 given)");
  SGL_ASSIGN_OR_RETURN(std::string x, str_arg(b[0], "removeprefix() argument"));
  std::string_view s = STR_SELF;
  if (kPrefix && s.substr(0, x.size()) == x) s.remove_prefix(x.size());
  if (!kPrefix && s.size() >= x.size() && s.substr(s.size() - x.size()) == x) {
    s.remove_suffix(x.size());
  }
  return str_value(r, std::string(s));
}

template <bool kReverse>
Result<Value> s_partition(Renderer& r, const Value& self, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("partition", a, {"sep"}));
  if (!b.has(0)) return type_error("partition() takes exactly one argument (0 given)");
  SGL_ASSIGN_OR_RETURN(std::string sep, str_arg(b[0], "partition() argument"));
  if (sep.empty()) return value_error("empty separator");
  const std::string& s = STR_SELF;
  size_t pos = kReverse ? s.rfind(sep) : s.find(sep);
  ValueList parts;
  if (pos == std::string::npos) {
    if (kReverse) {
      parts = {Value::string(""), Value::string(""), self};
    } else {
      parts = {self, Value::string(""), Value::string("")};
    }
  } else {
    parts = {Value::string(s.substr(0, pos)), Value::string(sep),
             Value::string(s.substr(pos + sep.size()))};
  }
  SGL_RETURN_IF_ERROR(r.charge(s.size() + 3 * sizeof(Value)));
  return Value::tuple(std::move(parts));
}

template <bool (*Pred)(char32_t)>
Result<Value> s_is(Renderer& r, const Value& self, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("is", a, {}).status());
  return Value::boolean(py::all_of(STR_SELF, Pred));
}
Result<Value> s_isupper(Renderer& r, const Value& self, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("isupper", a, {}).status());
  return Value::boolean(py::is_upper_str(STR_SELF));
}
Result<Value> s_islower(Renderer& r, const Value& self, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("islower", a, {}).status());
  return Value::boolean(py::is_lower_str(STR_SELF));
}
Result<Value> s_istitle(Renderer& r, const Value& self, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("istitle", a, {}).status());
  return Value::boolean(py::is_title_str(STR_SELF));
}
bool printable_cp(char32_t c) { return py::is_printable(c); }
Result<Value> s_isascii(Renderer& r, const Value& self, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("isascii", a, {}).status());
  return Value::boolean(py::is_ascii(STR_SELF));
}
Result<Value> s_isprintable(Renderer& r, const Value& self, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("isprintable", a, {}).status());
  return Value::boolean(STR_SELF.empty() || py::all_of(STR_SELF, printable_cp));
}

Result<Value> s_format(Renderer& r, const Value& self, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(std::string s, str_format(r, STR_SELF, a));
  return str_value(r, std::move(s));
}

#undef STR_SELF

constexpr MethodEntry kStrMethods[] = {
    {"capitalize", s_capitalize},
    {"casefold", s_lower},
    {"center", s_justify<0>},
    {"count", s_count},
    {"endswith", s_startswith<false>},
    {"expandtabs", s_expandtabs},
    {"find", s_find<false, false>},
    {"format", s_format},
    {"index", s_find<false, true>},
    {"isalnum", s_is<py::is_alnum>},
    {"isalpha", s_is<py::is_alpha>},
    {"isascii", s_isascii},
    {"isdecimal", s_is<py::is_decimal>},
    {"isdigit", s_is<py::is_digit>},
    {"islower", s_islower},
    {"isnumeric", s_is<py::is_numeric>},
    {"isprintable", s_isprintable},
    {"isspace", s_is<py::is_space>},
    {"istitle", s_istitle},
    {"isupper", s_isupper},
    {"join", s_join},
    {"ljust", s_justify<1>},
    {"lower", s_lower},
    {"lstrip", s_strip<true, false>},
    {"partition", s_partition<false>},
    {"removeprefix", s_remove_affix<true>},
    {"removesuffix", s_remove_affix<false>},
    {"replace", s_replace},
    {"rfind", s_find<true, false>},
    {"rindex", s_find<true, true>},
    {"rjust", s_justify<2>},
    {"rpartition", s_partition<true>},
    {"rsplit", s_split<true>},
    {"rstrip", s_strip<false, true>},
    {"split", s_split<false>},
    {"splitlines", s_splitlines},
    {"startswith", s_startswith<true>},
    {"strip", s_strip<true, true>},
    {"swapcase", s_swapcase},
    {"title", s_title},
    {"upper", s_upper},
    {"zfill", s_zfill},
};

// --- dict -----------------------------------------------------------------------------------

Result<Value> d_get(Renderer& r, const Value& self, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("get", a, {"key", "default"}));
  if (!b.has(0)) return type_error("get expected at least 1 argument, got 0");
  if (!is_hashable(b[0]))
    return type_error(std::string("unhashable type: '") + type_name(b[0]) + "'");
  if (const Value* v = self.as_dict().find(b[0])) return *v;
  return b.has(1) ? b[1] : Value::none();
}

template <IterTag kTag>
Result<Value> d_view(Renderer& r, const Value& self, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("items", a, {}).status());
  const Dict& d = self.as_dict();
  ValueList items;
  items.reserve(d.size());
  for (const auto& [k, v] : d.entries) {
    if (kTag == IterTag::kDictItems) {
      items.push_back(Value::tuple({k, v}));
    } else {
      items.push_back(kTag == IterTag::kDictKeys ? k : v);
    }
  }
  SGL_RETURN_IF_ERROR(r.charge(items.size() * sizeof(Value) * 3));
  return Value::iterator(std::move(items), kTag);
}

Result<Value> same_copy(Renderer& r, const Value& self, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("copy", a, {}).status());
  if (self.is_list()) return Value::list(self.items());
  return self;
}

constexpr MethodEntry kDictMethods[] = {
    {"clear", nullptr},
    {"copy", same_copy},
    {"get", d_get},
    {"items", d_view<IterTag::kDictItems>},
    {"keys", d_view<IterTag::kDictKeys>},
    {"pop", nullptr},
    {"popitem", nullptr},
    {"setdefault", nullptr},
    {"update", nullptr},
    {"values", d_view<IterTag::kDictValues>},
};

// --- list / tuple ---------------------------------------------------------------------------

Result<Value> l_count(Renderer& r, const Value& self, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("count", a, {"value"}));
  SGL_RETURN_IF_ERROR(r.charge(self.items().size()));
  if (!b.has(0)) return type_error("count() takes exactly one argument (0 given)");
  int64_t n = 0;
  for (const Value& x : self.items()) n += equals(x, b[0]);
  return Value::integer(n);
}

Result<Value> l_index(Renderer& r, const Value& self, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("index", a, {"value", "start", "stop"}));
  if (!b.has(0)) return type_error("index expected at least 1 argument, got 0");
  SGL_ASSIGN_OR_RETURN(std::optional<int64_t> start, opt_int(b, 1, "index"));
  SGL_ASSIGN_OR_RETURN(std::optional<int64_t> stop, opt_int(b, 2, "index"));
  const ValueList& items = self.items();
  SGL_RETURN_IF_ERROR(r.charge(items.size()));
  auto [lo, hi] = py::clamp_range(start, stop, static_cast<int64_t>(items.size()));
  for (int64_t i = lo; i < hi; ++i) {
    if (equals(items[i], b[0])) return Value::integer(i);
  }
  return value_error(repr(b[0]) + " is not in " + type_name(self));
}

constexpr MethodEntry kListMethods[] = {
    {"append", nullptr}, {"clear", nullptr},   {"copy", same_copy}, {"count", l_count},
    {"extend", nullptr}, {"index", l_index},   {"insert", nullptr}, {"pop", nullptr},
    {"remove", nullptr}, {"reverse", nullptr}, {"sort", nullptr},
};

constexpr MethodEntry kTupleMethods[] = {
    {"count", l_count},
    {"index", l_index},
};

// --- loop -----------------------------------------------------------------------------------

Result<Value> loop_cycle(Renderer& r, const Value& self, CallArgs& a) {
  if (!a.keyword.empty()) return type_error("cycle() takes no keyword arguments");
  if (a.positional.empty()) return type_error("no items for cycling given");
  const LoopState& l = self.as_loop();
  return a.positional[l.index0 % static_cast<int64_t>(a.positional.size())];
}

Result<Value> loop_changed(Renderer& r, const Value& self, CallArgs& a) {
  LoopState& l = self.as_loop();
  Value current = Value::tuple(a.positional);
  if (l.changed_called && equals(l.last_changed, current)) return Value::boolean(false);
  l.changed_called = true;
  l.last_changed = std::move(current);
  return Value::boolean(true);
}

constexpr MethodEntry kLoopMethods[] = {
    {"changed", loop_changed},
    {"cycle", loop_cycle},
};

template <size_t N>
const MethodEntry* find_in(const MethodEntry (&table)[N], std::string_view name) {
  for (const MethodEntry& m : table) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

const MethodEntry* find_entry(const Value& obj, std::string_view name) {
  switch (obj.kind()) {
    case ValueKind::kString:
      return find_in(kStrMethods, name);
    case ValueKind::kDict:
      return find_in(kDictMethods, name);
    case ValueKind::kList:
      return find_in(kListMethods, name);
    case ValueKind::kTuple:
      return find_in(kTupleMethods, name);
    case ValueKind::kLoop:
      return find_in(kLoopMethods, name);
    default:
      return nullptr;
  }
}

// `obj.name` taken without calling it.
class BoundMethod : public Callable {
 public:
  BoundMethod(Value self, const MethodEntry* m) : self_(std::move(self)), m_(m) {}
  std::string describe() const override {
    return "<built-in method " + std::string(m_->name) + " of " + type_name(self_) + " object>";
  }
  Result<Value> call(Renderer& r, CallArgs& args) const override { return m_->fn(r, self_, args); }

 private:
  Value self_;
  const MethodEntry* m_;
};

}  // namespace

MethodStatus find_method(const Value& obj, std::string_view name) {
  const MethodEntry* m = find_entry(obj, name);
  if (!m) return MethodStatus::kNone;
  return m->fn ? MethodStatus::kSafe : MethodStatus::kUnsafe;
}

Result<Value> call_method(Renderer& r, const Value& obj, std::string_view name, CallArgs& args) {
  const MethodEntry* m = find_entry(obj, name);
  SGL_CHECK(m && m->fn, "call_method on a missing or unsafe method");
  return m->fn(r, obj, args);
}

Value bound_method(const Value& obj, std::string_view name) {
  const MethodEntry* m = find_entry(obj, name);
  SGL_CHECK(m && m->fn, "bound_method on a missing or unsafe method");
  return Value::callable(std::make_shared<BoundMethod>(obj, m));
}

Value loop_attribute(const Value& loop, std::string_view name) {
  const LoopState& l = loop.as_loop();
  int64_t n = l.length(), i = l.index0;
  if (name == "index") return Value::integer(i + 1);
  if (name == "index0") return Value::integer(i);
  if (name == "revindex") return Value::integer(n - i);
  if (name == "revindex0") return Value::integer(n - i - 1);
  if (name == "first") return Value::boolean(i == 0);
  if (name == "last") return Value::boolean(i == n - 1);
  if (name == "length") return Value::integer(n);
  if (name == "depth") return Value::integer(l.depth0 + 1);
  if (name == "depth0") return Value::integer(l.depth0);
  if (name == "previtem") {
    if (i == 0) return Value::undefined("there is no previous item");
    return l.items()[i - 1];
  }
  if (name == "nextitem") {
    if (i + 1 >= n) return Value::undefined("there is no next item");
    return l.items()[i + 1];
  }
  return Value();
}

// --- printf-style formatting ----------------------------------------------------------------

namespace {

std::string pad(std::string body, int64_t width, bool left, char fill = ' ') {
  int64_t n = static_cast<int64_t>(py::length(body));
  if (width <= n) return body;
  std::string padding(static_cast<size_t>(width - n), fill);
  return left ? body + padding : padding + body;
}

// Formats an integer with printf semantics for d/x/X/o plus Python's "0o" alternate form.
std::string format_int(int64_t v, char conv, const std::string& flags, int64_t width,
                       int64_t precision) {
  bool alt = flags.find('#') != std::string::npos;
  bool left = flags.find('-') != std::string::npos;
  bool zero = flags.find('0') != std::string::npos && !left;
  bool plus = flags.find('+') != std::string::npos;
  bool space = flags.find(' ') != std::string::npos;
  uint64_t mag = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  char buf[80];
  const char* spec = conv == 'x' ? "%llx" : conv == 'X' ? "%llX" : conv == 'o' ? "%llo" : "%llu";
  std::snprintf(buf, sizeof(buf), spec, static_cast<unsigned long long>(mag));
  std::string digits = buf;
  if (precision >= 0 && static_cast<int64_t>(digits.size()) < precision) {
    digits.insert(0, static_cast<size_t>(precision - digits.size()), '0');
  }
  std::string prefix;
  if (v < 0) {
    prefix = "-";
  } else if (plus) {
    prefix = "+";
  } else if (space) {
    prefix = " ";
  }
  if (alt && conv != 'd') prefix += conv == 'o' ? "0o" : (conv == 'x' ? "0x" : "0X");
  if (zero && static_cast<int64_t>(prefix.size() + digits.size()) < width) {
    digits.insert(0, static_cast<size_t>(width - prefix.size() - digits.size()), '0');
  }
  return pad(prefix + digits, width, left);
}

std::string format_double(double v, char conv, const std::string& flags, int64_t width,
                          int64_t precision) {
  std::string spec = "%" + flags;
  if (width > 0) spec += std::to_string(width);
  spec += "." + std::to_string(precision < 0 ? 6 : precision);
  spec.push_back(conv);
  int n = std::snprintf(nullptr, 0, spec.c_str(), v);
  if (n <= 0) return "";
  std::string out(static_cast<size_t>(n) + 1, '\0');
  std::snprintf(out.data(), out.size(), spec.c_str(), v);
  out.resize(static_cast<size_t>(n));
  return out;
}

}  // namespace

Result<std::string> percent_format(Renderer& r, std::string_view fmt, const Value& args) {
  ValueList positional;
  const Dict* mapping = nullptr;
  if (args.is_tuple()) {
    positional = args.items();
  } else {
    positional.push_back(args);
    if (args.is_dict()) mapping = &args.as_dict();
  }
  size_t next_arg = 0;
  bool used_mapping = false;
  std::string out;
  auto take = [&]() -> Result<Value> {
    if (next_arg >= positional.size()) return type_error("not enough arguments for format string");
    return positional[next_arg++];
  };
  size_t i = 0;
  while (i < fmt.size()) {
    char c = fmt[i];
    if (c != '%') {
      out.push_back(c);
      ++i;
      continue;
    }
    ++i;
    if (i >= fmt.size()) return value_error("incomplete format");
    size_t before = out.size();
    Value arg;
    bool have_arg = false;
    if (fmt[i] == '(') {
      if (!mapping) return type_error("format requires a mapping");
      size_t close = fmt.find(')', i);
      if (close == std::string_view::npos) return value_error("incomplete format key");
      std::string key(fmt.substr(i + 1, close - i - 1));
      const Value* v = mapping->find(key);
      if (!v) return invalid_argument("KeyError: " + repr(Value::string(key)));
      arg = *v;
      have_arg = true;
      used_mapping = true;
      i = close + 1;
    }
    std::string flags;
    while (i < fmt.size() && std::string_view("-+ #0").find(fmt[i]) != std::string_view::npos) {
      flags.push_back(fmt[i++]);
    }
    int64_t width = -1, precision = -1;
    if (i < fmt.size() && fmt[i] == '*') {
      SGL_ASSIGN_OR_RETURN(Value w, take());
      SGL_ASSIGN_OR_RETURN(width, int_arg(w, "* wants int"));
      if (width < 0) {
        flags.push_back('-');
        width = width == INT64_MIN ? INT64_MAX : -width;
      }
      if (width > 100000) return value_error("width too big");
      ++i;
    } else {
      while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) {
        width = std::max<int64_t>(width, 0) * 10 + (fmt[i++] - '0');
        if (width > 100000) return value_error("width too big");
      }
    }
    if (i < fmt.size() && fmt[i] == '.') {
      ++i;
      precision = 0;
      if (i < fmt.size() && fmt[i] == '*') {
        SGL_ASSIGN_OR_RETURN(Value p, take());
        SGL_ASSIGN_OR_RETURN(precision, int_arg(p, "* wants int"));
        if (precision > 100000) return value_error("precision too big");
        ++i;
      } else {
        while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) {
          precision = precision * 10 + (fmt[i++] - '0');
          if (precision > 100000) return value_error("precision too big");
        }
      }
    }
    while (i < fmt.size() && (fmt[i] == 'h' || fmt[i] == 'l' || fmt[i] == 'L')) ++i;
    if (i >= fmt.size()) return value_error("incomplete format");
    char conv = fmt[i++];
    if (conv == '%') {
      out.push_back('%');
      continue;
    }
    if (!have_arg) {
      SGL_ASSIGN_OR_RETURN(arg, take());
    }
    bool left = flags.find('-') != std::string::npos;
    switch (conv) {
      case 's':
      case 'r':
      case 'a': {
        std::string s = conv == 's' ? to_str(arg) : repr(arg);
        if (precision >= 0) s = s.substr(0, py::byte_offset(s, precision));
        out += pad(std::move(s), width, left);
        break;
      }
      case 'd':
      case 'i':
      case 'u':
      case 'x':
      case 'X':
      case 'o': {
        int64_t v;
        if (arg.is_integral()) {
          v = arg.as_int();
        } else if (arg.is_float() && (conv == 'd' || conv == 'i' || conv == 'u')) {
          double d = arg.as_float();
          if (!std::isfinite(d)) return invalid_argument("OverflowError: cannot convert float");
          if (std::fabs(d) >= 9.2e18) return invalid_argument("OverflowError: integer too large");
          v = static_cast<int64_t>(d);
        } else if (conv == 'd' || conv == 'i' || conv == 'u') {
          return type_error(std::string("%") + conv + " format: a real number is required, not " +
                            type_name(arg));
        } else {
          return type_error(std::string("%") + conv + " format: an integer is required, not " +
                            type_name(arg));
        }
        out += format_int(v, conv == 'i' || conv == 'u' ? 'd' : conv, flags, width, precision);
        break;
      }
      case 'e':
      case 'E':
      case 'f':
      case 'F':
      case 'g':
      case 'G': {
        if (!arg.is_number())
          return type_error(std::string("must be real number, not ") + type_name(arg));
        out += format_double(arg.as_float(), conv, flags, width, precision);
        break;
      }
      case 'c': {
        std::string s;
        if (arg.is_integral()) {
          int64_t cp = arg.as_int();
          if (cp < 0 || cp > 0x10FFFF)
            return invalid_argument("OverflowError: %c arg not in range(0x110000)");
          py::append_cp(s, static_cast<char32_t>(cp));
        } else if (arg.is_string() && py::length(arg.as_string()) == 1) {
          s = arg.as_string();
        } else {
          return type_error("%c requires int or char");
        }
        out += pad(std::move(s), width, left);
        break;
      }
      default:
        return value_error(std::string("unsupported format character '") + conv + "'");
    }
    SGL_RETURN_IF_ERROR(r.charge(out.size() - before));
  }
  if (!used_mapping && !mapping && next_arg < positional.size()) {
    return type_error("not all arguments converted during string formatting");
  }
  return out;
}

// --- str.format -----------------------------------------------------------------------------

namespace {

struct FormatSpec {
  char32_t fill = U' ';
  char align = 0;  // '<', '>', '^', '=' or 0
  char sign = 0;
  bool alt = false;
  bool zero = false;
  int64_t width = -1;
  char grouping = 0;
  int64_t precision = -1;
  char type = 0;
};

Result<FormatSpec> parse_spec(std::string_view s) {
  FormatSpec f;
  std::u32string cps = py::decode(s);
  size_t i = 0;
  auto is_align = [](char32_t c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  if (cps.size() >= 2 && is_align(cps[1])) {
    f.fill = cps[0];
    f.align = static_cast<char>(cps[1]);
    i = 2;
  } else if (!cps.empty() && is_align(cps[0])) {
    f.align = static_cast<char>(cps[0]);
    i = 1;
  }
  if (i < cps.size() && (cps[i] == '+' || cps[i] == '-' || cps[i] == ' ')) {
    f.sign = static_cast<char>(cps[i++]);
  }
  if (i < cps.size() && cps[i] == '#') {
    f.alt = true;
    ++i;
  }
  if (i < cps.size() && cps[i] == '0') {
    f.zero = true;
    ++i;
  }
  while (i < cps.size() && cps[i] >= '0' && cps[i] <= '9') {
    f.width = std::max<int64_t>(f.width, 0) * 10 + (cps[i++] - '0');
    if (f.width > 100000) return value_error("Too many decimal digits in format string");
  }
  if (i < cps.size() && (cps[i] == ',' || cps[i] == '_')) f.grouping = static_cast<char>(cps[i++]);
  if (i < cps.size() && cps[i] == '.') {
    ++i;
    f.precision = 0;
    size_t start = i;
    while (i < cps.size() && cps[i] >= '0' && cps[i] <= '9') {
      f.precision = f.precision * 10 + (cps[i++] - '0');
      if (f.precision > 100000) return value_error("Too many decimal digits in format string");
    }
    if (i == start) return value_error("Format specifier missing precision");
  }
  if (i < cps.size()) f.type = static_cast<char>(cps[i++]);
  if (i != cps.size()) return value_error("Invalid format specifier");
  return f;
}

std::string group_digits(const std::string& digits, char sep) {
  std::string out;
  int n = static_cast<int>(digits.size());
  for (int i = 0; i < n; ++i) {
    if (i > 0 && (n - i) % 3 == 0) out.push_back(sep);
    out.push_back(digits[i]);
  }
  return out;
}

std::string align_text(std::string body, const FormatSpec& f, char default_align,
                       size_t sign_len = 0) {
  int64_t n = static_cast<int64_t>(py::length(body));
  if (f.width <= n) return body;
  char align = f.align ? f.align : default_align;
  char32_t fill = f.fill;
  if (!f.align && f.zero) {
    align = '=';
    fill = U'0';
  }
  int64_t pad_n = f.width - n;
  std::string fill_s;
  py::append_cp(fill_s, fill);
  auto repeat = [&](int64_t k) {
    std::string s;
    for (int64_t j = 0; j < k; ++j) s += fill_s;
    return s;
  };
  switch (align) {
    case '<':
      return body + repeat(pad_n);
    case '^':
      return repeat(pad_n / 2) + body + repeat(pad_n - pad_n / 2);
    case '=':
      return body.substr(0, sign_len) + repeat(pad_n) + body.substr(sign_len);
    default:
      return repeat(pad_n) + body;
  }
}

Result<std::string> format_value(const Value& v, std::string_view spec_text) {
  if (spec_text.empty()) return to_str(v);
  SGL_ASSIGN_OR_RETURN(FormatSpec f, parse_spec(spec_text));
  if (v.is_string() || (!v.is_number())) {
    if (!v.is_string()) {
      return type_error(std::string("unsupported format string passed to ") + type_name(v) +
                        ".__format__");
    }
    if (f.type && f.type != 's') {
      return value_error(std::string("Unknown format code '") + f.type +
                         "' for object of type 'str'");
    }
    std::string s = v.as_string();
    if (f.precision >= 0) s = s.substr(0, py::byte_offset(s, f.precision));
    return align_text(std::move(s), f, '<');
  }
  char t = f.type;
  if (v.is_integral() && (t == 0 || t == 'd' || t == 'n' || t == 'x' || t == 'X' || t == 'o' ||
                          t == 'b' || t == 'c')) {
    if (v.is_bool() && t == 0) return align_text(to_str(v), f, '<');
    int64_t x = v.as_int();
    if (t == 'c') {
      std::string s;
      py::append_cp(s, static_cast<char32_t>(x));
      return align_text(std::move(s), f, '<');
    }
    uint64_t mag = x < 0 ? 0 - static_cast<uint64_t>(x) : static_cast<uint64_t>(x);
    std::string digits;
    if (t == 'b') {
      if (mag == 0) digits = "0";
      while (mag) {
        digits.insert(digits.begin(), static_cast<char>('0' + (mag & 1)));
        mag >>= 1;
      }
    } else {
      char buf[40];
      const char* fmt = t == 'x' ? "%llx" : t == 'X' ? "%llX" : t == 'o' ? "%llo" : "%llu";
      std::snprintf(buf, sizeof(buf), fmt, static_cast<unsigned long long>(mag));
      digits = buf;
    }
    if (f.grouping) digits = group_digits(digits, f.grouping);
    std::string sign = x < 0 ? "-" : (f.sign == '+' ? "+" : (f.sign == ' ' ? " " : ""));
    if (f.alt && t && t != 'd' && t != 'n') {
      sign += t == 'b' ? "0b" : t == 'o' ? "0o" : t == 'x' ? "0x" : "0X";
    }
    return align_text(sign + digits, f, '>', sign.size());
  }
  if (t != 0 && std::string_view("eEfFgGn%").find(t) == std::string_view::npos) {
    return value_error(std::string("Unknown format code '") + t + "' for object of type '" +
                       type_name(v) + "'");
  }
  double d = v.as_float();
  std::string body;
  if (t == 0 && f.precision < 0) {
    body = format_float(d);
    if (d >= 0 && !std::signbit(d)) body = (f.sign == '+' ? "+" : f.sign == ' ' ? " " : "") + body;
  } else {
    char conv = t == 0 ? 'g' : (t == 'n' ? 'g' : (t == '%' ? 'f' : t));
    double x = t == '%' ? d * 100 : d;
    std::string flags;
    if (f.sign == '+') flags += "+";
    if (f.sign == ' ') flags += " ";
    if (f.alt) flags += "#";
    int64_t precision = f.precision < 0 ? 6 : f.precision;
    if (t == 0 && precision == 0) precision = 1;
    body = format_double(x, conv, flags, -1, precision);
    if (t == 0 && std::isfinite(d) && body.find_first_of(".e") == std::string::npos) {
      body += ".0";
    }
    if (t == '%') body += "%";
  }
  if (f.grouping && std::isfinite(d)) {
    size_t start = (body[0] == '-' || body[0] == '+' || body[0] == ' ') ? 1 : 0;
    size_t end = body.find_first_of(".e%", start);
    if (end == std::string::npos) end = body.size();
    body = body.substr(0, start) + group_digits(body.substr(start, end - start), f.grouping) +
           body.substr(end);
  }
  size_t sign_len = (!body.empty() && (body[0] == '-' || body[0] == '+' || body[0] == ' ')) ? 1 : 0;
  return align_text(std::move(body), f, '>', sign_len);
}

}  // namespace

Result<std::string> str_format(Renderer& r, std::string_view fmt, CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  bool used_auto = false, used_manual = false;
  size_t i = 0;
  while (i < fmt.size()) {
    char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out.push_back('}');
        i += 2;
        continue;
      }
      return value_error("Single '}' encountered in format string");
    }
    if (c != '{') {
      out.push_back(c);
      ++i;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out.push_back('{');
      i += 2;
      continue;
    }
    size_t close = fmt.find('}', i + 1);
    if (close == std::string_view::npos) return value_error("expected '}' before end of string");
    std::string_view field = fmt.substr(i + 1, close - i - 1);
    if (field.find('{') != std::string_view::npos) {
      return value_error("nested replacement fields are not supported");
    }
    i = close + 1;
    std::string_view spec, conversion;
    size_t colon = field.find(':');
    if (colon != std::string_view::npos) {
      spec = field.substr(colon + 1);
      field = field.substr(0, colon);
    }
    size_t bang = field.find('!');
    if (bang != std::string_view::npos) {
      conversion = field.substr(bang + 1);
      field = field.substr(0, bang);
    }
    size_t name_end = field.find_first_of(".[");
    std::string_view head = field.substr(0, name_end);
    Value v;
    if (head.empty()) {
      if (used_manual) {
        return value_error(
            "cannot switch from manual field specification to automatic field "
            "numbering");
      }
      used_auto = true;
      if (auto_index >= args.positional.size()) {
        return invalid_argument("IndexError: tuple index out of range");
      }
      v = args.positional[auto_index++];
    } else if (std::all_of(head.begin(), head.end(),
                           [](char ch) { return ch >= '0' && ch <= '9'; })) {
      if (used_auto) {
        return value_error(
            "cannot switch from automatic field numbering to manual field "
            "specification");
      }
      used_manual = true;
      size_t idx = std::stoul(std::string(head.substr(0, 9)));
      if (idx >= args.positional.size()) {
        return invalid_argument("IndexError: tuple index out of range");
      }
      v = args.positional[idx];
    } else {
      bool found = false;
      for (const auto& [k, x] : args.keyword) {
        if (k == head) {
          v = x;
          found = true;
          break;
        }
      }
      if (!found) return invalid_argument("KeyError: '" + std::string(head) + "'");
    }
    // .attr and [key] accessors.
    size_t p = name_end == std::string_view::npos ? field.size() : name_end;
    while (p < field.size()) {
      if (field[p] == '.') {
        size_t e = field.find_first_of(".[", p + 1);
        if (e == std::string_view::npos) e = field.size();
        SGL_ASSIGN_OR_RETURN(v, r.getattr(v, field.substr(p + 1, e - p - 1)));
        p = e;
      } else {
        size_t e = field.find(']', p);
        if (e == std::string_view::npos) return value_error("Missing ']' in format string");
        std::string key(field.substr(p + 1, e - p - 1));
        Value k =
            std::all_of(key.begin(), key.end(), [](char ch) { return ch >= '0' && ch <= '9'; }) &&
                    !key.empty()
                ? Value::integer(std::stoll(key.substr(0, 18)))
                : Value::string(key);
        SGL_ASSIGN_OR_RETURN(v, r.getitem(v, k));
        p = e + 1;
      }
      if (v.is_undefined()) return r.undefined_error(v);
    }
    if (conversion == "r" || conversion == "a") {
      v = Value::string(repr(v));
    } else if (conversion == "s") {
      v = Value::string(to_str(v));
    } else if (!conversion.empty()) {
      return value_error("Unknown conversion specifier " + std::string(conversion));
    }
    SGL_ASSIGN_OR_RETURN(std::string piece, format_value(v, spec));
    out += piece;
    SGL_RETURN_IF_ERROR(r.charge(piece.size()));
  }
  return out;
}

}  // namespace sgl::tokenizer::jinja
