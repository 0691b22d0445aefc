#include "grammar/grammar.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "grammar/gbnf.h"
#include "grammar/json_schema.h"
#include "grammar/regex.h"

namespace sgl::grammar {

namespace {

inline void set_bit(uint32_t* mask, int32_t id) { mask[id >> 5] |= uint32_t{1} << (id & 31); }

// Walks the vocabulary trie from DFA state `s`, setting the bit of every token whose bytes keep
// the DFA alive.
void dfa_trie_walk(const Dfa& dfa, const TokenVocab::Trie& t, int32_t s, uint32_t* mask,
                   std::vector<int32_t>& states) {
  states.resize(t.max_depth + 1);
  states[0] = s;
  const int32_t n = t.size();
  const uint8_t* bytes = t.byte.data();
  const uint16_t* depth = t.depth.data();
  const int32_t* ends = t.subtree_end.data();
  const int32_t* tb = t.tok_begin.data();
  const int32_t* ids = t.token_ids.data();
  const int32_t nc = dfa.num_classes;
  const int32_t* trans = dfa.trans.data();
  const uint8_t* cls = dfa.byte_class.data();
  int32_t* st = states.data();
  // The parent's state stays in a register while descending (the common step), so the next
  // transition does not wait on a store/load through `st`.
  int32_t last_depth = 0, last_state = s;
  for (int32_t i = 1; i < n;) {
    int32_t d = depth[i];
    int32_t parent = d == last_depth + 1 ? last_state : st[d - 1];
    int32_t ns = trans[parent * nc + cls[bytes[i]]];
    if (ns < 0) {
      i = ends[i];
      continue;
    }
    st[d] = ns;
    last_depth = d;
    last_state = ns;
    for (int32_t k = tb[i]; k < tb[i + 1]; ++k) set_bit(mask, ids[k]);
    ++i;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// CompiledGrammar

CompiledGrammar::~CompiledGrammar() {
  if (mask_cache_) {
    for (int32_t s = 0; s < dfa_.num_states; ++s) delete[] mask_cache_[s].load();
  }
}

const uint32_t* CompiledGrammar::dfa_state_mask(int32_t s) const {
  uint32_t* m = mask_cache_[s].load(std::memory_order_acquire);
  if (m) return m;
  const size_t words = vocab_->mask_words();
  uint32_t* fresh = new uint32_t[words];
  std::memset(fresh, 0, words * sizeof(uint32_t));
  if (dfa_.has_out[s]) {
    std::vector<int32_t> states;
    dfa_trie_walk(dfa_, vocab_->trie(), s, fresh, states);
  }
  if (dfa_.accepting[s])
    for (int32_t id : vocab_->eog_ids()) set_bit(fresh, id);
  uint32_t* expected = nullptr;
  if (mask_cache_[s].compare_exchange_strong(expected, fresh, std::memory_order_acq_rel)) {
    return fresh;
  }
  delete[] fresh;
  return expected;
}

std::shared_ptr<const std::vector<uint32_t>> CompiledGrammar::find_pda_mask(
    const std::string& key) const {
  std::lock_guard<std::mutex> lock(pda_cache_mu_);
  auto it = pda_mask_cache_.find(key);
  return it == pda_mask_cache_.end() ? nullptr : it->second;
}

void CompiledGrammar::store_pda_mask(std::string key, std::vector<uint32_t> mask) const {
  auto value = std::make_shared<const std::vector<uint32_t>>(std::move(mask));
  std::lock_guard<std::mutex> lock(pda_cache_mu_);
  if (pda_mask_cache_.size() >= kMaxPdaCacheEntries) pda_mask_cache_.clear();
  pda_mask_cache_.emplace(std::move(key), std::move(value));
}

Result<CompiledGrammarPtr> compile_ir(const GrammarIr& ir, std::shared_ptr<const TokenVocab> vocab,
                                      const GrammarOptions& opts) {
  std::shared_ptr<CompiledGrammar> g(new CompiledGrammar());
  g->vocab_ = std::move(vocab);
  if (ir.root() < 0 || ir.rule(ir.root()).body < 0)
    return invalid_argument("grammar has no root rule");
  if (!ir.is_recursive()) {
    Result<Dfa> dfa = build_dfa(ir, opts.max_dfa_states);
    if (dfa.is_ok()) {
      g->is_dfa_ = true;
      g->dfa_ = std::move(dfa).value();
      g->mask_cache_.reset(new std::atomic<uint32_t*>[g->dfa_.num_states]);
      for (int32_t s = 0; s < g->dfa_.num_states; ++s) g->mask_cache_[s].store(nullptr);
      return CompiledGrammarPtr(std::move(g));
    }
    if (dfa.status().code() != StatusCode::kResourceExhausted) return dfa.status();
  }
  SGL_ASSIGN_OR_RETURN(g->pda_, build_pda(ir));
  return CompiledGrammarPtr(std::move(g));
}

Result<CompiledGrammarPtr> compile_grammar(GrammarKind kind, std::string_view text,
                                           std::shared_ptr<const TokenVocab> vocab,
                                           const GrammarOptions& opts) {
  Result<GrammarIr> ir = [&]() -> Result<GrammarIr> {
    switch (kind) {
      case GrammarKind::kRegex:
        return regex_to_ir(text);
      case GrammarKind::kGbnf:
        return gbnf_to_ir(text);
      case GrammarKind::kJsonSchema:
        return json_schema_to_ir(text, opts.whitespace);
    }
    return invalid_argument("unknown grammar kind");
  }();
  if (!ir.is_ok()) return ir.status();
  return compile_ir(*ir, std::move(vocab), opts);
}

Result<CompiledGrammarPtr> GrammarCompiler::compile(GrammarKind kind, std::string_view text,
                                                    const GrammarOptions& opts) {
  Key key{static_cast<int>(kind), static_cast<int>(opts.whitespace), opts.max_dfa_states,
          std::string(text)};
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
  }
  // Compile outside the lock; two threads may race on the same text, the first insert wins.
  SGL_ASSIGN_OR_RETURN(CompiledGrammarPtr g, compile_grammar(kind, text, vocab_, opts));
  std::lock_guard<std::mutex> lock(mu_);
  if (cache_.size() >= max_entries_) cache_.clear();
  auto [it, inserted] = cache_.emplace(std::move(key), g);
  return it->second;
}

size_t GrammarCompiler::cache_size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cache_.size();
}

void apply_mask(std::span<float> logits, std::span<const uint32_t> mask) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const size_t n = logits.size();
  const size_t covered = std::min(n, mask.size() * 32);
  size_t i = 0;
  for (size_t w = 0; i < covered; ++w) {
    uint32_t bits = mask[w];
    size_t end = std::min(covered, i + 32);
    if (bits == 0xFFFFFFFFu) {
      i = end;
      continue;
    }
    for (; i < end; ++i, bits >>= 1)
      if (!(bits & 1)) logits[i] = neg_inf;
  }
  for (; i < n; ++i) logits[i] = neg_inf;
}

// ---------------------------------------------------------------------------------------------
// Pushdown recognizer state: persistent stacks as hash-consed (pos, parent) nodes in an
// append-only arena; a configuration is a sorted set of stack ids whose top position is a
// terminal, plus an "accept" flag (some stack has been fully popped).

struct Matcher::PdaState {
  struct Node {
    int32_t pos;
    int32_t parent;
  };
  struct Snapshot {
    std::vector<int32_t> set;
    bool accept;
    size_t arena;
  };

