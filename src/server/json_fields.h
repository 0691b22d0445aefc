// Typed reads of request-body fields with errors that name the field, the way SGLang's and
// OpenAI's request models (pydantic) validate them: a missing field or JSON null keeps the
// default; a wrong type is an error ("sampling_params.top_k: expected an integer, got string");
// integers may be written as integral floats (5.0); unknown fields are ignored by the callers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "server/api_error.h"
#include "support/status.h"

namespace sgl::server {

// JSON type name for messages: "string", "integer", "number", "boolean", "array", "object", "null".
const char* json_type_name(const Json& j);

// Reads fields of one JSON object. `path` prefixes field names in messages ("" for the top level).
class FieldReader {
 public:
  FieldReader(const Json& obj, std::string path) : obj_(obj), path_(std::move(path)) {}

  // Returns the field, or nullptr when absent or null.
  const Json* find(const char* key) const;
  std::string name(const char* key) const { return path_.empty() ? key : path_ + "." + key; }

  Status get_int(const char* key, int32_t* out) const;
  Status get_int64(const char* key, int64_t* out) const;
  Status get_uint64(const char* key, std::optional<uint64_t>* out) const;
  Status get_float(const char* key, float* out) const;
  Status get_bool(const char* key, bool* out) const;
  Status get_string(const char* key, std::string* out) const;
  Status get_opt_string(const char* key, std::optional<std::string>* out) const;
  // A string or a list of strings.
  Status get_string_or_list(const char* key, std::vector<std::string>* out) const;
  Status get_int_list(const char* key, std::vector<int32_t>* out) const;
  // {"<token id>": bias, ...}
  Status get_logit_bias(const char* key, std::vector<std::pair<int32_t, float>>* out) const;

 private:
  const Json& obj_;
  std::string path_;
};

// Value conversions used by FieldReader, exposed for list elements. `what` names the value.
Status json_to_int64(const Json& v, const std::string& what, int64_t* out);
Status json_to_int32(const Json& v, const std::string& what, int32_t* out);

// Maximum nesting depth of request bodies (deeper bodies are refused before parsing).
constexpr int kMaxJsonDepth = 64;
// Returns false when `text` nests arrays/objects deeper than max_depth (strings are skipped).
bool json_depth_ok(std::string_view text, int max_depth);

// Parses a request body: errors are kInvalidArgument with the parser's message (including
// ill-formed UTF-8 inside strings) or "body must be a JSON object".
Result<Json> parse_json_object(std::string_view body);

}  // namespace sgl::server
