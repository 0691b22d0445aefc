// Runtime objects shared by the interpreter and the builtins: call arguments, the Callable
// interface (macros, builtin functions, bound methods) and the state behind `loop`.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "support/status.h"
#include "tokenizer/jinja/value.h"

namespace sgl::tokenizer::jinja {

class Renderer;

// Evaluated arguments of one call: f(a, b, key=c).
struct CallArgs {
  ValueList positional;
  std::vector<std::pair<std::string, Value>> keyword;

  // Removes and returns the keyword argument `name`, or nullptr-equivalent (Undefined, false).
  bool take_keyword(std::string_view name, Value* out);
};

// Something a template can call. Implementations are immutable or keep per-render state only
// (a Callable is created during one render and never shared across threads).
class Callable {
 public:
  virtual ~Callable() = default;
  // What str() prints, e.g. "<Macro 'greet'>".
  virtual std::string describe() const = 0;
  virtual Result<Value> call(Renderer& r, CallArgs& args) const = 0;
};

// The state behind `loop` inside a for loop body. The renderer updates it in place each
// iteration; `sequence` holds the (filtered) items being iterated, so a `loop` that outlives its
// for statement (stored in a namespace) stays valid.
struct LoopState {
  Value sequence;  // a list
  int64_t index0 = 0;
  int64_t depth0 = 0;
  Value last_changed;  // argument of the previous loop.changed(...) call
  bool changed_called = false;

  const ValueList& items() const { return sequence.items(); }
  int64_t length() const { return static_cast<int64_t>(items().size()); }
};

}  // namespace sgl::tokenizer::jinja
