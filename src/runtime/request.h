// The per-request parameters of a generation as SGLang's native API defines them
// (`sampling_params` plus the top-level logprob options of POST /generate), their validation, and
// the finish reason reported in `meta_info.finish_reason`. Field names, defaults, range rules and
// JSON shapes are SGLang's (see the SGLang interface reference, "Native API").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/sampler.h"
#include "support/status.h"

namespace sgl::runtime {

// Everything a client can set for one generation. Plain data: parse it from JSON elsewhere, then
// call validate() before scheduling.
struct GenerateParams {
  // --- sampling_params ---
  int32_t max_new_tokens = 128;   // 0 = prefill only (warms the cache)
  int32_t min_new_tokens = 0;     // EOS / stop_token_ids cannot end the output earlier
  std::vector<std::string> stop;  // matched on the decoded text
  std::vector<int32_t> stop_token_ids;
  float temperature = 1.0f;         // < 1e-6 means greedy
  float top_p = 1.0f;               // (0, 1]
  int32_t top_k = -1;               // -1 = all, else >= 1
  float min_p = 0.0f;               // [0, 1]
  float frequency_penalty = 0.0f;   // [-2, 2]
  float presence_penalty = 0.0f;    // [-2, 2]
  float repetition_penalty = 1.0f;  // (0, 2]
  int32_t n = 1;                    // completions per prompt
  bool ignore_eos = false;          // EOS and stop_token_ids do not finish (as SGLang)
  bool skip_special_tokens = true;
  bool spaces_between_special_tokens = true;
  bool no_stop_trim = false;  // keep the matched stop string / stop token's text
  std::vector<std::pair<int32_t, float>> logit_bias;  // token id -> bias
  std::optional<uint64_t> sampling_seed;
  // Constrained decoding; at most one is set. json_schema is the schema as JSON text.
  std::optional<std::string> regex;
  std::optional<std::string> json_schema;
  std::optional<std::string> ebnf;

  // --- logprob options (top level of the /generate body) ---
  bool return_logprob = false;
  int32_t logprob_start_len = -1;  // -1 = output logprobs only
  int32_t top_logprobs_num = 0;
  std::vector<int32_t> token_ids_logprob;
  bool return_text_in_logprobs = false;

  // Returns ok iff every field is in range for a model with `n_vocab` tokens and a context of
  // `context_length` tokens (<= 0: unknown, not checked). Errors are kInvalidArgument and name
  // the field and the offending value. Sampling fields are checked by SamplingParams::validate.
  Status validate(int32_t n_vocab, int32_t context_length) const;

  // The subset the sampler acts on.
  SamplingParams sampling() const;

  // Length of the longest stop string in bytes (0 if none).
  size_t max_stop_len() const;
};

// Why a request finished, shaped exactly like SGLang's meta_info.finish_reason:
//   {"type": "stop", "matched": <token id> | "<stop string>" | null}
//   {"type": "length", "length": N}
//   {"type": "abort", "message": "..."}
struct FinishReason {
  enum Kind { kStop, kLength, kAbort };

  Kind kind = kStop;
  std::variant<std::monostate, int32_t, std::string> matched;  // kStop only
  int32_t length = 0;                                          // kLength only
  std::string message;                                         // kAbort only

  static FinishReason matched_token(int32_t id) {
    FinishReason r;
    r.matched = id;
    return r;
  }
  static FinishReason matched_string(std::string s) {
    FinishReason r;
    r.matched = std::move(s);
    return r;
  }
  static FinishReason by_length(int32_t n) {
    FinishReason r;
    r.kind = kLength;
    r.length = n;
    return r;
  }
  static FinishReason aborted(std::string msg) {
    FinishReason r;
    r.kind = kAbort;
    r.message = std::move(msg);
    return r;
  }

  // "stop", "length" or "abort" (also the OpenAI-compatible finish_reason string).
  const char* type() const;
  nlohmann::json to_json() const;
};

}  // namespace sgl::runtime
