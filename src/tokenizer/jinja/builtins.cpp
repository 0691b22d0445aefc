// jinja2's builtin filters and tests, and the template globals, with jinja2 3.1's semantics.
// Filters that return generators in jinja2 (map, select, reject, unique, batch, slice, items)
// return one-shot iterator values so that printing and len() behave the same.
#include "tokenizer/jinja/builtins.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_set>

#include "tokenizer/jinja/builtin_util.h"
#include "tokenizer/jinja/interpreter.h"
#include "tokenizer/jinja/json.h"
#include "tokenizer/jinja/pystr.h"
#include "tokenizer/jinja/template.h"

namespace sgl::tokenizer::jinja {
namespace {

Value generator(ValueList items) { return Value::iterator(std::move(items), IterTag::kGenerator); }

// make_attrgetter: "a.b.0" -> ["a", "b", 0].
ValueList attribute_path(const Value& attribute) {
  ValueList parts;
  if (attribute.is_undefined() || attribute.is_none()) return parts;
  if (!attribute.is_string()) {
    parts.push_back(attribute);
    return parts;
  }
  for (std::string& part : py::split(attribute.as_string(), std::string("."), -1)) {
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(),
                                               [](char c) { return c >= '0' && c <= '9'; });
    if (digits && part.size() < 18) {
      parts.push_back(Value::integer(std::stoll(part)));
    } else {
      parts.push_back(Value::string(std::move(part)));
    }
  }
  return parts;
}

Result<Value> follow_path(Renderer& r, Value item, const ValueList& path,
                          const Value* default_value = nullptr) {
  for (const Value& part : path) {
    SGL_ASSIGN_OR_RETURN(item, r.getitem(item, part));
    if (default_value && item.is_undefined()) item = *default_value;
  }
  return item;
}

Value ignore_case(const Value& v) {
  if (v.is_string()) return Value::string(py::lower(v.as_string()));
  return v;
}

// Sort keys for sort / min / max / unique: the (possibly multi-) attribute value, lowercased
// unless case-sensitive.
Result<Value> sort_key(Renderer& r, const Value& item, const std::vector<ValueList>& paths,
                       bool case_sensitive) {
  if (paths.size() == 1) {
    SGL_ASSIGN_OR_RETURN(Value k, follow_path(r, item, paths[0]));
    return case_sensitive ? k : ignore_case(k);
  }
  ValueList keys;
  for (const ValueList& p : paths) {
    SGL_ASSIGN_OR_RETURN(Value k, follow_path(r, item, p));
    keys.push_back(case_sensitive ? k : ignore_case(k));
  }
  return Value::list(std::move(keys));
}

std::vector<ValueList> multi_attribute_paths(const Value& attribute) {
  std::vector<ValueList> paths;
  if (attribute.is_string()) {
    for (const std::string& a : py::split(attribute.as_string(), std::string(","), -1)) {
      paths.push_back(attribute_path(Value::string(a)));
    }
  } else {
    paths.push_back(attribute_path(attribute));
  }
  return paths;
}

Status lt_error(const Value& a, const Value& b) {
  return type_error(std::string("'<' not supported between instances of '") + type_name(a) +
                    "' and '" + type_name(b) + "'");
}

// Stable sort of `items` by `keys` (parallel vectors).
Status sort_by_keys(ValueList& items, ValueList& keys, bool reverse) {
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  Status st;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    if (!st.is_ok()) return false;
    const Value& a = reverse ? keys[y] : keys[x];
    const Value& b = reverse ? keys[x] : keys[y];
    Result<int> c = compare(a, b);
    if (!c.is_ok()) {
      st = lt_error(a, b);
      return false;
    }
    return *c < 0;  // 2 (unordered NaN) sorts as "not less"
  });
  SGL_RETURN_IF_ERROR(st);
  ValueList sorted;
  sorted.reserve(items.size());
  for (size_t i : order) sorted.push_back(items[i]);
  items = std::move(sorted);
  return Status::ok();
}

Status charge_items(Renderer& r, size_t n) { return r.charge(n * sizeof(Value) * 2); }

// --- filters --------------------------------------------------------------------------------

Result<Value> f_abs(Renderer& r, const Value& in, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("abs", a, {}).status());
  if (in.is_integral()) {
    if (in.as_int() == INT64_MIN) return invalid_argument("OverflowError: integer overflow");
    return Value::integer(std::llabs(in.as_int()));
  }
  if (in.is_float()) return Value::number(std::fabs(in.as_float()));
  if (in.is_undefined()) return r.undefined_error(in);
  return type_error(std::string("bad operand type for abs(): '") + type_name(in) + "'");
}

Result<Value> f_attr(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("attr", a, {"name"}));
  if (!b.has(0)) return type_error("attr() missing required argument 'name'");
  if (!b[0].is_string()) return Value::undefined("attribute name is not a string");
  return r.attribute_only(in, b[0].as_string());
}

Result<Value> f_batch(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("batch", a, {"linecount", "fill_with"}));
  if (!b.has(0)) return type_error("batch() missing required argument 'linecount'");
  SGL_ASSIGN_OR_RETURN(int64_t n, int_arg(b[0], "batch"));
  SGL_ASSIGN_OR_RETURN(Sequence seq, r.iterate(in));
  Value fill = b.has(1) ? b[1] : Value::none();
  ValueList out, tmp;
  for (const Value& item : seq.get()) {
    if (static_cast<int64_t>(tmp.size()) == n) {
      out.push_back(Value::list(std::move(tmp)));
      tmp.clear();
    }
    tmp.push_back(item);
  }
  if (!tmp.empty()) {
    if (!fill.is_none()) {
      while (static_cast<int64_t>(tmp.size()) < n) tmp.push_back(fill);
    }
    out.push_back(Value::list(std::move(tmp)));
  }
  SGL_RETURN_IF_ERROR(charge_items(r, seq.get().size() + out.size()));
  return generator(std::move(out));
}

Result<Value> f_capitalize(Renderer& r, const Value& in, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("capitalize", a, {}).status());
  return r.make_string(py::capitalize(to_str(in)));
}

Result<Value> f_center(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("center", a, {"width"}));
  int64_t width = 80;
  if (b.has(0)) {
    SGL_ASSIGN_OR_RETURN(width, int_arg(b[0], "center"));
  }
  SGL_RETURN_IF_ERROR(r.charge(static_cast<size_t>(std::max<int64_t>(width, 0))));
  return r.make_string(py::center(to_str(in), width, U' '));
}

