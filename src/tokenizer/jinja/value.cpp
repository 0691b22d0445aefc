#include "tokenizer/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "tokenizer/jinja/pystr.h"
#include "tokenizer/jinja/runtime.h"

namespace sgl::tokenizer::jinja {
namespace {

struct UndefinedInfo {
  std::string hint;
  bool unsafe = false;
};

const std::string kEmpty;

}  // namespace

Value Value::undefined(std::string hint, bool unsafe) {
  Value v(ValueKind::kUndefined);
  v.ptr_ = std::make_shared<UndefinedInfo>(UndefinedInfo{std::move(hint), unsafe});
  return v;
}

Value Value::string(std::string s) {
  Value v(ValueKind::kString);
  v.ptr_ = std::make_shared<std::string>(std::move(s));
  return v;
}

uint32_t Value::items_depth(const ValueList& items) {
  uint32_t d = 0;
  for (const Value& x : items) d = std::max(d, x.depth_);
  return d + 1;
}

Value Value::list(ValueList items) {
  Value v(ValueKind::kList);
  v.depth_ = items_depth(items);
  v.ptr_ = std::make_shared<ValueList>(std::move(items));
  return v;
}

Value Value::tuple(ValueList items) {
  Value v(ValueKind::kTuple);
  v.depth_ = items_depth(items);
  v.ptr_ = std::make_shared<ValueList>(std::move(items));
  return v;
}

Value Value::iterator(ValueList items, IterTag tag) {
  Value v(ValueKind::kIterator);
  v.tag_ = tag;
  v.depth_ = items_depth(items);
  v.ptr_ = std::make_shared<ValueList>(std::move(items));
  return v;
}

Value Value::dict(Dict d) {
  Value v(ValueKind::kDict);
  for (const auto& [key, x] : d.entries) v.depth_ = std::max({v.depth_, key.depth_, x.depth_});
  ++v.depth_;
  v.ptr_ = std::make_shared<Dict>(std::move(d));
  return v;
}

Value Value::dict(std::shared_ptr<const Dict> d) {
  Value v(ValueKind::kDict);
  for (const auto& [key, x] : d->entries) v.depth_ = std::max({v.depth_, key.depth_, x.depth_});
  ++v.depth_;
  v.ptr_ = std::const_pointer_cast<Dict>(std::move(d));
  return v;
}

Value Value::namespace_object(std::shared_ptr<Namespace> ns) {
  Value v(ValueKind::kNamespace);
  v.depth_ = 1;
  v.ptr_ = std::move(ns);
  return v;
}

Value Value::callable(std::shared_ptr<const Callable> fn) {
  Value v(ValueKind::kCallable);
  v.ptr_ = std::const_pointer_cast<Callable>(std::move(fn));
  return v;
}

Value Value::loop(std::shared_ptr<LoopState> loop) {
  Value v(ValueKind::kLoop);
  v.ptr_ = std::move(loop);
  return v;
}

bool Value::as_bool() const {
  SGL_CHECK(kind_ == ValueKind::kBool, "jinja value is not a bool");
  return int_ != 0;
}

int64_t Value::as_int() const {
  SGL_CHECK(is_integral(), "jinja value is not an int");
  return int_;
}

double Value::as_float() const {
  SGL_CHECK(is_number(), "jinja value is not a number");
  return kind_ == ValueKind::kFloat ? float_ : static_cast<double>(int_);
}

const std::string& Value::as_string() const {
  SGL_CHECK(kind_ == ValueKind::kString, "jinja value is not a string");
  return *static_cast<const std::string*>(ptr_.get());
}

const ValueList& Value::items() const {
  SGL_CHECK(has_items(), "jinja value is not a sequence");
  return *static_cast<const ValueList*>(ptr_.get());
}

IterTag Value::iter_tag() const { return tag_; }

const Dict& Value::as_dict() const {
  SGL_CHECK(kind_ == ValueKind::kDict, "jinja value is not a dict");
  return *static_cast<const Dict*>(ptr_.get());
}

Namespace& Value::as_namespace() const {
  SGL_CHECK(kind_ == ValueKind::kNamespace, "jinja value is not a namespace");
  return *static_cast<Namespace*>(ptr_.get());
}

const Callable& Value::as_callable() const {
  SGL_CHECK(kind_ == ValueKind::kCallable, "jinja value is not callable");
  return *static_cast<const Callable*>(ptr_.get());
}

LoopState& Value::as_loop() const {
  SGL_CHECK(kind_ == ValueKind::kLoop, "jinja value is not a loop");
  return *static_cast<LoopState*>(ptr_.get());
}

const std::string& Value::undefined_hint() const {
  if (kind_ != ValueKind::kUndefined || !ptr_) return kEmpty;
  return static_cast<const UndefinedInfo*>(ptr_.get())->hint;
}

bool Value::undefined_is_unsafe() const {
  if (kind_ != ValueKind::kUndefined || !ptr_) return false;
  return static_cast<const UndefinedInfo*>(ptr_.get())->unsafe;
}

bool Value::same_object(const Value& other) const {
  if (kind_ != other.kind_) return false;
  if (ptr_ || other.ptr_) return ptr_ == other.ptr_;
  return int_ == other.int_;
}

// --- Dict ---------------------------------------------------------------------------------

const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : entries) {
    if (k.is_string() && k.as_string() == key) return &v;
  }
  return nullptr;
}

