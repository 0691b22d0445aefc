#include "grammar/grammar.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
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

inline bool subset_of(const ByteSet& a, const ByteSet& b) {
  return ((a.w[0] & ~b.w[0]) | (a.w[1] & ~b.w[1]) | (a.w[2] & ~b.w[2]) | (a.w[3] & ~b.w[3])) == 0;
}

// Subtree shortcut. With `s` the state at a trie node whose strict descendants use the bytes
// `below` and reach `height` levels down: if every byte of `below` moves s to one live state
// s1 (its dominant successor), every byte of `below` moves s1 to one live s2, ... for `height`
// steps, then every string over `below` of length <= height keeps the automaton alive, so every
// token of the subtree is allowed. The chain is followed a run at a time: run_len[s] consecutive
// chain states share s's dominant bytes (and char_to_dom flag), run_end[s] is the state after
// them (see build_runs); a self-loop is an endless run.
struct DfaShortcut {
  const int32_t* run_len;
  const int32_t* run_end;
  const ByteSet* dom_bytes;
  const uint8_t* char_to_dom;

  bool all_live(const ByteSet& below, int32_t height, int32_t s) const {
    for (int32_t left = height; s >= 0;) {
      if (!subset_of(below, dom_bytes[s])) return false;
      if (run_len[s] >= left) return true;
      left -= run_len[s];
      s = run_end[s];
    }
    return false;
  }
  // The UTF-8 variant, for subtrees whose byte strings are valid UTF-8 (utf8_below): ASCII bytes
  // move the chain one step as above and so does every non-ASCII character (char_to_dom), so a
  // path of n <= height characters ends in the chain's n-th state and stops inside a character
  // only in a live state.
  bool all_live_utf8(const ByteSet& below, int32_t height, int32_t s) const {
    for (int32_t left = height; s >= 0;) {
      if (!char_to_dom[s] ||
          ((below.w[0] & ~dom_bytes[s].w[0]) | (below.w[1] & ~dom_bytes[s].w[1])) != 0)
        return false;
      if (run_len[s] >= left) return true;
      left -= run_len[s];
      s = run_end[s];
    }
    return false;
  }
};

inline void clear_subtree_tokens(const TokenVocab& vocab, int32_t node, uint32_t* mask) {
  const TokenVocab::Trie& t = vocab.trie();
  const int32_t d = t.dense[node];
  if (d >= 0) {
    const size_t words = vocab.mask_words();
    const uint32_t* src = t.dense_masks.data() + static_cast<size_t>(d) * words;
    for (size_t w = 0; w < words; ++w) mask[w] &= ~src[w];
    return;
  }
  const int32_t* ids = t.token_ids.data();
  for (int32_t k = t.tok_begin[node], e = t.tok_begin[t.subtree_end[node]]; k < e; ++k)
    mask[ids[k] >> 5] &= ~(uint32_t{1} << (ids[k] & 31));
}

