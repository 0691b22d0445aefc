#include "server/protocol.h"

#include <string>

#include "server/json_fields.h"

namespace sgl::server {

using runtime::GenerateParams;

namespace {

std::string idx(const std::string& name, size_t i) { return name + "[" + std::to_string(i) + "]"; }

// A list of ints, or a list of lists of ints (batch). `batch` tells which.
Status parse_ids(const Json& v, const std::string& name, std::vector<std::vector<int32_t>>* out,
                 bool* batch) {
  if (!v.is_array())
    return invalid_argument(name +
                            ": expected a list of token ids or a list of "
                            "lists, got " +
                            json_type_name(v));
  out->clear();
  *batch = !v.empty() && v[0].is_array();
  if (!*batch) {
    out->emplace_back();
    for (size_t i = 0; i < v.size(); ++i) {
      int32_t x = 0;
      SGL_RETURN_IF_ERROR(json_to_int32(v[i], idx(name, i), &x));
      out->back().push_back(x);
    }
    return Status::ok();
  }
  for (size_t i = 0; i < v.size(); ++i) {
    const Json& row = v[i];
    if (!row.is_array())
      return invalid_argument(idx(name, i) + ": expected a list of token ids, got " +
                              json_type_name(row));
    out->emplace_back();
    for (size_t j = 0; j < row.size(); ++j) {
      int32_t x = 0;
      SGL_RETURN_IF_ERROR(json_to_int32(row[j], idx(idx(name, i), j), &x));
      out->back().push_back(x);
    }
  }
  return Status::ok();
}

// A scalar applied to every prompt or a list with one value per prompt.
template <typename T, typename ReadOne>
Status per_prompt(const Json& body, const char* key, size_t n, std::vector<T>* out,
                  ReadOne read_one) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return Status::ok();
  if (it->is_array()) {
    if (it->size() != n)
      return invalid_argument(std::string(key) + ": a list must have one value per prompt (" +
                              std::to_string(n) + "), got " + std::to_string(it->size()));
    for (size_t i = 0; i < n; ++i) SGL_RETURN_IF_ERROR(read_one((*it)[i], idx(key, i), &(*out)[i]));
    return Status::ok();
  }
  for (size_t i = 0; i < n; ++i) SGL_RETURN_IF_ERROR(read_one(*it, key, &(*out)[i]));
  return Status::ok();
}

Status check_stop_strings(const std::vector<std::string>& stop, const std::string& what) {
  if (stop.size() > kMaxStopStrings)
    return invalid_argument(what + ": at most " + std::to_string(kMaxStopStrings) +
                            " stop strings are allowed, got " + std::to_string(stop.size()));
  size_t bytes = 0;
  for (const auto& s : stop) bytes += s.size();
  if (bytes > kMaxStopBytes)
    return invalid_argument(what + ": the stop strings total " + std::to_string(bytes) +
                            " bytes; at most " + std::to_string(kMaxStopBytes) + " are allowed");
  return Status::ok();
}

// A schema given as JSON text escapes the body's nesting limit; deeper than this it is refused
// before the schema compiler walks it (the compiler stops at 128 schema levels anyway).
constexpr int kMaxSchemaTextDepth = 256;

Status check_schema_text(const std::string& text, const std::string& what) {
  if (!json_depth_ok(text, kMaxSchemaTextDepth))
    return invalid_argument(what + ": the schema nests deeper than " +
                            std::to_string(kMaxSchemaTextDepth) + " levels");
  return Status::ok();
}

Status refuse_paths(const FieldReader& r) {
  if (r.find("lora_path"))
    return unsupported(
        "lora_path is not supported: this server loads no adapters, and request fields never "
        "name files on the server");
  return Status::ok();
}

Status read_bool(const Json& v, const std::string& what, bool* out) {
  if (!v.is_boolean())
    return invalid_argument(what + ": expected a boolean, got " + json_type_name(v));
  *out = v.get<bool>();
  return Status::ok();
}

Status parse_stream_options(const FieldReader& r, OpenAICommon* c) {
  const Json* so = r.find("stream_options");
  if (!so) return Status::ok();
  if (!so->is_object())
    return invalid_argument("stream_options: expected an object, got " +
                            std::string(json_type_name(*so)));
  FieldReader sr(*so, "stream_options");
  SGL_RETURN_IF_ERROR(sr.get_bool("include_usage", &c->include_usage));
  bool cont = false;
  SGL_RETURN_IF_ERROR(sr.get_bool("continuous_usage_stats", &cont));
  if (cont) return unsupported("stream_options.continuous_usage_stats is not supported");
  return Status::ok();
}

// response_format → the JSON schema text it constrains to (nullopt for "text"). SGLang's mapping:
// json_object is the schema {"type": "object"}; json_schema carries its `schema`.
Status parse_response_format(const FieldReader& r, std::optional<std::string>* schema_text) {
  const Json* rf = r.find("response_format");
  if (!rf) return Status::ok();
  if (!rf->is_object())
    return invalid_argument("response_format: expected an object, got " +
                            std::string(json_type_name(*rf)));
  FieldReader fr(*rf, "response_format");
  std::string type;
  SGL_RETURN_IF_ERROR(fr.get_string("type", &type));
  if (type == "text") return Status::ok();
  if (type == "json_object") {
    *schema_text = R"({"type": "object"})";
    return Status::ok();
  }
  if (type == "json_schema") {
    const Json* js = fr.find("json_schema");
    if (!js || !js->is_object())
      return invalid_argument(
          "response_format.json_schema: expected an object with \"name\" and \"schema\"");
    FieldReader jr(*js, "response_format.json_schema");
    std::string name;
    SGL_RETURN_IF_ERROR(jr.get_string("name", &name));
    bool strict = false;
    SGL_RETURN_IF_ERROR(jr.get_bool("strict", &strict));
    const Json* schema = jr.find("schema");
    if (!schema) return invalid_argument("response_format.json_schema.schema is required");
    if (!schema->is_object() && !schema->is_boolean())
      return invalid_argument("response_format.json_schema.schema: expected an object, got " +
                              std::string(json_type_name(*schema)));
    *schema_text = dump_json(*schema);
    return Status::ok();
  }
  if (type.empty()) return invalid_argument("response_format.type is required");
  return invalid_argument(
      "response_format.type must be one of text, json_object, json_schema; got " +
      quote_for_message(type));
}

// Sampling fields of the OpenAI routes plus SGLang's extras.
Status parse_openai_common(const Json& body, bool chat, OpenAICommon* c) {
  FieldReader r(body, "");
  GenerateParams& p = c->params;
  SGL_RETURN_IF_ERROR(refuse_paths(r));
  SGL_RETURN_IF_ERROR(r.get_string("model", &c->model));
  int32_t max_tokens = -1;
  if (r.find("max_tokens")) {
    SGL_RETURN_IF_ERROR(r.get_int("max_tokens", &max_tokens));
    c->max_tokens = max_tokens;
  }
  if (chat && r.find("max_completion_tokens")) {
    SGL_RETURN_IF_ERROR(r.get_int("max_completion_tokens", &max_tokens));
    c->max_tokens = max_tokens;
  }
  if (c->max_tokens && *c->max_tokens < 0)
    return invalid_argument("max_tokens must be at least 0, got " + std::to_string(*c->max_tokens));
  SGL_RETURN_IF_ERROR(r.get_float("temperature", &p.temperature));
  SGL_RETURN_IF_ERROR(r.get_float("top_p", &p.top_p));
  SGL_RETURN_IF_ERROR(r.get_int("top_k", &p.top_k));
  SGL_RETURN_IF_ERROR(r.get_float("min_p", &p.min_p));
  SGL_RETURN_IF_ERROR(r.get_float("frequency_penalty", &p.frequency_penalty));
  SGL_RETURN_IF_ERROR(r.get_float("presence_penalty", &p.presence_penalty));
  SGL_RETURN_IF_ERROR(r.get_float("repetition_penalty", &p.repetition_penalty));
  SGL_RETURN_IF_ERROR(r.get_int("n", &p.n));
  SGL_RETURN_IF_ERROR(r.get_string_or_list("stop", &p.stop));
  SGL_RETURN_IF_ERROR(check_stop_strings(p.stop, "stop"));
  SGL_RETURN_IF_ERROR(r.get_int_list("stop_token_ids", &p.stop_token_ids));
  SGL_RETURN_IF_ERROR(r.get_uint64("seed", &p.sampling_seed));
  SGL_RETURN_IF_ERROR(r.get_int("min_tokens", &p.min_new_tokens));
  SGL_RETURN_IF_ERROR(r.get_bool("ignore_eos", &p.ignore_eos));
  SGL_RETURN_IF_ERROR(r.get_bool("skip_special_tokens", &p.skip_special_tokens));
  SGL_RETURN_IF_ERROR(
      r.get_bool("spaces_between_special_tokens", &p.spaces_between_special_tokens));
  SGL_RETURN_IF_ERROR(r.get_bool("no_stop_trim", &p.no_stop_trim));
  SGL_RETURN_IF_ERROR(r.get_logit_bias("logit_bias", &p.logit_bias));
  SGL_RETURN_IF_ERROR(r.get_bool("stream", &c->stream));
  SGL_RETURN_IF_ERROR(parse_stream_options(r, c));
  // Structured outputs: at most one constraint; the engine compiles it (and refuses it with a
  // clear error where the grammar backend does not support it).
  SGL_RETURN_IF_ERROR(r.get_opt_string("regex", &p.regex));
  SGL_RETURN_IF_ERROR(r.get_opt_string("ebnf", &p.ebnf));
  if (const Json* js = r.find("json_schema")) {
    if (js->is_string()) {
      p.json_schema = js->get<std::string>();
      SGL_RETURN_IF_ERROR(check_schema_text(*p.json_schema, "json_schema"));
      if (!nlohmann::json::accept(*p.json_schema))
        return invalid_argument("json_schema is not valid JSON");
    } else if (js->is_object() || js->is_boolean()) {
      p.json_schema = dump_json(*js);
    } else {
      return invalid_argument("json_schema: expected a JSON schema (object or string), got " +
                              std::string(json_type_name(*js)));
    }
  }
  std::optional<std::string> rf_schema;
  SGL_RETURN_IF_ERROR(parse_response_format(r, &rf_schema));
  if (int(p.regex.has_value()) + int(p.ebnf.has_value()) + int(p.json_schema.has_value()) +
          int(rf_schema.has_value()) >
      1)
    return invalid_argument(
        "Only one of regex, json_schema, ebnf or a response_format other than text can be set");
  if (rf_schema) p.json_schema = std::move(rf_schema);
  if (const Json* tc = r.find("tool_choice");
      tc && !(tc->is_string() && (*tc == "none" || *tc == "auto")))
    return unsupported("tool_choice other than \"auto\" / \"none\" is not supported");
  return Status::ok();
}

Status check_choices(size_t prompts, int32_t n) {
  if (n < 1) return invalid_argument("n must be at least 1, got " + std::to_string(n));
  if (prompts * static_cast<size_t>(n) > static_cast<size_t>(kMaxChoicesPerRequest))
    return invalid_argument("the request expands to " + std::to_string(prompts * n) +
                            " sequences (prompts x n); at most " +
                            std::to_string(kMaxChoicesPerRequest) + " are allowed");
  return Status::ok();
}

}  // namespace