Result<Value> f_length(Renderer& r, const Value& in, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("length", a, {}).status());
  if (in.is_string()) SGL_RETURN_IF_ERROR(r.charge(in.as_string().size() / 16));
  SGL_ASSIGN_OR_RETURN(int64_t n, length(in));
  return Value::integer(n);
}

Result<Value> f_default(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("default", a, {"default_value", "boolean"}));
  Value dflt = b.has(0) ? b[0] : Value::string("");
  bool boolean = b.has(1) && truthy(b[1]);
  if (in.is_undefined() || (boolean && !truthy(in))) return dflt;
  return in;
}

Result<Value> f_dictsort(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("dictsort", a, {"case_sensitive", "by", "reverse"}));
  if (!in.is_dict()) {
    if (in.is_undefined()) return r.undefined_error(in);
    return invalid_argument(std::string("AttributeError: '") + type_name(in) +
                            "' object has no attribute 'items'");
  }
  bool case_sensitive = b.has(0) && truthy(b[0]);
  int pos = 0;
  if (b.has(1)) {
    if (b[1].is_string() && b[1].as_string() == "value") {
      pos = 1;
    } else if (!(b[1].is_string() && b[1].as_string() == "key")) {
      return invalid_argument(
          "FilterArgumentError: You can only sort by either \"key\" or \"value\"");
    }
  }
  bool reverse = b.has(2) && truthy(b[2]);
  ValueList items, keys;
  for (const auto& [k, v] : in.as_dict().entries) {
    items.push_back(Value::tuple({k, v}));
    const Value& key = pos == 0 ? k : v;
    keys.push_back(case_sensitive ? key : ignore_case(key));
  }
  SGL_RETURN_IF_ERROR(charge_items(r, items.size() * 3));
  SGL_RETURN_IF_ERROR(sort_by_keys(items, keys, reverse));
  return Value::list(std::move(items));
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

Result<Value> f_escape(Renderer& r, const Value& in, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("escape", a, {}).status());
  return r.make_string(html_escape(to_str(in)));
}

Result<Value> f_first(Renderer& r, const Value& in, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("first", a, {}).status());
  SGL_ASSIGN_OR_RETURN(Sequence seq, r.iterate(in));
  if (seq.get().empty()) return Value::undefined("No first item, sequence was empty.");
  return seq.get().front();
}

Result<Value> f_last(Renderer& r, const Value& in, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("last", a, {}).status());
  if (in.is_iterator() &&
      (in.iter_tag() == IterTag::kGenerator || in.iter_tag() == IterTag::kReverse)) {
    return type_error(std::string("'") + type_name(in) + "' object is not reversible");
  }
  if (!(in.is_undefined() || in.is_string() || in.has_items() || in.is_dict())) {
    return type_error(std::string("'") + type_name(in) + "' object is not reversible");
  }
  SGL_ASSIGN_OR_RETURN(Sequence seq, r.iterate(in));
  if (seq.get().empty()) return Value::undefined("No last item, sequence was empty.");
  return seq.get().back();
}

Result<Value> f_float(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("float", a, {"default"}));
  Value dflt = b.has(0) ? b[0] : Value::number(0.0);
  if (in.is_number()) return Value::number(in.as_float());
  if (in.is_undefined()) return r.undefined_error(in);
  if (in.is_string()) {
    if (auto d = parse_python_float(in.as_string())) return Value::number(*d);
  }
  return dflt;
}

Result<Value> f_format(Renderer& r, const Value& in, CallArgs& a) {
  if (!a.positional.empty() && !a.keyword.empty()) {
    return invalid_argument(
        "FilterArgumentError: can't handle positional and keyword arguments at the same time");
  }
  Value args;
  if (!a.keyword.empty()) {
    Dict d;
    for (auto& [k, v] : a.keyword) d.set(k, v);
    args = Value::dict(std::move(d));
  } else {
    args = Value::tuple(a.positional);
  }
  SGL_ASSIGN_OR_RETURN(std::string s, percent_format(r, to_str(in), args));
  return r.make_string(std::move(s));
}

Result<Value> f_indent(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("indent", a, {"width", "first", "blank"}));
  std::string indention = "    ";
  if (b.has(0)) {
    if (b[0].is_string()) {
      indention = b[0].as_string();
    } else {
      SGL_ASSIGN_OR_RETURN(int64_t w, int_arg(b[0], "indent"));
      if (w > 100000) return value_error("indent width too large");
      indention = std::string(static_cast<size_t>(std::max<int64_t>(w, 0)), ' ');
    }
  }
  bool first = b.has(1) && truthy(b[1]);
  bool blank = b.has(2) && truthy(b[2]);
  std::string s = to_str(in) + "\n";
  std::vector<std::string> lines = py::splitlines(s, false);
  SGL_RETURN_IF_ERROR(r.charge(s.size() + lines.size() * indention.size()));
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) rv += "\n" + indention;
      rv += lines[i];
    }
  } else {
    rv = lines.empty() ? "" : lines[0];
    if (lines.size() > 1) {
      rv += "\n";
      for (size_t i = 1; i < lines.size(); ++i) {
        if (i > 1) rv += "\n";
        if (!lines[i].empty()) rv += indention;
        rv += lines[i];
      }
    }
  }
  if (first) rv = indention + rv;
  return Value::string(std::move(rv));
}

Result<Value> f_int(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("int", a, {"default", "base"}));
  Value dflt = b.has(0) ? b[0] : Value::integer(0);
  int64_t base = 10;
  if (b.has(1)) {
    SGL_ASSIGN_OR_RETURN(base, int_arg(b[1], "int"));
  }
  auto from_double = [&](double d) -> Result<Value> {
    if (std::isnan(d)) return dflt;
    if (!std::isfinite(d)) {
      return invalid_argument("OverflowError: cannot convert float infinity to integer");
    }
    if (std::fabs(d) >= 9.2e18) return invalid_argument("OverflowError: integer too large");
    return Value::integer(static_cast<int64_t>(d));
  };
  if (in.is_integral()) return Value::integer(in.as_int());
  if (in.is_float()) return from_double(in.as_float());
  if (in.is_undefined()) return r.undefined_error(in);
  if (in.is_string()) {
    if (base == 2 || base == 8 || base == 10 || base == 16) {
      if (auto v = parse_python_int(in.as_string(), static_cast<int>(base))) {
        return Value::integer(*v);
      }
    }
    if (auto d = parse_python_float(in.as_string())) return from_double(*d);
  }
  return dflt;
}