// The plain walk plus the subtree shortcut: same bits as dfa_trie_walk. In a permissive state
// (a long run over many bytes: inside a free string) most tokens are allowed, so the walk starts
// from "every token" and clears dead subtrees instead of setting live ones.
void dfa_trie_walk_fast(const CompiledGrammar& g, int32_t s, uint32_t* mask,
                        std::vector<int32_t>& states) {
  const Dfa& dfa = g.dfa();
  const TokenVocab& vocab = g.vocab();
  const TokenVocab::Trie& t = vocab.trie();
  const DfaShortcut sc{g.dfa_run_len().data(), g.dfa_run_end().data(), g.dfa_dom_bytes().data(),
                       g.dfa_char_to_dom().data()};
  const uint8_t* utf8_below = t.utf8_below.data();
  const uint8_t* utf8_mid = t.utf8_mid.data();
  const int32_t* mid_target = g.dfa_mid_target().data();
  if (sc.all_live(t.below[0], t.height[0], s) ||
      (utf8_below[0] && sc.all_live_utf8(t.below[0], t.height[0], s))) {
    set_subtree_tokens(vocab, 0, mask);
    return;
  }
  const bool complement = sc.dom_bytes[s].count() >= 48 && sc.run_len[s] >= 16;
  if (complement) set_subtree_tokens(vocab, 0, mask);
  states.resize(t.max_depth + 1);
  states[0] = s;
  const int32_t n = t.size();
  const uint8_t* bytes = t.byte.data();
  const uint16_t* depth = t.depth.data();
  const uint16_t* height = t.height.data();
  const ByteSet* below = t.below.data();
  const int32_t* ends = t.subtree_end.data();
  const int32_t* tb = t.tok_begin.data();
  const int32_t* ids = t.token_ids.data();
  const int32_t nc = dfa.num_classes;
  const int32_t* trans = dfa.trans.data();
  const uint8_t* cls = dfa.byte_class.data();
  int32_t* st = states.data();
  int32_t last_depth = 0, last_state = s;
  for (int32_t i = 1; i < n;) {
    int32_t d = depth[i];
    int32_t parent = d == last_depth + 1 ? last_state : st[d - 1];
    int32_t ns = trans[parent * nc + cls[bytes[i]]];
    if (ns < 0) {
      if (complement) clear_subtree_tokens(vocab, i, mask);
      i = ends[i];
      continue;
    }
    // Subtrees of fewer than 4 nodes are cheaper to walk than to test.
    // Inside a character (utf8_mid), the completions all lead to mid_target; the rest of the
    // subtree is then checked from there.
    if (ends[i] - i > 3 &&
        (sc.all_live(below[i], height[i], ns) ||
         (utf8_below[i] && sc.all_live_utf8(below[i], height[i], ns)) ||
         (utf8_mid[i] && mid_target[static_cast<size_t>(ns) * 8 + utf8_mid[i]] >= 0 &&
          sc.all_live_utf8(below[i], height[i],
                           mid_target[static_cast<size_t>(ns) * 8 + utf8_mid[i]])))) {
      if (!complement) set_subtree_tokens(vocab, i, mask);
      i = ends[i];
      continue;
    }
    st[d] = ns;
    last_depth = d;
    last_state = ns;
    if (!complement)
      for (int32_t k = tb[i]; k < tb[i + 1]; ++k) set_bit(mask, ids[k]);
    ++i;
  }
}

// run_len / run_end (see DfaShortcut): runs of dominant-successor chain states with equal
// dominant bytes and char_to_dom flags. Chains that cycle are endless runs.
void build_runs(const std::vector<int32_t>& dom_next, const std::vector<ByteSet>& dom_bytes,
                const std::vector<uint8_t>& char_to_dom, std::vector<int32_t>* run_len,
                std::vector<int32_t>* run_end) {
  constexpr int32_t kEndless = 1 << 30;
  const int32_t n = static_cast<int32_t>(dom_next.size());
  run_len->assign(n, 0);
  run_end->assign(n, -1);
  auto same = [&](int32_t a, int32_t b) {
    return dom_bytes[a] == dom_bytes[b] && char_to_dom[a] == char_to_dom[b];
  };
  std::vector<uint8_t> mark(n, 0);  // 0 new, 1 on the current path, 2 done
  std::vector<int32_t> path;
  for (int32_t s0 = 0; s0 < n; ++s0) {
    if (mark[s0]) continue;
    path.clear();
    int32_t cur = s0;
    bool cycle = false;
    while (true) {
      mark[cur] = 1;
      path.push_back(cur);
      const int32_t nx = dom_next[cur];
      if (nx < 0 || !same(cur, nx) || mark[nx] == 2) break;
      if (mark[nx] == 1) {
        cycle = true;
        break;
      }
      cur = nx;
    }
    for (size_t k = path.size(); k-- > 0;) {
      const int32_t x = path[k];
      const int32_t nx = dom_next[x];
      mark[x] = 2;
      if (cycle) {
        (*run_len)[x] = kEndless;
      } else if (nx >= 0 && same(x, nx)) {
        const int32_t l = (*run_len)[nx];
        (*run_len)[x] = l >= kEndless - 1 ? kEndless : l + 1;
        (*run_end)[x] = (*run_end)[nx];
      } else {
        (*run_len)[x] = 1;
        (*run_end)[x] = nx;
      }
    }
  }
}

