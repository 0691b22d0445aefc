#include "tokenizer/jinja/parser.h"

#include <algorithm>
#include <initializer_list>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/lexer.h"

namespace sgl::tokenizer::jinja {
namespace {

// Thrown inside the parser only; parse_program() turns it into a Status.
struct ParseError {
  size_t pos;
  std::string message;
};

using Names = std::initializer_list<std::string_view>;

std::string describe(const Token& t) {
  switch (t.kind) {
    case TokenKind::kData:
      return "template data";
    case TokenKind::kVariableBegin:
      return "'{{'";
    case TokenKind::kVariableEnd:
      return "end of print statement";
    case TokenKind::kBlockBegin:
      return "'{%'";
    case TokenKind::kBlockEnd:
      return "end of statement block";
    case TokenKind::kName:
      return "'" + t.text + "'";
    case TokenKind::kString:
      return "string";
    case TokenKind::kInteger:
      return "integer";
    case TokenKind::kFloat:
      return "float";
    case TokenKind::kOperator:
      return "'" + t.text + "'";
    case TokenKind::kEof:
      return "end of template";
  }
  return "token";
}

class Parser {
 public:
  Parser(std::vector<Token> tokens, std::string_view source, int max_depth)
      : toks_(std::move(tokens)), map_(source), max_depth_(max_depth) {}

  std::unique_ptr<Program> parse() {
    prog_ = std::make_unique<Program>();
    prog_->body = subparse({});
    prog_->loop_symbol = prog_->find_symbol("loop");
    prog_->caller_symbol = prog_->find_symbol("caller");
    prog_->varargs_symbol = prog_->find_symbol("varargs");
    prog_->kwargs_symbol = prog_->find_symbol("kwargs");
    return std::move(prog_);
  }

  const SourceMap& source_map() const { return map_; }

 private:
  struct DepthGuard {
    explicit DepthGuard(Parser* p) : p(p) {
      if (++p->depth_ > p->max_depth_) {
        p->fail("template nesting exceeds the limit of " + std::to_string(p->max_depth_) +
                " levels");
      }
    }
    ~DepthGuard() { --p->depth_; }
    Parser* p;
  };

  // --- token stream ---
  const Token& cur() const { return toks_[i_]; }
  const Token& look() const { return toks_[std::min(i_ + 1, toks_.size() - 1)]; }
  const Token& next() {
    const Token& t = toks_[i_];
    if (i_ + 1 < toks_.size()) ++i_;
    return t;
  }
  uint32_t line() const { return map_.line(cur().pos); }

  [[noreturn]] void fail(const std::string& msg) const { throw ParseError{cur().pos, msg}; }
  [[noreturn]] void fail_at(size_t pos, const std::string& msg) const {
    throw ParseError{pos, msg};
  }

  bool is_op(std::string_view op) const { return cur().is_op(op); }
  bool is_name(std::string_view name) const { return cur().is_name(name); }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!is_name(name)) return false;
    next();
    return true;
  }
  void expect_op(std::string_view op) {
    if (!is_op(op)) fail("expected '" + std::string(op) + "', got " + describe(cur()));
    next();
  }
  const Token& expect_name() {
    if (cur().kind != TokenKind::kName) fail("expected a name, got " + describe(cur()));
    return next();
  }
  void expect_name(std::string_view name) {
    if (!is_name(name)) fail("expected '" + std::string(name) + "', got " + describe(cur()));
    next();
  }
  void expect(TokenKind kind) {
    if (cur().kind != kind) {
      Token want{kind, 0, {}};
      fail("expected " + describe(want) + ", got " + describe(cur()));
    }
    next();
  }

  int intern(const std::string& name) {
    auto [it, inserted] = prog_->symbol_ids.emplace(name, static_cast<int>(prog_->symbols.size()));
    if (inserted) prog_->symbols.push_back(name);
    return it->second;
  }

