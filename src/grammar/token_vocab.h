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
    int32_t size() const { return static_cast<int32_t>(byte.size()); }
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

}  // namespace sgl::grammar
