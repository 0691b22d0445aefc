#include "tokenizer/jinja/interpreter.h"

#include <cmath>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/pystr.h"

namespace sgl::tokenizer::jinja {
namespace {

Status type_error(const std::string& msg) { return invalid_argument("TypeError: " + msg); }
Status exhausted(const std::string& msg) { return Status(StatusCode::kResourceExhausted, msg); }

// A macro defined with {% macro %}, or the `caller` of a {% call %} block.
class MacroCallable : public Callable {
 public:
  MacroCallable(const Stmt* def, Scope* closure, bool is_caller)
      : def_(def), closure_(closure), is_caller_(is_caller) {}
  std::string describe() const override {
    return "<Macro '" + (is_caller_ ? std::string("caller") : def_->text) + "'>";
  }
  Result<Value> call(Renderer& r, CallArgs& args) const override {
    return r.call_macro(*def_, closure_, args, is_caller_);
  }

 private:
  const Stmt* def_;
  Scope* closure_;  // owned by the renderer, alive until the render ends
  bool is_caller_;
};

// How jinja2 names an object in "has no attribute" messages.
std::string object_type_repr(const Value& v) {
  if (v.is_none()) return "None";
  return std::string(type_name(v)) + " object";
}

Value missing_attribute(const Value& obj, std::string_view name) {
  std::string hint = "'";
  hint += object_type_repr(obj);
  hint += "' has no attribute '";
  hint += name;
  hint += "'";
  return Value::undefined(std::move(hint));
}

Value unsafe_attribute(const Value& obj, std::string_view name) {
  return Value::undefined("access to attribute '" + std::string(name) + "' of '" + type_name(obj) +
                              "' object is unsafe.",
                          true);
}

enum class AttrLookup { kFound, kUnsafe, kMissing };

// Python attribute lookup on our builtin types (methods, namespace attributes, loop fields).
AttrLookup lookup_attribute(const Value& obj, std::string_view name, Value* out) {
  if (name.size() > 4 && name.substr(0, 2) == "__" && name.substr(name.size() - 2) == "__") {
    return AttrLookup::kUnsafe;
  }
  switch (find_method(obj, name)) {
    case MethodStatus::kSafe:
      *out = bound_method(obj, name);
      return AttrLookup::kFound;
    case MethodStatus::kUnsafe:
      return AttrLookup::kUnsafe;
    case MethodStatus::kNone:
      break;
  }
  if (obj.is_namespace()) {
    if (const Value* v = obj.as_namespace().attrs.find(name)) {
      *out = *v;
      return AttrLookup::kFound;
    }
  } else if (obj.is_loop()) {
    Value v = loop_attribute(obj, name);
    if (!v.is_undefined()) {
      *out = std::move(v);
      return AttrLookup::kFound;
    }
  }
  return AttrLookup::kMissing;
}

// Python's slice.indices(): normalized start, stop, step and the number of items.
struct SliceIndices {
  int64_t start, stop, step, count;
};

Result<SliceIndices> slice_indices(const Value& start, const Value& stop, const Value& step,
                                   int64_t len) {
  auto bound = [](const Value& v, int64_t* out) -> bool {
    if (v.is_none()) return false;
    *out = v.as_int();
    return true;
  };
  SliceIndices s{0, 0, 1, 0};
  if (!step.is_none()) {
    s.step = step.as_int();
    if (s.step == 0) return invalid_argument("ValueError: slice step cannot be zero");
    if (s.step == INT64_MIN) s.step = -INT64_MAX;  // Python clamps the same way
  }
  int64_t lower = s.step < 0 ? -1 : 0;
  int64_t upper = s.step < 0 ? len - 1 : len;
  auto adjust = [&](const Value& v, int64_t dflt) {
    int64_t x;
    if (!bound(v, &x)) return dflt;
    if (x < 0) {
      x += len;
      if (x < lower) x = lower;
    } else if (x > upper) {
      x = upper;
    }
    return x;
  };
  s.start = adjust(start, s.step < 0 ? upper : lower);
  s.stop = adjust(stop, s.step < 0 ? lower : upper);
  if (s.step < 0) {
    s.count = s.stop < s.start ? (s.start - s.stop - 1) / (-s.step) + 1 : 0;
  } else {
    s.count = s.start < s.stop ? (s.stop - s.start - 1) / s.step + 1 : 0;
  }
  return s;
}

// Python int // and % (floor semantics).
Result<int64_t> int_floordiv(int64_t a, int64_t b) {
  if (b == 0) return invalid_argument("ZeroDivisionError: integer division or modulo by zero");
  if (a == INT64_MIN && b == -1) return invalid_argument("OverflowError: integer overflow");
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

Result<int64_t> int_mod(int64_t a, int64_t b) {
  if (b == 0) return invalid_argument("ZeroDivisionError: integer modulo by zero");
  if (b == -1) return int64_t{0};
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

// CPython's float_divmod.
void float_divmod(double vx, double wx, double* floordiv, double* mod) {
  double m = std::fmod(vx, wx);
  double div = (vx - m) / wx;
  if (m != 0) {
    if ((wx < 0) != (m < 0)) {
      m += wx;
      div -= 1.0;
    }
  } else {
    m = std::copysign(0.0, wx);
  }
  double fd;
  if (div != 0) {
    fd = std::floor(div);
    if (div - fd > 0.5) fd += 1.0;
  } else {
    fd = std::copysign(0.0, vx / wx);
  }
  *floordiv = fd;
  *mod = m;
}

Result<Value> int_pow(int64_t base, int64_t exp) {
  if (exp < 0) {
    if (base == 0) {
      return invalid_argument("ZeroDivisionError: 0.0 cannot be raised to a negative power");
    }
    return Value::number(std::pow(static_cast<double>(base), static_cast<double>(exp)));
  }
  int64_t result = 1, b = base;
  while (exp > 0) {
    if (exp & 1) {
      if (__builtin_mul_overflow(result, b, &result)) {
        return invalid_argument("OverflowError: integer result too large");
      }
    }
    exp >>= 1;
    if (exp > 0 && __builtin_mul_overflow(b, b, &b)) {
      return invalid_argument("OverflowError: integer result too large");
    }
  }
  return Value::integer(result);
}

const char* op_symbol(BinOp op) {
  switch (op) {
    case BinOp::kAdd:
      return "+";
    case BinOp::kSub:
      return "-";
    case BinOp::kMul:
      return "*";
    case BinOp::kDiv:
      return "/";
    case BinOp::kFloorDiv:
      return "//";
    case BinOp::kMod:
      return "%";
    case BinOp::kPow:
      return "** or pow()";
  }
  return "?";
}

const char* cmp_symbol(CmpOp op) {
  switch (op) {
    case CmpOp::kLt:
      return "<";
    case CmpOp::kLe:
      return "<=";
    case CmpOp::kGt:
      return ">";
    case CmpOp::kGe:
      return ">=";
    default:
      return "==";
  }
}

}  // namespace

bool CallArgs::take_keyword(std::string_view name, Value* out) {
  for (auto it = keyword.begin(); it != keyword.end(); ++it) {
    if (it->first == name) {
      *out = std::move(it->second);
      keyword.erase(it);
      return true;
    }
  }
  return false;
}

Renderer::Renderer(const Program& program, const Limits& limits, const Clock& clock)
    : program_(program), limits_(limits), clock_(clock) {}

Renderer::~Renderer() {
  // Namespaces and loop states are the only mutable objects, so only they can form reference
  // cycles ({% set ns.me = ns %}, loop.changed(loop)); emptying them frees everything the render
  // built.
  for (auto& ns : namespaces_) ns->attrs.entries.clear();
  for (auto& loop : loops_) {
    loop->last_changed = Value();
    loop->sequence = Value();
  }
  for (Scope& s : scope_storage_) s.vars.clear();
}

Value Renderer::new_namespace(Dict attrs) {
  auto ns = std::make_shared<Namespace>();
  ns->attrs = std::move(attrs);
  namespaces_.push_back(ns);
  return Value::namespace_object(std::move(ns));
}

// --- scopes ---------------------------------------------------------------------------------

Scope* Renderer::acquire_scope(Scope* parent) {
  Scope* s;
  if (!free_scopes_.empty()) {
    s = free_scopes_.back();
    free_scopes_.pop_back();
  } else {
    s = &scope_storage_.emplace_back();
  }
  s->parent = parent;
  s->captured = false;
  return s;
}

void Renderer::release_scope(Scope* s) {
  if (s->captured) return;
  s->vars.clear();
  free_scopes_.push_back(s);
}

void Renderer::capture(Scope* s) {
  for (; s && !s->captured; s = s->parent) s->captured = true;
}

Value Renderer::lookup(int symbol, Scope* scope) const {
  for (Scope* s = scope; s; s = s->parent) {
    if (const Value* v = s->find_local(symbol)) return *v;
  }
  return Value::undefined("'" + program_.symbols[symbol] + "' is undefined");
}

// --- errors and budgets ---------------------------------------------------------------------

Status Renderer::undefined_error(const Value& undefined) const {
  const std::string& hint = undefined.undefined_hint();
  if (undefined.undefined_is_unsafe()) return invalid_argument("SecurityError: " + hint);
  return invalid_argument("UndefinedError: " + (hint.empty() ? "value is undefined" : hint));
}

Status Renderer::charge(size_t bytes) {
  work_bytes_ += bytes;
  if (work_bytes_ > limits_.max_work_bytes) {
    return exhausted("the template built more than " + std::to_string(limits_.max_work_bytes) +
                     " bytes of data");
  }
  return Status::ok();
}

Result<Value> Renderer::make_string(std::string s) {
  SGL_RETURN_IF_ERROR(charge(s.size()));
  return Value::string(std::move(s));
}

Status Renderer::raise_template_error(std::string message) {
  raised_ = true;
  return invalid_argument(std::move(message));
}

Status Renderer::locate(Status st, uint32_t line) {
  if (!st.is_ok() && !error_located_) {
    error_located_ = true;
    error_line_ = line;
  }
  return st;
}

Status Renderer::append_output(std::string_view text) {
  out_->append(text);
  if (out_->size() > limits_.max_output_bytes) {
    return exhausted("the rendered output exceeds " + std::to_string(limits_.max_output_bytes) +
                     " bytes");
  }
  return Status::ok();
}

// --- rendering ------------------------------------------------------------------------------

Result<std::string> Renderer::render(const Variables& variables) {
  deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(limits_.max_render_ms);
  Scope* root = acquire_scope(nullptr);
  for (auto& [name, value] : global_functions()) {
    int sym = program_.find_symbol(std::string(name));
    if (sym >= 0) root->set(sym, value);
  }
  for (const auto& [name, value] : variables) {
    int sym = program_.find_symbol(name);
    if (sym >= 0) root->set(sym, value);
  }
  std::string out;
  out_ = &out;
  Status st = exec_body(program_.body, root);
  out_ = nullptr;
  if (!st.is_ok()) {
    if (raised_) return st;
    return Status(st.code(),
                  "template error at line " + std::to_string(error_line_) + ": " + st.message());
  }
  return out;
}

Status Renderer::exec_body(const StmtList& body, Scope* scope) {
  for (const auto& stmt : body) {
    SGL_RETURN_IF_ERROR(locate(exec(*stmt, scope), stmt->line));
    if (flow_ != Flow::kNone) return Status::ok();
  }
  return Status::ok();
}

Result<std::string> Renderer::capture_body(const StmtList& body, Scope* scope) {
  std::string buf;
  std::string* saved = out_;
  out_ = &buf;
  Status st = exec_body(body, scope);
  out_ = saved;
  if (!st.is_ok()) return st;
  return buf;
}

Status Renderer::exec(const Stmt& s, Scope* scope) {
  switch (s.kind) {
    case StmtKind::kText:
      return append_output(s.text);
    case StmtKind::kOutput:
      for (const auto& e : s.exprs) {
        SGL_ASSIGN_OR_RETURN(Value v, eval(*e, scope));
        if (v.is_string()) {
          SGL_RETURN_IF_ERROR(append_output(v.as_string()));
        } else {
          std::string text;
          append_str(text, v);
          SGL_RETURN_IF_ERROR(append_output(text));
        }
      }
      return Status::ok();
    case StmtKind::kIf:
      for (size_t i = 0; i < s.exprs.size(); ++i) {
        SGL_ASSIGN_OR_RETURN(Value cond, eval(*s.exprs[i], scope));
        if (truthy(cond)) return exec_body(s.bodies[i], scope);
      }
      return exec_body(s.else_body, scope);
    case StmtKind::kFor:
      return exec_for(s, scope);
    case StmtKind::kSet: {
      SGL_ASSIGN_OR_RETURN(Value v, eval(*s.exprs[0], scope));
      return assign(*s.target, v, scope);
    }
    case StmtKind::kSetBlock: {
      Scope* inner = acquire_scope(scope);
      Result<std::string> text = capture_body(s.body, inner);
      release_scope(inner);
      if (!text.is_ok()) return text.status();
      SGL_ASSIGN_OR_RETURN(Value v, make_string(std::move(text).value()));
      if (s.exprs[0]) {
        SGL_ASSIGN_OR_RETURN(v, eval_filter(*s.exprs[0], scope, &v));
      }
      return assign(*s.target, v, scope);
    }
    case StmtKind::kMacro: {
      capture(scope);
      scope->set(s.symbol,
                 Value::callable(std::make_shared<MacroCallable>(&s, scope, /*is_caller=*/false)));
      return Status::ok();
    }
    case StmtKind::kCallBlock:
      return exec_call_block(s, scope);
    case StmtKind::kFilterBlock: {
      Scope* inner = acquire_scope(scope);
      Result<std::string> text = capture_body(s.body, inner);
      release_scope(inner);
      if (!text.is_ok()) return text.status();
      SGL_ASSIGN_OR_RETURN(Value v, make_string(std::move(text).value()));
      SGL_ASSIGN_OR_RETURN(v, eval_filter(*s.exprs[0], scope, &v));
      std::string out;
      append_str(out, v);
      return append_output(out);
    }
    case StmtKind::kWith: {
      ValueList values;
      for (const auto& e : s.exprs) {
        SGL_ASSIGN_OR_RETURN(Value v, eval(*e, scope));
        values.push_back(std::move(v));
      }
      Scope* inner = acquire_scope(scope);
      Status st;
      for (size_t i = 0; i < values.size() && st.is_ok(); ++i) {
        st = assign(*s.targets[i], values[i], inner);
      }
      if (st.is_ok()) st = exec_body(s.body, inner);
      release_scope(inner);
      return st;
    }
    case StmtKind::kScope: {
      Scope* inner = acquire_scope(scope);
      Status st = exec_body(s.body, inner);
      release_scope(inner);
      return st;
    }
    case StmtKind::kBreak:
      flow_ = Flow::kBreak;
      return Status::ok();
    case StmtKind::kContinue:
      flow_ = Flow::kContinue;
      return Status::ok();
  }
  return internal_error("unknown statement kind");
}

Status Renderer::exec_for(const Stmt& s, Scope* scope) {
  SGL_ASSIGN_OR_RETURN(Value iterable, eval(*s.exprs[0], scope));
  SGL_ASSIGN_OR_RETURN(Sequence seq, iterate(iterable));
  auto state = std::make_shared<LoopState>();
  if (s.exprs[1]) {
    ValueList filtered;
    Scope* probe = acquire_scope(scope);
    Status st;
    for (const Value& item : seq.get()) {
      probe->vars.clear();
      st = assign(*s.target, item, probe);
      if (!st.is_ok()) break;
      Result<Value> keep = eval(*s.exprs[1], probe);
      if (!keep.is_ok()) {
        st = keep.status();
        break;
      }
      if (truthy(*keep)) filtered.push_back(item);
    }
    release_scope(probe);
    SGL_RETURN_IF_ERROR(st);
    state->sequence = Value::list(std::move(filtered));
  } else if (seq.keep.has_items()) {
    state->sequence = seq.keep;
  } else {
    state->sequence = Value::list(std::move(seq.owned));
  }
  const ValueList* items = &state->items();
  Value loop_value = Value::loop(state);
  Scope* iter_scope = acquire_scope(scope);
  Status st;
  for (size_t i = 0; i < items->size(); ++i) {
    if (++iterations_ > limits_.max_loop_iterations) {
      st = exhausted("the template ran more than " + std::to_string(limits_.max_loop_iterations) +
                     " loop iterations");
      break;
    }
    if (iter_scope->captured) {
      iter_scope = acquire_scope(scope);
    } else {
      iter_scope->vars.clear();
    }
    st = assign(*s.target, (*items)[i], iter_scope);
    if (!st.is_ok()) break;
    if (program_.loop_symbol >= 0) iter_scope->set(program_.loop_symbol, loop_value);
    state->index0 = static_cast<int64_t>(i);
    st = exec_body(s.body, iter_scope);
    if (!st.is_ok()) break;
    if (flow_ == Flow::kBreak) {
      flow_ = Flow::kNone;
      break;
    }
    flow_ = Flow::kNone;
  }
  release_scope(iter_scope);
  loop_value = Value();
  // A `loop` stored somewhere (a namespace, a captured scope) outlives the statement; keep it
  // so the destructor can break cycles through it.
  if (state.use_count() > 1) loops_.push_back(state);
  SGL_RETURN_IF_ERROR(st);
  if (items->empty() && !s.else_body.empty()) {
    Scope* inner = acquire_scope(scope);
    st = exec_body(s.else_body, inner);
    release_scope(inner);
  }
  return st;
}

Status Renderer::exec_call_block(const Stmt& s, Scope* scope) {
  capture(scope);
  Value caller = Value::callable(std::make_shared<MacroCallable>(&s, scope, /*is_caller=*/true));
  const Expr& call_expr = *s.exprs[0];
  SGL_ASSIGN_OR_RETURN(Value fn, eval(*call_expr.args[0], scope));
  CallArgs args;
  SGL_RETURN_IF_ERROR(eval_args(call_expr.call, scope, &args));
  for (const auto& [k, v] : args.keyword) {
    if (k == "caller") {
      return type_error("macro was invoked with two values for the special caller argument");
    }
  }
  args.keyword.emplace_back("caller", caller);
  SGL_ASSIGN_OR_RETURN(Value result, call(fn, args));
  std::string out;
  append_str(out, result);
  return append_output(out);
}

Status Renderer::assign(const Expr& target, const Value& value, Scope* scope) {
  switch (target.kind) {
    case ExprKind::kName:
      scope->set(target.symbol, value);
      return Status::ok();
    case ExprKind::kNsRef: {
      Value ns = lookup(target.symbol, scope);
      if (!ns.is_namespace()) {
        return invalid_argument(
            "TemplateRuntimeError: cannot assign attribute on non-namespace object");
      }
      ns.as_namespace().attrs.set(target.name, value);
      return Status::ok();
    }
    case ExprKind::kTuple: {
      SGL_ASSIGN_OR_RETURN(Sequence seq, iterate(value));
      const ValueList& items = seq.get();
      size_t n = target.args.size();
      if (items.size() < n) {
        return invalid_argument("ValueError: not enough values to unpack (expected " +
                                std::to_string(n) + ", got " + std::to_string(items.size()) + ")");
      }
      if (items.size() > n) {
        return invalid_argument("ValueError: too many values to unpack (expected " +
                                std::to_string(n) + ")");
      }
      for (size_t i = 0; i < n; ++i) SGL_RETURN_IF_ERROR(assign(*target.args[i], items[i], scope));
      return Status::ok();
    }
    default:
      return internal_error("invalid assignment target");
  }
}

// --- expressions ----------------------------------------------------------------------------

Result<Value> Renderer::eval(const Expr& e, Scope* scope) {
  if (++steps_ > limits_.max_steps) {
    return locate(exhausted("the template evaluated more than " +
                            std::to_string(limits_.max_steps) + " expressions"),
                  e.line);
  }
  if ((steps_ & 1023) == 0 && limits_.max_render_ms > 0 &&
      std::chrono::steady_clock::now() > deadline_) {
    return locate(
        exhausted("rendering took longer than " + std::to_string(limits_.max_render_ms) + " ms"),
        e.line);
  }
  Result<Value> r = eval_inner(e, scope);
  if (!r.is_ok()) {
    (void)locate(r.status(), e.line);
  } else if (r->depth() > kMaxValueDepth) {
    return locate(
        exhausted("values nested deeper than " + std::to_string(kMaxValueDepth) + " levels"),
        e.line);
  }
  return r;
}

Result<Value> Renderer::eval_inner(const Expr& e, Scope* scope) {
  switch (e.kind) {
    case ExprKind::kConst:
      return e.value;
    case ExprKind::kName:
      return lookup(e.symbol, scope);
    case ExprKind::kGetattr: {
      SGL_ASSIGN_OR_RETURN(Value obj, eval(*e.args[0], scope));
      return getattr(obj, e.name);
    }
    case ExprKind::kGetitem:
      return eval_getitem(e, scope);
    case ExprKind::kList:
    case ExprKind::kTuple: {
      ValueList items;
      items.reserve(e.args.size());
      for (const auto& a : e.args) {
        SGL_ASSIGN_OR_RETURN(Value v, eval(*a, scope));
        items.push_back(std::move(v));
      }
      SGL_RETURN_IF_ERROR(charge(items.size() * sizeof(Value)));
      return e.kind == ExprKind::kList ? Value::list(std::move(items))
                                       : Value::tuple(std::move(items));
    }
    case ExprKind::kDict: {
      Dict d;
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        SGL_ASSIGN_OR_RETURN(Value k, eval(*e.args[i], scope));
        if (!is_hashable(k))
          return type_error(std::string("unhashable type: '") + type_name(k) + "'");
        SGL_ASSIGN_OR_RETURN(Value v, eval(*e.args[i + 1], scope));
        d.set(std::move(k), std::move(v));
      }
      SGL_RETURN_IF_ERROR(charge(d.size() * 2 * sizeof(Value)));
      return Value::dict(std::move(d));
    }
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      SGL_ASSIGN_OR_RETURN(Value v, eval(*e.args[0], scope));
      if (v.is_undefined()) return undefined_error(v);
      bool neg = e.kind == ExprKind::kNeg;
      if (v.is_integral()) {
        if (!neg) return Value::integer(v.as_int());
        if (v.as_int() == INT64_MIN) return invalid_argument("OverflowError: integer overflow");
        return Value::integer(-v.as_int());
      }
      if (v.is_float()) return Value::number(neg ? -v.as_float() : v.as_float());
      return type_error(std::string("bad operand type for unary ") + (neg ? "-" : "+") + ": '" +
                        type_name(v) + "'");
    }
    case ExprKind::kNot: {
      SGL_ASSIGN_OR_RETURN(Value v, eval(*e.args[0], scope));
      return Value::boolean(!truthy(v));
    }
    case ExprKind::kAnd: {
      SGL_ASSIGN_OR_RETURN(Value a, eval(*e.args[0], scope));
      if (!truthy(a)) return a;
      return eval(*e.args[1], scope);
    }
    case ExprKind::kOr: {
      SGL_ASSIGN_OR_RETURN(Value a, eval(*e.args[0], scope));
      if (truthy(a)) return a;
      return eval(*e.args[1], scope);
    }
    case ExprKind::kBinary: {
      SGL_ASSIGN_OR_RETURN(Value a, eval(*e.args[0], scope));
      SGL_ASSIGN_OR_RETURN(Value b, eval(*e.args[1], scope));
      return binary_op(e.bin_op, a, b);
    }
    case ExprKind::kConcat: {
      std::string s;
      for (const auto& a : e.args) {
        SGL_ASSIGN_OR_RETURN(Value v, eval(*a, scope));
        append_str(s, v);
      }
      return make_string(std::move(s));
    }
    case ExprKind::kCompare: {
      SGL_ASSIGN_OR_RETURN(Value left, eval(*e.args[0], scope));
      for (size_t i = 0; i < e.cmp_ops.size(); ++i) {
        SGL_ASSIGN_OR_RETURN(Value right, eval(*e.args[i + 1], scope));
        SGL_ASSIGN_OR_RETURN(bool ok, compare_op(e.cmp_ops[i], left, right));
        if (!ok) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case ExprKind::kCondExpr: {
      SGL_ASSIGN_OR_RETURN(Value test, eval(*e.args[0], scope));
      if (truthy(test)) return eval(*e.args[1], scope);
      if (e.args[2]) return eval(*e.args[2], scope);
      return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                              " evaluated to false and no else section was defined.");
    }
    case ExprKind::kCall:
      return eval_call(e, scope);
    case ExprKind::kFilter:
      return eval_filter(e, scope, nullptr);
    case ExprKind::kTest: {
      SGL_ASSIGN_OR_RETURN(Value input, eval(*e.args[0], scope));
      CallArgs args;
      SGL_RETURN_IF_ERROR(eval_args(e.call, scope, &args));
      SGL_ASSIGN_OR_RETURN(bool r, e.test(*this, input, args));
      return Value::boolean(r);
    }
    case ExprKind::kSlice:
    case ExprKind::kNsRef:
      break;
  }
  return internal_error("expression kind cannot be evaluated here");
}

Status Renderer::eval_args(const CallExprArgs& a, Scope* scope, CallArgs* out) {
  for (const auto& p : a.positional) {
    SGL_ASSIGN_OR_RETURN(Value v, eval(*p, scope));
    out->positional.push_back(std::move(v));
  }
  if (a.dyn_args) {
    SGL_ASSIGN_OR_RETURN(Value v, eval(*a.dyn_args, scope));
    SGL_ASSIGN_OR_RETURN(Sequence seq, iterate(v));
    for (const Value& x : seq.get()) out->positional.push_back(x);
  }
  for (size_t i = 0; i < a.keyword_names.size(); ++i) {
    SGL_ASSIGN_OR_RETURN(Value v, eval(*a.keyword_values[i], scope));
    out->keyword.emplace_back(a.keyword_names[i], std::move(v));
  }
  if (a.dyn_kwargs) {
    SGL_ASSIGN_OR_RETURN(Value v, eval(*a.dyn_kwargs, scope));
    if (!v.is_dict()) return type_error("argument after ** must be a mapping");
    for (const auto& [k, x] : v.as_dict().entries) {
      if (!k.is_string()) return type_error("keywords must be strings");
      out->keyword.emplace_back(k.as_string(), x);
    }
  }
  return Status::ok();
}

Result<Value> Renderer::eval_call(const Expr& e, Scope* scope) {
  const Expr& callee = *e.args[0];
  Value fn;
  if (callee.kind == ExprKind::kGetattr) {
    SGL_ASSIGN_OR_RETURN(Value obj, eval(*callee.args[0], scope));
    if (obj.is_undefined()) return undefined_error(obj);
    if (find_method(obj, callee.name) == MethodStatus::kSafe) {
      CallArgs args;
      SGL_RETURN_IF_ERROR(eval_args(e.call, scope, &args));
      return call_method(*this, obj, callee.name, args);
    }
    SGL_ASSIGN_OR_RETURN(fn, getattr(obj, callee.name));
  } else {
    SGL_ASSIGN_OR_RETURN(fn, eval(callee, scope));
  }
  CallArgs args;
  SGL_RETURN_IF_ERROR(eval_args(e.call, scope, &args));
  return call(fn, args);
}

Result<Value> Renderer::eval_filter(const Expr& e, Scope* scope, const Value* base) {
  Value input;
  if (e.args[0]) {
    if (e.args[0]->kind == ExprKind::kFilter) {
      SGL_ASSIGN_OR_RETURN(input, eval_filter(*e.args[0], scope, base));
    } else {
      SGL_ASSIGN_OR_RETURN(input, eval(*e.args[0], scope));
    }
  } else if (base) {
    input = *base;
  }
  CallArgs args;
  SGL_RETURN_IF_ERROR(eval_args(e.call, scope, &args));
  return e.filter(*this, input, args);
}

Result<Value> Renderer::eval_getitem(const Expr& e, Scope* scope) {
  SGL_ASSIGN_OR_RETURN(Value obj, eval(*e.args[0], scope));
  const Expr& key = *e.args[1];
  if (key.kind != ExprKind::kSlice) {
    SGL_ASSIGN_OR_RETURN(Value k, eval(key, scope));
    return getitem(obj, k);
  }
  if (obj.is_undefined()) return undefined_error(obj);
  Value bounds[3];
  for (int i = 0; i < 3; ++i) {
    if (key.args[i]) {
      SGL_ASSIGN_OR_RETURN(bounds[i], eval(*key.args[i], scope));
    } else {
      bounds[i] = Value::none();
    }
  }
  bool sliceable = obj.is_string() || obj.is_list() || obj.is_tuple();
  for (const Value& b : bounds) {
    if (!b.is_none() && !b.is_integral()) sliceable = false;
  }
  if (!sliceable) return Value::undefined("'" + object_type_repr(obj) + "' is not sliceable");
  if (obj.is_string()) {
    const std::string& s = obj.as_string();
    bool ascii = py::is_ascii(s);
    std::u32string cps;
    if (!ascii) cps = py::decode(s);
    int64_t n = ascii ? static_cast<int64_t>(s.size()) : static_cast<int64_t>(cps.size());
    SGL_ASSIGN_OR_RETURN(SliceIndices si, slice_indices(bounds[0], bounds[1], bounds[2], n));
    std::string out;
    if (ascii && si.step == 1) {
      out = s.substr(si.start, si.count);
    } else {
      for (int64_t i = 0, j = si.start; i < si.count; ++i, j += si.step) {
        if (ascii) {
          out.push_back(s[j]);
        } else {
          py::append_cp(out, cps[j]);
        }
      }
    }
    return make_string(std::move(out));
  }
  const ValueList& items = obj.items();
  SGL_ASSIGN_OR_RETURN(SliceIndices si, slice_indices(bounds[0], bounds[1], bounds[2],
                                                      static_cast<int64_t>(items.size())));
  ValueList out;
  out.reserve(si.count);
  for (int64_t i = 0, j = si.start; i < si.count; ++i, j += si.step) out.push_back(items[j]);
  SGL_RETURN_IF_ERROR(charge(out.size() * sizeof(Value)));
  return obj.is_list() ? Value::list(std::move(out)) : Value::tuple(std::move(out));
}

// --- object protocol ------------------------------------------------------------------------

Result<Value> Renderer::getattr(const Value& obj, std::string_view name) {
  if (obj.is_undefined()) return undefined_error(obj);
  Value v;
  switch (lookup_attribute(obj, name, &v)) {
    case AttrLookup::kFound:
      return v;
    case AttrLookup::kUnsafe:
      return unsafe_attribute(obj, name);
    case AttrLookup::kMissing:
      break;
  }
  if (obj.is_dict()) {
    if (const Value* found = obj.as_dict().find(name)) return *found;
  }
  return missing_attribute(obj, name);
}

Result<Value> Renderer::attribute_only(const Value& obj, std::string_view name) {
  if (obj.is_undefined()) return undefined_error(obj);
  Value v;
  switch (lookup_attribute(obj, name, &v)) {
    case AttrLookup::kFound:
      return v;
    case AttrLookup::kUnsafe:
      return unsafe_attribute(obj, name);
    case AttrLookup::kMissing:
      break;
  }
  return missing_attribute(obj, name);
}

Result<Value> Renderer::getitem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) return undefined_error(obj);
  switch (obj.kind()) {
    case ValueKind::kDict:
      if (is_hashable(key)) {
        if (const Value* v = obj.as_dict().find(key)) return *v;
      }
      break;
    case ValueKind::kList:
    case ValueKind::kTuple:
      if (key.is_integral()) {
        const ValueList& items = obj.items();
        int64_t n = static_cast<int64_t>(items.size()), i = key.as_int();
        if (i < 0) i += n;
        if (i >= 0 && i < n) return items[i];
      }
      break;
    case ValueKind::kString:
      if (key.is_integral()) {
        const std::string& s = obj.as_string();
        bool ascii = py::is_ascii(s);
        int64_t n = ascii ? static_cast<int64_t>(s.size()) : static_cast<int64_t>(py::length(s));
        int64_t i = key.as_int();
        if (i < 0) i += n;
        if (i >= 0 && i < n) {
          if (ascii) return Value::string(std::string(1, s[i]));
          size_t b = py::byte_offset(s, i), end = py::byte_offset(s, i + 1);
          return Value::string(s.substr(b, end - b));
        }
      }
      break;
    default:
      break;
  }
  if (key.is_string()) {
    Value v;
    switch (lookup_attribute(obj, key.as_string(), &v)) {
      case AttrLookup::kFound:
        return v;
      case AttrLookup::kUnsafe:
        return unsafe_attribute(obj, key.as_string());
      case AttrLookup::kMissing:
        return missing_attribute(obj, key.as_string());
    }
  }
  return Value::undefined(object_type_repr(obj) + " has no element " + repr(key));
}

