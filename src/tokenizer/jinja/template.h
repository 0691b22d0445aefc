// A sandboxed Jinja2 interpreter for chat templates. Template::parse() compiles the source once;
// render() may then be called any number of times, concurrently from several threads.
//
// Semantics follow jinja2 3.1 as transformers configures it for chat templates
// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols): Python values and
// printing, jinja2's Undefined (printing it gives "", using it otherwise is an error), scoping
// of loops and macros, and the sandbox's refusal to call mutating methods such as list.append.
//
// Templates are untrusted input: nothing here touches files, the network or the environment;
// every failure (syntax error with line and column, type error, raise_exception(), an exceeded
// limit) is a Status, never a crash or an exception.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/status.h"
#include "tokenizer/jinja/value.h"

namespace sgl::tokenizer::jinja {

struct Program;

// Resource limits for parsing and rendering one template.
struct Limits {
  int max_nesting_depth = 256;            // nested blocks / expression height
  int max_call_depth = 64;                // nested macro calls
  int64_t max_loop_iterations = 1000000;  // total for-loop iterations per render
  size_t max_output_bytes = 16u << 20;    // rendered text (and each captured block)
  size_t max_work_bytes = 256u << 20;     // bytes of strings and containers built per render
  int64_t max_steps = 50000000;           // expression evaluations per render
  int64_t max_render_ms = 10000;          // wall-clock backstop per render; 0 disables
};

// A local date and time, what Python's datetime.now() returns.
struct CivilTime {
  int year = 1970, month = 1, day = 1;  // month 1..12, day 1..31
  int hour = 0, minute = 0, second = 0;
};
// Supplies "now" for strftime_now(). The default reads the system clock in local time.
using Clock = std::function<CivilTime()>;
CivilTime local_now();

// Variables a render sees, in addition to the globals (range, dict, namespace, joiner,
// raise_exception, strftime_now).
using Variables = std::vector<std::pair<std::string, Value>>;

class Template {
 public:
  // Compiles `source`. Errors read "template syntax error at line L, column C: ...".
  static Result<Template> parse(std::string_view source, const Limits& limits = Limits());

  // Renders with `variables`. A raise_exception(msg) call fails with exactly `msg` as the
  // message; other failures say "template error at line L: <what>". `clock` drives
  // strftime_now (default: local_now). Thread-safe.
  Result<std::string> render(const Variables& variables, const Clock& clock = Clock()) const;

  const Limits& limits() const { return limits_; }

 private:
  Template(std::shared_ptr<const Program> program, Limits limits)
      : program_(std::move(program)), limits_(limits) {}

  std::shared_ptr<const Program> program_;
  Limits limits_;
};

}  // namespace sgl::tokenizer::jinja
