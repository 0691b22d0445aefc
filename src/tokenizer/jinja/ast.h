// The parsed form of a template: expression and statement trees mirroring jinja2's nodes, plus
// the table of variable names (names are interned to small integers at parse time so the
// renderer never compares strings to find a variable). Immutable after parsing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/jinja/runtime.h"
#include "tokenizer/jinja/value.h"

namespace sgl::tokenizer::jinja {

class Renderer;
struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtList = std::vector<std::unique_ptr<Stmt>>;

// A builtin filter: input | name(args...).
using FilterFn = Result<Value> (*)(Renderer& r, const Value& input, CallArgs& args);
// A builtin test: input is name(args...).
using TestFn = Result<bool> (*)(Renderer& r, const Value& input, CallArgs& args);

enum class ExprKind : uint8_t {
  kConst,     // value
  kName,      // symbol
  kNsRef,     // ns.attr as an assignment target: symbol (ns), name (attr)
  kGetattr,   // args[0].name
  kGetitem,   // args[0][args[1]]
  kSlice,     // args[0]:args[1]:args[2] (each may be null); only as a Getitem key
  kList,      // [args...]
  kTuple,     // (args...)
  kDict,      // {args[0]: args[1], args[2]: args[3], ...}
  kNeg,       // -args[0]
  kPos,       // +args[0]
  kNot,       // not args[0]
  kAnd,       // args[0] and args[1]
  kOr,        // args[0] or args[1]
  kBinary,    // args[0] <bin_op> args[1]
  kConcat,    // args[0] ~ args[1] ~ ...
  kCompare,   // args[0] <cmp_ops[0]> args[1] <cmp_ops[1]> args[2] ... (chained)
  kCondExpr,  // args[1] if args[0] else args[2] (args[2] may be null)
  kCall,      // args[0](call)
  kFilter,    // args[0] | name(call); args[0] is null inside {% filter %} and {% set x | f %}
  kTest,      // args[0] is name(call)
};

enum class BinOp : uint8_t { kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow };
enum class CmpOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn };

// Arguments of a call, filter or test as written.
struct CallExprArgs {
  std::vector<ExprPtr> positional;
  std::vector<std::string> keyword_names;
  std::vector<ExprPtr> keyword_values;
  ExprPtr dyn_args;    // *args
  ExprPtr dyn_kwargs;  // **kwargs
};

struct Expr {
  ExprKind kind;
  uint32_t line = 0;
  uint32_t depth = 1;  // height of this subtree (bounded by the parser's nesting limit)
  Value value;         // kConst
  std::string name;    // attribute, filter or test name
  int symbol = -1;     // kName, kNsRef
  BinOp bin_op = BinOp::kAdd;
  std::vector<CmpOp> cmp_ops;
  std::vector<ExprPtr> args;
  CallExprArgs call;
  FilterFn filter = nullptr;
  TestFn test = nullptr;
};

enum class StmtKind : uint8_t {
  kText,         // text
  kOutput,       // {{ exprs[0] }} (or {% print a, b %})
  kIf,           // if exprs[i]: bodies[i] ...; else: else_body
  kFor,          // for target in exprs[0] [if exprs[1]]: body; else: else_body
  kSet,          // target = exprs[0]
  kSetBlock,     // {% set target | filter %}body{% endset %}; exprs[0] is the filter or null
  kMacro,        // macro name(params): body
  kCallBlock,    // {% call(params) exprs[0] %}body{% endcall %}
  kFilterBlock,  // {% filter exprs[0] %}body{% endfilter %}
  kWith,         // with targets[i] = exprs[i]: body
  kScope,        // a body run in its own scope ({% generation %})
  kBreak,
  kContinue,
};

// A macro or call-block signature.
struct Signature {
  std::vector<int> params;         // symbols
  std::vector<std::string> names;  // same order
  std::vector<ExprPtr> defaults;   // for the last defaults.size() params
  bool uses_varargs = false;
  bool uses_kwargs = false;
  bool uses_caller = false;
};

struct Stmt {
  StmtKind kind;
  uint32_t line = 0;
  std::string text;  // kText; macro name for kMacro
  int symbol = -1;   // kMacro: the macro's name
  std::vector<ExprPtr> exprs;
  ExprPtr target;                // kFor, kSet, kSetBlock
  std::vector<ExprPtr> targets;  // kWith
  std::vector<StmtList> bodies;  // kIf branches
  StmtList body;
  StmtList else_body;
  Signature signature;  // kMacro, kCallBlock
};

// A parsed template.
struct Program {
  StmtList body;
  std::vector<std::string> symbols;  // symbol id -> name
  std::unordered_map<std::string, int> symbol_ids;
  int loop_symbol = -1;    // "loop", if the template mentions it
  int caller_symbol = -1;  // "caller"
  int varargs_symbol = -1;
  int kwargs_symbol = -1;

  // Returns the id of `name`, or -1 if the template never mentions it.
  int find_symbol(const std::string& name) const {
    auto it = symbol_ids.find(name);
    return it == symbol_ids.end() ? -1 : it->second;
  }
};

}  // namespace sgl::tokenizer::jinja
