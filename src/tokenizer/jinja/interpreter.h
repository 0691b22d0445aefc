// The tree-walking renderer behind Template::render. One Renderer renders one template once; it
// owns every per-render object (scopes, namespaces, macros), so nothing it creates outlives the
// render and concurrent renders share only the immutable Program.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/status.h"
#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/runtime.h"
#include "tokenizer/jinja/template.h"
#include "tokenizer/jinja/value.h"

namespace sgl::tokenizer::jinja {

// A variable scope. Loops, macros, call blocks, filter blocks and `with` open a child scope;
// `if` does not. Scopes are pooled by the renderer; one that a macro closed over ("captured")
// is kept alive until the render ends.
struct Scope {
  Scope* parent = nullptr;
  std::vector<std::pair<int, Value>> vars;  // symbol id -> value
  bool captured = false;

  const Value* find_local(int symbol) const {
    for (const auto& [s, v] : vars) {
      if (s == symbol) return &v;
    }
    return nullptr;
  }
  void set(int symbol, Value v) {
    for (auto& [s, old] : vars) {
      if (s == symbol) {
        old = std::move(v);
        return;
      }
    }
    vars.emplace_back(symbol, std::move(v));
  }
};

// A materialized iterable: the items a for loop or filter walks over.
struct Sequence {
  Value keep;       // a list/tuple/iterator whose items are walked in place
  ValueList owned;  // items built for strings, dicts and Undefined
  const ValueList& get() const { return keep.has_items() ? keep.items() : owned; }
};

class Renderer {
 public:
  Renderer(const Program& program, const Limits& limits, const Clock& clock);

  Result<std::string> render(const Variables& variables);

  // --- services for the builtins ---
  // jinja2's environment.getattr (attribute, then item) and getitem (item, then attribute).
  Result<Value> getattr(const Value& obj, std::string_view name);
  Result<Value> getitem(const Value& obj, const Value& key);
  // Attribute only (the `attr` filter).
  Result<Value> attribute_only(const Value& obj, std::string_view name);
  Result<Value> call(const Value& callee, CallArgs& args);
  // Items of an iterable (str -> characters, dict -> keys, Undefined -> nothing).
  Result<Sequence> iterate(const Value& v);
  // Filters and tests by name at runtime (map('upper'), select('odd')).
  Result<Value> apply_filter(std::string_view name, const Value& input, CallArgs& args);
  Result<bool> apply_test(std::string_view name, const Value& input, CallArgs& args);
  // The error for using an Undefined (UndefinedError, or SecurityError for a sandbox refusal).
  Status undefined_error(const Value& undefined) const;
  // Accounts `bytes` of newly built data against the work budget.
  Status charge(size_t bytes);
  // Builds a string value after charging for it.
  Result<Value> make_string(std::string s);
  // A raise_exception() call: fails the render with exactly `message`.
  Status raise_template_error(std::string message);
  const Clock& clock() const { return clock_; }
  const Limits& limits() const { return limits_; }

  // Invokes a macro (or a call block's caller) defined by `def` with closure `closure`.
  Result<Value> call_macro(const Stmt& def, Scope* closure, CallArgs& args, bool is_caller);
  // Python's binary operators (+, -, *, /, //, %, **) and comparisons on two values.
  Result<Value> binary_op(BinOp op, const Value& a, const Value& b);
  Result<bool> compare_op(CmpOp op, const Value& a, const Value& b);
  // Python's `item in container`.
  Result<bool> contains(const Value& container, const Value& item);
  // A new namespace() object; the renderer breaks reference cycles through it when done.
  Value new_namespace(Dict attrs);

  ~Renderer();
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

 private:
  enum class Flow { kNone, kBreak, kContinue };

  Scope* acquire_scope(Scope* parent);
  void release_scope(Scope* s);
  void capture(Scope* s);
  Value lookup(int symbol, Scope* scope) const;

  Status exec_body(const StmtList& body, Scope* scope);
  Status exec(const Stmt& s, Scope* scope);
  Status exec_for(const Stmt& s, Scope* scope);
  Status exec_call_block(const Stmt& s, Scope* scope);
  Status assign(const Expr& target, const Value& value, Scope* scope);
  Status append_output(std::string_view text);
  Result<std::string> capture_body(const StmtList& body, Scope* scope);

  Result<Value> eval(const Expr& e, Scope* scope);
  Result<Value> eval_inner(const Expr& e, Scope* scope);
  Result<Value> eval_call(const Expr& e, Scope* scope);
  Result<Value> eval_filter(const Expr& e, Scope* scope, const Value* base);
  Result<Value> eval_getitem(const Expr& e, Scope* scope);
  Status eval_args(const CallExprArgs& a, Scope* scope, CallArgs* out);
  Status locate(Status st, uint32_t line);

  const Program& program_;
  const Limits& limits_;
  const Clock& clock_;
  std::deque<Scope> scope_storage_;
  std::vector<std::shared_ptr<Namespace>> namespaces_;
  std::vector<std::shared_ptr<LoopState>> loops_;
  std::vector<Scope*> free_scopes_;
  std::string* out_ = nullptr;
  Flow flow_ = Flow::kNone;
  int call_depth_ = 0;
  int64_t iterations_ = 0;
  int64_t steps_ = 0;
  std::chrono::steady_clock::time_point deadline_;
  size_t work_bytes_ = 0;
  bool error_located_ = false;
  uint32_t error_line_ = 0;
  bool raised_ = false;  // the pending error came from raise_exception()
};

}  // namespace sgl::tokenizer::jinja