Result<Value> f_items(Renderer& r, const Value& in, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("items", a, {}).status());
  if (in.is_undefined()) return generator({});
  if (!in.is_dict()) return type_error("Can only get item pairs from a mapping.");
  ValueList items;
  for (const auto& [k, v] : in.as_dict().entries) items.push_back(Value::tuple({k, v}));
  SGL_RETURN_IF_ERROR(charge_items(r, items.size() * 3));
  return generator(std::move(items));
}

Result<Value> f_join(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("join", a, {"d", "attribute"}));
  std::string sep = b.has(0) ? to_str(b[0]) : "";
  ValueList path = b.has(1) ? attribute_path(b[1]) : ValueList();
  SGL_ASSIGN_OR_RETURN(Sequence seq, r.iterate(in));
  std::string out;
  bool first = true;
  for (const Value& item : seq.get()) {
    SGL_ASSIGN_OR_RETURN(Value v, follow_path(r, item, path));
    if (!first) out += sep;
    first = false;
    append_str(out, v);
    SGL_RETURN_IF_ERROR(r.charge(sep.size() + 16));
  }
  return r.make_string(std::move(out));
}

Result<Value> f_list(Renderer& r, const Value& in, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("list", a, {}).status());
  SGL_ASSIGN_OR_RETURN(Sequence seq, r.iterate(in));
  SGL_RETURN_IF_ERROR(charge_items(r, seq.get().size()));
  return Value::list(seq.get());
}

Result<Value> f_lower(Renderer& r, const Value& in, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("lower", a, {}).status());
  return r.make_string(py::lower(to_str(in)));
}

Result<Value> f_upper(Renderer& r, const Value& in, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("upper", a, {}).status());
  return r.make_string(py::upper(to_str(in)));
}

Result<Value> f_map(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(Sequence seq, r.iterate(in));
  ValueList out;
  Value attribute;
  if (a.positional.empty() && a.take_keyword("attribute", &attribute)) {
    Value dflt;
    bool has_default = a.take_keyword("default", &dflt) && !dflt.is_none();
    if (!a.keyword.empty()) {
      return invalid_argument("FilterArgumentError: Unexpected keyword argument '" +
                              a.keyword.front().first + "'");
    }
    ValueList path = attribute_path(attribute);
    for (const Value& item : seq.get()) {
      SGL_ASSIGN_OR_RETURN(Value v, follow_path(r, item, path, has_default ? &dflt : nullptr));
      out.push_back(std::move(v));
    }
  } else {
    if (a.positional.empty()) {
      return invalid_argument("FilterArgumentError: map requires a filter argument");
    }
    std::string name = to_str(a.positional[0]);
    CallArgs rest;
    rest.positional.assign(a.positional.begin() + 1, a.positional.end());
    rest.keyword = a.keyword;
    for (const Value& item : seq.get()) {
      CallArgs call = rest;
      SGL_ASSIGN_OR_RETURN(Value v, r.apply_filter(name, item, call));
      out.push_back(std::move(v));
    }
  }
  SGL_RETURN_IF_ERROR(charge_items(r, out.size()));
  return generator(std::move(out));
}

template <bool kMax>
Result<Value> f_minmax(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b,
                       bind_args(kMax ? "max" : "min", a, {"case_sensitive", "attribute"}));
  bool case_sensitive = b.has(0) && truthy(b[0]);
  ValueList path = b.has(1) ? attribute_path(b[1]) : ValueList();
  SGL_ASSIGN_OR_RETURN(Sequence seq, r.iterate(in));
  const ValueList& items = seq.get();
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  Value best_key;
  for (size_t i = 0; i < items.size(); ++i) {
    SGL_ASSIGN_OR_RETURN(Value k, follow_path(r, items[i], path));
    if (!case_sensitive) k = ignore_case(k);
    if (i == 0) {
      best_key = std::move(k);
      continue;
    }
    Result<int> c = kMax ? compare(best_key, k) : compare(k, best_key);
    if (!c.is_ok()) return kMax ? lt_error(best_key, k) : lt_error(k, best_key);
    if (*c < 0) {
      best = i;
      best_key = std::move(k);
    }
  }
  return items[best];
}

// select / reject / selectattr / rejectattr.
template <bool kSelect, bool kAttr>
Result<Value> f_select(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(Sequence seq, r.iterate(in));
  size_t off = 0;
  ValueList path;
  if (kAttr) {
    if (a.positional.empty()) {
      return invalid_argument("FilterArgumentError: Missing parameter for attribute name");
    }
    path = attribute_path(a.positional[0]);
    off = 1;
  }
  bool has_test = a.positional.size() > off;
  std::string test_name = has_test ? to_str(a.positional[off]) : "";
  CallArgs rest;
  if (has_test) rest.positional.assign(a.positional.begin() + off + 1, a.positional.end());
  rest.keyword = a.keyword;
  ValueList out;
  for (const Value& item : seq.get()) {
    SGL_ASSIGN_OR_RETURN(Value v, follow_path(r, item, path));
    bool ok;
    if (has_test) {
      CallArgs call = rest;
      SGL_ASSIGN_OR_RETURN(ok, r.apply_test(test_name, v, call));
    } else {
      ok = truthy(v);
    }
    if (ok == kSelect) out.push_back(item);
  }
  SGL_RETURN_IF_ERROR(charge_items(r, out.size()));
  return generator(std::move(out));
}

Result<Value> f_replace(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("replace", a, {"old", "new", "count"}));
  if (!b.has(0) || !b.has(1)) return type_error("replace() missing required arguments");
  int64_t count = -1;
  if (b.has(2) && !b[2].is_none()) {
    SGL_ASSIGN_OR_RETURN(count, int_arg(b[2], "replace"));
  }
  std::string s = to_str(in), old_s = to_str(b[0]), new_s = to_str(b[1]);
  SGL_RETURN_IF_ERROR(r.charge(s.size() + (py::length(s) + 1) * new_s.size()));
  return Value::string(py::replace(s, old_s, new_s, count));
}

