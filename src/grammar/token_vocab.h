// The vocabulary as the grammar engine sees it: each token's raw bytes (token_to_piece with
// special = false, so control/unknown tokens have no bytes and are never allowed by a grammar),
// the end-of-generation ids, and a byte trie over all tokens laid out in preorder for fast
// masked walks. Built once per tokenizer and shared (immutable, thread-safe).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "grammar/ir.h"

namespace sgl::tokenizer {
class Tokenizer;
}

namespace sgl::grammar {

class TokenVocab {
 public:
  static std::shared_ptr<const TokenVocab> from_tokenizer(const tokenizer::Tokenizer& tok);
  // For tests and tools: explicit token bytes ("" = never allowed) and end-of-generation ids.
  static std::shared_ptr<const TokenVocab> from_tokens(std::vector<std::string> tokens,
                                                       std::vector<int32_t> eog_ids);

  int32_t vocab_size() const { return static_cast<int32_t>(tokens_.size()); }
  // Number of uint32 words in a mask for this vocabulary.
  size_t mask_words() const { return (tokens_.size() + 31) / 32; }
  std::string_view token_bytes(int32_t id) const { return tokens_[id]; }
  const std::vector<int32_t>& eog_ids() const { return eog_ids_; }
  bool is_eog(int32_t id) const { return is_eog_[id] != 0; }

  // Preorder trie. Node 0 is the root (no byte). For node i > 0: byte(i) is the edge label,
  // depth(i) >= 1, subtree_end(i) is one past its last descendant, and the tokens whose bytes
  // spell the path to i are token_ids[tok_begin(i) .. tok_begin(i + 1)).
  struct Trie {
    std::vector<uint8_t> byte;
    std::vector<uint16_t> depth;
    std::vector<int32_t> subtree_end;
    std::vector<int32_t> tok_begin;  // size = nodes + 1
    std::vector<int32_t> token_ids;
    int32_t max_depth = 0;
    // Summaries for skipping whole subtrees (see Matcher::fill_mask): below[i] = the edge bytes
    // of i's strict descendants, height[i] = the depth of its deepest descendant minus depth(i).
    std::vector<ByteSet> below;
    std::vector<uint16_t> height;
    // utf8_below[i] = 1 iff every byte string from i down to a descendant, read from a character
    // boundary, is valid UTF-8 (possibly ending inside a character).
    std::vector<uint8_t> utf8_below;
    // utf8_mid[i] = u > 0 iff the path to i is valid UTF-8 ending inside a character (decoder
    // state u, see utf8_step) and every byte string below i continues it as valid UTF-8; else 0.
    std::vector<uint8_t> utf8_mid;
    // Nodes whose subtree holds many tokens keep a ready-made mask of those tokens:
    // dense[i] >= 0 indexes dense_masks (mask_words() words per entry), -1 otherwise.
    std::vector<int32_t> dense;
    std::vector<uint32_t> dense_masks;
    int32_t size() const { return static_cast<int32_t>(byte.size()); }
    // The number of tokens in i's subtree (i included).
    int32_t subtree_tokens(int32_t i) const { return tok_begin[subtree_end[i]] - tok_begin[i]; }
  };
  const Trie& trie() const { return trie_; }

 private:
  TokenVocab() = default;
  void build_trie();

  std::vector<std::string> tokens_;
  std::vector<int32_t> eog_ids_;
  std::vector<uint8_t> is_eog_;
  Trie trie_;
};

// UTF-8 decoding state after a byte: 0 = at a character boundary, 1..7 = inside a character
// (which continuation bytes may come next differs); -1 = invalid.
int utf8_step(int state, uint8_t b);

// Sets the bit of every token in trie node i's subtree (i included). The dense mask is used
// when the node has one.
void set_subtree_tokens(const TokenVocab& vocab, int32_t node, uint32_t* mask);

}  // namespace sgl::grammar