Result<Value> Renderer::call(const Value& callee, CallArgs& args) {
  if (callee.is_callable()) return callee.as_callable().call(*this, args);
  if (callee.is_undefined()) return undefined_error(callee);
  return type_error(std::string("'") + type_name(callee) + "' object is not callable");
}

Result<Value> Renderer::call_macro(const Stmt& def, Scope* closure, CallArgs& args,
                                   bool is_caller) {
  const Signature& sig = def.signature;
  std::string name = is_caller ? "caller" : def.text;
  size_t np = sig.params.size();
  if (args.positional.size() > np && !sig.uses_varargs) {
    return type_error("macro '" + name + "' takes not more than " + std::to_string(np) +
                      " argument(s)");
  }
  if (call_depth_ >= limits_.max_call_depth) {
    return exhausted("macro calls nested deeper than " + std::to_string(limits_.max_call_depth) +
                     " levels");
  }
  ++call_depth_;
  Scope* s = acquire_scope(closure);
  Status st;
  size_t first_default = np - sig.defaults.size();
  for (size_t i = 0; i < np && st.is_ok(); ++i) {
    Value v;
    if (i < args.positional.size()) {
      v = args.positional[i];
    } else if (args.take_keyword(sig.names[i], &v)) {
      // keyword argument
    } else if (i >= first_default) {
      Result<Value> d = eval(*sig.defaults[i - first_default], s);
      if (!d.is_ok()) {
        st = d.status();
        break;
      }
      v = std::move(d).value();
    } else {
      v = Value::undefined("parameter '" + sig.names[i] + "' was not provided");
    }
    s->set(sig.params[i], std::move(v));
  }
  if (st.is_ok() && sig.uses_caller) {
    Value c;
    if (!args.take_keyword("caller", &c)) c = Value::undefined("No caller defined");
    s->set(program_.caller_symbol, std::move(c));
  }
  if (st.is_ok() && sig.uses_varargs) {
    ValueList extra;
    for (size_t i = np; i < args.positional.size(); ++i) extra.push_back(args.positional[i]);
    s->set(program_.varargs_symbol, Value::tuple(std::move(extra)));
  }
  if (st.is_ok()) {
    if (sig.uses_kwargs) {
      Dict kw;
      for (auto& [k, v] : args.keyword) kw.set(k, v);
      s->set(program_.kwargs_symbol, Value::dict(std::move(kw)));
    } else if (!args.keyword.empty()) {
      st = type_error("macro '" + name + "' takes no keyword argument '" +
                      args.keyword.front().first + "'");
    }
  }
  Result<std::string> text = st.is_ok() ? capture_body(def.body, s) : Result<std::string>(st);
  release_scope(s);
  --call_depth_;
  if (!text.is_ok()) return text.status();
  return make_string(std::move(text).value());
}

