// Request bodies of the HTTP API, parsed and validated into plain structs (no tokenizer, no
// engine): SGLang's native POST /generate and the OpenAI-compatible /v1/completions and
// /v1/chat/completions. Field names, defaults and list/scalar rules are SGLang's (see
// docs/http_api.md). Every error is kInvalidArgument (or kUnsupported for inputs this server
// cannot serve, e.g. images) and names the field; unknown fields are ignored. Constraints (regex,
// ebnf, json_schema, response_format) are type-checked here and compiled by the engine.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/request.h"
#include "server/api_error.h"
#include "support/status.h"

namespace sgl::server {

// One prompt: text (tokenized by the server with the model's BOS rule and special-token parsing)
// or token ids.
struct PromptInput {
  std::optional<std::string> text;
  std::vector<int32_t> ids;
};

// Most sequences one request may expand to (prompts x n); --max-n may lower it.
constexpr int kMaxChoicesPerRequest = 1024;
// Stop strings per request at most, and their total bytes: every generated token is checked
// against all of them on the scheduler thread, so one request must not make that unbounded.
constexpr size_t kMaxStopStrings = 256;
constexpr size_t kMaxStopBytes = 64 * 1024;

// Fields that would name a file on the server (SGLang's lora_path) are refused with
// kUnsupported: models and templates come from the command line only (docs/security.md).

// POST /generate.
struct NativeGenerateRequest {
  std::vector<PromptInput> prompts;
  std::vector<runtime::GenerateParams> params;  // one per prompt
  std::vector<std::string> rids;                // one per prompt; "" = let the server make one
  bool batch = false;  // text / input_ids was a list: the response is a list
  bool stream = false;
  // Total sequences (sum of n).
  int choices() const;
};
Result<NativeGenerateRequest> parse_generate_request(const Json& body);

// One `sampling_params` object into `p` (fields absent keep p's values). `path` names it in
// messages ("sampling_params" or "sampling_params[2]").
Status parse_sampling_params(const Json& sp, const std::string& path, runtime::GenerateParams* p);

// Fields shared by both OpenAI routes.
struct OpenAICommon {
  std::string model;  // "" = not given
  runtime::GenerateParams params;
  std::optional<int32_t> max_tokens;  // absent: completions 16, chat fills the context
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

// POST /v1/completions.
struct CompletionRequest {
  OpenAICommon common;
  std::vector<PromptInput> prompts;
  bool echo = false;
  int32_t logprobs = -1;  // -1 = none, else top-N per position (0 = only the chosen token)
};
Result<CompletionRequest> parse_completion_request(const Json& body);

// POST /v1/chat/completions.
struct ChatRequest {
  OpenAICommon common;
  Json messages;                          // for the template: content lists of text parts joined
  std::optional<Json> tools;              // passed to the template as `tools`
  Json template_kwargs = Json::object();  // chat_template_kwargs
  bool logprobs = false;
  int32_t top_logprobs = 0;
};
Result<ChatRequest> parse_chat_request(const Json& body);

// POST /tokenize: {"text": str | [str], "add_special_tokens": bool (default true)} (also
// "prompt" as SGLang accepts).
struct TokenizeRequest {
  std::vector<std::string> texts;
  bool batch = false;
  bool add_special_tokens = true;
};
Result<TokenizeRequest> parse_tokenize_request(const Json& body);

// POST /detokenize: {"tokens": [int] | [[int]], "skip_special_tokens": bool (default true)}.
struct DetokenizeRequest {
  std::vector<std::vector<int32_t>> ids;
  bool batch = false;
  bool skip_special_tokens = true;
};
Result<DetokenizeRequest> parse_detokenize_request(const Json& body);

// POST /abort_request: {"rid": str, "abort_all": bool}.
struct AbortRequest {
  std::string rid;
  bool abort_all = false;
};
Result<AbortRequest> parse_abort_request(const Json& body);

}  // namespace sgl::server
