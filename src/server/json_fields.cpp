#include "server/json_fields.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace sgl::server {

const char* json_type_name(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      return "object";
    case Json::value_t::array:
      return "array";
    case Json::value_t::string:
      return "string";
    case Json::value_t::boolean:
      return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "integer";
    case Json::value_t::number_float:
      return "number";
    default:
      return "value";
  }
}

namespace {
Status type_error(const std::string& what, const char* expected, const Json& got) {
  return invalid_argument(what + ": expected " + expected + ", got " + json_type_name(got));
}
}  // namespace

Status json_to_int64(const Json& v, const std::string& what, int64_t* out) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      return invalid_argument(what + ": integer out of range");
    *out = v.get<int64_t>();
    return Status::ok();
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) {
      *out = static_cast<int64_t>(d);
      return Status::ok();
    }
    return invalid_argument(what + ": expected an integer, got " + v.dump());
  }
  return type_error(what, "an integer", v);
}

Status json_to_int32(const Json& v, const std::string& what, int32_t* out) {
  int64_t x = 0;
  SGL_RETURN_IF_ERROR(json_to_int64(v, what, &x));
  if (x < INT32_MIN || x > INT32_MAX)
    return invalid_argument(what + ": integer " + std::to_string(x) + " out of range");
  *out = static_cast<int32_t>(x);
  return Status::ok();
}

const Json* FieldReader::find(const char* key) const {
  auto it = obj_.find(key);
  if (it == obj_.end() || it->is_null()) return nullptr;
  return &*it;
}

Status FieldReader::get_int(const char* key, int32_t* out) const {
  const Json* v = find(key);
  return v ? json_to_int32(*v, name(key), out) : Status::ok();
}

Status FieldReader::get_int64(const char* key, int64_t* out) const {
  const Json* v = find(key);
  return v ? json_to_int64(*v, name(key), out) : Status::ok();
}

Status FieldReader::get_uint64(const char* key, std::optional<uint64_t>* out) const {
  const Json* v = find(key);
  if (!v) return Status::ok();
  if (v->is_number_unsigned()) {
    *out = v->get<uint64_t>();
    return Status::ok();
  }
  int64_t x = 0;
  SGL_RETURN_IF_ERROR(json_to_int64(*v, name(key), &x));
  if (x < 0) return invalid_argument(name(key) + " must be >= 0, got " + std::to_string(x));
  *out = static_cast<uint64_t>(x);
  return Status::ok();
}

Status FieldReader::get_float(const char* key, float* out) const {
  const Json* v = find(key);
  if (!v) return Status::ok();
  if (!v->is_number()) return type_error(name(key), "a number", *v);
  const double d = v->get<double>();
  if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max())
    return invalid_argument(name(key) + ": number out of range");
  *out = static_cast<float>(d);
  return Status::ok();
}

Status FieldReader::get_bool(const char* key, bool* out) const {
  const Json* v = find(key);
  if (!v) return Status::ok();
  if (!v->is_boolean()) return type_error(name(key), "a boolean", *v);
  *out = v->get<bool>();
  return Status::ok();
}

Status FieldReader::get_string(const char* key, std::string* out) const {
  const Json* v = find(key);
  if (!v) return Status::ok();
  if (!v->is_string()) return type_error(name(key), "a string", *v);
  *out = v->get<std::string>();
  return Status::ok();
}

Status FieldReader::get_opt_string(const char* key, std::optional<std::string>* out) const {
  const Json* v = find(key);
  if (!v) return Status::ok();
  if (!v->is_string()) return type_error(name(key), "a string", *v);
  *out = v->get<std::string>();
  return Status::ok();
}

Status FieldReader::get_string_or_list(const char* key, std::vector<std::string>* out) const {
  const Json* v = find(key);
  if (!v) return Status::ok();
  out->clear();
  if (v->is_string()) {
    out->push_back(v->get<std::string>());
    return Status::ok();
  }
  if (!v->is_array()) return type_error(name(key), "a string or a list of strings", *v);
  for (size_t i = 0; i < v->size(); ++i) {
    const Json& e = (*v)[i];
    if (!e.is_string()) return type_error(name(key) + "[" + std::to_string(i) + "]", "a string", e);
    out->push_back(e.get<std::string>());
  }
  return Status::ok();
}

Status FieldReader::get_int_list(const char* key, std::vector<int32_t>* out) const {
  const Json* v = find(key);
  if (!v) return Status::ok();
  if (!v->is_array()) return type_error(name(key), "a list of integers", *v);
  out->clear();
  out->reserve(v->size());
  for (size_t i = 0; i < v->size(); ++i) {
    int32_t x = 0;
    SGL_RETURN_IF_ERROR(json_to_int32((*v)[i], name(key) + "[" + std::to_string(i) + "]", &x));
    out->push_back(x);
  }
  return Status::ok();
}

Status FieldReader::get_logit_bias(const char* key,
                                   std::vector<std::pair<int32_t, float>>* out) const {
  const Json* v = find(key);
  if (!v) return Status::ok();
  if (!v->is_object()) return type_error(name(key), "an object {\"token_id\": bias}", *v);
  out->clear();
  for (auto it = v->begin(); it != v->end(); ++it) {
    const std::string& k = it.key();
    char* end = nullptr;
    errno = 0;
    const long long id = std::strtoll(k.c_str(), &end, 10);
    if (k.empty() || end != k.c_str() + k.size() || errno != 0 || id < 0 || id > INT32_MAX)
      return invalid_argument(name(key) + ": key " + quote_for_message(k) + " is not a token id");
    const Json& b = it.value();
    if (!b.is_number()) return type_error(name(key) + "[\"" + k + "\"]", "a number", b);
    const double d = b.get<double>();
    if (std::isnan(d)) return invalid_argument(name(key) + ": bias is not a number");
    out->push_back({static_cast<int32_t>(id), static_cast<float>(d)});
  }
  return Status::ok();
}

bool json_depth_ok(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

Result<Json> parse_json_object(std::string_view body) {
  if (!json_depth_ok(body, kMaxJsonDepth))
    return invalid_argument("JSON body nests deeper than " + std::to_string(kMaxJsonDepth) +
                            " levels");
  Json j;
  try {
    j = Json::parse(body.begin(), body.end());
  } catch (const Json::exception& e) {
    // parse_error, or out_of_range for a number that overflows a double (1e400).
    std::string msg = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 5: ..." -> from "parse
    // error"; "[json.exception.out_of_range.406] number overflow ..." -> after the tag.
    if (auto p = msg.find("parse error"); p != std::string::npos) {
      msg = msg.substr(p);
    } else if (auto q = msg.find("] ");
               msg.rfind("[json.exception.", 0) == 0 && q != std::string::npos) {
      msg = msg.substr(q + 2);
    }
    return invalid_argument("invalid JSON body: " + msg);
  }
  if (!j.is_object())
    return invalid_argument(std::string("the JSON body must be an object, got ") +
                            json_type_name(j));
  return j;
}

}  // namespace sgl::server
