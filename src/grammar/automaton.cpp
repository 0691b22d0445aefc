#include "grammar/automaton.h"

#include <algorithm>
#include <functional>
#include <string>
#include <unordered_map>

namespace sgl::grammar {

namespace {

constexpr int32_t kMaxNfaStates = 2'000'000;

struct Nfa {
  struct Edge {
    int32_t set;  // index into sets
    int32_t to;
  };
  std::vector<std::vector<Edge>> edges;
  std::vector<std::vector<int32_t>> eps;
  std::vector<ByteSet> sets;
  std::vector<std::pair<ByteSet, int32_t>> set_index;  // small linear dedupe via hash below
  std::unordered_map<uint64_t, std::vector<int32_t>> set_hash;
  std::unordered_map<uint64_t, int32_t> ref_entry;  // (rule, end state) -> entry state
  bool overflow = false;

  int32_t new_state() {
    if (static_cast<int32_t>(edges.size()) >= kMaxNfaStates) {
      overflow = true;
      return 0;
    }
    edges.emplace_back();
    eps.emplace_back();
    return static_cast<int32_t>(edges.size() - 1);
  }
  int32_t intern_set(const ByteSet& s) {
    uint64_t h = s.w[0] * 0x9E3779B97F4A7C15ull ^ s.w[1] * 0xC2B2AE3D27D4EB4Full ^
                 s.w[2] * 0x165667B19E3779F9ull ^ s.w[3];
    auto& bucket = set_hash[h];
    for (int32_t i : bucket)
      if (sets[i] == s) return i;
    sets.push_back(s);
    bucket.push_back(static_cast<int32_t>(sets.size() - 1));
    return static_cast<int32_t>(sets.size() - 1);
  }

  // Adds paths s -> e reading exactly the language of `node`; every state created is fresh.
  void build(const GrammarIr& ir, int32_t node, int32_t s, int32_t e) {
    if (overflow) return;
    const IrNode& n = ir.node(node);
    switch (n.kind) {
      case NodeKind::kEmpty:
        eps[s].push_back(e);
        return;
      case NodeKind::kBytes:
        edges[s].push_back({intern_set(n.bytes), e});
        return;
      case NodeKind::kRef: {
        // A rule referenced again with the same end state shares its sub-automaton: paths from
        // the shared entry read the rule's language and then continue exactly as from e. This
        // keeps DAG-shaped rule graphs (e.g. JSON Schema pattern x length products) linear.
        const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(n.rule)) << 32) |
                             static_cast<uint32_t>(e);
        auto found = ref_entry.find(key);
        if (found != ref_entry.end()) {
          eps[s].push_back(found->second);
          return;
        }
        const int32_t entry = new_state();
        eps[s].push_back(entry);
        ref_entry.emplace(key, entry);
        build(ir, ir.rule(n.rule).body, entry, e);
        return;
      }
      case NodeKind::kAlt:
        for (int32_t k : n.kids) build(ir, k, s, e);
        return;
      case NodeKind::kSeq: {
        int32_t cur = s;
        for (size_t i = 0; i < n.kids.size(); ++i) {
          int32_t nx = i + 1 == n.kids.size() ? e : new_state();
          build(ir, n.kids[i], cur, nx);
          cur = nx;
        }
        return;
      }
      case NodeKind::kRepeat: {
        int32_t kid = n.kids[0];
        int32_t cur = s;
        for (int32_t i = 0; i < n.min_count && !overflow; ++i) {
          int32_t nx = new_state();
          build(ir, kid, cur, nx);
          cur = nx;
        }
        if (n.max_count == kUnbounded) {
          int32_t m = new_state();
          eps[cur].push_back(m);
          build(ir, kid, m, m);
          eps[m].push_back(e);
          return;
        }
        for (int32_t i = n.min_count; i < n.max_count && !overflow; ++i) {
          eps[cur].push_back(e);
          int32_t nx = new_state();
          build(ir, kid, cur, nx);
          cur = nx;
        }
        eps[cur].push_back(e);
        return;
      }
    }
  }
};

struct VecHash {
  size_t operator()(const std::vector<int32_t>& v) const {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int32_t x : v) h = (h ^ static_cast<uint32_t>(x)) * 0x100000001b3ull;
    return h;
  }
};

}  // namespace