// True iff every valid non-ASCII UTF-8 character read from state s leads to `target`. Walks the
// character's bytes, visiting each (DFA class, decoder state) pair once per level.
// The states inside a character that it passes through are appended to *mid as (state, u).
bool dfa_chars_lead_to(const Dfa& dfa, int32_t s, int32_t target,
                       std::vector<std::pair<int32_t, int>>* mid) {
  std::function<bool(int32_t, int, int)> check = [&](int32_t q, int u8, int level) -> bool {
    if (level > 0 && u8 == 0) return q == target;
    std::vector<uint8_t> seen(static_cast<size_t>(dfa.num_classes) * 8, 0);
    const int lo = level == 0 ? 0xC2 : 0x80, hi = level == 0 ? 0xF4 : 0xBF;
    for (int b = lo; b <= hi; ++b) {
      const int nu = utf8_step(u8, static_cast<uint8_t>(b));
      if (nu < 0) continue;
      const int c = dfa.byte_class[b];
      if (seen[c * 8 + nu]) continue;
      seen[c * 8 + nu] = 1;
      const int32_t nq = dfa.trans[q * dfa.num_classes + c];
      if (nq >= 0 && nu != 0) mid->push_back({nq, nu});
      if (nq < 0 || !check(nq, nu, level + 1)) return false;
    }
    return true;
  };
  return check(s, 0, 0);
}