Result<Sequence> Renderer::iterate(const Value& v) {
  Sequence seq;
  switch (v.kind()) {
    case ValueKind::kUndefined:
      return seq;
    case ValueKind::kList:
    case ValueKind::kTuple:
    case ValueKind::kIterator:
      seq.keep = v;
      return seq;
    case ValueKind::kDict:
      for (const auto& [k, x] : v.as_dict().entries) seq.owned.push_back(k);
      return seq;
    case ValueKind::kString: {
      const std::string& s = v.as_string();
      SGL_RETURN_IF_ERROR(charge(s.size() * (sizeof(Value) + 16)));
      size_t i = 0;
      while (i < s.size()) {
        size_t j = i + 1;
        while (j < s.size() && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) ++j;
        seq.owned.push_back(Value::string(s.substr(i, j - i)));
        i = j;
      }
      return seq;
    }
    default:
      return type_error(std::string("'") + type_name(v) + "' object is not iterable");
  }
}

Result<Value> Renderer::apply_filter(std::string_view name, const Value& input, CallArgs& args) {
  FilterFn fn = find_filter(name);
  if (!fn) {
    return invalid_argument("TemplateRuntimeError: no filter named '" + std::string(name) + "'");
  }
  return fn(*this, input, args);
}

Result<bool> Renderer::apply_test(std::string_view name, const Value& input, CallArgs& args) {
  TestFn fn = find_test(name);
  if (!fn) {
    return invalid_argument("TemplateRuntimeError: no test named '" + std::string(name) + "'");
  }
  return fn(*this, input, args);
}