Result<Value> f_reverse(Renderer& r, const Value& in, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("reverse", a, {}).status());
  if (in.is_string()) {
    std::u32string cps = py::decode(in.as_string());
    std::reverse(cps.begin(), cps.end());
    return r.make_string(py::encode(cps));
  }
  SGL_ASSIGN_OR_RETURN(Sequence seq, r.iterate(in));
  ValueList items(seq.get().rbegin(), seq.get().rend());
  SGL_RETURN_IF_ERROR(charge_items(r, items.size()));
  if (in.is_iterator() && in.iter_tag() == IterTag::kGenerator)
    return Value::list(std::move(items));
  return Value::iterator(std::move(items), IterTag::kReverse);
}

// Python's round(x, n) for floats (correctly rounded, ties to even).
double python_round(double x, int64_t n) {
  if (!std::isfinite(x)) return x;
  if (n > 300) return x;
  if (n >= 0) {
    char buf[512];
    std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(n), x);
    double y = std::strtod(buf, nullptr);
    return y;
  }
  if (n < -308) return std::copysign(0.0, x);
  double pow10 = std::pow(10.0, static_cast<double>(-n));
  double y = x / pow10;
  double z = std::nearbyint(y);  // ties to even in the default rounding mode
  return z * pow10;
}

Result<Value> f_round(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("round", a, {"precision", "method"}));
  int64_t precision = 0;
  if (b.has(0)) {
    SGL_ASSIGN_OR_RETURN(precision, int_arg(b[0], "round"));
  }
  std::string method = b.has(1) ? to_str(b[1]) : "common";
  if (method != "common" && method != "ceil" && method != "floor") {
    return invalid_argument("FilterArgumentError: method must be common, ceil or floor");
  }
  if (in.is_undefined()) return r.undefined_error(in);
  if (!in.is_number()) {
    return type_error(std::string("type ") + type_name(in) + " doesn't define __round__ method");
  }
  if (method == "common") {
    if (in.is_integral()) {
      if (precision >= 0) return Value::integer(in.as_int());
      double p = std::pow(10.0, static_cast<double>(-precision));
      double y = std::nearbyint(static_cast<double>(in.as_int()) / p) * p;
      return Value::integer(static_cast<int64_t>(y));
    }
    return Value::number(python_round(in.as_float(), precision));
  }
  double p = std::pow(10.0, static_cast<double>(precision));
  double v = in.as_float() * p;
  double rounded = method == "ceil" ? std::ceil(v) : std::floor(v);
  return Value::number(rounded / p);
}

Result<Value> f_safe(Renderer& r, const Value& in, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("safe", a, {}).status());
  if (in.is_string()) return in;
  return r.make_string(to_str(in));
}

Result<Value> f_slice(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("slice", a, {"slices", "fill_with"}));
  if (!b.has(0)) return type_error("slice() missing required argument 'slices'");
  SGL_ASSIGN_OR_RETURN(int64_t slices, int_arg(b[0], "slice"));
  if (slices <= 0) return invalid_argument("ZeroDivisionError: integer division or modulo by zero");
  if (slices > 100000) return value_error("too many slices");
  SGL_ASSIGN_OR_RETURN(Sequence seq, r.iterate(in));
  const ValueList& items = seq.get();
  int64_t length = static_cast<int64_t>(items.size());
  int64_t per = length / slices, extra = length % slices, offset = 0;
  Value fill = b.has(1) ? b[1] : Value::none();
  ValueList out;
  for (int64_t k = 0; k < slices; ++k) {
    int64_t start = offset + k * per;
    if (k < extra) ++offset;
    int64_t end = offset + (k + 1) * per;
    ValueList tmp(items.begin() + start, items.begin() + end);
    if (!fill.is_none() && k >= extra) tmp.push_back(fill);
    out.push_back(Value::list(std::move(tmp)));
  }
  SGL_RETURN_IF_ERROR(charge_items(r, items.size() + out.size()));
  return generator(std::move(out));
}

Result<Value> f_sort(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b,
                       bind_args("sort", a, {"reverse", "case_sensitive", "attribute"}));
  bool reverse = b.has(0) && truthy(b[0]);
  bool case_sensitive = b.has(1) && truthy(b[1]);
  std::vector<ValueList> paths = multi_attribute_paths(b.has(2) ? b[2] : Value::none());
  SGL_ASSIGN_OR_RETURN(Sequence seq, r.iterate(in));
  ValueList items = seq.get(), keys;
  size_t n = items.size();
  SGL_RETURN_IF_ERROR(charge_items(r, n * (2 + static_cast<size_t>(std::log2(n + 1)))));
  for (const Value& item : items) {
    SGL_ASSIGN_OR_RETURN(Value k, sort_key(r, item, paths, case_sensitive));
    keys.push_back(std::move(k));
  }
  SGL_RETURN_IF_ERROR(sort_by_keys(items, keys, reverse));
  return Value::list(std::move(items));
}

Result<Value> f_string(Renderer& r, const Value& in, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("string", a, {}).status());
  if (in.is_string()) return in;
  return r.make_string(to_str(in));
}

std::string html_unescape(std::string_view s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != '&') {
      out.push_back(s[i++]);
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      out.push_back(s[i++]);
      continue;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    static constexpr std::pair<std::string_view, char32_t> kNamed[] = {
        {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}, {"nbsp", 0xA0}};
    char32_t cp = 0;
    for (const auto& [name, c] : kNamed) {
      if (ent == name) cp = c;
    }
    if (!cp && ent.size() > 1 && ent[0] == '#') {
      bool hex = ent[1] == 'x' || ent[1] == 'X';
      std::string digits(ent.substr(hex ? 2 : 1));
      char* end = nullptr;
      unsigned long v = digits.empty() ? 0 : std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
      if (end && *end == '\0' && v > 0 && v <= 0x10FFFF && !(v >= 0xD800 && v <= 0xDFFF)) {
        cp = static_cast<char32_t>(v);
      }
    }
    if (!cp) {
      out.push_back(s[i++]);
      continue;
    }
    py::append_cp(out, cp);
    i = semi + 1;
  }
  return out;
}

