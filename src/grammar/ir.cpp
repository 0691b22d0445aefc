#include "grammar/ir.h"

#include <algorithm>

#include "support/check.h"

namespace sgl::grammar {

namespace {

int encode_utf8(uint32_t cp, uint8_t* out) {
  if (cp < 0x80) {
    out[0] = static_cast<uint8_t>(cp);
    return 1;
  }
  if (cp < 0x800) {
    out[0] = static_cast<uint8_t>(0xC0 | (cp >> 6));
    out[1] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = static_cast<uint8_t>(0xE0 | (cp >> 12));
    out[1] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
    out[2] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = static_cast<uint8_t>(0xF0 | (cp >> 18));
  out[1] = static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3F));
  out[2] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
  out[3] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
  return 4;
}

using ByteRangeSeq = std::vector<std::pair<uint8_t, uint8_t>>;

// Splits [lo, hi] (no surrogates, one encoding length after the first steps) into sequences of
// byte ranges whose cross product is exactly the UTF-8 encodings of the range.
void split_utf8(uint32_t lo, uint32_t hi, std::vector<ByteRangeSeq>& out) {
  if (lo > hi) return;
  if (lo <= 0xDFFF && hi >= 0xD800) {
    if (lo < 0xD800) split_utf8(lo, 0xD7FF, out);
    if (hi > 0xDFFF) split_utf8(0xE000, hi, out);
    return;
  }
  for (uint32_t max : {0x7Fu, 0x7FFu, 0xFFFFu}) {
    if (lo <= max && hi > max) {
      split_utf8(lo, max, out);
      split_utf8(max + 1, hi, out);
      return;
    }
  }
  if (hi < 0x80) {
    out.push_back({{static_cast<uint8_t>(lo), static_cast<uint8_t>(hi)}});
    return;
  }
  for (int i = 1; i < 4; ++i) {
    uint32_t m = (uint32_t{1} << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        split_utf8(lo, lo | m, out);
        split_utf8((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        split_utf8(lo, (hi & ~m) - 1, out);
        split_utf8(hi & ~m, hi, out);
        return;
      }
    }
  }
  uint8_t a[4], b[4];
  int n = encode_utf8(lo, a);
  int n2 = encode_utf8(hi, b);
  SGL_CHECK(n == n2, "utf8 split: length mismatch");
  ByteRangeSeq seq;
  for (int i = 0; i < n; ++i) seq.push_back({a[i], b[i]});
  out.push_back(std::move(seq));
}

}  // namespace

std::vector<CodepointRange> normalize_ranges(std::vector<CodepointRange> r) {
  std::sort(r.begin(), r.end());
  std::vector<CodepointRange> out;
  for (auto [lo, hi] : r) {
    if (lo > hi) continue;
    if (!out.empty() && lo <= out.back().second + 1) {
      out.back().second = std::max(out.back().second, hi);
    } else {
      out.push_back({lo, hi});
    }
  }
  return out;
}

int32_t GrammarIr::add(IrNode n) {
  nodes_.push_back(std::move(n));
  return static_cast<int32_t>(nodes_.size() - 1);
}

int32_t GrammarIr::empty() { return add(IrNode{}); }

int32_t GrammarIr::nothing() {
  IrNode n;
  n.kind = NodeKind::kAlt;
  return add(std::move(n));
}

int32_t GrammarIr::bytes(const ByteSet& set) {
  if (set.empty()) return nothing();
  IrNode n;
  n.kind = NodeKind::kBytes;
  n.bytes = set;
  return add(std::move(n));
}

int32_t GrammarIr::byte(uint8_t b) {
  ByteSet s;
  s.set(b);
  return bytes(s);
}

int32_t GrammarIr::literal(std::string_view s) {
  if (s.empty()) return empty();
  if (s.size() == 1) return byte(static_cast<uint8_t>(s[0]));
  std::vector<int32_t> kids;
  kids.reserve(s.size());
  for (char c : s) kids.push_back(byte(static_cast<uint8_t>(c)));
  return seq(std::move(kids));
}

int32_t GrammarIr::seq(std::vector<int32_t> kids) {
  if (kids.empty()) return empty();
  if (kids.size() == 1) return kids[0];
  IrNode n;
  n.kind = NodeKind::kSeq;
  n.kids = std::move(kids);
  return add(std::move(n));
}

int32_t GrammarIr::alt(std::vector<int32_t> kids) {
  if (kids.size() == 1) return kids[0];
  IrNode n;
  n.kind = NodeKind::kAlt;
  n.kids = std::move(kids);
  return add(std::move(n));
}

int32_t GrammarIr::repeat(int32_t kid, int32_t min_count, int32_t max_count) {
  if (min_count == 1 && max_count == 1) return kid;
  if (max_count == 0) return empty();
  IrNode n;
  n.kind = NodeKind::kRepeat;
  n.kids = {kid};
  n.min_count = min_count;
  n.max_count = max_count;
  return add(std::move(n));
}

int32_t GrammarIr::ref(int32_t rule) {
  IrNode n;
  n.kind = NodeKind::kRef;
  n.rule = rule;
  return add(std::move(n));
}

int32_t GrammarIr::utf8_range(uint32_t lo, uint32_t hi) { return codepoint_set({{lo, hi}}, false); }

int32_t GrammarIr::codepoint_set(std::vector<CodepointRange> ranges, bool negate) {
  ranges = normalize_ranges(std::move(ranges));
  if (negate) {
    std::vector<CodepointRange> inv;
    uint32_t next = 0;
    for (auto [lo, hi] : ranges) {
      if (lo > next) inv.push_back({next, lo - 1});
      next = hi + 1;
    }
    if (next <= 0x10FFFF) inv.push_back({next, 0x10FFFF});
    ranges = std::move(inv);
  }
  std::vector<ByteRangeSeq> seqs;
  for (auto [lo, hi] : ranges) split_utf8(lo, std::min<uint32_t>(hi, 0x10FFFF), seqs);
  // Single-byte sequences merge into one byte set; longer ones become sequences of sets.
  ByteSet ascii;
  std::vector<int32_t> alts;
  for (const ByteRangeSeq& s : seqs) {
    if (s.size() == 1) {
      ascii.set_range(s[0].first, s[0].second);
      continue;
    }
    std::vector<int32_t> kids;
    for (auto [a, b] : s) {
      ByteSet bs;
      bs.set_range(a, b);
      kids.push_back(bytes(bs));
    }
    alts.push_back(seq(std::move(kids)));
  }
  if (!ascii.empty()) alts.insert(alts.begin(), bytes(ascii));
  if (alts.empty()) return nothing();
  return alt(std::move(alts));
}

int32_t GrammarIr::add_rule(std::string name) {
  rules_.push_back(IrRule{std::move(name), -1});
  return static_cast<int32_t>(rules_.size() - 1);
}

bool GrammarIr::is_recursive() const {
  // Rule graph: rule -> rules referenced from its body. DFS with colors from the root.
  const int32_t n = num_rules();
  std::vector<std::vector<int32_t>> edges(n);
  for (int32_t r = 0; r < n; ++r) {
    if (rules_[r].body < 0) continue;
    std::vector<int32_t> todo{rules_[r].body};
    std::vector<char> seen(nodes_.size(), 0);
    while (!todo.empty()) {
      int32_t x = todo.back();
      todo.pop_back();
      if (seen[x]) continue;
      seen[x] = 1;
      const IrNode& nd = nodes_[x];
      if (nd.kind == NodeKind::kRef) edges[r].push_back(nd.rule);
      for (int32_t k : nd.kids) todo.push_back(k);
    }
  }
  std::vector<char> color(n, 0);
  // Iterative DFS to avoid deep recursion on long rule chains.
  std::vector<std::pair<int32_t, size_t>> stack;
  if (root_ < 0) return false;
  stack.push_back({root_, 0});
  color[root_] = 1;
  while (!stack.empty()) {
    auto& [r, i] = stack.back();
    if (i < edges[r].size()) {
      int32_t s = edges[r][i++];
      if (color[s] == 1) return true;
      if (color[s] == 0) {
        color[s] = 1;
        stack.push_back({s, 0});
      }
    } else {
      color[r] = 2;
      stack.pop_back();
    }
  }
  return false;
}

}  // namespace sgl::grammar