// --- operators ------------------------------------------------------------------------------

Result<Value> Renderer::binary_op(BinOp op, const Value& a, const Value& b) {
  if (a.is_undefined()) return undefined_error(a);
  if (b.is_undefined()) return undefined_error(b);
  auto unsupported = [&]() {
    return type_error(std::string("unsupported operand type(s) for ") + op_symbol(op) + ": '" +
                      type_name(a) + "' and '" + type_name(b) + "'");
  };
  if (a.is_number() && b.is_number()) {
    bool ints = a.is_integral() && b.is_integral();
    switch (op) {
      case BinOp::kAdd:
      case BinOp::kSub:
      case BinOp::kMul: {
        if (ints) {
          int64_t r;
          bool overflow = op == BinOp::kAdd   ? __builtin_add_overflow(a.as_int(), b.as_int(), &r)
                          : op == BinOp::kSub ? __builtin_sub_overflow(a.as_int(), b.as_int(), &r)
                                              : __builtin_mul_overflow(a.as_int(), b.as_int(), &r);
          if (overflow) return invalid_argument("OverflowError: integer overflow");
          return Value::integer(r);
        }
        double x = a.as_float(), y = b.as_float();
        return Value::number(op == BinOp::kAdd ? x + y : op == BinOp::kSub ? x - y : x * y);
      }
      case BinOp::kDiv: {
        double y = b.as_float();
        if (y == 0) {
          return invalid_argument(ints ? "ZeroDivisionError: division by zero"
                                       : "ZeroDivisionError: float division by zero");
        }
        return Value::number(a.as_float() / y);
      }
      case BinOp::kFloorDiv:
      case BinOp::kMod: {
        if (ints) {
          if (op == BinOp::kFloorDiv) {
            SGL_ASSIGN_OR_RETURN(int64_t q, int_floordiv(a.as_int(), b.as_int()));
            return Value::integer(q);
          }
          SGL_ASSIGN_OR_RETURN(int64_t m, int_mod(a.as_int(), b.as_int()));
          return Value::integer(m);
        }
        double y = b.as_float();
        if (y == 0) {
          return invalid_argument(op == BinOp::kMod
                                      ? "ZeroDivisionError: float modulo"
                                      : "ZeroDivisionError: float floor division by zero");
        }
        double fd, m;
        float_divmod(a.as_float(), y, &fd, &m);
        return Value::number(op == BinOp::kFloorDiv ? fd : m);
      }
      case BinOp::kPow: {
        if (ints) return int_pow(a.as_int(), b.as_int());
        double x = a.as_float(), y = b.as_float();
        if (x == 0 && y < 0) {
          return invalid_argument("ZeroDivisionError: 0.0 cannot be raised to a negative power");
        }
        if (x < 0 && y != std::floor(y)) {
          return invalid_argument("ValueError: complex results are not supported");
        }
        double r = std::pow(x, y);
        if (std::isinf(r) && std::isfinite(x) && std::isfinite(y)) {
          return invalid_argument("OverflowError: numerical result out of range");
        }
        return Value::number(r);
      }
    }
  }
  switch (op) {
    case BinOp::kAdd:
      if (a.is_string() && b.is_string()) return make_string(a.as_string() + b.as_string());
      if ((a.is_list() && b.is_list()) || (a.is_tuple() && b.is_tuple())) {
        ValueList items = a.items();
        items.insert(items.end(), b.items().begin(), b.items().end());
        SGL_RETURN_IF_ERROR(charge(items.size() * sizeof(Value)));
        return a.is_list() ? Value::list(std::move(items)) : Value::tuple(std::move(items));
      }
      if (a.is_string() || a.is_list() || a.is_tuple()) {
        return type_error(std::string("can only concatenate ") + type_name(a) + " (not \"" +
                          type_name(b) + "\") to " + type_name(a));
      }
      return unsupported();
    case BinOp::kMul: {
      const Value* seq = nullptr;
      const Value* count = nullptr;
      if ((a.is_string() || a.is_list() || a.is_tuple()) && b.is_integral()) {
        seq = &a;
        count = &b;
      } else if ((b.is_string() || b.is_list() || b.is_tuple()) && a.is_integral()) {
        seq = &b;
        count = &a;
      }
      if (!seq) {
        if (a.is_string() || a.is_list() || a.is_tuple() || b.is_string() || b.is_list() ||
            b.is_tuple()) {
          const Value& other = (a.is_string() || a.is_list() || a.is_tuple()) ? b : a;
          return type_error(std::string("can't multiply sequence by non-int of type '") +
                            type_name(other) + "'");
        }
        return unsupported();
      }
      int64_t n = std::max<int64_t>(0, count->as_int());
      size_t unit =
          seq->is_string() ? seq->as_string().size() : seq->items().size() * sizeof(Value);
      if (unit > 0 && static_cast<uint64_t>(n) > limits_.max_work_bytes / unit) {
        return exhausted("the template built more than " + std::to_string(limits_.max_work_bytes) +
                         " bytes of data");
      }
      SGL_RETURN_IF_ERROR(charge(unit * n));
      if (seq->is_string()) {
        std::string out;
        out.reserve(unit * n);
        for (int64_t i = 0; i < n; ++i) out += seq->as_string();
        return Value::string(std::move(out));
      }
      ValueList out;
      for (int64_t i = 0; i < n; ++i)
        out.insert(out.end(), seq->items().begin(), seq->items().end());
      return seq->is_list() ? Value::list(std::move(out)) : Value::tuple(std::move(out));
    }
    case BinOp::kMod:
      if (a.is_string()) {
        SGL_ASSIGN_OR_RETURN(std::string s, percent_format(*this, a.as_string(), b));
        return make_string(std::move(s));
      }
      return unsupported();
    default:
      return unsupported();
  }
}