// For each state: the live successor reached by the most bytes (itself on a tie) and those bytes.
void build_dominant_successors(const Dfa& dfa, std::vector<int32_t>* dom_next,
                               std::vector<ByteSet>* dom_bytes) {
  const int32_t nc = dfa.num_classes;
  std::vector<ByteSet> class_bytes(nc);
  std::vector<int32_t> class_size(nc, 0);
  for (int b = 0; b < 256; ++b) {
    class_bytes[dfa.byte_class[b]].set(static_cast<uint8_t>(b));
    ++class_size[dfa.byte_class[b]];
  }
  dom_next->assign(dfa.num_states, -1);
  dom_bytes->assign(dfa.num_states, ByteSet{});
  std::vector<std::pair<int32_t, int32_t>> weight;  // (successor, bytes)
  for (int32_t q = 0; q < dfa.num_states; ++q) {
    weight.clear();
    for (int32_t c = 0; c < nc; ++c) {
      const int32_t to = dfa.trans[q * nc + c];
      if (to < 0) continue;
      auto it = std::find_if(weight.begin(), weight.end(), [&](auto& w) { return w.first == to; });
      if (it == weight.end())
        weight.push_back({to, class_size[c]});
      else
        it->second += class_size[c];
    }
    int32_t best = -1, best_w = 0;
    for (auto [to, w] : weight)
      if (w > best_w || (w == best_w && to == q)) best = to, best_w = w;
    (*dom_next)[q] = best;
    if (best < 0) continue;
    ByteSet u;
    for (int32_t c = 0; c < nc; ++c)
      if (dfa.trans[q * nc + c] == best) u |= class_bytes[c];
    (*dom_bytes)[q] = u;
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
  compute_dfa_mask(s, fresh, /*fast=*/true);
  uint32_t* expected = nullptr;
  if (mask_cache_[s].compare_exchange_strong(expected, fresh, std::memory_order_acq_rel)) {
    return fresh;
  }
  delete[] fresh;
  return expected;
}

void CompiledGrammar::compute_dfa_mask(int32_t s, uint32_t* out, bool fast) const {
  std::memset(out, 0, vocab_->mask_words() * sizeof(uint32_t));
  if (dfa_.has_out[s]) {
    std::vector<int32_t> states;
    if (fast)
      dfa_trie_walk_fast(*this, s, out, states);
    else
      dfa_trie_walk(dfa_, vocab_->trie(), s, out, states);
  }
  if (dfa_.accepting[s])
    for (int32_t id : vocab_->eog_ids()) set_bit(out, id);
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
      build_dominant_successors(g->dfa_, &g->dom_next_, &g->dom_bytes_);
      g->char_to_dom_.assign(g->dfa_.num_states, 0);
      g->mid_target_.assign(static_cast<size_t>(g->dfa_.num_states) * 8, -1);
      std::vector<std::pair<int32_t, int>> mid;
      for (int32_t s = 0; s < g->dfa_.num_states; ++s) {
        // Cheap filter first: a live transition on a common lead byte.
        if (g->dom_next_[s] < 0 || g->dfa_.next(s, 0xC3) < 0) continue;
        mid.clear();
        if (!dfa_chars_lead_to(g->dfa_, s, g->dom_next_[s], &mid)) continue;
        g->char_to_dom_[s] = 1;
        // Every completion from such a (state, u) was checked to end in dom_next[s].
        for (auto [q, u] : mid) g->mid_target_[static_cast<size_t>(q) * 8 + u] = g->dom_next_[s];
      }
      build_runs(g->dom_next_, g->dom_bytes_, g->char_to_dom_, &g->run_len_, &g->run_end_);
      return CompiledGrammarPtr(std::move(g));
    }
    if (dfa.status().code() != StatusCode::kResourceExhausted) return dfa.status();
  }
  SGL_ASSIGN_OR_RETURN(g->pda_, build_pda(ir));
  // Byte classes of the pushdown table: bytes with the same membership in every terminal.
  {
    const size_t nt = g->pda_.terminals.size();
    const size_t sig_words = (nt + 63) / 64;
    std::map<std::vector<uint64_t>, int32_t> index;
    for (int b = 0; b < 256; ++b) {
      std::vector<uint64_t> sig(sig_words, 0);
      for (size_t k = 0; k < nt; ++k)
        if (g->pda_.terminals[k].test(static_cast<uint8_t>(b)))
          sig[k >> 6] |= uint64_t{1} << (k & 63);
      auto [it, inserted] = index.emplace(std::move(sig), static_cast<int32_t>(index.size()));
      g->pda_class_[b] = static_cast<uint8_t>(it->second);
      if (inserted) g->pda_class_bytes_.emplace_back();
      g->pda_class_bytes_[it->second].set(static_cast<uint8_t>(b));
    }
    g->pda_num_classes_ = static_cast<int32_t>(index.size());
  }
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

  // ---- memoised walk (compute_pda_mask_fast) -------------------------------------------------
  // Within one mask computation, configurations are interned by content (stack nodes are
  // hash-consed, so equal sorted id sets are equal configurations) and their transitions on
  // byte classes are computed once.
  struct VecHash {
    size_t operator()(const std::vector<int32_t>& v) const {
      uint64_t h = 0x9E3779B97F4A7C15ull ^ v.size();
      for (int32_t x : v) h = (h ^ static_cast<uint32_t>(x)) * 0x100000001B3ull;
      return static_cast<size_t>(h ^ (h >> 29));
    }
  };
  int32_t num_classes = 0;
  const std::array<uint8_t, 256>* byte_class = nullptr;
  const std::vector<ByteSet>* class_bytes = nullptr;
  std::vector<uint8_t> class_rep;  // one byte of each class
  std::unordered_map<std::vector<int32_t>, int32_t, VecHash> cfg_index;
  std::vector<std::vector<int32_t>> cfg_set;
  std::vector<int32_t> cfg_trans;  // [config * num_classes]: -2 unknown, -1 dead
  std::vector<int32_t> cfg_dom;    // dominant successor, -2 not computed, -1 none
  std::vector<ByteSet> cfg_dom_bytes;
  std::vector<int8_t> cfg_char_to_dom;  // -1 not computed
  std::vector<int32_t> cfg_key, cfg_tmp, cfg_key_levels;

  void walk_reset() {
    cfg_index.clear();
    cfg_set.clear();
    cfg_trans.clear();
    cfg_dom.clear();
    cfg_dom_bytes.clear();
    cfg_char_to_dom.clear();
  }

  int32_t intern_config(const std::vector<int32_t>& set, bool acc) {
    cfg_key.assign(set.begin(), set.end());
    cfg_key.push_back(acc ? -1 : -2);
    auto [it, inserted] = cfg_index.emplace(cfg_key, static_cast<int32_t>(cfg_set.size()));
    if (inserted) {
      cfg_set.push_back(set);
      cfg_trans.resize(cfg_trans.size() + num_classes, -2);
      cfg_dom.push_back(-2);
      cfg_dom_bytes.emplace_back();
      cfg_char_to_dom.push_back(-1);
    }
    return it->second;
  }

  // The configuration after class c from configuration `from` (-1: dead).
  int32_t step(int32_t from, int32_t c) {
    int32_t& slot = cfg_trans[static_cast<size_t>(from) * num_classes + c];
    if (slot != -2) return slot;
    bool acc = false;
    advance(cfg_set[from], class_rep[c], cfg_tmp, &acc);  // does not touch cfg_set
    const int32_t to = (cfg_tmp.empty() && !acc) ? -1 : intern_config(cfg_tmp, acc);
    cfg_trans[static_cast<size_t>(from) * num_classes + c] = to;  // `slot` may have moved
    return to;
  }

  void compute_dom(int32_t cfg) {
    int32_t best = -1, best_w = 0;
    std::vector<std::pair<int32_t, int32_t>> weight;
    for (int32_t c = 0; c < num_classes; ++c) {
      const int32_t to = step(cfg, c);
      if (to < 0) continue;
      const int32_t w = (*class_bytes)[c].count();
      auto it = std::find_if(weight.begin(), weight.end(), [&](auto& x) { return x.first == to; });
      if (it == weight.end())
        weight.push_back({to, w});
      else
        it->second += w;
    }
    for (auto [to, w] : weight)
      if (w > best_w || (w == best_w && to == cfg)) best = to, best_w = w;
    ByteSet u;
    if (best >= 0)
      for (int32_t c = 0; c < num_classes; ++c)
        if (cfg_trans[static_cast<size_t>(cfg) * num_classes + c] == best) u |= (*class_bytes)[c];
    cfg_dom[cfg] = best;
    cfg_dom_bytes[cfg] = u;
  }

  // True iff every valid non-ASCII UTF-8 character read from `cfg` leads to `target` (see
  // dfa_chars_lead_to).
  bool chars_lead_to(int32_t cfg, int32_t target, int u8, int level) {
    if (level > 0 && u8 == 0) return cfg == target;
    uint8_t seen[256 * 8 / 8] = {};  // bit (class * 8 + decoder state)
    const int lo = level == 0 ? 0xC2 : 0x80, hi = level == 0 ? 0xF4 : 0xBF;
    for (int b = lo; b <= hi; ++b) {
      const int nu = utf8_step(u8, static_cast<uint8_t>(b));
      if (nu < 0) continue;
      const int c = (*byte_class)[b];
      const int bit = c * 8 + nu;
      if ((seen[bit >> 3] >> (bit & 7)) & 1) continue;
      seen[bit >> 3] |= static_cast<uint8_t>(1u << (bit & 7));
      const int32_t next = step(cfg, c);
      if (next < 0 || !chars_lead_to(next, target, nu, level + 1)) return false;
    }
    return true;
  }

  // The UTF-8 variant (see dfa_subtree_all_live_utf8).
  bool subtree_all_live_utf8(const ByteSet& below, int32_t height, int32_t cfg) {
    constexpr int32_t kMaxChain = 4;
    for (int32_t k = 0; k < height; ++k) {
      if (k >= kMaxChain) return false;
      if (cfg_dom[cfg] == -2) compute_dom(cfg);
      const int32_t nx = cfg_dom[cfg];
      if (nx < 0) return false;
      const ByteSet u = cfg_dom_bytes[cfg];
      if (((below.w[0] & ~u.w[0]) | (below.w[1] & ~u.w[1])) != 0) return false;
      if (cfg_char_to_dom[cfg] < 0) {
        const int8_t v = chars_lead_to(cfg, nx, 0, 0) ? 1 : 0;
        cfg_char_to_dom[cfg] = v;  // chars_lead_to may grow the tables: index again
      }
      if (!cfg_char_to_dom[cfg]) return false;
      if (nx == cfg) return true;
      cfg = nx;
    }
    return true;
  }

  // Same test as dfa_subtree_all_live, on configurations; chains of distinct configurations are
  // followed at most kMaxChain steps (each new one costs a transition per class).
  bool subtree_all_live(const ByteSet& below, int32_t height, int32_t cfg) {
    constexpr int32_t kMaxChain = 4;
    for (int32_t k = 0; k < height; ++k) {
      if (k >= kMaxChain) return false;
      if (cfg_dom[cfg] == -2) compute_dom(cfg);
      const ByteSet& u = cfg_dom_bytes[cfg];
      if (((below.w[0] & ~u.w[0]) | (below.w[1] & ~u.w[1]) | (below.w[2] & ~u.w[2]) |
           (below.w[3] & ~u.w[3])) != 0)
        return false;
      const int32_t nx = cfg_dom[cfg];
      if (nx == cfg) return true;
      cfg = nx;
    }
    return true;
  }
};

