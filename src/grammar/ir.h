// Grammar IR: the one internal form every front end (regex, GBNF, JSON Schema) compiles to, and
// the back ends (DFA for regular grammars, PDA for recursive ones) compile from.
//
// A grammar is a list of named rules; each rule's body is a tree of nodes over bytes: byte sets
// (one byte from a set of 256), sequences, alternations, bounded/unbounded repetition and rule
// references. Unicode is expressed as byte sequences (utf8_range / codepoint_set expand code-point
// ranges into UTF-8 byte-range sequences, surrogates excluded), so everything downstream works on
// bytes. Nodes are append-only and addressed by index; a node may be shared (the IR is a DAG).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sgl::grammar {

// A set of bytes, 256 bits.
struct ByteSet {
  uint64_t w[4] = {0, 0, 0, 0};

  void set(uint8_t b) { w[b >> 6] |= uint64_t{1} << (b & 63); }
  void reset(uint8_t b) { w[b >> 6] &= ~(uint64_t{1} << (b & 63)); }
  bool test(uint8_t b) const { return (w[b >> 6] >> (b & 63)) & 1; }
  void set_range(unsigned lo, unsigned hi) {
    for (unsigned b = lo; b <= hi; ++b) set(static_cast<uint8_t>(b));
  }
  bool empty() const { return (w[0] | w[1] | w[2] | w[3]) == 0; }
  int count() const {
    return __builtin_popcountll(w[0]) + __builtin_popcountll(w[1]) + __builtin_popcountll(w[2]) +
           __builtin_popcountll(w[3]);
  }
  // The lowest byte in the set. REQUIRES: !empty().
  int first() const {
    for (int i = 0; i < 4; ++i)
      if (w[i]) return i * 64 + __builtin_ctzll(w[i]);
    return -1;
  }
  ByteSet& operator|=(const ByteSet& o) {
    for (int i = 0; i < 4; ++i) w[i] |= o.w[i];
    return *this;
  }
  bool operator==(const ByteSet& o) const {
    return w[0] == o.w[0] && w[1] == o.w[1] && w[2] == o.w[2] && w[3] == o.w[3];
  }
};

enum class NodeKind : uint8_t { kEmpty, kBytes, kSeq, kAlt, kRepeat, kRef };

// kRepeat: max_count == kUnbounded means no upper bound.
inline constexpr int32_t kUnbounded = -1;

struct IrNode {
  NodeKind kind = NodeKind::kEmpty;
  ByteSet bytes;              // kBytes
  std::vector<int32_t> kids;  // kSeq, kAlt: children; kRepeat: the one child
  int32_t min_count = 0;      // kRepeat
  int32_t max_count = 0;      // kRepeat
  int32_t rule = -1;          // kRef
};

struct IrRule {
  std::string name;
  int32_t body = -1;  // node index; -1 while being defined
};

// Inclusive code-point range.
using CodepointRange = std::pair<uint32_t, uint32_t>;

class GrammarIr {
 public:
  int32_t empty();
  // A node matching no string at all (an empty alternation).
  int32_t nothing();
  int32_t bytes(const ByteSet& set);
  int32_t byte(uint8_t b);
  int32_t literal(std::string_view s);
  int32_t seq(std::vector<int32_t> kids);
  int32_t alt(std::vector<int32_t> kids);
  int32_t repeat(int32_t kid, int32_t min_count, int32_t max_count);
  int32_t optional(int32_t kid) { return repeat(kid, 0, 1); }
  int32_t star(int32_t kid) { return repeat(kid, 0, kUnbounded); }
  int32_t plus(int32_t kid) { return repeat(kid, 1, kUnbounded); }
  int32_t ref(int32_t rule);

  // One code point in [lo, hi] (surrogates never match), as UTF-8 byte sequences.
  int32_t utf8_range(uint32_t lo, uint32_t hi);
  // One code point in the union of `ranges` (or, with negate, any valid code point outside it).
  int32_t codepoint_set(std::vector<CodepointRange> ranges, bool negate);

  // Adds a rule with no body yet; returns its index. Names need not be unique (front ends that
  // need lookup by name keep their own map).
  int32_t add_rule(std::string name);
  void set_body(int32_t rule, int32_t node) { rules_[rule].body = node; }

  const IrNode& node(int32_t i) const { return nodes_[i]; }
  IrNode& mutable_node(int32_t i) { return nodes_[i]; }
  int32_t num_nodes() const { return static_cast<int32_t>(nodes_.size()); }
  const IrRule& rule(int32_t i) const { return rules_[i]; }
  int32_t num_rules() const { return static_cast<int32_t>(rules_.size()); }

  int32_t root() const { return root_; }
  void set_root(int32_t rule) { root_ = rule; }

  // True iff some rule reachable from the root references itself (directly or not): such a
  // grammar needs the pushdown back end.
  bool is_recursive() const;

 private:
  int32_t add(IrNode n);

  std::vector<IrNode> nodes_;
  std::vector<IrRule> rules_;
  int32_t root_ = -1;
};

// Sorts and merges overlapping/adjacent ranges.
std::vector<CodepointRange> normalize_ranges(std::vector<CodepointRange> ranges);

// Reads exactly `digits` hex digits of `text` at *pos (advancing it) into *out; false (with *pos
// unspecified) when the text ends or a digit is not hex. Shared by the regex and GBNF parsers.
inline bool read_hex_digits(std::string_view text, size_t* pos, size_t digits, uint32_t* out) {
  uint32_t v = 0;
  for (size_t i = 0; i < digits; ++i, ++*pos) {
    if (*pos >= text.size()) return false;
    const char c = text[*pos];
    uint32_t d;
    if (c >= '0' && c <= '9') d = static_cast<uint32_t>(c - '0');
    else if (c >= 'a' && c <= 'f') d = static_cast<uint32_t>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') d = static_cast<uint32_t>(c - 'A' + 10);
    else return false;
    v = v * 16 + d;
  }
  *out = v;
  return true;
}

}  // namespace sgl::grammar
