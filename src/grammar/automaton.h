// Back ends of the grammar IR.
//
//   - Dfa: for regular (non-recursive) grammars. Rule references are inlined, the IR becomes a
//     Thompson NFA over bytes, then a DFA by subset construction over byte equivalence classes,
//     pruned of dead states (every remaining state can still reach acceptance) and minimised.
//   - Pda: for any grammar without left recursion (GBNF, recursive $ref, or a regular grammar
//     whose DFA would be too large): a flat table of rule alternatives that the pushdown
//     recognizer in matcher.cpp runs with a set of persistent stacks (llama.cpp's method).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "grammar/ir.h"
#include "support/status.h"

namespace sgl::grammar {

struct Dfa {
  int32_t num_states = 0;
  int32_t num_classes = 0;
  int32_t start = 0;
  std::array<uint8_t, 256> byte_class{};  // byte -> equivalence class
  std::vector<int32_t> trans;             // [num_states * num_classes], -1 = dead
  std::vector<uint8_t> accepting;         // [num_states]
  std::vector<uint8_t> has_out;           // [num_states]: some byte leads to a live state

  int32_t next(int32_t s, uint8_t b) const { return trans[s * num_classes + byte_class[b]]; }
};

// REQUIRES: !ir.is_recursive(). kResourceExhausted when the NFA or DFA would exceed its cap;
// kInvalidArgument when the grammar matches no string at all.
Result<Dfa> build_dfa(const GrammarIr& ir, int32_t max_states);

// Pushdown table. syms holds every alternative of every rule back to back, each ended by kEnd.
struct Pda {
  static constexpr int32_t kEnd = -1;
  static bool is_terminal(int32_t sym) { return sym >= 0; }
  static int32_t rule_of(int32_t sym) { return -(sym + 2); }
  static int32_t rule_sym(int32_t rule) { return -(rule + 2); }

  std::vector<int32_t> syms;                    // terminal id (>= 0), kEnd, or rule_sym(rule)
  std::vector<ByteSet> terminals;               // terminal id -> byte set
  std::vector<std::vector<int32_t>> rule_alts;  // rule -> start positions in syms
  std::vector<std::string> rule_names;
  int32_t root = 0;
};

// kInvalidArgument naming the rule when the grammar is left-recursive or references a rule with
// no definition.
Result<Pda> build_pda(const GrammarIr& ir);

}  // namespace sgl::grammar
