#include "grammar/token_vocab.h"

#include <algorithm>
#include <numeric>

#include "tokenizer/tokenizer.h"

namespace sgl::grammar {

std::shared_ptr<const TokenVocab> TokenVocab::from_tokenizer(const tokenizer::Tokenizer& tok) {
  std::vector<std::string> tokens(tok.vocab_size());
  for (int32_t i = 0; i < tok.vocab_size(); ++i)
    tokens[i] = std::string(tok.token_to_piece(i, false));
  return from_tokens(std::move(tokens), tok.eog_ids());
}

std::shared_ptr<const TokenVocab> TokenVocab::from_tokens(std::vector<std::string> tokens,
                                                          std::vector<int32_t> eog_ids) {
  std::shared_ptr<TokenVocab> v(new TokenVocab());
  v->tokens_ = std::move(tokens);
  v->is_eog_.assign(v->tokens_.size(), 0);
  for (int32_t id : eog_ids) {
    if (id < 0 || id >= v->vocab_size()) continue;
    if (!v->is_eog_[id]) v->eog_ids_.push_back(id);
    v->is_eog_[id] = 1;
  }
  std::sort(v->eog_ids_.begin(), v->eog_ids_.end());
  v->build_trie();
  return v;
}

void TokenVocab::build_trie() {
  std::vector<int32_t> order;
  for (int32_t i = 0; i < vocab_size(); ++i)
    if (!tokens_[i].empty() && !is_eog_[i]) order.push_back(i);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return tokens_[a] != tokens_[b] ? tokens_[a] < tokens_[b] : a < b;
  });
  Trie& t = trie_;
  t.byte.push_back(0);
  t.depth.push_back(0);
  t.subtree_end.push_back(0);
  t.tok_begin.push_back(0);
  // path[d] = node index at depth d along the current token's bytes.
  std::vector<int32_t> path{0};
  std::string_view prev;
  auto close_to = [&](size_t depth) {
    while (path.size() > depth + 1) {
      t.subtree_end[path.back()] = static_cast<int32_t>(t.byte.size());
      path.pop_back();
    }
  };
  for (int32_t id : order) {
    std::string_view s = tokens_[id];
    size_t common = 0;
    while (common < s.size() && common < prev.size() && s[common] == prev[common] &&
           common + 1 < path.size())
      ++common;
    close_to(common);
    for (size_t d = common; d < s.size(); ++d) {
      t.byte.push_back(static_cast<uint8_t>(s[d]));
      t.depth.push_back(static_cast<uint16_t>(std::min<size_t>(d + 1, 65535)));
      t.subtree_end.push_back(0);
      t.tok_begin.push_back(static_cast<int32_t>(t.token_ids.size()));
      path.push_back(static_cast<int32_t>(t.byte.size() - 1));
    }
    // Tokens are attached to the node at depth s.size(); nodes are in preorder and tokens are
    // sorted, so they are appended in node order.
    t.token_ids.push_back(id);
    t.max_depth = std::max<int32_t>(t.max_depth, static_cast<int32_t>(s.size()));
    prev = s;
  }
  close_to(0);
  t.subtree_end[0] = static_cast<int32_t>(t.byte.size());
  t.tok_begin.push_back(static_cast<int32_t>(t.token_ids.size()));

  // Subtree summaries, children before parents (reverse preorder); parent via the depth path.
  const int32_t n = t.size();
  std::vector<int32_t> parent(n, -1);
  std::vector<int32_t> at_depth(t.max_depth + 2, 0);
  for (int32_t i = 1; i < n; ++i) {
    parent[i] = at_depth[t.depth[i] - 1];
    at_depth[t.depth[i]] = i;
  }
  t.below.assign(n, ByteSet{});
  t.height.assign(n, 0);
  for (int32_t i = n - 1; i >= 1; --i) {
    const int32_t p = parent[i];
    t.below[p] |= t.below[i];
    t.below[p].set(t.byte[i]);
    t.height[p] = std::max<uint16_t>(t.height[p], static_cast<uint16_t>(
                                                      std::min<int32_t>(t.height[i] + 1, 65535)));
  }
  // f[i] = the decoder states d such that reading byte(i) and then any path below i from d is
  // valid UTF-8; utf8_below[i] = every child works from a character boundary.
  std::vector<uint8_t> kids_ok(n, 0xFF);
  for (int32_t i = n - 1; i >= 1; --i) {
    uint8_t f = 0;
    for (int d = 0; d < 8; ++d) {
      const int nd = utf8_step(d, t.byte[i]);
      if (nd >= 0 && ((kids_ok[i] >> nd) & 1)) f |= static_cast<uint8_t>(1u << d);
    }
    kids_ok[parent[i]] &= f;
  }
  t.utf8_below.assign(n, 0);
  for (int32_t i = 0; i < n; ++i) t.utf8_below[i] = kids_ok[i] & 1;
  std::vector<int8_t> path_state(n, 0);  // decoder state after the path to i; -1 invalid
  t.utf8_mid.assign(n, 0);
  for (int32_t i = 1; i < n; ++i) {
    const int8_t ps = path_state[parent[i]];
    path_state[i] = ps < 0 ? int8_t{-1} : static_cast<int8_t>(utf8_step(ps, t.byte[i]));
    if (path_state[i] > 0 && ((kids_ok[i] >> path_state[i]) & 1))
      t.utf8_mid[i] = static_cast<uint8_t>(path_state[i]);
  }
  // Dense masks for nodes holding at least 1/64 of the vocabulary (and 512 tokens); at most 512.
  const int32_t threshold = std::max<int32_t>(512, vocab_size() / 64);
  const size_t words = mask_words();
  t.dense.assign(n, -1);
  int32_t count = 0;
  for (int32_t i = 0; i < n && count < 512; ++i) {
    if (t.subtree_tokens(i) < threshold) continue;
    t.dense[i] = count++;
    t.dense_masks.resize(static_cast<size_t>(count) * words, 0);
    uint32_t* m = t.dense_masks.data() + static_cast<size_t>(t.dense[i]) * words;
    for (int32_t k = t.tok_begin[i]; k < t.tok_begin[t.subtree_end[i]]; ++k) {
      const int32_t id = t.token_ids[k];
      m[id >> 5] |= uint32_t{1} << (id & 31);
    }
  }
}

