// StopChecker: the output side of one request. It detokenizes the generated tokens incrementally,
// decides when the request finishes (max_new_tokens, EOS / stop_token_ids, stop strings) the way
// SGLang's Req.check_finished does, trims the output as SGLang's detokenizer does, and releases
// text to a streaming client only once it can no longer be trimmed.
//
// Rules, in SGLang's order, checked after each token:
//   1. length: the max_new_tokens-th token finishes the request {"type":"length"}; the token's
//      text is kept (even when it is EOS or completes a stop string; SGLang checks length first).
//   2. tokens: unless ignore_eos, an end-of-generation token (Tokenizer::is_eog) or one of
//      stop_token_ids finishes with matched = the id, once at least min_new_tokens tokens came
//      before it. Its text is dropped unless no_stop_trim.
//   3. strings: the first stop string to appear in the decoded text (even across token boundaries)
//      finishes with matched = that string; when two appear at the same step the one starting
//      earlier wins. The text is cut at the match start, or with no_stop_trim kept whole
//      (through the end of the token that completed the match, as SGLang keeps it).
// Streaming: a suffix of the text that could still grow into a stop string is held back, so the
// concatenation of all deltas (every Step and the final flush) equals text() at the end, and every
// prefix of it is a prefix of the final text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/request.h"
#include "tokenizer/tokenizer.h"

namespace sgl::runtime {

class StopChecker {
 public:
  struct Step {
    std::string_view delta;  // new text safe to emit; valid until the next non-const call
    bool finished = false;
    FinishReason finish_reason;  // meaningful iff finished
  };

  // Copies what it needs from `params` (stop strings, stop ids, limits, flags).
  // REQUIRES: params.validate(...) passed.
  StopChecker(const tokenizer::Tokenizer& tok, const GenerateParams& params);

  StopChecker(const StopChecker&) = delete;
  StopChecker& operator=(const StopChecker&) = delete;
  StopChecker(StopChecker&&) = default;
  StopChecker& operator=(StopChecker&&) = default;

  // Feeds the next generated token. REQUIRES: !finished(). A token outside the tokenizer's
  // vocabulary (a model with a padded vocabulary) aborts the request.
  Step push(int32_t token);
  // Finishes with {"type":"length","length": tokens so far} (max_new_tokens = 0, or the scheduler
  // ran out of context) and flushes all held-back text. REQUIRES: !finished().
  Step finish_by_length();
  // Finishes with {"type":"abort","message": msg} and flushes all held-back text.
  // REQUIRES: !finished().
  Step abort(std::string msg);

  bool finished() const { return finished_; }
  const FinishReason& finish_reason() const { return reason_; }
  // Before finishing: all text decoded so far, including what is still held back. After: the
  // final (trimmed) output text, equal to the concatenation of all deltas.
  const std::string& text() const { return text_; }
  // Tokens pushed so far (SGLang's completion_tokens; includes a matched stop token).
  int32_t num_tokens() const { return n_tokens_; }
  // Bytes of text() not yet emitted.
  size_t held_back_bytes() const { return text_.size() - emitted_; }

 private:
  Step finish(FinishReason reason);
  // Emits text_[emitted_, end) and returns it as a delta.
  std::string_view emit_to(size_t end);
  // Length of the longest suffix of text_ that is a proper prefix of some stop string.
  size_t stop_prefix_suffix_len() const;
  // Decodes `token` into text_; false if the id is outside the vocabulary.
  bool decode(int32_t token);

  tokenizer::Tokenizer tok_;
  tokenizer::IncrementalDecoder decoder_;
  std::vector<std::string> stop_;
  std::vector<int32_t> stop_token_ids_;  // sorted
  size_t max_stop_len_ = 0;
  int32_t max_new_tokens_;
  int32_t min_new_tokens_;
  bool ignore_eos_;
  bool no_stop_trim_;

  std::string text_;
  size_t emitted_ = 0;
  int32_t n_tokens_ = 0;
  bool finished_ = false;
  FinishReason reason_;
};

}  // namespace sgl::runtime