Result<Value> f_striptags(Renderer& r, const Value& in, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("striptags", a, {}).status());
  std::string s = to_str(in), no_comments, no_tags;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 4, "<!--") == 0) {
      size_t end = s.find("-->", i + 4);
      if (end != std::string::npos) {
        i = end + 3;
        continue;
      }
    }
    no_comments.push_back(s[i++]);
  }
  for (size_t i = 0; i < no_comments.size();) {
    if (no_comments[i] == '<') {
      size_t end = no_comments.find('>', i + 1);
      if (end != std::string::npos) {
        i = end + 1;
        continue;
      }
    }
    no_tags.push_back(no_comments[i++]);
  }
  std::vector<std::string> words = py::split(no_tags, std::nullopt, -1);
  std::string joined;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i) joined.push_back(' ');
    joined += words[i];
  }
  return r.make_string(html_unescape(joined));
}

Result<Value> f_sum(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("sum", a, {"attribute", "start"}));
  ValueList path = b.has(0) ? attribute_path(b[0]) : ValueList();
  Value total = b.has(1) ? b[1] : Value::integer(0);
  SGL_ASSIGN_OR_RETURN(Sequence seq, r.iterate(in));
  for (const Value& item : seq.get()) {
    SGL_ASSIGN_OR_RETURN(Value v, follow_path(r, item, path));
    SGL_ASSIGN_OR_RETURN(total, r.binary_op(BinOp::kAdd, total, v));
  }
  return total;
}

Result<Value> f_title(Renderer& r, const Value& in, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("title", a, {}).status());
  // jinja2: split on runs of [-\s({[<] and capitalize each piece.
  std::u32string cps = py::decode(to_str(in));
  auto is_sep = [](char32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py::is_space(c);
  };
  std::string out;
  size_t i = 0;
  while (i < cps.size()) {
    size_t j = i;
    bool sep = is_sep(cps[i]);
    while (j < cps.size() && is_sep(cps[j]) == sep) ++j;
    if (sep) {
      out += py::encode(std::u32string_view(cps).substr(i, j - i));
    } else {
      std::u32string_view word = std::u32string_view(cps).substr(i, j - i);
      out += py::upper(py::encode(word.substr(0, 1)));
      out += py::lower(py::encode(word.substr(1)));
    }
    i = j;
  }
  return r.make_string(std::move(out));
}

Result<Value> f_tojson(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(
      BoundArgs b, bind_args("tojson", a, {"ensure_ascii", "indent", "separators", "sort_keys"}));
  JsonDumpOptions o;
  o.ensure_ascii = b.has(0) && truthy(b[0]);
  if (b.has(1) && !b[1].is_none()) {
    if (b[1].is_string()) {
      o.indent = b[1].as_string();
    } else if (b[1].is_integral()) {
      int64_t w = b[1].as_int();
      if (w > 1000) return value_error("indent too large");
      o.indent = std::string(static_cast<size_t>(std::max<int64_t>(w, 0)), ' ');
    } else {
      return type_error(std::string("can't multiply sequence by non-int of type '") +
                        type_name(b[1]) + "'");
    }
  }
  if (b.has(2) && !b[2].is_none()) {
    const Value& sep = b[2];
    if (!(sep.is_list() || sep.is_tuple()) || sep.items().size() != 2 ||
        !sep.items()[0].is_string() || !sep.items()[1].is_string()) {
      return value_error("separators must be a pair of strings");
    }
    o.item_separator = sep.items()[0].as_string();
    o.key_separator = sep.items()[1].as_string();
  }
  o.sort_keys = b.has(3) && truthy(b[3]);
  o.max_bytes = r.limits().max_work_bytes;
  SGL_ASSIGN_OR_RETURN(std::string s, to_json(in, o));
  return r.make_string(std::move(s));
}

Result<Value> f_trim(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("trim", a, {"chars"}));
  SGL_ASSIGN_OR_RETURN(std::optional<std::string> chars, opt_str_arg(b, 0, "strip arg"));
  return r.make_string(py::strip(to_str(in), chars, true, true));
}

Result<Value> f_truncate(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b,
                       bind_args("truncate", a, {"length", "killwords", "end", "leeway"}));
  int64_t length = 255, leeway = 5;
  if (b.has(0)) {
    SGL_ASSIGN_OR_RETURN(length, int_arg(b[0], "truncate"));
  }
  bool killwords = b.has(1) && truthy(b[1]);
  std::string end = b.has(2) ? to_str(b[2]) : "...";
  if (b.has(3) && !b[3].is_none()) {
    SGL_ASSIGN_OR_RETURN(leeway, int_arg(b[3], "truncate"));
  }
  int64_t end_len = static_cast<int64_t>(py::length(end));
  if (length < end_len) {
    return invalid_argument("AssertionError: expected length >= " + std::to_string(end_len) +
                            ", got " + std::to_string(length));
  }
  if (leeway < 0) {
    return invalid_argument("AssertionError: expected leeway >= 0, got " + std::to_string(leeway));
  }
  std::string s = to_str(in);
  if (static_cast<int64_t>(py::length(s)) <= length + leeway) return r.make_string(s);
  std::string head = s.substr(0, py::byte_offset(s, length - end_len));
  if (killwords) return r.make_string(head + end);
  std::vector<std::string> parts = py::rsplit(head, std::string(" "), 1);
  return r.make_string(parts[0] + end);
}

Result<Value> f_unique(Renderer& r, const Value& in, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("unique", a, {"case_sensitive", "attribute"}));
  bool case_sensitive = b.has(0) && truthy(b[0]);
  ValueList path = b.has(1) ? attribute_path(b[1]) : ValueList();
  SGL_ASSIGN_OR_RETURN(Sequence seq, r.iterate(in));
  std::unordered_set<std::string> seen_strings;
  std::unordered_set<int64_t> seen_ints;
  ValueList seen_other, out;
  for (const Value& item : seq.get()) {
    SGL_ASSIGN_OR_RETURN(Value k, follow_path(r, item, path));
    if (!case_sensitive) k = ignore_case(k);
    if (!is_hashable(k)) return type_error(std::string("unhashable type: '") + type_name(k) + "'");
    bool fresh;
    if (k.is_string()) {
      fresh = seen_strings.insert(k.as_string()).second;
    } else if (k.is_integral() || (k.is_float() && k.as_float() == std::floor(k.as_float()) &&
                                   std::fabs(k.as_float()) < 9e18)) {
      fresh = seen_ints.insert(k.is_integral() ? k.as_int() : static_cast<int64_t>(k.as_float()))
                  .second;
    } else {
      SGL_RETURN_IF_ERROR(r.charge(seen_other.size() * sizeof(Value)));
      fresh = std::none_of(seen_other.begin(), seen_other.end(),
                           [&](const Value& x) { return equals(x, k); });
      if (fresh) seen_other.push_back(k);
    }
    if (fresh) out.push_back(item);
  }
  SGL_RETURN_IF_ERROR(charge_items(r, out.size()));
  return generator(std::move(out));
}