int NativeGenerateRequest::choices() const {
  int total = 0;
  for (const auto& p : params) total += p.n;
  return total;
}

Status parse_sampling_params(const Json& sp, const std::string& path, GenerateParams* p) {
  if (!sp.is_object())
    return invalid_argument(path + ": expected an object, got " + json_type_name(sp));
  FieldReader r(sp, path);
  SGL_RETURN_IF_ERROR(r.get_int("max_new_tokens", &p->max_new_tokens));
  SGL_RETURN_IF_ERROR(r.get_int("min_new_tokens", &p->min_new_tokens));
  SGL_RETURN_IF_ERROR(r.get_string_or_list("stop", &p->stop));
  SGL_RETURN_IF_ERROR(check_stop_strings(p->stop, r.name("stop")));
  SGL_RETURN_IF_ERROR(r.get_int_list("stop_token_ids", &p->stop_token_ids));
  SGL_RETURN_IF_ERROR(r.get_float("temperature", &p->temperature));
  SGL_RETURN_IF_ERROR(r.get_float("top_p", &p->top_p));
  SGL_RETURN_IF_ERROR(r.get_int("top_k", &p->top_k));
  SGL_RETURN_IF_ERROR(r.get_float("min_p", &p->min_p));
  SGL_RETURN_IF_ERROR(r.get_float("frequency_penalty", &p->frequency_penalty));
  SGL_RETURN_IF_ERROR(r.get_float("presence_penalty", &p->presence_penalty));
  SGL_RETURN_IF_ERROR(r.get_float("repetition_penalty", &p->repetition_penalty));
  SGL_RETURN_IF_ERROR(r.get_int("n", &p->n));
  SGL_RETURN_IF_ERROR(r.get_bool("ignore_eos", &p->ignore_eos));
  SGL_RETURN_IF_ERROR(r.get_bool("skip_special_tokens", &p->skip_special_tokens));
  SGL_RETURN_IF_ERROR(
      r.get_bool("spaces_between_special_tokens", &p->spaces_between_special_tokens));
  SGL_RETURN_IF_ERROR(r.get_bool("no_stop_trim", &p->no_stop_trim));
  SGL_RETURN_IF_ERROR(r.get_logit_bias("logit_bias", &p->logit_bias));
  SGL_RETURN_IF_ERROR(r.get_uint64("sampling_seed", &p->sampling_seed));
  SGL_RETURN_IF_ERROR(r.get_opt_string("regex", &p->regex));
  SGL_RETURN_IF_ERROR(r.get_opt_string("ebnf", &p->ebnf));
  if (const Json* js = r.find("json_schema")) {
    if (!js->is_string())
      return invalid_argument(r.name("json_schema") +
                              ": expected a string (the schema as JSON "
                              "text), got " +
                              json_type_name(*js));
    p->json_schema = js->get<std::string>();
    SGL_RETURN_IF_ERROR(check_schema_text(*p->json_schema, r.name("json_schema")));
  }
  return Status::ok();
}