const Value* Dict::find(const Value& key) const {
  if (key.is_string()) return find(std::string_view(key.as_string()));
  for (const auto& [k, v] : entries) {
    if (!k.is_string() && equals(k, key)) return &v;
  }
  return nullptr;
}

void Dict::set(Value key, Value value) {
  for (auto& [k, v] : entries) {
    if (equals(k, key)) {
      v = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

// --- Python semantics -----------------------------------------------------------------------

bool truthy(const Value& v) {
  switch (v.kind()) {
    case ValueKind::kUndefined:
    case ValueKind::kNone:
      return false;
    case ValueKind::kBool:
    case ValueKind::kInt:
      return v.as_int() != 0;
    case ValueKind::kFloat:
      return v.as_float() != 0.0;
    case ValueKind::kString:
      return !v.as_string().empty();
    case ValueKind::kList:
    case ValueKind::kTuple:
      return !v.items().empty();
    case ValueKind::kIterator:
      if (v.iter_tag() == IterTag::kGenerator || v.iter_tag() == IterTag::kReverse) return true;
      return !v.items().empty();
    case ValueKind::kDict:
      return v.as_dict().size() != 0;
    case ValueKind::kNamespace:
    case ValueKind::kCallable:
    case ValueKind::kLoop:
      return true;
  }
  return false;
}

const char* type_name(const Value& v) {
  switch (v.kind()) {
    case ValueKind::kUndefined:
      return "Undefined";
    case ValueKind::kNone:
      return "NoneType";
    case ValueKind::kBool:
      return "bool";
    case ValueKind::kInt:
      return "int";
    case ValueKind::kFloat:
      return "float";
    case ValueKind::kString:
      return "str";
    case ValueKind::kList:
      return "list";
    case ValueKind::kTuple:
      return "tuple";
    case ValueKind::kIterator:
      switch (v.iter_tag()) {
        case IterTag::kGenerator:
          return "generator";
        case IterTag::kDictItems:
          return "dict_items";
        case IterTag::kDictKeys:
          return "dict_keys";
        case IterTag::kDictValues:
          return "dict_values";
        case IterTag::kReverse:
          return "list_reverseiterator";
      }
      return "iterator";
    case ValueKind::kDict:
      return "dict";
    case ValueKind::kNamespace:
      return "Namespace";
    case ValueKind::kCallable:
      return "function";
    case ValueKind::kLoop:
      return "LoopContext";
  }
  return "object";
}

std::string format_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string_view sci(buf, res.ptr - buf);
  std::string out;
  size_t i = 0;
  if (sci[0] == '-') {
    out.push_back('-');
    i = 1;
  }
  std::string digits;
  size_t epos = sci.find('e');
  for (size_t j = i; j < epos; ++j) {
    if (sci[j] != '.') digits.push_back(sci[j]);
  }
  int exp = 0;
  std::from_chars(sci.data() + epos + (sci[epos + 1] == '+' ? 2 : 1), sci.data() + sci.size(), exp);
  int decpt = exp + 1;
  int ndigits = static_cast<int>(digits.size());
  if (decpt > 16 || decpt < -3) {
    out.push_back(digits[0]);
    if (ndigits > 1) {
      out.push_back('.');
      out.append(digits, 1, std::string::npos);
    }
    int e = decpt - 1;
    out.push_back('e');
    out.push_back(e < 0 ? '-' : '+');
    int ae = e < 0 ? -e : e;
    if (ae < 10) out.push_back('0');
    out += std::to_string(ae);
  } else if (decpt <= 0) {
    out += "0.";
    out.append(static_cast<size_t>(-decpt), '0');
    out += digits;
  } else if (decpt >= ndigits) {
    out += digits;
    out.append(static_cast<size_t>(decpt - ndigits), '0');
    out += ".0";
  } else {
    out.append(digits, 0, decpt);
    out.push_back('.');
    out.append(digits, decpt, std::string::npos);
  }
  return out;
}

namespace {

// Recursion cap for printing and comparing; namespaces can form cycles.
constexpr int kMaxRecursion = 2 * static_cast<int>(kMaxValueDepth);
// Printing stops growing past this many bytes (shared sub-values can make a small value print
// exponentially large); whatever consumes the text then fails on its own size limit.
constexpr size_t kMaxPrintBytes = size_t{32} << 20;
// Node visits allowed for one equality / ordering / hashability check, for the same reason.
constexpr int64_t kMaxCompareNodes = 10000000;

struct Printer {
  std::string& out;
  std::vector<const void*> active;  // namespaces being printed (cycle detection, like Python)

  bool full() const { return out.size() > kMaxPrintBytes; }

  void repr(const Value& v, int depth) {
    if (v.is_string()) {
      py::append_repr(out, v.as_string());
    } else if (v.is_undefined()) {
      out += "Undefined";
    } else {
      object(v, depth);
    }
  }

  void sequence(const ValueList& items, char open, char close, bool one_tuple, int depth) {
    out.push_back(open);
    for (size_t i = 0; i < items.size() && !full(); ++i) {
      if (i) out += ", ";
      repr(items[i], depth + 1);
    }
    if (one_tuple && items.size() == 1) out.push_back(',');
    out.push_back(close);
  }

  void dict(const Dict& d, int depth) {
    out.push_back('{');
    bool first = true;
    for (const auto& [k, v] : d.entries) {
      if (full()) break;
      if (!first) out += ", ";
      first = false;
      repr(k, depth + 1);
      out += ": ";
      repr(v, depth + 1);
    }
    out.push_back('}');
  }

  void object(const Value& v, int depth) {
    if (depth > kMaxRecursion || full()) {
      out += "...";
      return;
    }
    switch (v.kind()) {
      case ValueKind::kUndefined:
        return;
      case ValueKind::kNone:
        out += "None";
        return;
      case ValueKind::kBool:
        out += v.as_bool() ? "True" : "False";
        return;
      case ValueKind::kInt:
        out += std::to_string(v.as_int());
        return;
      case ValueKind::kFloat:
        out += format_float(v.as_float());
        return;
      case ValueKind::kString:
        out += v.as_string();
        return;
      case ValueKind::kList:
        sequence(v.items(), '[', ']', false, depth);
        return;
      case ValueKind::kTuple:
        sequence(v.items(), '(', ')', true, depth);
        return;
      case ValueKind::kIterator:
        switch (v.iter_tag()) {
          case IterTag::kGenerator:
            out += "<generator object>";
            return;
          case IterTag::kReverse:
            out += "<list_reverseiterator object>";
            return;
          default:
            out += type_name(v);
            out.push_back('(');
            sequence(v.items(), '[', ']', false, depth);
            out.push_back(')');
            return;
        }
      case ValueKind::kDict:
        dict(v.as_dict(), depth);
        return;
      case ValueKind::kNamespace: {
        const Namespace* ns = &v.as_namespace();
        out += "<Namespace ";
        if (std::find(active.begin(), active.end(), ns) != active.end()) {
          out += "{...}";  // Python's repr of a dict that contains itself
        } else {
          active.push_back(ns);
          dict(ns->attrs, depth);
          active.pop_back();
        }
        out += ">";
        return;
      }
      case ValueKind::kCallable:
        out += v.as_callable().describe();
        return;
      case ValueKind::kLoop: {
        const LoopState& l = v.as_loop();
        out +=
            "<LoopContext " + std::to_string(l.index0 + 1) + "/" + std::to_string(l.length()) + ">";
        return;
      }
    }
  }
};

}  // namespace

void append_str(std::string& out, const Value& v) { Printer{out, {}}.object(v, 0); }

std::string to_str(const Value& v) {
  if (v.is_string()) return v.as_string();
  std::string out;
  Printer{out, {}}.object(v, 0);
  return out;
}

void append_repr(std::string& out, const Value& v) { Printer{out, {}}.repr(v, 0); }

std::string repr(const Value& v) {
  std::string out;
  append_repr(out, v);
  return out;
}

namespace {

// Compares an int64 with a double exactly (Python compares int and float by value).
int compare_int_float(int64_t i, double d) {
  if (std::isnan(d)) return 2;
  if (d >= 9223372036854775808.0) return -1;
  if (d < -9223372036854775808.0) return 1;
  double fl = std::floor(d);
  int64_t di = static_cast<int64_t>(fl);
  if (i < di) return -1;
  if (i > di) return 1;
  return fl == d ? 0 : -1;  // i == floor(d) < d when d has a fraction
}

// <0, 0, >0, or 2 for unordered (NaN).
int compare_numbers(const Value& a, const Value& b) {
  if (a.is_integral() && b.is_integral()) {
    int64_t x = a.as_int(), y = b.as_int();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_integral()) return compare_int_float(a.as_int(), b.as_float());
  if (b.is_integral()) {
    int r = compare_int_float(b.as_int(), a.as_float());
    return r == 2 ? 2 : -r;
  }
  double x = a.as_float(), y = b.as_float();
  if (std::isnan(x) || std::isnan(y)) return 2;
  return x < y ? -1 : (x > y ? 1 : 0);
}

}  // namespace

namespace {

bool equals_at(const Value& a, const Value& b, int depth, int64_t* budget) {
  if (depth > kMaxRecursion || --*budget < 0) return false;
  if (a.is_number() && b.is_number()) return compare_numbers(a, b) == 0;
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case ValueKind::kUndefined:
    case ValueKind::kNone:
      return true;
    case ValueKind::kString:
      return a.as_string() == b.as_string();
    case ValueKind::kList:
    case ValueKind::kTuple: {
      const ValueList &x = a.items(), &y = b.items();
      if (&x == &y) return true;
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!equals_at(x[i], y[i], depth + 1, budget)) return false;
      }
      return true;
    }
    case ValueKind::kDict: {
      const Dict &x = a.as_dict(), &y = b.as_dict();
      if (&x == &y) return true;
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x.entries) {
        const Value* other = y.find(k);
        if (!other || !equals_at(v, *other, depth + 1, budget)) return false;
      }
      return true;
    }
    default:
      return a.same_object(b);
  }
}

