// Tokenizer: text <-> token ids for the models we serve, reproducing llama.cpp's tokenization of
// GGUF vocabularies exactly (the golden tests compare against llama.cpp) and Hugging Face
// `tokenizers` for the tokenizer.json configurations we accept.
//
// Engines:
//   - byte-level BPE ("gpt2"): a pre-tokenizer (pre_tokenizer.h) splits the text into words, each
//     word's bytes are mapped to GPT-2's printable alphabet and merged by rank;
//   - SentencePiece BPE ("llama"): spaces become U+2581 with an optional prefix space, symbols are
//     merged by token score (GGUF) or by merge rank (Hugging Face BPE with byte fallback), and
//     characters without a token become <0xXX> byte tokens.
// Special tokens: control and unknown tokens are recognized in the text only when encode() is
// called with parse_special = true (chat templates do, raw user text does not); user-defined
// tokens are always recognized, as in llama.cpp and Hugging Face. Longer special tokens are
// matched first (llama.cpp's tokenizer_st_partition).
//
// Any byte string tokenizes without error: invalid UTF-8 is decoded as llama.cpp does (an invalid
// byte becomes U+FFFD). A Tokenizer is immutable after construction: share it freely between
// threads; copies are cheap (they share the tables).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "support/status.h"
#include "tokenizer/vocab.h"

namespace sgl::model {
class GgufFile;
}

namespace sgl::tokenizer {

struct TokenizerImpl;

class Tokenizer {
 public:
  // From the `tokenizer.*` metadata of a GGUF file, as llama.cpp loads it. Errors
  // (kInvalidArgument / kUnsupported) name the offending key: missing or mistyped arrays,
  // duplicate or out-of-range data, an unknown tokenizer model or `tokenizer.ggml.pre` (llama.cpp
  // refuses unknown names too; names it knows whose pattern this library lacks are refused
  // as well). A missing `tokenizer.ggml.pre` selects llama.cpp's default pipeline, as llama.cpp
  // does (with a warning there).
  static Result<Tokenizer> from_gguf(const model::GgufFile& gguf);

  // From a Hugging Face model directory: tokenizer.json and, if present, tokenizer_config.json.
  static Result<Tokenizer> from_hf_files(const std::string& dir);
  // From the text of tokenizer.json and tokenizer_config.json ("" when absent). Accepted: a BPE
  // model with a ByteLevel pre-tokenizer (alone, after Digits, or after a Split whose regex is one
  // of the known patterns, compared as exact strings), or a BPE model with byte fallback behind a
  // Metaspace pre-tokenizer or a Prepend/Replace("▁") normalizer. Anything else is kUnsupported
  // with the component named.
  static Result<Tokenizer> from_hf_json(std::string_view tokenizer_json,
                                        std::string_view tokenizer_config_json);

  Tokenizer(const Tokenizer&) = default;
  Tokenizer& operator=(const Tokenizer&) = default;
  Tokenizer(Tokenizer&&) noexcept = default;
  Tokenizer& operator=(Tokenizer&&) noexcept = default;

  // Token ids of `text`. With add_special, BOS / EOS are added as the model asks
  // (add_bos_token / add_eos_token); with parse_special, control tokens written in the text are
  // recognized. REQUIRES: text.size() < 4 GiB (callers bound request sizes far below that).
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;
  // Same, appending to `out`.
  void encode(std::string_view text, bool add_special, bool parse_special,
              std::vector<int32_t>& out) const;

  // The bytes of `ids`, as llama.cpp's llama_detokenize(remove_special = false,
  // unparse_special = !skip_special): control and unknown tokens are dropped when skip_special;
  // a leading space of the first token is removed when the vocabulary adds a space prefix; the
  // vocabulary's clean_up_tokenization_spaces rules apply. The result can be invalid UTF-8 (ids
  // that split a character); use IncrementalDecoder for text meant for display.
  // kOutOfRange if an id is not in [0, vocab_size()).
  Result<std::string> decode(std::span<const int32_t> ids, bool skip_special) const;