Result<NativeGenerateRequest> parse_generate_request(const Json& body) {
  NativeGenerateRequest out;
  FieldReader r(body, "");
  const Json* text = r.find("text");
  const Json* ids = r.find("input_ids");
  if (r.find("image_data") || r.find("audio_data") || r.find("video_data"))
    return unsupported(
        "image_data / audio_data / video_data: multimodal inputs are not supported "
        "(the server runs text-only models)");
  if (r.find("input_embeds")) return unsupported("input_embeds is not supported");
  SGL_RETURN_IF_ERROR(refuse_paths(r));
  if (text && ids) return invalid_argument("give either text or input_ids, not both");
  if (!text && !ids) return invalid_argument("either text or input_ids should be provided");
  if (text) {
    if (text->is_string()) {
      out.prompts.push_back({text->get<std::string>(), {}});
    } else if (text->is_array()) {
      out.batch = true;
      for (size_t i = 0; i < text->size(); ++i) {
        const Json& t = (*text)[i];
        if (!t.is_string())
          return invalid_argument(idx("text", i) + ": expected a string, got " + json_type_name(t));
        out.prompts.push_back({t.get<std::string>(), {}});
      }
    } else {
      return invalid_argument(std::string("text: expected a string or a list of strings, got ") +
                              json_type_name(*text));
    }
  } else {
    std::vector<std::vector<int32_t>> lists;
    SGL_RETURN_IF_ERROR(parse_ids(*ids, "input_ids", &lists, &out.batch));
    for (auto& l : lists) out.prompts.push_back({std::nullopt, std::move(l)});
  }
  const size_t n = out.prompts.size();
  if (n == 0)
    return invalid_argument(std::string(text ? "text" : "input_ids") + " is an empty list");
  if (n > static_cast<size_t>(kMaxChoicesPerRequest))
    return invalid_argument("at most " + std::to_string(kMaxChoicesPerRequest) +
                            " prompts per request, got " + std::to_string(n));
  out.params.assign(n, GenerateParams());
  if (const Json* sp = r.find("sampling_params")) {
    if (sp->is_array()) {
      if (sp->size() != n)
        return invalid_argument("sampling_params: a list must have one object per prompt (" +
                                std::to_string(n) + "), got " + std::to_string(sp->size()));
      for (size_t i = 0; i < n; ++i)
        SGL_RETURN_IF_ERROR(
            parse_sampling_params((*sp)[i], idx("sampling_params", i), &out.params[i]));
    } else {
      SGL_RETURN_IF_ERROR(parse_sampling_params(*sp, "sampling_params", &out.params[0]));
      for (size_t i = 1; i < n; ++i) out.params[i] = out.params[0];
    }
  }
  out.rids.assign(n, "");
  if (const Json* rid = r.find("rid")) {
    if (rid->is_string()) {
      if (out.batch && n > 1)
        return invalid_argument("rid: a batch needs a list of request ids, one per prompt");
      out.rids[0] = rid->get<std::string>();
    } else if (rid->is_array()) {
      if (rid->size() != n)
        return invalid_argument("rid: the list must have one id per prompt (" + std::to_string(n) +
                                "), got " + std::to_string(rid->size()));
      for (size_t i = 0; i < n; ++i) {
        if (!(*rid)[i].is_string())
          return invalid_argument(idx("rid", i) + ": expected a string, got " +
                                  json_type_name((*rid)[i]));
        out.rids[i] = (*rid)[i].get<std::string>();
      }
    } else {
      return invalid_argument(std::string("rid: expected a string or a list of strings, got ") +
                              json_type_name(*rid));
    }
  }
  // Top-level logprob options (scalar for all prompts, or one per prompt).
  std::vector<bool> ret(n, false);
  {
    std::vector<char> tmp(n, 0);
    SGL_RETURN_IF_ERROR(per_prompt<char>(body, "return_logprob", n, &tmp,
                                         [](const Json& v, const std::string& w, char* o) {
                                           bool b = false;
                                           SGL_RETURN_IF_ERROR(read_bool(v, w, &b));
                                           *o = b;
                                           return Status::ok();
                                         }));
    for (size_t i = 0; i < n; ++i) out.params[i].return_logprob = tmp[i];
  }
  auto read_int = [](const Json& v, const std::string& w, int32_t* o) {
    return json_to_int32(v, w, o);
  };
  {
    std::vector<int32_t> tmp(n, -1);
    SGL_RETURN_IF_ERROR(per_prompt<int32_t>(body, "logprob_start_len", n, &tmp, read_int));
    for (size_t i = 0; i < n; ++i) out.params[i].logprob_start_len = tmp[i];
  }
  {
    std::vector<int32_t> tmp(n, 0);
    SGL_RETURN_IF_ERROR(per_prompt<int32_t>(body, "top_logprobs_num", n, &tmp, read_int));
    for (size_t i = 0; i < n; ++i) out.params[i].top_logprobs_num = tmp[i];
  }
  if (const Json* t = r.find("token_ids_logprob")) {
    std::vector<std::vector<int32_t>> lists;
    bool per = false;
    SGL_RETURN_IF_ERROR(parse_ids(*t, "token_ids_logprob", &lists, &per));
    if (per && lists.size() != n)
      return invalid_argument("token_ids_logprob: a list of lists must have one list per prompt");
    for (size_t i = 0; i < n; ++i) out.params[i].token_ids_logprob = per ? lists[i] : lists[0];
  }
  bool text_in_lp = false;
  SGL_RETURN_IF_ERROR(r.get_bool("return_text_in_logprobs", &text_in_lp));
  for (auto& p : out.params) p.return_text_in_logprobs = text_in_lp;
  SGL_RETURN_IF_ERROR(r.get_bool("stream", &out.stream));
  int total = 0;
  for (auto& p : out.params) {
    if (p.n < 1)
      return invalid_argument("sampling_params.n must be at least 1, got " + std::to_string(p.n));
    total += p.n;
    if (total > kMaxChoicesPerRequest) SGL_RETURN_IF_ERROR(check_choices(1, total));
  }
  return out;
}