Result<Value> f_wordcount(Renderer& r, const Value& in, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("wordcount", a, {}).status());
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : py::decode(to_str(in))) {
    bool w = py::is_word(c);
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value::integer(n);
}

struct FilterEntry {
  std::string_view name;
  FilterFn fn;
};

constexpr FilterEntry kFilters[] = {
    {"abs", f_abs},
    {"attr", f_attr},
    {"batch", f_batch},
    {"capitalize", f_capitalize},
    {"center", f_center},
    {"count", f_length},
    {"d", f_default},
    {"default", f_default},
    {"dictsort", f_dictsort},
    {"e", f_escape},
    {"escape", f_escape},
    {"first", f_first},
    {"float", f_float},
    {"forceescape", f_escape},
    {"format", f_format},
    {"indent", f_indent},
    {"int", f_int},
    {"items", f_items},
    {"join", f_join},
    {"last", f_last},
    {"length", f_length},
    {"list", f_list},
    {"lower", f_lower},
    {"map", f_map},
    {"max", f_minmax<true>},
    {"min", f_minmax<false>},
    {"reject", f_select<false, false>},
    {"rejectattr", f_select<false, true>},
    {"replace", f_replace},
    {"reverse", f_reverse},
    {"round", f_round},
    {"safe", f_safe},
    {"select", f_select<true, false>},
    {"selectattr", f_select<true, true>},
    {"slice", f_slice},
    {"sort", f_sort},
    {"string", f_string},
    {"striptags", f_striptags},
    {"sum", f_sum},
    {"title", f_title},
    {"tojson", f_tojson},
    {"trim", f_trim},
    {"truncate", f_truncate},
    {"unique", f_unique},
    {"upper", f_upper},
    {"wordcount", f_wordcount},
};

// --- tests ----------------------------------------------------------------------------------

#define SIMPLE_TEST(fn_name, expr)                                 \
  Result<bool> fn_name(Renderer& r, const Value& v, CallArgs& a) { \
    SGL_RETURN_IF_ERROR(bind_args(#fn_name, a, {}).status());      \
    return (expr);                                                 \
  }

SIMPLE_TEST(t_defined, !v.is_undefined())
SIMPLE_TEST(t_undefined, v.is_undefined())
SIMPLE_TEST(t_none, v.is_none())
SIMPLE_TEST(t_boolean, v.is_bool())
SIMPLE_TEST(t_false, v.is_bool() && !v.as_bool())
SIMPLE_TEST(t_true, v.is_bool() && v.as_bool())
SIMPLE_TEST(t_integer, v.is_int())
SIMPLE_TEST(t_float, v.is_float())
SIMPLE_TEST(t_number, v.is_number())
SIMPLE_TEST(t_string, v.is_string())
SIMPLE_TEST(t_mapping, v.is_dict())
SIMPLE_TEST(t_iterable,
            v.is_undefined() || v.is_string() || v.has_items() || v.is_dict() || v.is_loop())
SIMPLE_TEST(t_sequence,
            v.is_undefined() || v.is_string() || v.is_list() || v.is_tuple() || v.is_dict())
SIMPLE_TEST(t_callable, v.is_callable() || v.is_undefined() || v.is_loop())
SIMPLE_TEST(t_escaped, false)
SIMPLE_TEST(t_lower, py::is_lower_str(to_str(v)))
SIMPLE_TEST(t_upper, py::is_upper_str(to_str(v)))

#undef SIMPLE_TEST

Result<bool> mod_equals(Renderer& r, const Value& v, const Value& divisor, int64_t expected) {
  SGL_ASSIGN_OR_RETURN(Value m, r.binary_op(BinOp::kMod, v, divisor));
  return equals(m, Value::integer(expected));
}

Result<bool> t_odd(Renderer& r, const Value& v, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("odd", a, {}).status());
  return mod_equals(r, v, Value::integer(2), 1);
}

Result<bool> t_even(Renderer& r, const Value& v, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("even", a, {}).status());
  return mod_equals(r, v, Value::integer(2), 0);
}

Result<bool> t_divisibleby(Renderer& r, const Value& v, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("divisibleby", a, {"num"}));
  if (!b.has(0)) return type_error("divisibleby() missing required argument 'num'");
  return mod_equals(r, v, b[0], 0);
}

Result<bool> t_sameas(Renderer& r, const Value& v, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("sameas", a, {"other"}));
  const Value& o = b[0];
  if (v.kind() != o.kind()) return false;
  if (v.is_none() || v.is_undefined()) return v.is_none() || v.same_object(o);
  if (v.is_bool()) return v.as_bool() == o.as_bool();
  if (v.is_int()) return v.as_int() == o.as_int() && v.as_int() >= -5 && v.as_int() <= 256;
  return v.same_object(o);
}

Result<bool> t_in(Renderer& r, const Value& v, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("in", a, {"seq"}));
  return r.contains(b[0], v);
}

template <CmpOp kOp>
Result<bool> t_compare(Renderer& r, const Value& v, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("compare", a, {"other"}));
  if (!b.has(0)) return type_error("test missing required argument 'other'");
  return r.compare_op(kOp, v, b[0]);
}

Result<bool> t_filter(Renderer& r, const Value& v, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("filter", a, {}).status());
  return v.is_string() && find_filter(v.as_string()) != nullptr;
}

Result<bool> t_test(Renderer& r, const Value& v, CallArgs& a) {
  SGL_RETURN_IF_ERROR(bind_args("test", a, {}).status());
  return v.is_string() && find_test(v.as_string()) != nullptr;
}

struct TestEntry {
  std::string_view name;
  TestFn fn;
};

