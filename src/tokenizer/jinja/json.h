// JSON <-> template values: request data (messages, tools) enters templates as Python-like
// dicts and lists, and the tojson filter writes values back the way Python's json.dumps does
// (transformers' tojson: ensure_ascii=False, sort_keys=False, json.dumps separators and indent).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "support/status.h"
#include "tokenizer/jinja/value.h"

namespace sgl::tokenizer::jinja {

// Converts JSON to a value: objects become dicts in the JSON object's key order, arrays lists,
// integers ints (unsigned ones above INT64_MAX become floats), strings are made well-formed
// UTF-8 (ill-formed bytes become U+FFFD). Fails on nesting deeper than kMaxValueDepth.
Result<Value> from_json(const nlohmann::json& j);
Result<Value> from_json(const nlohmann::ordered_json& j);

// Options of Python's json.dumps that the tojson filter exposes.
struct JsonDumpOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;          // nullopt: single line
  std::optional<std::string> item_separator;  // default ", " (or "," with indent)
  std::optional<std::string> key_separator;   // default ": "
  bool sort_keys = false;
  // Output larger than this fails (ResourceExhausted) instead of growing further.
  size_t max_bytes = SIZE_MAX;
};

// json.dumps(v): floats print as Python's repr (NaN, Infinity), dict keys that are numbers,
// bools or None are converted to strings as Python does. Fails for values JSON cannot hold
// (Undefined, callables, generators, ...) with Python's TypeError message.
Result<std::string> to_json(const Value& v, const JsonDumpOptions& options);

}  // namespace sgl::tokenizer::jinja