Result<Dfa> build_dfa(const GrammarIr& ir, int32_t max_states) {
  Nfa nfa;
  int32_t s0 = nfa.new_state();
  int32_t fin = nfa.new_state();
  nfa.build(ir, ir.rule(ir.root()).body, s0, fin);
  if (nfa.overflow) return Status(StatusCode::kResourceExhausted, "NFA too large");
  const int32_t nn = static_cast<int32_t>(nfa.edges.size());

  // Byte equivalence classes: bytes no edge set distinguishes.
  std::array<int32_t, 256> cls{};
  int32_t ncls = 1;
  for (const ByteSet& set : nfa.sets) {
    std::vector<int32_t> remap(static_cast<size_t>(ncls) * 2, -1);
    int32_t next = 0;
    for (int b = 0; b < 256; ++b) {
      int32_t key = cls[b] * 2 + (set.test(static_cast<uint8_t>(b)) ? 1 : 0);
      if (remap[key] < 0) remap[key] = next++;
      cls[b] = remap[key];
    }
    ncls = next;
  }
  std::vector<int32_t> rep(ncls, -1);
  for (int b = 0; b < 256; ++b)
    if (rep[cls[b]] < 0) rep[cls[b]] = b;
  std::vector<std::vector<int32_t>> set_classes(nfa.sets.size());
  for (size_t i = 0; i < nfa.sets.size(); ++i)
    for (int32_t c = 0; c < ncls; ++c)
      if (nfa.sets[i].test(static_cast<uint8_t>(rep[c]))) set_classes[i].push_back(c);

  // Subset construction over "important" NFA states (with byte edges, or final). Its total work
  // (NFA states visited by closures) is bounded too: hostile patterns such as (a|a)* repeated or
  // nested counted repeats give few DFA states but huge subsets, which would otherwise keep the
  // caller (an HTTP thread) busy for minutes; past the budget the caller falls back to the PDA.
  constexpr int64_t kMaxSubsetWork = 20'000'000;
  int64_t subset_work = 0;
  std::vector<int32_t> stamp(nn, -1);
  int32_t stamp_id = 0;
  std::vector<int32_t> work;
  auto closure = [&](std::vector<int32_t>& seeds) {
    ++stamp_id;
    std::vector<int32_t> out;
    work.assign(seeds.begin(), seeds.end());
    subset_work += static_cast<int64_t>(seeds.size());
    for (int32_t x : work) stamp[x] = stamp_id;
    while (!work.empty()) {
      int32_t x = work.back();
      work.pop_back();
      ++subset_work;
      if (!nfa.edges[x].empty() || x == fin) out.push_back(x);
      for (int32_t y : nfa.eps[x]) {
        if (stamp[y] != stamp_id) {
          stamp[y] = stamp_id;
          work.push_back(y);
        }
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  };

  std::unordered_map<std::vector<int32_t>, int32_t, VecHash> ids;
  std::vector<std::vector<int32_t>> subsets;
  std::vector<int32_t> trans;
  std::vector<int32_t> seed{s0};
  subsets.push_back(closure(seed));
  ids.emplace(subsets[0], 0);
  std::vector<std::vector<int32_t>> targets(ncls);
  for (size_t d = 0; d < subsets.size(); ++d) {
    for (auto& t : targets) t.clear();
    for (int32_t x : subsets[d])
      for (const Nfa::Edge& edge : nfa.edges[x])
        for (int32_t c : set_classes[edge.set]) targets[c].push_back(edge.to);
    for (const auto& t : targets) subset_work += static_cast<int64_t>(t.size());
    trans.resize((d + 1) * ncls, -1);
    for (int32_t c = 0; c < ncls; ++c) {
      if (targets[c].empty()) continue;
      std::vector<int32_t> sub = closure(targets[c]);
      if (subset_work > kMaxSubsetWork)
        return Status(StatusCode::kResourceExhausted, "DFA construction exceeds its work budget");
      auto it = ids.find(sub);
      int32_t id;
      if (it == ids.end()) {
        id = static_cast<int32_t>(subsets.size());
        if (id >= max_states)
          return Status(StatusCode::kResourceExhausted,
                        "DFA exceeds " + std::to_string(max_states) + " states");
        ids.emplace(sub, id);
        subsets.push_back(std::move(sub));
      } else {
        id = it->second;
      }
      trans[d * ncls + c] = id;
    }
  }
  const int32_t nd = static_cast<int32_t>(subsets.size());
  std::vector<uint8_t> acc(nd, 0);
  for (int32_t d = 0; d < nd; ++d)
    acc[d] = std::binary_search(subsets[d].begin(), subsets[d].end(), fin) ? 1 : 0;
  subsets.clear();

  // Live states: those that can reach acceptance.
  std::vector<std::vector<int32_t>> rev(nd);
  for (int32_t d = 0; d < nd; ++d)
    for (int32_t c = 0; c < ncls; ++c)
      if (trans[d * ncls + c] >= 0) rev[trans[d * ncls + c]].push_back(d);
  std::vector<uint8_t> live(nd, 0);
  std::vector<int32_t> q;
  for (int32_t d = 0; d < nd; ++d)
    if (acc[d]) live[d] = 1, q.push_back(d);
  while (!q.empty()) {
    int32_t d = q.back();
    q.pop_back();
    for (int32_t p : rev[d])
      if (!live[p]) live[p] = 1, q.push_back(p);
  }
  if (!live[0]) return invalid_argument("the grammar matches no string");

  // Moore minimisation over live states (dead = block -1): refine blocks by the signature
  // (block, block of each class's successor) until the block count stops growing. Signatures are
  // hashed and compared against one representative per block, without allocation per state.
  std::vector<int32_t> block(nd, -1);
  for (int32_t d = 0; d < nd; ++d)
    if (live[d]) block[d] = acc[d];
  int32_t nblocks = 0;
  {
    std::vector<int32_t> nb(nd, -1), rep_state, next_same;
    std::unordered_map<uint64_t, int32_t> first_block;
    auto sig_hash = [&](int32_t d) {
      uint64_t h = static_cast<uint64_t>(block[d]) * 0x9E3779B97F4A7C15ull;
      for (int32_t c = 0; c < ncls; ++c) {
        int32_t t = trans[d * ncls + c];
        h = (h ^ static_cast<uint32_t>(t >= 0 ? block[t] : -1)) * 0x100000001b3ull;
      }
      return h;
    };
    auto same_sig = [&](int32_t a, int32_t b) {
      if (block[a] != block[b]) return false;
      for (int32_t c = 0; c < ncls; ++c) {
        int32_t ta = trans[a * ncls + c], tb = trans[b * ncls + c];
        if ((ta >= 0 ? block[ta] : -1) != (tb >= 0 ? block[tb] : -1)) return false;
      }
      return true;
    };
    // Moore needs as many rounds as the longest chain of distinguishable states; past a few
    // rounds (long fixed-length pieces like uuid/date-time formats) the DFA is kept unminimised
    // to bound compile time: minimisation only improves mask-cache sharing.
    constexpr int kMaxRounds = 8;
    int rounds = 0;
    while (true) {
      if (++rounds > kMaxRounds) {
        nblocks = 0;
        for (int32_t d = 0; d < nd; ++d) block[d] = live[d] ? nblocks++ : -1;
        break;
      }
      first_block.clear();
      rep_state.clear();
      next_same.clear();
      for (int32_t d = 0; d < nd; ++d) {
        if (!live[d]) continue;
        uint64_t h = sig_hash(d);
        auto [it, inserted] = first_block.emplace(h, -1);
        int32_t b = it->second, prev = -1;
        while (b >= 0 && !same_sig(rep_state[b], d)) {
          prev = b;
          b = next_same[b];
        }
        if (b < 0) {
          b = static_cast<int32_t>(rep_state.size());
          rep_state.push_back(d);
          next_same.push_back(-1);
          if (prev >= 0)
            next_same[prev] = b;
          else
            it->second = b;
        }
        nb[d] = b;
      }
      int32_t count = static_cast<int32_t>(rep_state.size());
      block.swap(nb);
      if (count == nblocks) break;
      nblocks = count;
    }
  }
  // Renumber so that the start state's block is 0.
  std::vector<int32_t> order(nblocks, -1);
  int32_t next_id = 0;
  std::vector<int32_t> bfs{0};
  order[block[0]] = next_id++;
  for (size_t i = 0; i < bfs.size(); ++i) {
    int32_t d = bfs[i];
    for (int32_t c = 0; c < ncls; ++c) {
      int32_t t = trans[d * ncls + c];
      if (t >= 0 && live[t] && order[block[t]] < 0) {
        order[block[t]] = next_id++;
        bfs.push_back(t);
      }
    }
  }
  Dfa dfa;
  dfa.num_states = next_id;
  dfa.num_classes = ncls;
  dfa.start = 0;
  for (int b = 0; b < 256; ++b) dfa.byte_class[b] = static_cast<uint8_t>(cls[b]);
  dfa.trans.assign(static_cast<size_t>(next_id) * ncls, -1);
  dfa.accepting.assign(next_id, 0);
  dfa.has_out.assign(next_id, 0);
  for (int32_t d : bfs) {
    int32_t id = order[block[d]];
    dfa.accepting[id] = acc[d];
    for (int32_t c = 0; c < ncls; ++c) {
      int32_t t = trans[d * ncls + c];
      if (t >= 0 && live[t]) {
        dfa.trans[id * ncls + c] = order[block[t]];
        dfa.has_out[id] = 1;
      }
    }
  }
  return dfa;
}

namespace {

class PdaBuilder {
 public:
  explicit PdaBuilder(const GrammarIr& ir) : ir_(ir) {}

  Result<Pda> build() {
    const int32_t nr = ir_.num_rules();
    alts_.resize(nr);
    for (int32_t r = 0; r < nr; ++r) names_.push_back(ir_.rule(r).name);
    for (int32_t r = 0; r < nr; ++r) {
      if (ir_.rule(r).body < 0)
        return invalid_argument("rule '" + ir_.rule(r).name + "' is referenced but not defined");
      alts_[r] = alts_for(ir_.rule(r).body);
    }
    SGL_RETURN_IF_ERROR(check_left_recursion());
    Pda pda;
    pda.terminals = std::move(terminals_);
    pda.rule_names = std::move(names_);
    pda.root = ir_.root();
    pda.rule_alts.resize(alts_.size());
    for (size_t r = 0; r < alts_.size(); ++r) {
      for (const auto& alt : alts_[r]) {
        pda.rule_alts[r].push_back(static_cast<int32_t>(pda.syms.size()));
        pda.syms.insert(pda.syms.end(), alt.begin(), alt.end());
        pda.syms.push_back(Pda::kEnd);
      }
    }
    return pda;
  }

 private:
  using Alt = std::vector<int32_t>;

  int32_t new_rule(std::string name) {
    alts_.emplace_back();
    names_.push_back(std::move(name));
    return static_cast<int32_t>(alts_.size() - 1);
  }

  int32_t terminal(const ByteSet& s) {
    for (size_t i = 0; i < terminals_.size(); ++i)
      if (terminals_[i] == s) return static_cast<int32_t>(i);
    terminals_.push_back(s);
    return static_cast<int32_t>(terminals_.size() - 1);
  }

  std::vector<Alt> alts_for(int32_t node) {
    const IrNode& n = ir_.node(node);
    std::vector<Alt> out;
    if (n.kind == NodeKind::kAlt) {
      for (int32_t k : n.kids) {
        Alt a;
        seq_for(k, a);
        out.push_back(std::move(a));
      }
    } else {
      Alt a;
      seq_for(node, a);
      out.push_back(std::move(a));
    }
    return out;
  }

  void seq_for(int32_t node, Alt& out) {
    const IrNode& n = ir_.node(node);
    switch (n.kind) {
      case NodeKind::kEmpty:
        return;
      case NodeKind::kSeq:
        for (int32_t k : n.kids) seq_for(k, out);
        return;
      case NodeKind::kRepeat: {
        int32_t kid_sym = sym_for(n.kids[0]);
        for (int32_t i = 0; i < n.min_count; ++i) out.push_back(kid_sym);
        if (n.max_count == kUnbounded) {
          out.push_back(star_rule(n.kids[0], kid_sym));
        } else if (n.max_count > n.min_count) {
          out.push_back(optional_chain(kid_sym, n.max_count - n.min_count));
        }
        return;
      }
      default:
        out.push_back(sym_for(node));
    }
  }

  int32_t sym_for(int32_t node) {
    const IrNode& n = ir_.node(node);
    if (n.kind == NodeKind::kBytes) return terminal(n.bytes);
    if (n.kind == NodeKind::kRef) return Pda::rule_sym(n.rule);
    auto it = node_rule_.find(node);
    if (it != node_rule_.end()) return Pda::rule_sym(it->second);
    int32_t r = new_rule("expression #" + std::to_string(node));
    node_rule_[node] = r;
    std::vector<Alt> a = alts_for(node);
    alts_[r] = std::move(a);
    return Pda::rule_sym(r);
  }

  // S -> kid S | ε
  int32_t star_rule(int32_t kid_node, int32_t kid_sym) {
    auto it = star_.find(kid_sym);
    if (it != star_.end()) return Pda::rule_sym(it->second);
    int32_t r = new_rule("repetition of expression #" + std::to_string(kid_node));
    star_[kid_sym] = r;
    alts_[r] = {Alt{kid_sym, Pda::rule_sym(r)}, Alt{}};
    return Pda::rule_sym(r);
  }

  // O_k -> kid O_{k-1} | ε, O_1 -> kid | ε
  int32_t optional_chain(int32_t kid_sym, int32_t k) {
    int32_t prev = -1;
    for (int32_t i = 1; i <= k; ++i) {
      int32_t r = new_rule("bounded repetition");
      Alt a{kid_sym};
      if (prev >= 0) a.push_back(Pda::rule_sym(prev));
      alts_[r] = {a, Alt{}};
      prev = r;
    }
    return Pda::rule_sym(prev);
  }

  Status check_left_recursion() {
    const size_t nr = alts_.size();
    std::vector<char> nullable(nr, 0);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < nr; ++r) {
        if (nullable[r]) continue;
        for (const Alt& a : alts_[r]) {
          bool all = true;
          for (int32_t s : a)
            if (Pda::is_terminal(s) || !nullable[Pda::rule_of(s)]) {
              all = false;
              break;
            }
          if (all) {
            nullable[r] = 1;
            changed = true;
            break;
          }
        }
      }
    }
    // Left-corner graph: r -> s when s can start r. An edge is "growing" when s is not the last
    // symbol of its alternative (the recognizer pushes a return position). A cycle through a
    // growing edge is left recursion: the stack would grow without reading input. Cycles of tail
    // edges only (e.g. a repetition of a nullable expression) are harmless.
    struct Edge {
      int32_t to;
      bool growing;
    };
    std::vector<std::vector<Edge>> left(nr);
    for (size_t r = 0; r < nr; ++r)
      for (const Alt& a : alts_[r])
        for (size_t i = 0; i < a.size(); ++i) {
          int32_t s = a[i];
          if (Pda::is_terminal(s)) break;
          left[r].push_back({Pda::rule_of(s), i + 1 < a.size()});
          if (!nullable[Pda::rule_of(s)]) break;
        }
    // Tarjan's strongly connected components.
    std::vector<int32_t> idx(nr, -1), low(nr, 0), comp(nr, -1), stack;
    std::vector<char> on(nr, 0);
    int32_t counter = 0, ncomp = 0;
    std::function<void(int32_t)> strong = [&](int32_t v) {
      idx[v] = low[v] = counter++;
      stack.push_back(v);
      on[v] = 1;
      for (const Edge& e : left[v]) {
        if (idx[e.to] < 0) {
          strong(e.to);
          low[v] = std::min(low[v], low[e.to]);
        } else if (on[e.to]) {
          low[v] = std::min(low[v], idx[e.to]);
        }
      }
      if (low[v] == idx[v]) {
        while (true) {
          int32_t w = stack.back();
          stack.pop_back();
          on[w] = 0;
          comp[w] = ncomp;
          if (w == v) break;
        }
        ++ncomp;
      }
    };
    for (size_t r = 0; r < nr; ++r)
      if (idx[r] < 0) strong(static_cast<int32_t>(r));
    for (size_t r = 0; r < nr; ++r)
      for (const Edge& e : left[r])
        if (e.growing && comp[e.to] == comp[r])
          return invalid_argument("left recursion in rule '" + names_[r] +
                                  "' is not supported (rewrite it with repetition, e.g. "
                                  "x ::= y (\"op\" y)*)");
    return Status::ok();
  }

  const GrammarIr& ir_;
  std::vector<std::vector<Alt>> alts_;
  std::vector<std::string> names_;
  std::vector<ByteSet> terminals_;
  std::unordered_map<int32_t, int32_t> node_rule_;
  std::unordered_map<int32_t, int32_t> star_;
};

}  // namespace

Result<Pda> build_pda(const GrammarIr& ir) {
  PdaBuilder b(ir);
  return b.build();
}

}  // namespace sgl::grammar