Result<CompletionRequest> parse_completion_request(const Json& body) {
  CompletionRequest out;
  SGL_RETURN_IF_ERROR(parse_openai_common(body, /*chat=*/false, &out.common));
  FieldReader r(body, "");
  const Json* prompt = r.find("prompt");
  if (!prompt) return invalid_argument("prompt is required");
  if (prompt->is_string()) {
    out.prompts.push_back({prompt->get<std::string>(), {}});
  } else if (prompt->is_array() && !prompt->empty() && (*prompt)[0].is_string()) {
    for (size_t i = 0; i < prompt->size(); ++i) {
      const Json& t = (*prompt)[i];
      if (!t.is_string())
        return invalid_argument(idx("prompt", i) + ": expected a string, got " + json_type_name(t));
      out.prompts.push_back({t.get<std::string>(), {}});
    }
  } else if (prompt->is_array()) {
    std::vector<std::vector<int32_t>> lists;
    bool batch = false;
    SGL_RETURN_IF_ERROR(parse_ids(*prompt, "prompt", &lists, &batch));
    for (auto& l : lists) out.prompts.push_back({std::nullopt, std::move(l)});
  } else {
    return invalid_argument(std::string("prompt: expected a string, a list of strings, a list of "
                                        "token ids or a list of lists, got ") +
                            json_type_name(*prompt));
  }
  if (out.prompts.empty()) return invalid_argument("prompt is an empty list");
  SGL_RETURN_IF_ERROR(r.get_bool("echo", &out.echo));
  if (r.find("logprobs")) {
    SGL_RETURN_IF_ERROR(r.get_int("logprobs", &out.logprobs));
    if (out.logprobs < 0 || out.logprobs > 20)
      return invalid_argument("logprobs must be in [0, 20], got " + std::to_string(out.logprobs));
  }
  if (r.find("suffix")) return unsupported("suffix is not supported");
  int32_t best_of = 1;
  SGL_RETURN_IF_ERROR(r.get_int("best_of", &best_of));
  if (best_of != 1 && best_of != out.common.params.n)
    return unsupported("best_of other than n is not supported");
  SGL_RETURN_IF_ERROR(check_choices(out.prompts.size(), out.common.params.n));
  return out;
}