constexpr TestEntry kTests[] = {
    {"!=", t_compare<CmpOp::kNe>},
    {"<", t_compare<CmpOp::kLt>},
    {"<=", t_compare<CmpOp::kLe>},
    {"==", t_compare<CmpOp::kEq>},
    {">", t_compare<CmpOp::kGt>},
    {">=", t_compare<CmpOp::kGe>},
    {"boolean", t_boolean},
    {"callable", t_callable},
    {"defined", t_defined},
    {"divisibleby", t_divisibleby},
    {"eq", t_compare<CmpOp::kEq>},
    {"equalto", t_compare<CmpOp::kEq>},
    {"escaped", t_escaped},
    {"even", t_even},
    {"false", t_false},
    {"filter", t_filter},
    {"float", t_float},
    {"ge", t_compare<CmpOp::kGe>},
    {"greaterthan", t_compare<CmpOp::kGt>},
    {"gt", t_compare<CmpOp::kGt>},
    {"in", t_in},
    {"integer", t_integer},
    {"iterable", t_iterable},
    {"le", t_compare<CmpOp::kLe>},
    {"lessthan", t_compare<CmpOp::kLt>},
    {"lower", t_lower},
    {"lt", t_compare<CmpOp::kLt>},
    {"mapping", t_mapping},
    {"ne", t_compare<CmpOp::kNe>},
    {"none", t_none},
    {"number", t_number},
    {"odd", t_odd},
    {"sameas", t_sameas},
    {"sequence", t_sequence},
    {"string", t_string},
    {"test", t_test},
    {"true", t_true},
    {"undefined", t_undefined},
    {"upper", t_upper},
};

// --- globals --------------------------------------------------------------------------------

using GlobalFn = Result<Value> (*)(Renderer& r, CallArgs& args);

class BuiltinFunction : public Callable {
 public:
  BuiltinFunction(std::string_view name, GlobalFn fn) : name_(name), fn_(fn) {}
  std::string describe() const override { return "<built-in function " + std::string(name_) + ">"; }
  Result<Value> call(Renderer& r, CallArgs& args) const override { return fn_(r, args); }

 private:
  std::string_view name_;
  GlobalFn fn_;
};

constexpr int64_t kMaxRange = 100000;  // jinja2's sandbox MAX_RANGE

Result<Value> g_range(Renderer& r, CallArgs& a) {
  if (!a.keyword.empty()) return type_error("range() takes no keyword arguments");
  if (a.positional.empty() || a.positional.size() > 3) {
    return type_error("range expected at least 1 argument, got " +
                      std::to_string(a.positional.size()));
  }
  int64_t v[3];
  for (size_t i = 0; i < a.positional.size(); ++i) {
    const Value& x = a.positional[i];
    if (!x.is_integral()) {
      return type_error(std::string("'") + type_name(x) +
                        "' object cannot be interpreted as an integer");
    }
    v[i] = x.as_int();
  }
  int64_t start = 0, stop, step = 1;
  if (a.positional.size() == 1) {
    stop = v[0];
  } else {
    start = v[0];
    stop = v[1];
    if (a.positional.size() == 3) step = v[2];
  }
  if (step == 0) return value_error("range() arg 3 must not be zero");
  __int128 span =
      step > 0 ? static_cast<__int128>(stop) - start : static_cast<__int128>(start) - stop;
  __int128 astep = step > 0 ? step : -static_cast<__int128>(step);
  __int128 count = span <= 0 ? 0 : (span + astep - 1) / astep;
  if (count > kMaxRange) {
    return invalid_argument(
        "OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  }
  ValueList items;
  items.reserve(static_cast<size_t>(count));
  for (int64_t i = 0, x = start; i < static_cast<int64_t>(count); ++i, x += step) {
    items.push_back(Value::integer(x));
  }
  SGL_RETURN_IF_ERROR(r.charge(items.size() * sizeof(Value)));
  return Value::list(std::move(items));
}

// dict(mapping_or_pairs, **kwargs) / namespace(...): the shared argument handling.
Result<Dict> dict_from_args(Renderer& r, CallArgs& a, const char* what) {
  Dict d;
  if (a.positional.size() > 1) {
    return type_error(std::string(what) + " expected at most 1 argument, got " +
                      std::to_string(a.positional.size()));
  }
  if (a.positional.size() == 1) {
    const Value& src = a.positional[0];
    if (src.is_dict()) {
      d = src.as_dict();
    } else if (src.is_namespace()) {
      d = src.as_namespace().attrs;
    } else {
      SGL_ASSIGN_OR_RETURN(Sequence seq, r.iterate(src));
      for (const Value& pair : seq.get()) {
        SGL_ASSIGN_OR_RETURN(Sequence kv, r.iterate(pair));
        if (kv.get().size() != 2) {
          return value_error("dictionary update sequence element has length " +
                             std::to_string(kv.get().size()) + "; 2 is required");
        }
        if (!is_hashable(kv.get()[0])) {
          return type_error(std::string("unhashable type: '") + type_name(kv.get()[0]) + "'");
        }
        SGL_RETURN_IF_ERROR(r.charge(d.size()));  // Dict::set scans the keys
        d.set(kv.get()[0], kv.get()[1]);
      }
    }
  }
  for (auto& [k, v] : a.keyword) d.set(k, v);
  SGL_RETURN_IF_ERROR(r.charge(d.size() * 2 * sizeof(Value)));
  return d;
}

Result<Value> g_dict(Renderer& r, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(Dict d, dict_from_args(r, a, "dict"));
  return Value::dict(std::move(d));
}

Result<Value> g_namespace(Renderer& r, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(Dict d, dict_from_args(r, a, "namespace"));
  return r.new_namespace(std::move(d));
}

class Joiner : public Callable {
 public:
  explicit Joiner(std::string sep) : sep_(std::move(sep)) {}
  std::string describe() const override { return "<Joiner>"; }
  Result<Value> call(Renderer& r, CallArgs& args) const override {
    if (!used_) {
      used_ = true;
      return Value::string("");
    }
    return Value::string(sep_);
  }

 private:
  std::string sep_;
  mutable bool used_ = false;  // a joiner lives within one render (one thread)
};

Result<Value> g_joiner(Renderer& r, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("joiner", a, {"sep"}));
  return Value::callable(std::make_shared<Joiner>(b.has(0) ? to_str(b[0]) : ", "));
}

Result<Value> g_raise_exception(Renderer& r, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("raise_exception", a, {"message"}));
  return r.raise_template_error(b.has(0) ? to_str(b[0]) : "");
}

