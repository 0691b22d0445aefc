// The builtin library of the sandbox: jinja2's filters and tests, the str/dict/list methods the
// immutable sandbox allows, and the globals transformers provides (range, dict, namespace,
// joiner, raise_exception, strftime_now).
#pragma once

#include <string_view>
#include <vector>

#include "support/status.h"
#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/runtime.h"
#include "tokenizer/jinja/value.h"

namespace sgl::tokenizer::jinja {

// Returns the builtin filter / test called `name`, or nullptr.
FilterFn find_filter(std::string_view name);
TestFn find_test(std::string_view name);

// Method lookup on builtin types (str, dict, list, tuple, loop).
enum class MethodStatus { kNone, kSafe, kUnsafe };
// Whether `obj` has a method `name`; kUnsafe for the mutating methods the sandbox refuses.
MethodStatus find_method(const Value& obj, std::string_view name);
// Calls method `name` of `obj`. REQUIRES: find_method(obj, name) == kSafe.
Result<Value> call_method(Renderer& r, const Value& obj, std::string_view name, CallArgs& args);
// A bound method value (what `obj.name` evaluates to when not called immediately).
Value bound_method(const Value& obj, std::string_view name);

// Attributes of the loop object (index, first, ...); Undefined if `name` is not one.
Value loop_attribute(const Value& loop, std::string_view name);

// The globals every template sees: (name, value) pairs.
std::vector<std::pair<std::string_view, Value>> global_functions();

// printf-style formatting: `format % args` (args is a tuple, a dict or a single value).
Result<std::string> percent_format(Renderer& r, std::string_view format, const Value& args);

}  // namespace sgl::tokenizer::jinja