Result<ChatRequest> parse_chat_request(const Json& body) {
  ChatRequest out;
  SGL_RETURN_IF_ERROR(parse_openai_common(body, /*chat=*/true, &out.common));
  FieldReader r(body, "");
  const Json* msgs = r.find("messages");
  if (!msgs) return invalid_argument("messages is required");
  if (!msgs->is_array())
    return invalid_argument(std::string("messages: expected a list, got ") + json_type_name(*msgs));
  if (msgs->empty()) return invalid_argument("messages must not be empty");
  out.messages = Json::array();
  for (size_t i = 0; i < msgs->size(); ++i) {
    const Json& m = (*msgs)[i];
    const std::string where = idx("messages", i);
    if (!m.is_object())
      return invalid_argument(where + ": expected an object, got " + json_type_name(m));
    auto role = m.find("role");
    if (role == m.end() || !role->is_string())
      return invalid_argument(where + ".role: expected a string");
    Json msg = m;
    auto content = m.find("content");
    if (content != m.end() && content->is_array()) {
      std::string joined;
      for (size_t j = 0; j < content->size(); ++j) {
        const Json& part = (*content)[j];
        const std::string pw = where + ".content[" + std::to_string(j) + "]";
        if (!part.is_object()) return invalid_argument(pw + ": expected an object");
        auto type = part.find("type");
        if (type == part.end() || !type->is_string())
          return invalid_argument(pw + ".type: expected a string");
        if (*type != "text")
          return unsupported(pw + ": content parts of type " +
                             quote_for_message(type->get<std::string>()) +
                             " are not supported (text-only models)");
        auto t = part.find("text");
        if (t == part.end() || !t->is_string())
          return invalid_argument(pw + ".text: expected a string");
        joined += t->get<std::string>();
      }
      msg["content"] = joined;
    } else if (content != m.end() && !content->is_string() && !content->is_null()) {
      return invalid_argument(where + ".content: expected a string, a list of parts or null, got " +
                              json_type_name(*content));
    }
    out.messages.push_back(std::move(msg));
  }
  if (const Json* tools = r.find("tools")) {
    if (!tools->is_array())
      return invalid_argument(std::string("tools: expected a list, got ") + json_type_name(*tools));
    out.tools = *tools;
  }
  if (const Json* kw = r.find("chat_template_kwargs")) {
    if (!kw->is_object())
      return invalid_argument(std::string("chat_template_kwargs: expected an object, got ") +
                              json_type_name(*kw));
    out.template_kwargs = *kw;
  }
  SGL_RETURN_IF_ERROR(r.get_bool("logprobs", &out.logprobs));
  if (r.find("top_logprobs")) {
    SGL_RETURN_IF_ERROR(r.get_int("top_logprobs", &out.top_logprobs));
    if (out.top_logprobs < 0 || out.top_logprobs > 20)
      return invalid_argument("top_logprobs must be in [0, 20], got " +
                              std::to_string(out.top_logprobs));
    if (out.top_logprobs > 0 && !out.logprobs)
      return invalid_argument("top_logprobs requires logprobs to be true");
  }
  SGL_RETURN_IF_ERROR(check_choices(1, out.common.params.n));
  return out;
}