  // The bytes token `id` stands for (llama_token_to_piece with lstrip 0); when `special` is false,
  // control and unknown tokens yield "". REQUIRES: is_valid(id).
  std::string_view token_to_piece(int32_t id, bool special = true) const;
  // The token's text as stored in the vocabulary (e.g. "Ġhello", "▁hello", "<0x0A>").
  // REQUIRES: is_valid(id).
  const std::string& token_text(int32_t id) const;
  // The id whose vocabulary text is exactly `text`.
  std::optional<int32_t> find_token(std::string_view text) const;

  int32_t vocab_size() const;
  bool is_valid(int32_t id) const { return id >= 0 && id < vocab_size(); }
  // Special ids; -1 when the vocabulary has none.
  int32_t bos_id() const;
  int32_t eos_id() const;
  int32_t eot_id() const;
  int32_t unk_id() const;
  int32_t pad_id() const;
  bool add_bos() const;
  bool add_eos() const;

  // GGUF token type (TokenType values; Hugging Face added tokens are kControl when special and
  // kUserDefined otherwise). REQUIRES: is_valid(id).
  TokenType token_type(int32_t id) const;
  // llama.cpp attribute bits (TokenAttr), after llama.cpp's load-time adjustments.
  uint16_t token_attr(int32_t id) const;
  bool is_control(int32_t id) const { return (token_attr(id) & kAttrControl) != 0; }
  // End-of-generation tokens, as llama.cpp collects them: eos, eot, eom, FIM pad/repo/sep, and
  // tokens whose text is <|im_end|>, <|eot_id|>, <|endoftext|>, <end_of_turn>, ... Sorted.
  const std::vector<int32_t>& eog_ids() const;
  bool is_eog(int32_t id) const;

  // tokenizer.chat_template from GGUF, or chat_template from tokenizer_config.json.
  const std::optional<std::string>& chat_template() const;
  // "gpt2" (byte-level BPE) or "llama" (SentencePiece BPE).
  std::string_view kind() const;
  // The pre-tokenizer family ("smollm", "llama3", "qwen2", "gpt2", ...); "" for "llama".
  std::string_view pre_tokenizer() const;

 private:
  friend class IncrementalDecoder;
  explicit Tokenizer(std::shared_ptr<const TokenizerImpl> impl) : impl_(std::move(impl)) {}
  friend Result<Tokenizer> make_tokenizer(std::shared_ptr<TokenizerImpl> impl);

  std::shared_ptr<const TokenizerImpl> impl_;
};

// Streaming detokenization for one sequence: push token ids as they are generated and receive
// text that never ends inside a UTF-8 character; the concatenation of all output equals
// utf8::sanitize(decode(all ids)). Invalid bytes come out as U+FFFD. Not thread-safe (one per
// sequence); keeps the Tokenizer's tables alive.
class IncrementalDecoder {
 public:
  IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special);

  // Appends the text completed by token `id` to `out` (possibly nothing). kOutOfRange for an
  // invalid id (the decoder is unchanged).
  Status push(int32_t id, std::string& out);
  // Flushes what is held back; an incomplete trailing sequence becomes U+FFFD. The decoder is
  // then reset for a new sequence.
  void finish(std::string& out);
  // Bytes held back waiting for more tokens.
  size_t pending_bytes() const { return pending_.size(); }

 private:
  void emit(std::string_view bytes, std::string& out);

  std::shared_ptr<const TokenizerImpl> impl_;
  bool skip_special_;
  bool first_ = true;
  std::string pending_;  // raw bytes not yet emitted
  size_t checked_ = 0;   // clean-up mode: pending_ positions <= checked_ are not cut points
  std::string scratch_;
};

// llama.cpp's clean_up_tokenization_spaces passes (llama_vocab::impl::detokenize), in place.
void clean_up_tokenization_spaces(std::string& text);

}  // namespace sgl::tokenizer
