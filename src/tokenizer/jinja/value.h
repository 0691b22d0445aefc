// Values of the Jinja interpreter: the Python objects a chat template can see (None, bool, int,
// float, str, list, tuple, dict, namespace, callables) plus jinja2's Undefined, with Python's
// semantics for truthiness, equality, ordering, str() and repr().
//
// Lists, tuples, dicts and strings are immutable once built (the sandbox forbids mutating
// methods), so a Value is a cheap handle: copying it shares the payload. The only mutable object
// is a namespace(), whose attributes `{% set ns.x = ... %}` assigns. Values built while parsing
// (constants in the template) are never mutated and may be shared between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/status.h"

namespace sgl::tokenizer::jinja {

class Value;
class Callable;
struct Dict;
struct Namespace;
struct LoopState;

enum class ValueKind : uint8_t {
  kUndefined,  // jinja2's Undefined: a missing variable, attribute or item
  kNone,
  kBool,
  kInt,     // int64; arithmetic that overflows is an error
  kFloat,   // double
  kString,  // UTF-8, always well-formed; lengths and indices count code points
  kList,
  kTuple,
  kIterator,  // a one-shot iterable: generator or dict view (see IterTag); holds its items
  kDict,      // insertion-ordered
  kNamespace,
  kCallable,  // macros, builtin functions and bound methods
  kLoop,      // the `loop` object of a for loop
};

// What kind of Python iterator a kIterator value stands for. Generators have no len() and are
// always true; dict views have a len() and print as dict_items([...]) etc.
enum class IterTag : uint8_t { kGenerator, kDictItems, kDictKeys, kDictValues, kReverse };

using ValueList = std::vector<Value>;

// The deepest nesting of containers a render may build (see Value::depth).
inline constexpr uint32_t kMaxValueDepth = 500;

class Value {
 public:
  Value() : kind_(ValueKind::kUndefined) {}

  static Value undefined() { return Value(); }
  // An Undefined that remembers why it is undefined, for the error raised when it is used.
  // `unsafe` marks the sandbox's refusal (a mutating method such as list.append): using it is a
  // SecurityError rather than an UndefinedError.
  static Value undefined(std::string hint, bool unsafe = false);
  static Value none() { return Value(ValueKind::kNone); }
  static Value boolean(bool b) {
    Value v(ValueKind::kBool);
    v.int_ = b ? 1 : 0;
    return v;
  }
  static Value integer(int64_t i) {
    Value v(ValueKind::kInt);
    v.int_ = i;
    return v;
  }
  static Value number(double d) {
    Value v(ValueKind::kFloat);
    v.float_ = d;
    return v;
  }
  static Value string(std::string s);
  static Value list(ValueList items);
  static Value tuple(ValueList items);
  static Value iterator(ValueList items, IterTag tag);
  static Value dict(Dict d);
  static Value dict(std::shared_ptr<const Dict> d);
  static Value namespace_object(std::shared_ptr<Namespace> ns);
  static Value callable(std::shared_ptr<const Callable> fn);
  static Value loop(std::shared_ptr<LoopState> loop);

  ValueKind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == ValueKind::kUndefined; }
  bool is_none() const { return kind_ == ValueKind::kNone; }
  bool is_bool() const { return kind_ == ValueKind::kBool; }
  bool is_int() const { return kind_ == ValueKind::kInt; }
  bool is_float() const { return kind_ == ValueKind::kFloat; }
  // int, float or bool (Python's numbers.Number; bool is an int subclass).
  bool is_number() const {
    return kind_ == ValueKind::kInt || kind_ == ValueKind::kFloat || kind_ == ValueKind::kBool;
  }
  // int or bool.
  bool is_integral() const { return kind_ == ValueKind::kInt || kind_ == ValueKind::kBool; }
  bool is_string() const { return kind_ == ValueKind::kString; }
  bool is_list() const { return kind_ == ValueKind::kList; }
  bool is_tuple() const { return kind_ == ValueKind::kTuple; }
  bool is_iterator() const { return kind_ == ValueKind::kIterator; }
  // list, tuple or iterator: anything whose items() are stored as a ValueList.
  bool has_items() const {
    return kind_ == ValueKind::kList || kind_ == ValueKind::kTuple || kind_ == ValueKind::kIterator;
  }
  bool is_dict() const { return kind_ == ValueKind::kDict; }
  bool is_namespace() const { return kind_ == ValueKind::kNamespace; }
  bool is_callable() const { return kind_ == ValueKind::kCallable; }
  bool is_loop() const { return kind_ == ValueKind::kLoop; }