Result<bool> Renderer::compare_op(CmpOp op, const Value& a, const Value& b) {
  if (a.has_items() && b.has_items()) {
    SGL_RETURN_IF_ERROR(charge(std::min(a.items().size(), b.items().size())));
  }
  switch (op) {
    case CmpOp::kEq:
      return equals(a, b);
    case CmpOp::kNe:
      return !equals(a, b);
    case CmpOp::kIn:
      return contains(b, a);
    case CmpOp::kNotIn: {
      SGL_ASSIGN_OR_RETURN(bool in, contains(b, a));
      return !in;
    }
    default:
      break;
  }
  if (a.is_undefined()) return undefined_error(a);
  if (b.is_undefined()) return undefined_error(b);
  Result<int> c = compare(a, b);
  if (!c.is_ok()) {
    return type_error(std::string("'") + cmp_symbol(op) + "' not supported between instances of '" +
                      type_name(a) + "' and '" + type_name(b) + "'");
  }
  int r = *c;
  if (r == 2) return false;  // NaN
  switch (op) {
    case CmpOp::kLt:
      return r < 0;
    case CmpOp::kLe:
      return r <= 0;
    case CmpOp::kGt:
      return r > 0;
    case CmpOp::kGe:
      return r >= 0;
    default:
      return false;
  }
}

Result<bool> Renderer::contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case ValueKind::kUndefined:
      return false;
    case ValueKind::kString:
      if (!item.is_string()) {
        return type_error(std::string("'in <string>' requires string as left operand, not ") +
                          type_name(item));
      }
      SGL_RETURN_IF_ERROR(charge(container.as_string().size() / 16));
      return container.as_string().find(item.as_string()) != std::string::npos;
    case ValueKind::kList:
    case ValueKind::kTuple:
    case ValueKind::kIterator:
      SGL_RETURN_IF_ERROR(charge(container.items().size()));
      for (const Value& x : container.items()) {
        if (equals(x, item)) return true;
      }
      return false;
    case ValueKind::kDict:
      if (!is_hashable(item)) {
        return type_error(std::string("unhashable type: '") + type_name(item) + "'");
      }
      return container.as_dict().find(item) != nullptr;
    default:
      return type_error(std::string("argument of type '") + type_name(container) +
                        "' is not iterable");
  }
}

}  // namespace sgl::tokenizer::jinja
