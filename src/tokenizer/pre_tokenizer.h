// Pre-tokenizers: split text into the "words" that byte-level BPE merges within, by hand-written
// matchers that reproduce llama.cpp's split patterns exactly (no regex engine).
//
// A pre-tokenizer is a pipeline of stages; each stage splits every chunk produced by the previous
// one (llama.cpp's unicode_regex_split with a list of patterns). Stages:
//   kGpt2         's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   kLlama3 (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|
//                 \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   kQwen2        the kLlama3 pattern with \p{N} (one digit) instead of \p{N}{1,3}
//   kEachNumber   \p{N}                      (every number code point alone)
//   kNumberRuns   \p{N}+
//   kPunctRuns    [\p{P}\$\+<=>\^~\|]+
//   kDigitTriples [0-9][0-9][0-9]
// A stage emits its matches and the text between matches as separate chunks.
//
// Before splitting, the text is decoded like llama.cpp does (unicode::decode_lenient) and
// re-encoded: invalid bytes become U+FFFD, overlong forms their canonical encoding. The words are
// byte ranges of that re-encoded text (which is the input itself when nothing changed).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sgl::tokenizer {

enum class PreTokenizerStage : uint8_t {
  kGpt2,
  kLlama3,
  kQwen2,
  kEachNumber,
  kNumberRuns,
  kPunctRuns,
  kDigitTriples,
};

// What a GGUF `tokenizer.ggml.pre` name selects in llama.cpp (src/llama-vocab.cpp).
struct PreTokenizerSpec {
  std::string_view name;  // canonical family name: "gpt2", "llama3", "qwen2", "smollm", ...
  std::vector<PreTokenizerStage> stages;
  bool ignore_merges = false;  // a word that is itself a token is emitted whole
  bool clean_spaces = true;    // decode applies llama.cpp's clean_up_tokenization_spaces
  bool add_bos = false;        // default of add_bos_token (the GGUF key overrides it)
  bool no_bos = false;         // the family has no BOS token (chatglm)
};

// The spec for a `tokenizer.ggml.pre` value; "" and "default" select llama.cpp's default
// pipeline. nullopt for names llama.cpp does not know or whose pattern this library lacks
// (llama.cpp refuses unknown names at load, so callers report an Unsupported error).
std::optional<PreTokenizerSpec> find_pre_tokenizer(std::string_view gguf_pre);

// Reusable buffers for pre_tokenize (one per thread; never shared).
struct PreTokenizeScratch {
  std::string reencoded;            // holds the text when decoding changed bytes
  std::string_view text;            // the text the words index into
  std::vector<uint32_t> cpts;       // [n_cpts]
  std::vector<uint8_t> flags;       // [n_cpts] unicode::flags of each code point
  std::vector<uint32_t> offsets;    // [n_cpts + 1] byte offset of each code point in `text`
  std::vector<uint32_t> ends;       // chunk ends (code point indices), ascending
  std::vector<uint32_t> next_ends;  // stage output
  std::vector<uint32_t> word_ends;  // [n_words] byte offsets in `text`; word i is
                                    // [word_ends[i-1] (or 0), word_ends[i])
};

// Splits `input` with `stages`. On return scratch.text and scratch.word_ends describe the words
// (none for empty input).
void pre_tokenize(std::span<const PreTokenizerStage> stages, std::string_view input,
                  PreTokenizeScratch& scratch);

}  // namespace sgl::tokenizer