// ---------------------------------------------------------------------------------------------
// Matcher

Matcher::Matcher(CompiledGrammarPtr grammar) : grammar_(std::move(grammar)) {
  if (!grammar_->is_dfa()) {
    pda_ = std::make_unique<PdaState>();
    pda_->pda = &grammar_->pda();
    pda_->num_classes = grammar_->pda_num_classes();
    pda_->byte_class = &grammar_->pda_byte_class();
    pda_->class_bytes = &grammar_->pda_class_bytes();
    for (const ByteSet& b : grammar_->pda_class_bytes())
      pda_->class_rep.push_back(static_cast<uint8_t>(b.first()));
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
  compute_pda_mask_fast(mask.data());
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

void Matcher::compute_pda_mask_fast(uint32_t* out) {
  const TokenVocab& vocab = grammar_->vocab();
  const size_t words = vocab.mask_words();
  std::memset(out, 0, words * sizeof(uint32_t));
  PdaState& p = *pda_;
  if (p.cur_accept)
    for (int32_t id : vocab.eog_ids()) set_bit(out, id);
  if (p.cur.empty()) return;
  // Subtrees with fewer tokens are walked: the shortcut's per-configuration cost (a transition
  // per byte class) does not pay off there.
  constexpr int32_t kMinShortcutTokens = 16;
  const TokenVocab::Trie& t = vocab.trie();
  const size_t base = p.nodes.size();
  p.walk_reset();
  std::vector<int32_t>& lvl = p.cfg_key_levels;
  lvl.assign(t.max_depth + 1, -1);
  lvl[0] = p.intern_config(p.cur, p.cur_accept);
  const uint8_t* cls = p.byte_class->data();
  if (p.subtree_all_live(t.below[0], t.height[0], lvl[0]) ||
      (t.utf8_below[0] && p.subtree_all_live_utf8(t.below[0], t.height[0], lvl[0]))) {
    set_subtree_tokens(vocab, 0, out);
  } else {
    // A configuration that loops on itself over many bytes (inside a string) allows most
    // tokens: start from all of them and clear dead subtrees (see dfa_trie_walk_fast).
    if (p.cfg_dom[lvl[0]] == -2) p.compute_dom(lvl[0]);
    const bool complement = p.cfg_dom[lvl[0]] == lvl[0] && p.cfg_dom_bytes[lvl[0]].count() >= 48;
    if (complement) set_subtree_tokens(vocab, 0, out);
    for (int32_t i = 1; i < t.size();) {
      const int32_t d = t.depth[i];
      const int32_t to = p.step(lvl[d - 1], cls[t.byte[i]]);
      if (to < 0) {
        if (complement) clear_subtree_tokens(vocab, i, out);
        i = t.subtree_end[i];
        continue;
      }
      if (t.height[i] > 0 && t.subtree_tokens(i) >= kMinShortcutTokens &&
          (p.subtree_all_live(t.below[i], t.height[i], to) ||
           (t.utf8_below[i] && p.subtree_all_live_utf8(t.below[i], t.height[i], to)))) {
        if (!complement) set_subtree_tokens(vocab, i, out);
        i = t.subtree_end[i];
        continue;
      }
      lvl[d] = to;
      if (!complement)
        for (int32_t k = t.tok_begin[i]; k < t.tok_begin[i + 1]; ++k) set_bit(out, t.token_ids[k]);
      ++i;
    }
  }
  p.walk_reset();
  p.truncate(base);
}

void Matcher::compute_mask_uncached(std::span<uint32_t> mask, bool fast) {
  const size_t words = mask_words();
  SGL_CHECK(mask.size() >= words, "compute_mask_uncached: mask too small");
  if (terminated_) {
    std::memset(mask.data(), 0, words * sizeof(uint32_t));
    return;
  }
  if (!pda_) {
    grammar_->compute_dfa_mask(dfa_state_, mask.data(), fast);
    return;
  }
  if (fast)
    compute_pda_mask_fast(mask.data());
  else
    compute_pda_mask(mask.data());
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