// --- strftime -------------------------------------------------------------------------------

int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

std::string strftime_civil(const CivilTime& t, std::string_view fmt) {
  static constexpr const char* kDays[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                          "Thursday", "Friday", "Saturday"};
  static constexpr const char* kMonths[] = {"January",   "February", "March",    "April",
                                            "May",       "June",     "July",     "August",
                                            "September", "October",  "November", "December"};
  int64_t days = days_from_civil(t.year, t.month, t.day);
  int wday = static_cast<int>(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday (4)
  static constexpr int kCum[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
  int month = std::clamp(t.month, 1, 12);
  int yday = kCum[month - 1] + t.day + (month > 2 && is_leap(t.year) ? 1 : 0);  // 1-based
  int hour12 = t.hour % 12 == 0 ? 12 : t.hour % 12;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%' || i + 1 >= fmt.size()) {
      out.push_back(fmt[i]);
      continue;
    }
    size_t start = i;
    char flag = 0;
    if (fmt[i + 1] == '-' || fmt[i + 1] == '_' || fmt[i + 1] == '0' || fmt[i + 1] == '^') {
      flag = fmt[i + 1];
      ++i;
      if (i + 1 >= fmt.size()) {
        out.append(fmt.substr(start));
        break;
      }
    }
    char c = fmt[++i];
    auto num = [&](int64_t v, int width, char pad) {
      std::string s = std::to_string(v);
      char p = flag == '_' ? ' ' : flag == '0' ? '0' : pad;
      if (flag != '-' && static_cast<int>(s.size()) < width) s.insert(0, width - s.size(), p);
      out += s;
    };
    auto text = [&](std::string s) {
      if (flag == '^') s = py::upper(s);
      out += s;
    };
    const char* day = kDays[wday];
    const char* mon = kMonths[month - 1];
    switch (c) {
      case 'a':
        text(std::string(day, 3));
        break;
      case 'A':
        text(day);
        break;
      case 'b':
      case 'h':
        text(std::string(mon, 3));
        break;
      case 'B':
        text(mon);
        break;
      case 'C':
        num(t.year / 100, 2, '0');
        break;
      case 'd':
        num(t.day, 2, '0');
        break;
      case 'e':
        num(t.day, 2, ' ');
        break;
      case 'f':
        num(0, 6, '0');
        break;
      case 'H':
        num(t.hour, 2, '0');
        break;
      case 'I':
        num(hour12, 2, '0');
        break;
      case 'j':
        num(yday, 3, '0');
        break;
      case 'k':
        num(t.hour, 2, ' ');
        break;
      case 'l':
        num(hour12, 2, ' ');
        break;
      case 'm':
        num(month, 2, '0');
        break;
      case 'M':
        num(t.minute, 2, '0');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'p':
        text(t.hour < 12 ? "AM" : "PM");
        break;
      case 'P':
        out += t.hour < 12 ? "am" : "pm";
        break;
      case 'S':
        num(t.second, 2, '0');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u':
        num(wday == 0 ? 7 : wday, 1, '0');
        break;
      case 'w':
        num(wday, 1, '0');
        break;
      case 'y':
        num(t.year % 100, 2, '0');
        break;
      case 'Y':
        num(t.year, 1, '0');
        break;
      case 'U':
        num((yday - 1 + 7 - wday) / 7, 2, '0');
        break;
      case 'W':
        num((yday - 1 + 7 - ((wday + 6) % 7)) / 7, 2, '0');
        break;
      case 'D':
        out += strftime_civil(t, "%m/%d/%y");
        break;
      case 'F':
        out += strftime_civil(t, "%Y-%m-%d");
        break;
      case 'T':
        out += strftime_civil(t, "%H:%M:%S");
        break;
      case 'R':
        out += strftime_civil(t, "%H:%M");
        break;
      case 'r':
        out += strftime_civil(t, "%I:%M:%S %p");
        break;
      case 'c':
        out += strftime_civil(t, "%a %b %e %H:%M:%S %Y");
        break;
      case 'x':
        out += strftime_civil(t, "%m/%d/%y");
        break;
      case 'X':
        out += strftime_civil(t, "%H:%M:%S");
        break;
      case 'z':
      case 'Z':
        break;  // naive datetime: empty, as in Python
      case '%':
        out.push_back('%');
        break;
      default:
        out.append(fmt.substr(start, i - start + 1));
        break;
    }
  }
  return out;
}

Result<Value> g_strftime_now(Renderer& r, CallArgs& a) {
  SGL_ASSIGN_OR_RETURN(BoundArgs b, bind_args("strftime_now", a, {"format"}));
  if (!b.has(0)) return type_error("strftime_now() missing required argument 'format'");
  SGL_ASSIGN_OR_RETURN(std::string fmt, str_arg(b[0], "strftime() argument 1"));
  CivilTime now = r.clock() ? r.clock()() : local_now();
  return r.make_string(strftime_civil(now, fmt));
}

}  // namespace

FilterFn find_filter(std::string_view name) {
  auto it = std::lower_bound(std::begin(kFilters), std::end(kFilters), name,
                             [](const FilterEntry& e, std::string_view n) { return e.name < n; });
  return (it != std::end(kFilters) && it->name == name) ? it->fn : nullptr;
}

TestFn find_test(std::string_view name) {
  auto it = std::lower_bound(std::begin(kTests), std::end(kTests), name,
                             [](const TestEntry& e, std::string_view n) { return e.name < n; });
  return (it != std::end(kTests) && it->name == name) ? it->fn : nullptr;
}

std::vector<std::pair<std::string_view, Value>> global_functions() {
  static const std::vector<std::pair<std::string_view, Value>> kGlobals = [] {
    std::vector<std::pair<std::string_view, Value>> g;
    auto add = [&](std::string_view name, GlobalFn fn) {
      g.emplace_back(name, Value::callable(std::make_shared<BuiltinFunction>(name, fn)));
    };
    add("dict", g_dict);
    add("joiner", g_joiner);
    add("namespace", g_namespace);
    add("raise_exception", g_raise_exception);
    add("range", g_range);
    add("strftime_now", g_strftime_now);
    return g;
  }();
  return kGlobals;
}

}  // namespace sgl::tokenizer::jinja