Result<int> compare_at(const Value& a, const Value& b, int depth, int64_t* budget) {
  if (depth > kMaxRecursion || --*budget < 0) {
    return invalid_argument("RecursionError: values too large or deep to compare");
  }
  if (a.is_number() && b.is_number()) return compare_numbers(a, b);
  if (a.is_string() && b.is_string()) {
    int c = a.as_string().compare(b.as_string());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if ((a.is_list() && b.is_list()) || (a.is_tuple() && b.is_tuple())) {
    const ValueList &x = a.items(), &y = b.items();
    size_t n = std::min(x.size(), y.size());
    for (size_t i = 0; i < n; ++i) {
      if (equals_at(x[i], y[i], depth + 1, budget)) continue;
      return compare_at(x[i], y[i], depth + 1, budget);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  return invalid_argument(std::string("TypeError: '<' not supported between instances of '") +
                          type_name(a) + "' and '" + type_name(b) + "'");
}

bool hashable_at(const Value& v, int depth, int64_t* budget) {
  if (depth > kMaxRecursion || --*budget < 0) return false;
  switch (v.kind()) {
    case ValueKind::kList:
    case ValueKind::kDict:
      return false;
    case ValueKind::kIterator:
      return v.iter_tag() == IterTag::kGenerator || v.iter_tag() == IterTag::kReverse;
    case ValueKind::kTuple:
      for (const Value& x : v.items()) {
        if (!hashable_at(x, depth + 1, budget)) return false;
      }
      return true;
    default:
      return true;
  }
}

}  // namespace

bool equals(const Value& a, const Value& b) {
  int64_t budget = kMaxCompareNodes;
  return equals_at(a, b, 0, &budget);
}
Result<int> compare(const Value& a, const Value& b) {
  int64_t budget = kMaxCompareNodes;
  return compare_at(a, b, 0, &budget);
}
bool is_hashable(const Value& v) {
  int64_t budget = kMaxCompareNodes;
  return hashable_at(v, 0, &budget);
}

Result<int64_t> length(const Value& v) {
  switch (v.kind()) {
    case ValueKind::kUndefined:
      return int64_t{0};
    case ValueKind::kString:
      return static_cast<int64_t>(py::length(v.as_string()));
    case ValueKind::kList:
    case ValueKind::kTuple:
      return static_cast<int64_t>(v.items().size());
    case ValueKind::kIterator:
      if (v.iter_tag() == IterTag::kGenerator || v.iter_tag() == IterTag::kReverse) break;
      return static_cast<int64_t>(v.items().size());
    case ValueKind::kDict:
      return static_cast<int64_t>(v.as_dict().size());
    default:
      break;
  }
  return invalid_argument(std::string("TypeError: object of type '") + type_name(v) +
                          "' has no len()");
}

}  // namespace sgl::tokenizer::jinja
