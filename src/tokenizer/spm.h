// SentencePiece-style BPE by token scores, as llama.cpp's llm_tokenizer_spm_session does for
// GGUF vocabularies of type "llama": the text (spaces already replaced by U+2581) is split into
// UTF-8 characters; repeatedly, the adjacent pair whose concatenation is a token with the highest
// score (leftmost among equal scores) is merged; every final symbol that is not a token is emitted
// as byte tokens.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace sgl::tokenizer {

struct SpmScratch {
  struct Symbol {
    uint32_t offset;  // into the text
    uint32_t len;     // bytes; 0 once merged into its left neighbour
    int32_t prev;
    int32_t next;
  };
  struct Bigram {
    float score;
    int32_t left;
    int32_t right;
    uint32_t size;  // bytes of the concatenation when pushed
  };
  std::vector<Symbol> symbols;
  std::vector<Bigram> heap;
};

// The token for byte `b` when a symbol is not a token: "<0xXX>", else the one-byte text; -1 if
// neither exists (llama.cpp's byte_to_token for SPM).
int32_t spm_byte_token(const Vocab& vocab, uint8_t b);

// Tokenizes `text` and appends the ids to `out`. `byte_tokens[b]` is spm_byte_token(vocab, b).
// A byte without any token becomes `unk_id` when that is >= 0 and is dropped otherwise (llama.cpp
// throws there).
void spm_tokenize(const Vocab& vocab, const std::array<int32_t, 256>& byte_tokens, int32_t unk_id,
                  std::string_view text, SpmScratch& scratch, std::vector<int32_t>& out);

}  // namespace sgl::tokenizer
