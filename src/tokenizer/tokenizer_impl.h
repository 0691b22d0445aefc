// Private state of a Tokenizer, shared by the loaders (tokenizer_gguf.cpp, tokenizer_hf.cpp) and
// the engine (tokenizer.cpp). Not part of the public API.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "support/status.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace sgl::tokenizer {

enum class Engine {
  kByteLevelBpe,  // GPT-2 style
  kSpmScores,     // llama.cpp SPM: merge by token score
  kSpmRanks,      // Hugging Face BPE over characters with byte fallback: merge by rank
};

// Where a U+2581 prefix is added to a text segment (SPM engines).
enum class SpacePrefix {
  kNever,
  kEverySegment,        // llama.cpp add_space_prefix / HF Prepend normalizer: the first segment and
                        // every segment after a special token
  kUnlessLeading,       // HF Metaspace "always": every segment not already starting with U+2581
  kFirstUnlessLeading,  // HF Metaspace "first": only the segment at the start of the text
};

struct TokenizerImpl {
  // ---- filled by the loaders ----
  Vocab vocab;
  Engine engine = Engine::kByteLevelBpe;
  std::string kind;      // "gpt2" / "llama"
  std::string pre_name;  // pre-tokenizer family
  std::vector<PreTokenizerStage> stages;
  std::vector<std::pair<std::string, std::string>> merge_pairs;  // rank order (byte-level, ranks)
  bool ignore_merges = false;
  bool clean_spaces = false;
  bool add_space_prefix = false;  // decode strips one leading space (see strip_from_output)
  // Where that space is stripped: from the first token's piece even when it is skipped and empty
  // (llama.cpp), or from the first byte of the whole output (Hugging Face's Strip decoder, which
  // runs after special tokens are skipped).
  bool strip_from_output = false;
  SpacePrefix space_prefix = SpacePrefix::kNever;  // SPM engines
  bool split_on_space = false;  // HF Metaspace split=true: words start at each U+2581
  bool byte_fallback = true;    // kSpmRanks: unknown characters as <0xXX> tokens
  bool fuse_unk = false;        // kSpmRanks: consecutive unknown characters become one unk
  bool add_bos = false;
  bool add_eos = false;
  // Special ids (-1: none). Loaders set what the model states; finalize() fills eot, eom and the
  // FIM ids left at -1 from well-known token texts, as llama.cpp does.
  int32_t bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, pad = -1;
  int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
  std::optional<std::string> chat_template;

  // ---- derived by finalize() ----
  std::vector<int32_t> eog;             // sorted
  std::vector<int32_t> special_tokens;  // partition order: longest text first, then lowest id
  std::string pieces;                   // token_to_piece(special=true) of every token, concatenated
  std::vector<uint32_t> piece_offsets;  // [vocab size + 1]
  // Byte-level BPE: symbol ids are token ids, then extra_symbols for merge strings that are not
  // tokens (id vocab.size() + i).
  MergeTable merges;
  std::array<int32_t, 256> byte_symbol{};                   // initial symbol of each byte
  std::vector<std::string> extra_symbols;                   // their texts (byte-alphabet UTF-8)
  std::string raw_texts;                                    // ignore_merges index storage
  std::unordered_map<std::string_view, int32_t> raw_index;  // raw bytes -> token id
  // SPM engines.
  std::array<int32_t, 256> byte_token{};  // <0xXX> (or one-byte) token per byte, -1 if none
  // Unique per finalized tokenizer; keys the per-thread word cache (tokenizer.cpp).
  uint64_t instance_id = 0;

  // Validates the loader's fields and builds the derived ones (llama.cpp's load-time special
  // token detection included). Errors name what is wrong.
  Status finalize();

  std::string_view piece(int32_t id) const {
    return std::string_view(pieces).substr(piece_offsets[id],
                                           piece_offsets[id + 1] - piece_offsets[id]);
  }
  // The piece as token_to_piece(id, special) returns it.
  std::string_view piece(int32_t id, bool special) const {
    if (!special && (vocab.attr(id) & (kAttrControl | kAttrUnknown))) return {};
    return piece(id);
  }
  bool is_eog(int32_t id) const;
};

// Wraps a finalized impl.
Result<Tokenizer> make_tokenizer(std::shared_ptr<TokenizerImpl> impl);

}  // namespace sgl::tokenizer