  // --- node helpers ---
  ExprPtr node(ExprKind kind, uint32_t line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // Computes the subtree height of a finished node and enforces the nesting limit.
  ExprPtr seal(ExprPtr e) {
    uint32_t d = 0;
    auto see = [&](const ExprPtr& c) {
      if (c) d = std::max(d, c->depth);
    };
    for (const auto& c : e->args) see(c);
    for (const auto& c : e->call.positional) see(c);
    for (const auto& c : e->call.keyword_values) see(c);
    see(e->call.dyn_args);
    see(e->call.dyn_kwargs);
    e->depth = d + 1;
    if (e->depth > static_cast<uint32_t>(max_depth_)) {
      fail("expression nesting exceeds the limit of " + std::to_string(max_depth_) + " levels");
    }
    return e;
  }

  ExprPtr unary(ExprKind kind, ExprPtr a, uint32_t line) {
    auto e = node(kind, line);
    e->args.push_back(std::move(a));
    return seal(std::move(e));
  }
  ExprPtr binary(ExprKind kind, ExprPtr a, ExprPtr b, uint32_t line) {
    auto e = node(kind, line);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return seal(std::move(e));
  }

  // --- statements ---
  StmtList subparse(Names end_tokens) {
    StmtList body;
    while (cur().kind != TokenKind::kEof) {
      const Token& t = cur();
      if (t.kind == TokenKind::kData) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kText;
        s->line = line();
        s->text = t.text;
        body.push_back(std::move(s));
        next();
      } else if (t.kind == TokenKind::kVariableBegin) {
        next();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kOutput;
        s->line = line();
        s->exprs.push_back(parse_tuple(false, true, {}, false, false));
        expect(TokenKind::kVariableEnd);
        body.push_back(std::move(s));
      } else if (t.kind == TokenKind::kBlockBegin) {
        next();
        if (cur().kind == TokenKind::kName &&
            std::find(end_tokens.begin(), end_tokens.end(), cur().text) != end_tokens.end()) {
          return body;
        }
        body.push_back(parse_statement());
        expect(TokenKind::kBlockEnd);
      } else {
        fail("unexpected " + describe(t));
      }
    }
    return body;
  }

  StmtList parse_statements(Names end_tokens, bool drop_needle) {
    skip_op(":");
    expect(TokenKind::kBlockEnd);
    StmtList body = subparse(end_tokens);
    if (cur().kind == TokenKind::kEof) {
      std::string expected;
      for (std::string_view t : end_tokens) {
        if (!expected.empty()) expected += " or ";
        expected += "'" + std::string(t) + "'";
      }
      const auto& [tag, tag_line] = open_blocks_.back();
      fail("unexpected end of template: expected " + expected + " to close the '" + tag +
           "' block opened on line " + std::to_string(tag_line));
    }
    if (drop_needle) next();
    return body;
  }