  const Pda* pda = nullptr;
  std::vector<Node> nodes;
  std::unordered_map<uint64_t, int32_t> index;
  std::vector<int32_t> cur;
  bool cur_accept = false;
  std::vector<Snapshot> snaps;
  // scratch
  std::vector<uint64_t> visited_small;  // linear-probe list while small
  std::unordered_set<uint64_t> visited_big;
  bool mark_visited(uint64_t k) {
    if (visited_small.size() < 48) {
      for (uint64_t v : visited_small)
        if (v == k) return false;
      visited_small.push_back(k);
      return true;
    }
    for (uint64_t v : visited_small)
      if (v == k) return false;
    return visited_big.insert(k).second;
  }
  void clear_visited() {
    visited_small.clear();
    if (!visited_big.empty()) visited_big.clear();
  }
  std::vector<std::pair<int32_t, int32_t>> work;
  std::vector<std::vector<int32_t>> levels;

  static uint64_t key(int32_t pos, int32_t parent) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(pos)) << 32) |
           static_cast<uint32_t>(parent);
  }

  int32_t intern(int32_t pos, int32_t parent) {
    auto [it, inserted] = index.emplace(key(pos, parent), static_cast<int32_t>(nodes.size()));
    if (inserted) nodes.push_back({pos, parent});
    return it->second;
  }

  void truncate(size_t n) {
    for (size_t i = n; i < nodes.size(); ++i) index.erase(key(nodes[i].pos, nodes[i].parent));
    nodes.resize(n);
  }

  // Adds to `out` every stack reachable from "continue at pos, then stack cont" without
  // consuming input; sets *accept when a stack empties.
  void expand_all(std::vector<int32_t>& out, bool* accept) {
    const std::vector<int32_t>& syms = pda->syms;
    while (!work.empty()) {
      auto [pos, cont] = work.back();
      work.pop_back();
      if (!mark_visited(key(pos, cont))) continue;
      int32_t sym = syms[pos];
      if (sym == Pda::kEnd) {
        if (cont < 0) {
          *accept = true;
        } else {
          work.push_back({nodes[cont].pos, nodes[cont].parent});
        }
      } else if (Pda::is_terminal(sym)) {
        out.push_back(intern(pos, cont));
      } else {
        int32_t r = Pda::rule_of(sym);
        int32_t next_cont = syms[pos + 1] == Pda::kEnd ? cont : intern(pos + 1, cont);
        for (int32_t a : pda->rule_alts[r]) work.push_back({a, next_cont});
      }
    }
  }

  void finish_set(std::vector<int32_t>& out) {
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }

  void start(std::vector<int32_t>& out, bool* accept) {
    out.clear();
    *accept = false;
    clear_visited();
    for (int32_t a : pda->rule_alts[pda->root]) work.push_back({a, -1});
    expand_all(out, accept);
    finish_set(out);
  }

  // out = configuration after reading byte b from `in`.
  void advance(const std::vector<int32_t>& in, uint8_t b, std::vector<int32_t>& out, bool* accept) {
    out.clear();
    *accept = false;
    clear_visited();
    for (int32_t id : in) {
      const Node nd = nodes[id];
      if (pda->terminals[pda->syms[nd.pos]].test(b)) work.push_back({nd.pos + 1, nd.parent});
    }
    if (work.empty()) return;
    expand_all(out, accept);
    finish_set(out);
  }

  // A content key for a configuration (independent of node ids): each stack's positions from the
  // top down, stacks sorted, then the accept flag.
  std::string config_key(const std::vector<int32_t>& set, bool accept) const {
    std::vector<std::string> stacks;
    stacks.reserve(set.size());
    for (int32_t id : set) {
      std::string k;
      for (int32_t n = id; n >= 0; n = nodes[n].parent)
        k.append(reinterpret_cast<const char*>(&nodes[n].pos), sizeof(int32_t));
      stacks.push_back(std::move(k));
    }
    std::sort(stacks.begin(), stacks.end());
    std::string key(1, accept ? 'A' : 'N');
    for (const std::string& k : stacks) {
      uint32_t len = static_cast<uint32_t>(k.size());
      key.append(reinterpret_cast<const char*>(&len), sizeof(len));
      key += k;
    }
    return key;
  }

  ByteSet allowed(const std::vector<int32_t>& in) const {
    ByteSet s;
    for (int32_t id : in) s |= pda->terminals[pda->syms[nodes[id].pos]];
    return s;
  }
};

