// Helpers shared by the builtin filters, tests and methods: Python-style argument binding and
// argument conversions with Python's TypeError messages. Internal to the jinja module.
#pragma once

#include <array>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "support/status.h"
#include "tokenizer/jinja/runtime.h"
#include "tokenizer/jinja/value.h"

namespace sgl::tokenizer::jinja {

inline Status type_error(const std::string& msg) { return invalid_argument("TypeError: " + msg); }
inline Status value_error(const std::string& msg) { return invalid_argument("ValueError: " + msg); }

// Arguments bound to a parameter list, like a Python signature f(a, b=..., c=...).
struct BoundArgs {
  static constexpr size_t kMax = 8;
  std::array<Value, kMax> values;
  std::array<bool, kMax> given{};

  bool has(size_t i) const { return given[i]; }
  const Value& operator[](size_t i) const { return values[i]; }
};

// Binds `args` to `names` (positional in order, then keywords by name). Errors name `what`.
Result<BoundArgs> bind_args(std::string_view what, CallArgs& args,
                            std::initializer_list<std::string_view> names);

// Integer argument (int or bool); `what` names the function for the error.
Result<int64_t> int_arg(const Value& v, std::string_view what);
// String argument.
Result<std::string> str_arg(const Value& v, std::string_view what);
// Optional string argument: None or absent -> nullopt.
Result<std::optional<std::string>> opt_str_arg(const BoundArgs& b, size_t i, std::string_view what);

// Python's float() / int() of a string: whitespace-trimmed, underscores between digits.
std::optional<double> parse_python_float(std::string_view s);
std::optional<int64_t> parse_python_int(std::string_view s, int base);

}  // namespace sgl::tokenizer::jinja
