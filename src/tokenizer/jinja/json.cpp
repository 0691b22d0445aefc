#include "tokenizer/jinja/json.h"

#include <algorithm>
#include <cmath>

#include "support/utf8.h"
#include "tokenizer/jinja/runtime.h"

namespace sgl::tokenizer::jinja {
namespace {

template <typename J>
Result<Value> convert(const J& j, uint32_t depth) {
  if (depth > kMaxValueDepth) {
    return invalid_argument("JSON input is nested deeper than " + std::to_string(kMaxValueDepth) +
                            " levels");
  }
  using nlohmann::detail::value_t;
  switch (j.type()) {
    case value_t::boolean:
      return Value::boolean(*j.template get_ptr<const typename J::boolean_t*>());
    case value_t::number_integer:
      return Value::integer(*j.template get_ptr<const typename J::number_integer_t*>());
    case value_t::number_unsigned: {
      auto u = *j.template get_ptr<const typename J::number_unsigned_t*>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return Value::integer(static_cast<int64_t>(u));
      return Value::number(static_cast<double>(u));
    }
    case value_t::number_float:
      return Value::number(*j.template get_ptr<const typename J::number_float_t*>());
    case value_t::string: {
      const auto& s = *j.template get_ptr<const typename J::string_t*>();
      return Value::string(utf8::is_valid(s) ? std::string(s) : utf8::sanitize(s));
    }
    case value_t::array: {
      ValueList items;
      items.reserve(j.size());
      for (const auto& x : j) {
        SGL_ASSIGN_OR_RETURN(Value v, convert(x, depth + 1));
        items.push_back(std::move(v));
      }
      return Value::list(std::move(items));
    }
    case value_t::object: {
      Dict d;
      d.entries.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) {
        SGL_ASSIGN_OR_RETURN(Value v, convert(it.value(), depth + 1));
        const std::string& key = it.key();
        d.entries.emplace_back(Value::string(utf8::is_valid(key) ? key : utf8::sanitize(key)),
                               std::move(v));
      }
      return Value::dict(std::move(d));
    }
    default:
      return Value::none();
  }
}

const char kHex[] = "0123456789abcdef";

void append_u_escape(std::string& out, uint32_t unit) {
  out += "\\u";
  for (int shift = 12; shift >= 0; shift -= 4) out.push_back(kHex[(unit >> shift) & 15]);
}

void append_quoted(std::string& out, const std::string& s, bool ensure_ascii) {
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    uint32_t c;
    size_t len;
    if (!utf8::decode(s, i, &c, &len)) c = 0xFFFD;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || (ensure_ascii && c > 0x7E)) {
          if (c > 0xFFFF) {
            uint32_t v = c - 0x10000;
            append_u_escape(out, 0xD800 | (v >> 10));
            append_u_escape(out, 0xDC00 | (v & 0x3FF));
          } else {
            append_u_escape(out, c);
          }
        } else {
          out.append(s, i, len);
        }
    }
    i += len;
  }
  out.push_back('"');
}

std::string float_json(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return format_float(d);
}

Status not_serializable(const Value& v) {
  const char* name = v.is_callable() ? "function" : type_name(v);
  return invalid_argument(std::string("TypeError: Object of type ") + name +
                          " is not JSON serializable");
}

class Dumper {
 public:
  explicit Dumper(const JsonDumpOptions& o) : o_(o) {
    item_sep_ = o.item_separator ? *o.item_separator : (o.indent ? "," : ", ");
    key_sep_ = o.key_separator ? *o.key_separator : ": ";
  }

  Status dump(const Value& v, int level) {
    if (level > static_cast<int>(2 * kMaxValueDepth)) {
      return invalid_argument("ValueError: value nested too deeply for tojson");
    }
    if (out_.size() > o_.max_bytes) {
      return Status(StatusCode::kResourceExhausted,
                    "tojson output exceeds " + std::to_string(o_.max_bytes) + " bytes");
    }
    switch (v.kind()) {
      case ValueKind::kNone:
        out_ += "null";
        return Status::ok();
      case ValueKind::kBool:
        out_ += v.as_bool() ? "true" : "false";
        return Status::ok();
      case ValueKind::kInt:
        out_ += std::to_string(v.as_int());
        return Status::ok();
      case ValueKind::kFloat:
        out_ += float_json(v.as_float());
        return Status::ok();
      case ValueKind::kString:
        append_quoted(out_, v.as_string(), o_.ensure_ascii);
        return Status::ok();
      case ValueKind::kList:
      case ValueKind::kTuple:
        return dump_array(v.items(), level);
      case ValueKind::kDict:
        return dump_object(v.as_dict(), level);
      default:
        return not_serializable(v);
    }
  }

  std::string take() { return std::move(out_); }

 private:
  void newline(int level) {
    if (!o_.indent) return;
    out_.push_back('\n');
    for (int i = 0; i < level; ++i) out_ += *o_.indent;
  }

  Status dump_array(const ValueList& items, int level) {
    if (items.empty()) {
      out_ += "[]";
      return Status::ok();
    }
    out_.push_back('[');
    newline(level + 1);
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) {
        out_ += item_sep_;
        newline(level + 1);
      }
      SGL_RETURN_IF_ERROR(dump(items[i], level + 1));
    }
    newline(level);
    out_.push_back(']');
    return Status::ok();
  }

  Result<std::string> key_string(const Value& k) {
    switch (k.kind()) {
      case ValueKind::kString:
        return k.as_string();
      case ValueKind::kInt:
        return std::to_string(k.as_int());
      case ValueKind::kFloat:
        return float_json(k.as_float());
      case ValueKind::kBool:
        return std::string(k.as_bool() ? "true" : "false");
      case ValueKind::kNone:
        return std::string("null");
      default:
        return invalid_argument(std::string("TypeError: keys must be str, int, float, bool or "
                                            "None, not ") +
                                type_name(k));
    }
  }

  Status dump_object(const Dict& d, int level) {
    if (d.size() == 0) {
      out_ += "{}";
      return Status::ok();
    }
    std::vector<const std::pair<Value, Value>*> entries;
    for (const auto& e : d.entries) entries.push_back(&e);
    if (o_.sort_keys) {
      Status st;
      std::stable_sort(entries.begin(), entries.end(), [&](const auto* a, const auto* b) {
        if (!st.is_ok()) return false;
        Result<int> c = compare(a->first, b->first);
        if (!c.is_ok()) {
          st = c.status();
          return false;
        }
        return *c < 0;
      });
      SGL_RETURN_IF_ERROR(st);
    }
    out_.push_back('{');
    newline(level + 1);
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i) {
        out_ += item_sep_;
        newline(level + 1);
      }
      SGL_ASSIGN_OR_RETURN(std::string key, key_string(entries[i]->first));
      append_quoted(out_, key, o_.ensure_ascii);
      out_ += key_sep_;
      SGL_RETURN_IF_ERROR(dump(entries[i]->second, level + 1));
    }
    newline(level);
    out_.push_back('}');
    return Status::ok();
  }

  const JsonDumpOptions& o_;
  std::string item_sep_, key_sep_;
  std::string out_;
};

}  // namespace

Result<Value> from_json(const nlohmann::json& j) { return convert(j, 0); }
Result<Value> from_json(const nlohmann::ordered_json& j) { return convert(j, 0); }

Result<std::string> to_json(const Value& v, const JsonDumpOptions& options) {
  Dumper d(options);
  SGL_RETURN_IF_ERROR(d.dump(v, 0));
  return d.take();
}

}  // namespace sgl::tokenizer::jinja