int utf8_step(int state, uint8_t b) {
  auto in = [b](int lo, int hi) { return b >= lo && b <= hi; };
  switch (state) {
    case 0:
      if (b < 0x80) return 0;
      if (in(0xC2, 0xDF)) return 1;
      if (b == 0xE0) return 3;
      if (in(0xE1, 0xEC) || in(0xEE, 0xEF)) return 2;
      if (b == 0xED) return 4;
      if (b == 0xF0) return 5;
      if (in(0xF1, 0xF3)) return 7;
      if (b == 0xF4) return 6;
      return -1;
    case 1:  // one continuation byte left
      return in(0x80, 0xBF) ? 0 : -1;
    case 2:  // two left
      return in(0x80, 0xBF) ? 1 : -1;
    case 3:  // after E0: A0..BF, then one
      return in(0xA0, 0xBF) ? 1 : -1;
    case 4:  // after ED (no surrogates): 80..9F, then one
      return in(0x80, 0x9F) ? 1 : -1;
    case 5:  // after F0: 90..BF, then two
      return in(0x90, 0xBF) ? 2 : -1;
    case 6:  // after F4: 80..8F, then two
      return in(0x80, 0x8F) ? 2 : -1;
    case 7:  // after F1..F3: 80..BF, then two
      return in(0x80, 0xBF) ? 2 : -1;
  }
  return -1;
}

void set_subtree_tokens(const TokenVocab& vocab, int32_t node, uint32_t* mask) {
  const TokenVocab::Trie& t = vocab.trie();
  const int32_t d = t.dense[node];
  if (d >= 0) {
    const size_t words = vocab.mask_words();
    const uint32_t* src = t.dense_masks.data() + static_cast<size_t>(d) * words;
    for (size_t w = 0; w < words; ++w) mask[w] |= src[w];
    return;
  }
  const int32_t* ids = t.token_ids.data();
  for (int32_t k = t.tok_begin[node], e = t.tok_begin[t.subtree_end[node]]; k < e; ++k)
    mask[ids[k] >> 5] |= uint32_t{1} << (ids[k] & 31);
}

}  // namespace sgl::grammar