// ---------------------------------------------------------------------------------------------
// Matcher

Matcher::Matcher(CompiledGrammarPtr grammar) : grammar_(std::move(grammar)) {
  if (!grammar_->is_dfa()) {
    pda_ = std::make_unique<PdaState>();
    pda_->pda = &grammar_->pda();
  }
  reset();
}

Matcher::~Matcher() = default;
Matcher::Matcher(Matcher&&) noexcept = default;
Matcher& Matcher::operator=(Matcher&&) noexcept = default;

void Matcher::reset() {
  terminated_ = false;
  history_.clear();
  if (pda_) {
    pda_->truncate(0);
    pda_->snaps.clear();
    pda_->start(pda_->cur, &pda_->cur_accept);
  } else {
    dfa_state_ = grammar_->dfa().start;
  }
  push_history();
}

void Matcher::push_history() {
  history_.push_back({dfa_state_, terminated_});
  if (pda_) pda_->snaps.push_back({pda_->cur, pda_->cur_accept, pda_->nodes.size()});
}

bool Matcher::can_end() const {
  if (pda_) return pda_->cur_accept;
  return grammar_->dfa().accepting[dfa_state_] != 0;
}

void Matcher::fill_mask(std::span<uint32_t> mask) {
  const TokenVocab& vocab = grammar_->vocab();
  const size_t words = vocab.mask_words();
  SGL_CHECK(mask.size() >= words, "fill_mask: mask too small");
  if (terminated_) {
    std::memset(mask.data(), 0, words * sizeof(uint32_t));
    return;
  }
  if (!pda_) {
    std::memcpy(mask.data(), grammar_->dfa_state_mask(dfa_state_), words * sizeof(uint32_t));
    return;
  }
  PdaState& p = *pda_;
  std::string key = p.config_key(p.cur, p.cur_accept);
  if (auto cached = grammar_->find_pda_mask(key)) {
    std::memcpy(mask.data(), cached->data(), words * sizeof(uint32_t));
    return;
  }
  compute_pda_mask(mask.data());
  grammar_->store_pda_mask(std::move(key), std::vector<uint32_t>(mask.data(), mask.data() + words));
}

