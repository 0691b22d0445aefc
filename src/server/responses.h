// Response shaping for the HTTP API: how a request's engine events accumulate per choice, and the
// JSON objects SGLang's native API and the OpenAI-compatible API answer with (whole responses and
// SSE stream chunks). Pure functions of the accumulated state; token texts come from a callback
// so the shapes can be tested without a model.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "server/api_error.h"
#include "sgl/engine.h"

namespace sgl::server {

// Text of one token for logprob entries ("" for special tokens the caller skips).
using TokenText = std::function<std::string(int32_t)>;

// Everything one choice (one engine request handle) has produced so far, plus what a stream has
// already sent of it.
struct ChoiceState {
  int index = 0;         // position in the response's list / OpenAI choice index
  int prompt_index = 0;  // which prompt it answers
  std::string rid;
  std::string text;  // cumulative output text
  std::vector<int32_t> output_ids;
  std::vector<runtime::PositionLogprobs> input_lp;   // with return_logprob
  std::vector<runtime::PositionLogprobs> output_lp;  // one per output token
  bool finished = false;
  runtime::FinishReason finish;
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;
  runtime::RequestTimings timings;
  // Stream cursors: what earlier chunks already carried.
  size_t sent_text = 0;
  size_t sent_lp = 0;
  int unsent_tokens = 0;  // tokens since the last chunk (for --stream-interval)
  bool started = false;   // the first chunk (chat: the role delta) went out
  bool final_sent = false;

  // Folds one event in (moves its payload).
  void apply(runtime::RequestEvent& ev);
};

// --- native API -------------------------------------------------------------------------------

// {"text", "output_ids", "meta_info": {...}} for one choice. `e2e_latency` is the seconds since the
// request arrived (the finish event's e2e time once finished). finish_reason is null until the
// choice finished. Logprob fields follow `p` (return_logprob, top_logprobs_num,
// token_ids_logprob, return_text_in_logprobs).
Json native_output(const ChoiceState& c, const runtime::GenerateParams& p, const TokenText& tt,
                   double e2e_latency);

// SGLang's logprob triple [logprob | null, token_id, text | null].
Json logprob_triple(const runtime::TokenLogprob& t, bool with_text, const TokenText& tt);

// --- OpenAI API -------------------------------------------------------------------------------

// "stop" / "length" / "abort", or null while running.
Json openai_finish_reason(const ChoiceState& c);
// The matched stop token id or string (null when none).
Json openai_matched_stop(const ChoiceState& c);
// {"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details":
// {"cached_tokens"}} summed over choices (prompt tokens once per prompt: choices sharing a
// prompt_index count once).
Json openai_usage(const std::vector<ChoiceState>& choices);

// Completions logprobs {"tokens", "token_logprobs", "top_logprobs", "text_offset"} for positions
// lps[from, to). `text_offset` starts at *offset and advances it.
Json completion_logprobs(const std::vector<runtime::PositionLogprobs>& lps, size_t from, size_t to,
                         bool with_top, const TokenText& tt, size_t* offset);
// Chat logprobs {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]} for lps[from,
// to).
Json chat_logprobs(const std::vector<runtime::PositionLogprobs>& lps, size_t from, size_t to,
                   const TokenText& tt);

// One SSE event: "data: <json>\n\n".
std::string sse_event(const Json& j);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

}  // namespace sgl::server