  std::unique_ptr<Stmt> new_stmt(StmtKind kind, uint32_t line) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = line;
    return s;
  }

  std::unique_ptr<Stmt> parse_statement() {
    DepthGuard guard(this);
    const Token& t = cur();
    if (t.kind != TokenKind::kName) fail("tag name expected, got " + describe(t));
    std::string tag = t.text;
    uint32_t tag_line = line();
    static constexpr std::string_view kUnsupported[] = {"block",  "extends", "include",
                                                        "import", "from",    "autoescape"};
    if (std::find(std::begin(kUnsupported), std::end(kUnsupported), tag) !=
        std::end(kUnsupported)) {
      fail("the '" + tag + "' tag is not supported in chat templates");
    }
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail("'" + tag + "' outside loop");
      next();
      return new_stmt(tag == "break" ? StmtKind::kBreak : StmtKind::kContinue, tag_line);
    }
    if (tag == "print") {
      next();
      auto s = new_stmt(StmtKind::kOutput, tag_line);
      while (cur().kind != TokenKind::kBlockEnd) {
        if (!s->exprs.empty()) expect_op(",");
        s->exprs.push_back(parse_expression(true));
      }
      return s;
    }
    open_blocks_.emplace_back(tag, tag_line);
    std::unique_ptr<Stmt> s;
    if (tag == "for") {
      s = parse_for();
    } else if (tag == "if") {
      s = parse_if();
    } else if (tag == "set") {
      s = parse_set();
    } else if (tag == "macro") {
      s = parse_macro();
    } else if (tag == "call") {
      s = parse_call_block();
    } else if (tag == "filter") {
      s = parse_filter_block();
    } else if (tag == "with") {
      s = parse_with();
    } else if (tag == "generation") {
      next();
      s = new_stmt(StmtKind::kScope, tag_line);
      s->body = parse_statements({"endgeneration"}, true);
    } else {
      std::string msg = "unknown tag '" + tag + "'";
      if (open_blocks_.size() > 1) {
        msg += " (the innermost open block is '" + open_blocks_[open_blocks_.size() - 2].first +
               "' from line " + std::to_string(open_blocks_[open_blocks_.size() - 2].second) + ")";
      }
      fail(msg);
    }
    open_blocks_.pop_back();
    return s;
  }

  std::unique_ptr<Stmt> parse_for() {
    auto s = new_stmt(StmtKind::kFor, line());
    next();
    s->target = parse_assign_target(true, false, {"in"}, false);
    expect_name("in");
    s->exprs.push_back(parse_tuple(false, false, {"recursive"}, false, false));
    if (skip_name("if")) {
      s->exprs.push_back(parse_expression(true));
    } else {
      s->exprs.push_back(nullptr);
    }
    if (is_name("recursive")) fail("recursive for loops are not supported");
    ++loop_depth_;
    s->body = parse_statements({"endfor", "else"}, false);
    --loop_depth_;
    if (next().text != "endfor") s->else_body = parse_statements({"endfor"}, true);
    return s;
  }

  std::unique_ptr<Stmt> parse_if() {
    auto s = new_stmt(StmtKind::kIf, line());
    next();
    while (true) {
      s->exprs.push_back(parse_tuple(false, false, {}, false, false));
      s->bodies.push_back(parse_statements({"elif", "else", "endif"}, false));
      const Token& t = next();
      if (t.is_name("elif")) continue;
      if (t.is_name("else")) s->else_body = parse_statements({"endif"}, true);
      break;
    }
    return s;
  }

  std::unique_ptr<Stmt> parse_set() {
    uint32_t l = line();
    next();
    ExprPtr target = parse_assign_target(true, false, {}, true);
    if (skip_op("=")) {
      auto s = new_stmt(StmtKind::kSet, l);
      s->target = std::move(target);
      s->exprs.push_back(parse_tuple(false, true, {}, false, false));
      return s;
    }
    auto s = new_stmt(StmtKind::kSetBlock, l);
    s->target = std::move(target);
    s->exprs.push_back(parse_filter(nullptr, false));
    s->body = parse_statements({"endset"}, true);
    return s;
  }

  Signature parse_signature() {
    Signature sig;
    expect_op("(");
    while (!is_op(")")) {
      if (!sig.params.empty()) expect_op(",");
      const Token& t = expect_name();
      sig.names.push_back(t.text);
      sig.params.push_back(intern(t.text));
      if (skip_op("=")) {
        sig.defaults.push_back(parse_expression(true));
      } else if (!sig.defaults.empty()) {
        fail("non-default argument follows default argument");
      }
    }
    expect_op(")");
    return sig;
  }

  // Parses a macro or caller body, noting whether it mentions varargs / kwargs / caller.
  StmtList parse_callable_body(Names end, Signature* sig) {
    int saved_loop_depth = loop_depth_;
    loop_depth_ = 0;
    size_t v0 = varargs_uses_, k0 = kwargs_uses_, c0 = caller_uses_;
    StmtList body = parse_statements(end, true);
    sig->uses_varargs = varargs_uses_ > v0;
    sig->uses_kwargs = kwargs_uses_ > k0;
    sig->uses_caller = caller_uses_ > c0;
    loop_depth_ = saved_loop_depth;
    return body;
  }

  std::unique_ptr<Stmt> parse_macro() {
    auto s = new_stmt(StmtKind::kMacro, line());
    next();
    const Token& name = expect_name();
    s->text = name.text;
    s->symbol = intern(name.text);
    s->signature = parse_signature();
    s->body = parse_callable_body({"endmacro"}, &s->signature);
    return s;
  }

  std::unique_ptr<Stmt> parse_call_block() {
    auto s = new_stmt(StmtKind::kCallBlock, line());
    next();
    if (is_op("(")) s->signature = parse_signature();
    size_t pos = cur().pos;
    ExprPtr call = parse_expression(true);
    if (call->kind != ExprKind::kCall) fail_at(pos, "expected call");
    s->exprs.push_back(std::move(call));
    s->body = parse_callable_body({"endcall"}, &s->signature);
    return s;
  }

  std::unique_ptr<Stmt> parse_filter_block() {
    auto s = new_stmt(StmtKind::kFilterBlock, line());
    next();
    s->exprs.push_back(parse_filter(nullptr, true));
    s->body = parse_statements({"endfilter"}, true);
    return s;
  }

  std::unique_ptr<Stmt> parse_with() {
    auto s = new_stmt(StmtKind::kWith, line());
    next();
    while (cur().kind != TokenKind::kBlockEnd) {
      if (!s->targets.empty()) expect_op(",");
      s->targets.push_back(parse_assign_target(true, false, {}, false));
      expect_op("=");
      s->exprs.push_back(parse_expression(true));
    }
    s->body = parse_statements({"endwith"}, true);
    return s;
  }

  static bool assignable(const Expr& e) {
    if (e.kind == ExprKind::kName || e.kind == ExprKind::kNsRef) return true;
    if (e.kind == ExprKind::kTuple) {
      for (const auto& a : e.args) {
        if (!assignable(*a)) return false;
      }
      return true;
    }
    return false;
  }

  ExprPtr parse_assign_target(bool with_tuple, bool name_only, Names extra_end,
                              bool with_namespace) {
    size_t pos = cur().pos;
    ExprPtr target;
    if (name_only) {
      const Token& t = expect_name();
      target = node(ExprKind::kName, map_.line(t.pos));
      target->name = t.text;
      target->symbol = intern(t.text);
    } else if (with_tuple) {
      target = parse_tuple(true, true, extra_end, false, with_namespace);
    } else {
      target = parse_primary(with_namespace);
    }
    if (!assignable(*target)) fail_at(pos, "can't assign to this expression");
    return target;
  }

  // --- expressions ---
  bool is_tuple_end(Names extra_end) const {
    TokenKind k = cur().kind;
    if (k == TokenKind::kVariableEnd || k == TokenKind::kBlockEnd || cur().is_op(")")) {
      return true;
    }
    for (std::string_view n : extra_end) {
      if (cur().is_name(n)) return true;
    }
    return false;
  }

  ExprPtr parse_tuple(bool simplified, bool with_condexpr, Names extra_end,
                      bool explicit_parentheses, bool with_namespace) {
    uint32_t l = line();
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      args.push_back(simplified ? parse_primary(with_namespace) : parse_expression(with_condexpr));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parentheses) fail("expected an expression, got " + describe(cur()));
    }
    auto e = node(ExprKind::kTuple, l);
    e->args = std::move(args);
    return seal(std::move(e));
  }

  ExprPtr parse_expression(bool with_condexpr) {
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    DepthGuard guard(this);
    uint32_t l = line();
    ExprPtr expr1 = parse_or();
    while (skip_name("if")) {
      ExprPtr expr2 = parse_or();
      ExprPtr expr3 = skip_name("else") ? parse_condexpr() : nullptr;
      auto e = node(ExprKind::kCondExpr, l);
      e->args.push_back(std::move(expr2));
      e->args.push_back(std::move(expr1));
      e->args.push_back(std::move(expr3));
      expr1 = seal(std::move(e));
      l = line();
    }
    return expr1;
  }

  ExprPtr parse_or() {
    uint32_t l = line();
    ExprPtr left = parse_and();
    while (skip_name("or")) left = binary(ExprKind::kOr, std::move(left), parse_and(), l);
    return left;
  }

  ExprPtr parse_and() {
    uint32_t l = line();
    ExprPtr left = parse_not();
    while (skip_name("and")) left = binary(ExprKind::kAnd, std::move(left), parse_not(), l);
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(this);
      uint32_t l = line();
      next();
      return unary(ExprKind::kNot, parse_not(), l);
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    uint32_t l = line();
    ExprPtr expr = parse_math1();
    auto e = node(ExprKind::kCompare, l);
    while (true) {
      static constexpr std::pair<std::string_view, CmpOp> kOps[] = {
          {"==", CmpOp::kEq}, {"!=", CmpOp::kNe}, {"<", CmpOp::kLt},
          {"<=", CmpOp::kLe}, {">", CmpOp::kGt},  {">=", CmpOp::kGe}};
      bool matched = false;
      for (const auto& [text, op] : kOps) {
        if (is_op(text)) {
          next();
          e->cmp_ops.push_back(op);
          matched = true;
          break;
        }
      }
      if (!matched) {
        if (skip_name("in")) {
          e->cmp_ops.push_back(CmpOp::kIn);
        } else if (is_name("not") && look().is_name("in")) {
          next();
          next();
          e->cmp_ops.push_back(CmpOp::kNotIn);
        } else {
          break;
        }
      }
      if (e->args.empty()) e->args.push_back(std::move(expr));
      e->args.push_back(parse_math1());
    }
    if (e->cmp_ops.empty()) return expr;
    return seal(std::move(e));
  }

  ExprPtr bin(BinOp op, ExprPtr a, ExprPtr b, uint32_t l) {
    auto e = node(ExprKind::kBinary, l);
    e->bin_op = op;
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return seal(std::move(e));
  }

  ExprPtr parse_math1() {
    uint32_t l = line();
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      BinOp op = is_op("+") ? BinOp::kAdd : BinOp::kSub;
      next();
      left = bin(op, std::move(left), parse_concat(), l);
      l = line();
    }
    return left;
  }

  ExprPtr parse_concat() {
    uint32_t l = line();
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    auto e = node(ExprKind::kConcat, l);
    e->args.push_back(std::move(first));
    while (skip_op("~")) e->args.push_back(parse_math2());
    return seal(std::move(e));
  }

  ExprPtr parse_math2() {
    uint32_t l = line();
    ExprPtr left = parse_pow();
    while (true) {
      BinOp op;
      if (is_op("*")) {
        op = BinOp::kMul;
      } else if (is_op("/")) {
        op = BinOp::kDiv;
      } else if (is_op("//")) {
        op = BinOp::kFloorDiv;
      } else if (is_op("%")) {
        op = BinOp::kMod;
      } else {
        break;
      }
      next();
      left = bin(op, std::move(left), parse_pow(), l);
      l = line();
    }
    return left;
  }

  ExprPtr parse_pow() {
    uint32_t l = line();
    ExprPtr left = parse_unary(true);
    while (skip_op("**")) {
      left = bin(BinOp::kPow, std::move(left), parse_unary(true), l);
      l = line();
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(this);
    uint32_t l = line();
    ExprPtr n;
    if (skip_op("-")) {
      n = unary(ExprKind::kNeg, parse_unary(false), l);
    } else if (skip_op("+")) {
      n = unary(ExprKind::kPos, parse_unary(false), l);
    } else {
      n = parse_primary(false);
    }
    n = parse_postfix(std::move(n));
    if (with_filter) n = parse_filter_expr(std::move(n));
    return n;
  }

  ExprPtr parse_primary(bool with_namespace) {
    DepthGuard guard(this);
    const Token& t = cur();
    uint32_t l = line();
    if (t.kind == TokenKind::kName) {
      next();
      if (t.text == "true" || t.text == "false" || t.text == "True" || t.text == "False") {
        auto e = node(ExprKind::kConst, l);
        e->value = Value::boolean(t.text == "true" || t.text == "True");
        return e;
      }
      if (t.text == "none" || t.text == "None") {
        auto e = node(ExprKind::kConst, l);
        e->value = Value::none();
        return e;
      }
      if (with_namespace && is_op(".")) {
        next();
        auto e = node(ExprKind::kNsRef, l);
        e->symbol = intern(t.text);
        e->name = expect_name().text;
        return e;
      }
      auto e = node(ExprKind::kName, l);
      e->name = t.text;
      e->symbol = intern(t.text);
      if (t.text == "varargs") ++varargs_uses_;
      if (t.text == "kwargs") ++kwargs_uses_;
      if (t.text == "caller") ++caller_uses_;
      return e;
    }
    if (t.kind == TokenKind::kString) {
      std::string s;
      while (cur().kind == TokenKind::kString) s += next().text;
      auto e = node(ExprKind::kConst, l);
      e->value = Value::string(std::move(s));
      return e;
    }
    if (t.kind == TokenKind::kInteger || t.kind == TokenKind::kFloat) {
      next();
      auto e = node(ExprKind::kConst, l);
      e->value = t.kind == TokenKind::kInteger ? Value::integer(t.int_value)
                                               : Value::number(t.float_value);
      return e;
    }
    if (t.is_op("(")) {
      next();
      ExprPtr e = parse_tuple(false, true, {}, true, false);
      expect_op(")");
      return e;
    }
    if (t.is_op("[")) return parse_list();
    if (t.is_op("{")) return parse_dict();
    fail("unexpected " + describe(t));
  }

  ExprPtr parse_list() {
    uint32_t l = line();
    expect_op("[");
    auto e = node(ExprKind::kList, l);
    while (!is_op("]")) {
      if (!e->args.empty()) expect_op(",");
      if (is_op("]")) break;
      e->args.push_back(parse_expression(true));
    }
    expect_op("]");
    return seal(std::move(e));
  }

  ExprPtr parse_dict() {
    uint32_t l = line();
    expect_op("{");
    auto e = node(ExprKind::kDict, l);
    while (!is_op("}")) {
      if (!e->args.empty()) expect_op(",");
      if (is_op("}")) break;
      e->args.push_back(parse_expression(true));
      expect_op(":");
      e->args.push_back(parse_expression(true));
    }
    expect_op("}");
    return seal(std::move(e));
  }

  ExprPtr parse_postfix(ExprPtr n) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        n = parse_subscript(std::move(n));
      } else if (is_op("(")) {
        n = parse_call(std::move(n));
      } else {
        return n;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr n) {
    while (true) {
      if (is_op("|")) {
        n = parse_filter(std::move(n), false);
      } else if (is_name("is")) {
        n = parse_test(std::move(n));
      } else if (is_op("(")) {
        n = parse_call(std::move(n));
      } else {
        return n;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr n) {
    uint32_t l = line();
    const Token& t = next();
    if (t.is_op(".")) {
      const Token& attr = next();
      if (attr.kind == TokenKind::kName) {
        auto e = node(ExprKind::kGetattr, l);
        e->name = attr.text;
        e->args.push_back(std::move(n));
        return seal(std::move(e));
      }
      if (attr.kind != TokenKind::kInteger) fail_at(attr.pos, "expected name or number");
      auto key = node(ExprKind::kConst, l);
      key->value = Value::integer(attr.int_value);
      return binary(ExprKind::kGetitem, std::move(n), std::move(key), l);
    }
    // '['
    std::vector<ExprPtr> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    ExprPtr key;
    if (args.size() == 1) {
      key = std::move(args[0]);
    } else {
      key = node(ExprKind::kTuple, l);
      key->args = std::move(args);
      key = seal(std::move(key));
    }
    return binary(ExprKind::kGetitem, std::move(n), std::move(key), l);
  }

  ExprPtr parse_subscribed() {
    uint32_t l = line();
    std::vector<ExprPtr> args;
    if (is_op(":")) {
      next();
      args.push_back(nullptr);
    } else {
      ExprPtr e = parse_expression(true);
      if (!is_op(":")) return e;
      next();
      args.push_back(std::move(e));
    }
    if (is_op(":")) {
      args.push_back(nullptr);
    } else if (!is_op("]") && !is_op(",")) {
      args.push_back(parse_expression(true));
    } else {
      args.push_back(nullptr);
    }
    if (is_op(":")) {
      next();
      if (!is_op("]") && !is_op(",")) {
        args.push_back(parse_expression(true));
      } else {
        args.push_back(nullptr);
      }
    } else {
      args.push_back(nullptr);
    }
    auto e = node(ExprKind::kSlice, l);
    e->args = std::move(args);
    return seal(std::move(e));
  }

  CallExprArgs parse_call_args() {
    size_t pos = cur().pos;
    expect_op("(");
    CallExprArgs a;
    auto ensure = [&](bool ok) {
      if (!ok) fail_at(pos, "invalid syntax for function call expression");
    };
    bool require_comma = false;
    while (!is_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*")) {
        ensure(!a.dyn_args && !a.dyn_kwargs);
        next();
        a.dyn_args = parse_expression(true);
      } else if (is_op("**")) {
        ensure(!a.dyn_kwargs);
        next();
        a.dyn_kwargs = parse_expression(true);
      } else if (cur().kind == TokenKind::kName && look().is_op("=")) {
        ensure(!a.dyn_kwargs);
        std::string key = next().text;
        next();
        a.keyword_names.push_back(std::move(key));
        a.keyword_values.push_back(parse_expression(true));
      } else {
        ensure(!a.dyn_args && !a.dyn_kwargs && a.keyword_names.empty());
        a.positional.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
    return a;
  }

  ExprPtr parse_call(ExprPtr n) {
    uint32_t l = line();
    auto e = node(ExprKind::kCall, l);
    e->call = parse_call_args();
    e->args.push_back(std::move(n));
    return seal(std::move(e));
  }

  std::string dotted_name() {
    std::string name = expect_name().text;
    while (is_op(".")) {
      next();
      name += "." + expect_name().text;
    }
    return name;
  }

  ExprPtr parse_filter(ExprPtr n, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) next();
      uint32_t l = line();
      size_t pos = cur().pos;
      std::string name = dotted_name();
      auto e = node(ExprKind::kFilter, l);
      if (is_op("(")) e->call = parse_call_args();
      e->filter = find_filter(name);
      if (!e->filter) fail_at(pos, "no filter named '" + name + "'");
      e->name = std::move(name);
      e->args.push_back(std::move(n));
      n = seal(std::move(e));
      start_inline = false;
    }
    return n;
  }

  ExprPtr parse_test(ExprPtr n) {
    uint32_t l = line();
    next();  // 'is'
    bool negated = skip_name("not");
    size_t pos = cur().pos;
    std::string name = dotted_name();
    auto e = node(ExprKind::kTest, l);
    const Token& t = cur();
    if (t.is_op("(")) {
      e->call = parse_call_args();
    } else if ((t.kind == TokenKind::kName || t.kind == TokenKind::kString ||
                t.kind == TokenKind::kInteger || t.kind == TokenKind::kFloat || t.is_op("[") ||
                t.is_op("{")) &&
               !t.is_name("else") && !t.is_name("or") && !t.is_name("and")) {
      if (t.is_name("is")) fail("you cannot chain multiple tests with 'is'");
      e->call.positional.push_back(parse_postfix(parse_primary(false)));
    }
    e->test = find_test(name);
    if (!e->test) fail_at(pos, "no test named '" + name + "'");
    e->name = std::move(name);
    e->args.push_back(std::move(n));
    ExprPtr result = seal(std::move(e));
    if (negated) result = unary(ExprKind::kNot, std::move(result), l);
    return result;
  }

  std::vector<Token> toks_;
  size_t i_ = 0;
  SourceMap map_;
  int max_depth_;
  int depth_ = 0;
  int loop_depth_ = 0;
  size_t varargs_uses_ = 0, kwargs_uses_ = 0, caller_uses_ = 0;
  std::vector<std::pair<std::string, uint32_t>> open_blocks_;
  std::unique_ptr<Program> prog_;
};

}  // namespace

Result<std::unique_ptr<Program>> parse_program(std::string_view source, int max_depth) {
  SGL_ASSIGN_OR_RETURN(std::vector<Token> tokens, tokenize(source));
  Parser parser(std::move(tokens), source, max_depth);
  try {
    return parser.parse();
  } catch (const ParseError& e) {
    return invalid_argument("template syntax error at " + parser.source_map().describe(e.pos) +
                            ": " + e.message);
  }
}

}  // namespace sgl::tokenizer::jinja