void Matcher::compute_pda_mask(uint32_t* out) {
  const TokenVocab& vocab = grammar_->vocab();
  const size_t words = vocab.mask_words();
  std::span<uint32_t> mask(out, words);
  std::memset(mask.data(), 0, words * sizeof(uint32_t));
  PdaState& p = *pda_;
  if (p.cur_accept)
    for (int32_t id : vocab.eog_ids()) set_bit(mask.data(), id);
  if (p.cur.empty()) return;
  const TokenVocab::Trie& t = vocab.trie();
  const size_t base = p.nodes.size();
  p.levels.resize(t.max_depth + 1);
  p.levels[0] = p.cur;
  for (int32_t i = 1; i < t.size();) {
    int32_t d = t.depth[i];
    bool acc;
    p.advance(p.levels[d - 1], t.byte[i], p.levels[d], &acc);
    if (p.levels[d].empty() && !acc) {
      i = t.subtree_end[i];
      continue;
    }
    for (int32_t k = t.tok_begin[i]; k < t.tok_begin[i + 1]; ++k)
      set_bit(mask.data(), t.token_ids[k]);
    ++i;
  }
  p.truncate(base);
}

bool Matcher::accept(int32_t id) {
  const TokenVocab& vocab = grammar_->vocab();
  if (terminated_ || id < 0 || id >= vocab.vocab_size()) return false;
  if (vocab.is_eog(id)) {
    if (!can_end()) return false;
    terminated_ = true;
    push_history();
    return true;
  }
  std::string_view bytes = vocab.token_bytes(id);
  if (bytes.empty()) return false;
  return accept_bytes(bytes);
}

bool Matcher::accept_bytes(std::string_view bytes) {
  if (terminated_) return false;
  if (!pda_) {
    const Dfa& dfa = grammar_->dfa();
    int32_t s = dfa_state_;
    for (char c : bytes) {
      s = dfa.next(s, static_cast<uint8_t>(c));
      if (s < 0) return false;
    }
    dfa_state_ = s;
    push_history();
    return true;
  }
  PdaState& p = *pda_;
  const size_t base = p.nodes.size();
  std::vector<int32_t> a = p.cur, b;
  bool acc = p.cur_accept;
  for (char c : bytes) {
    p.advance(a, static_cast<uint8_t>(c), b, &acc);
    if (b.empty() && !acc) {
      p.truncate(base);
      return false;
    }
    a.swap(b);
  }
  p.cur = std::move(a);
  p.cur_accept = acc;
  push_history();
  return true;
}

std::string Matcher::forced_text(size_t max_bytes) {
  std::string out;
  if (terminated_) return out;
  if (!pda_) {
    const Dfa& dfa = grammar_->dfa();
    int32_t s = dfa_state_;
    while (out.size() < max_bytes && !dfa.accepting[s]) {
      int32_t only = -1;
      for (int b = 0; b < 256; ++b) {
        if (dfa.next(s, static_cast<uint8_t>(b)) >= 0) {
          if (only >= 0) return out;
          only = b;
        }
      }
      if (only < 0) break;
      out.push_back(static_cast<char>(only));
      s = dfa.next(s, static_cast<uint8_t>(only));
    }
    return out;
  }
  PdaState& p = *pda_;
  const size_t base = p.nodes.size();
  std::vector<int32_t> a = p.cur, b;
  bool acc = p.cur_accept;
  while (out.size() < max_bytes && !acc) {
    ByteSet s = p.allowed(a);
    if (s.count() != 1) break;
    uint8_t c = static_cast<uint8_t>(s.first());
    p.advance(a, c, b, &acc);
    if (b.empty() && !acc) break;  // cannot happen for a live configuration
    out.push_back(static_cast<char>(c));
    a.swap(b);
  }
  p.truncate(base);
  return out;
}

void Matcher::rollback(size_t n) {
  SGL_CHECK(n <= num_steps(), "rollback past the start");
  history_.resize(history_.size() - n);
  const Step& st = history_.back();
  dfa_state_ = st.dfa_state;
  terminated_ = st.terminated;
  if (pda_) {
    pda_->snaps.resize(history_.size());
    const PdaState::Snapshot& snap = pda_->snaps.back();
    pda_->truncate(snap.arena);
    pda_->cur = snap.set;
    pda_->cur_accept = snap.accept;
  }
}

}  // namespace sgl::grammar