  // REQUIRES: the matching kind (checked).
  bool as_bool() const;
  int64_t as_int() const;   // int or bool
  double as_float() const;  // int, float or bool
  const std::string& as_string() const;
  const ValueList& items() const;  // list, tuple or iterator
  IterTag iter_tag() const;
  const Dict& as_dict() const;
  Namespace& as_namespace() const;
  const Callable& as_callable() const;
  LoopState& as_loop() const;

  // For Undefined: the hint given at creation ("" if none) and whether it is a sandbox refusal.
  const std::string& undefined_hint() const;
  bool undefined_is_unsafe() const;

  // True iff both handles share one heap payload (Python's `is` for containers).
  bool same_object(const Value& other) const;

  // Nesting height: 0 for scalars, 1 + the deepest item for lists, tuples and dicts (namespaces
  // count 1). The renderer refuses values deeper than kMaxValueDepth so that printing,
  // comparing and destroying them cannot exhaust the stack.
  uint32_t depth() const { return depth_; }

 private:
  explicit Value(ValueKind k) : kind_(k) {}
  static uint32_t items_depth(const ValueList& items);

  ValueKind kind_;
  IterTag tag_ = IterTag::kGenerator;
  uint32_t depth_ = 0;
  union {
    int64_t int_ = 0;
    double float_;
  };
  std::shared_ptr<void> ptr_;  // payload for strings, containers, callables, hints
};

// An insertion-ordered dict. Keys follow Python's hashing rules: str, int, float, bool, None and
// tuples of those; 1, 1.0 and True are the same key.
struct Dict {
  std::vector<std::pair<Value, Value>> entries;

  // Returns the value stored under `key`, or nullptr.
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  size_t size() const { return entries.size(); }
  // Inserts or overwrites (an overwritten key keeps its first position, as in Python).
  void set(Value key, Value value);
  void set(std::string_view key, Value value) { set(Value::string(std::string(key)), value); }
};

// The object namespace() returns: attributes assigned with {% set ns.x = ... %}.
struct Namespace {
  Dict attrs;
};

// Python truthiness (Undefined is false).
bool truthy(const Value& v);

// Python's type name of `v` (for error messages): 'str', 'int', 'NoneType', 'dict', ...
const char* type_name(const Value& v);

// Python's str(v) appended to `out`; Undefined prints nothing.
void append_str(std::string& out, const Value& v);
std::string to_str(const Value& v);
// Python's repr(v).
void append_repr(std::string& out, const Value& v);
std::string repr(const Value& v);
// repr(float) as Python prints it: shortest round-trip digits, "1.0", "1e-05", "inf".
std::string format_float(double d);

// Python's ==: numbers compare by value across int/float/bool, list != tuple, dicts compare as
// sets of items, two Undefineds are equal, other objects by identity.
bool equals(const Value& a, const Value& b);
// Python's ordering for <, <=, >, >=: returns <0, 0 or >0, or an error for types that do not
// order (e.g. str < int), worded like Python's TypeError.
Result<int> compare(const Value& a, const Value& b);
// Whether `v` can be a dict key or set member (Python hashability).
bool is_hashable(const Value& v);

// len(v) for values that have one, else an error ("object of type 'int' has no len()").
Result<int64_t> length(const Value& v);

}  // namespace sgl::tokenizer::jinja