Result<TokenizeRequest> parse_tokenize_request(const Json& body) {
  TokenizeRequest out;
  FieldReader r(body, "");
  const char* key = r.find("text") ? "text" : "prompt";
  const Json* t = r.find(key);
  if (!t) return invalid_argument("text is required");
  if (t->is_array()) out.batch = true;
  SGL_RETURN_IF_ERROR(r.get_string_or_list(key, &out.texts));
  if (out.texts.empty()) return invalid_argument("text is an empty list");
  SGL_RETURN_IF_ERROR(r.get_bool("add_special_tokens", &out.add_special_tokens));
  return out;
}

Result<DetokenizeRequest> parse_detokenize_request(const Json& body) {
  DetokenizeRequest out;
  FieldReader r(body, "");
  const Json* t = r.find("tokens");
  if (!t) t = r.find("input_ids");
  if (!t) return invalid_argument("tokens is required");
  SGL_RETURN_IF_ERROR(parse_ids(*t, "tokens", &out.ids, &out.batch));
  SGL_RETURN_IF_ERROR(r.get_bool("skip_special_tokens", &out.skip_special_tokens));
  return out;
}

Result<AbortRequest> parse_abort_request(const Json& body) {
  AbortRequest out;
  FieldReader r(body, "");
  SGL_RETURN_IF_ERROR(r.get_string("rid", &out.rid));
  SGL_RETURN_IF_ERROR(r.get_bool("abort_all", &out.abort_all));
  if (out.rid.empty() && !out.abort_all)
    return invalid_argument("give rid (the request id) or abort_all: true");
  return out;
}

}  // namespace sgl::server
