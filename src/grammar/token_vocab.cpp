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
}

}  // namespace sgl::grammar
