#include "runtime/request.h"

#include <algorithm>
#include <string>

#include "support/utf8.h"

namespace sgl::runtime {

namespace {
std::string str(int64_t v) { return std::to_string(v); }
}  // namespace

Status GenerateParams::validate(int32_t n_vocab, int32_t context_length) const {
  if (max_new_tokens < 0)
    return invalid_argument("max_new_tokens must be at least 0, got " + str(max_new_tokens));
  if (context_length > 0 && max_new_tokens >= context_length)
    return invalid_argument("max_new_tokens (" + str(max_new_tokens) +
                            ") exceeds the model's maximum context length of " +
                            str(context_length) + " tokens");
  if (min_new_tokens < 0 || min_new_tokens > max_new_tokens)
    return invalid_argument("min_new_tokens must be in [0, max_new_tokens(" + str(max_new_tokens) +
                            ")], got " + str(min_new_tokens));
  if (n < 1) return invalid_argument("n must be at least 1, got " + str(n));
  if (top_k == 0 || top_k < -1)
    return invalid_argument("top_k must be -1 (disable), or at least 1, got " + str(top_k));
  SGL_RETURN_IF_ERROR(sampling().validate(n_vocab));
  for (size_t i = 0; i < stop.size(); ++i) {
    if (stop[i].empty())
      return invalid_argument("stop: stop strings must be non-empty (stop[" + str(i) + "])");
    if (!utf8::is_valid(stop[i]))
      return invalid_argument("stop: stop[" + str(i) + "] is not valid UTF-8");
  }
  for (int32_t id : stop_token_ids)
    if (id < 0 || id >= n_vocab)
      return invalid_argument("stop_token_ids: token id " + str(id) + " out of range [0, " +
                              str(n_vocab) + ")");
  int constraints = int(regex.has_value()) + int(json_schema.has_value()) + int(ebnf.has_value());
  if (constraints > 1)
    return invalid_argument("Only one of regex, json_schema, or ebnf can be set");
  if (json_schema && !nlohmann::json::accept(*json_schema))
    return invalid_argument("json_schema is not valid JSON");
  if (logprob_start_len < -1)
    return invalid_argument("logprob_start_len must be -1 or at least 0, got " +
                            str(logprob_start_len));
  if (top_logprobs_num < 0)
    return invalid_argument("top_logprobs_num must be at least 0, got " + str(top_logprobs_num));
  if (n_vocab > 0 && top_logprobs_num > n_vocab)
    return invalid_argument("top_logprobs_num must be at most the vocabulary size (" +
                            str(n_vocab) + "), got " + str(top_logprobs_num));
  for (int32_t id : token_ids_logprob)
    if (id < 0 || id >= n_vocab)
      return invalid_argument("token_ids_logprob: token id " + str(id) + " out of range [0, " +
                              str(n_vocab) + ")");
  return Status::ok();
}

SamplingParams GenerateParams::sampling() const {
  SamplingParams p;
  p.temperature = temperature;
  p.top_p = top_p;
  p.top_k = top_k;
  p.min_p = min_p;
  p.frequency_penalty = frequency_penalty;
  p.presence_penalty = presence_penalty;
  p.repetition_penalty = repetition_penalty;
  p.logit_bias = logit_bias;
  p.seed = sampling_seed;
  return p;
}

size_t GenerateParams::max_stop_len() const {
  size_t m = 0;
  for (const auto& s : stop) m = std::max(m, s.size());
  return m;
}

const char* FinishReason::type() const {
  switch (kind) {
    case kStop:
      return "stop";
    case kLength:
      return "length";
    case kAbort:
      return "abort";
  }
  return "abort";
}

nlohmann::json FinishReason::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  j["type"] = type();
  switch (kind) {
    case kStop:
      if (const auto* id = std::get_if<int32_t>(&matched)) {
        j["matched"] = *id;
      } else if (const auto* s = std::get_if<std::string>(&matched)) {
        j["matched"] = *s;
      } else {
        j["matched"] = nullptr;
      }
      break;
    case kLength:
      j["length"] = length;
      break;
    case kAbort:
      j["message"] = message;
      break;
  }
  return j;
}

}  // namespace sgl::runtime
