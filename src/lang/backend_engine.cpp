// The in-process backend: frontend programs on an Engine in the same process (no HTTP).
#include <atomic>
#include <cmath>

#include "models/loader.h"
#include "sgl/engine.h"
#include "sgl/lang.h"
#include "tokenizer/chat_template.h"

namespace sgl::lang {

namespace {

class EngineBackend final : public Backend {
 public:
  explicit EngineBackend(runtime::Engine& engine) : engine_(engine) {}

  Result<GenResult> generate(const GenRequest& req,
                             const std::function<void(std::string_view)>& on_delta) override {
    SGL_ASSIGN_OR_RETURN(auto handles, engine_.submit_batch({make_request(req)}));
    return collect(req, *handles.front(), on_delta);
  }

  Result<std::vector<GenResult>> generate_batch(const std::vector<GenRequest>& reqs) override {
    std::vector<runtime::GenerateRequest> rs;
    for (const auto& r : reqs) rs.push_back(make_request(r));
    SGL_ASSIGN_OR_RETURN(auto handles, engine_.submit_batch(std::move(rs)));
    std::vector<GenResult> out;
    Status first = Status::ok();
    for (size_t i = 0; i < handles.size(); ++i) {
      Result<GenResult> r = collect(reqs[i], *handles[i], nullptr);
      if (!r.is_ok()) {
        if (first.is_ok()) first = r.status();
        continue;
      }
      out.push_back(std::move(r).value());
    }
    if (!first.is_ok()) return first;
    return out;
  }

  Result<ChatRoles> chat_roles() override {
    const auto& tok = engine_.model().tok();
    if (!tok.chat_template())
      return invalid_argument("the model has no chat template, so roles cannot be used");
    std::string bos = tok.bos_id() >= 0 ? tok.token_text(tok.bos_id()) : "";
    std::string eos = tok.eos_id() >= 0 ? tok.token_text(tok.eos_id()) : "";
    return chat_roles_from_template(*tok.chat_template(), bos, eos);
  }

  CacheStats cache_stats() override {
    CacheStats s;
    s.prompt_tokens = prompt_tokens_.load();
    s.cached_tokens = cached_tokens_.load();
    return s;
  }

  Status flush_cache() override { return engine_.flush_cache(); }

 private:
  runtime::GenerateRequest make_request(const GenRequest& req) {
    runtime::GenerateRequest r;
    r.rid = "lang-" + std::to_string(++counter_);
    r.text = req.text;
    r.params = req.params;
    r.params.n = 1;
    return r;
  }

  LogprobEntry entry(const runtime::TokenLogprob& t, bool with_text) const {
    LogprobEntry e;
    e.logprob = std::isnan(t.logprob) ? NAN : static_cast<double>(t.logprob);
    e.token = t.token;
    if (with_text) {
      auto txt = engine_.model().tok().decode(std::span<const int32_t>(&t.token, 1), false);
      if (txt.is_ok()) e.text = *txt;
    }
    return e;
  }

  Result<GenResult> collect(const GenRequest& req, runtime::RequestHandle& h,
                            const std::function<void(std::string_view)>& on_delta) {
    GenResult out;
    runtime::RequestEvent ev;
    bool finished = false;
    runtime::FinishReason reason;
    runtime::RequestTimings timings;
    const bool with_text = req.params.return_text_in_logprobs;
    while (h.next(&ev)) {
      if (!ev.text_delta.empty()) {
        out.text += ev.text_delta;
        if (on_delta) on_delta(ev.text_delta);
      }
      for (const auto& p : ev.input_logprobs)
        out.input_token_logprobs.push_back(entry(p.token, with_text));
      if (ev.kind == runtime::RequestEvent::kToken) {
        out.output_ids.push_back(ev.token);
        if (ev.logprobs) out.output_token_logprobs.push_back(entry(ev.logprobs->token, with_text));
      }
      out.prompt_tokens = ev.prompt_tokens;
      out.completion_tokens = ev.completion_tokens;
      out.cached_tokens = ev.cached_tokens;
      if (ev.kind == runtime::RequestEvent::kFinish) {
        finished = true;
        reason = ev.finish;
        timings = ev.timings;
      }
    }
    if (!finished) return internal_error("request ended without a finish event");
    prompt_tokens_ += out.prompt_tokens;
    cached_tokens_ += out.cached_tokens;
    if (reason.kind == runtime::FinishReason::kAbort)
      return Status(StatusCode::kInternal, "generation aborted: " + reason.message);
    out.finish_reason = reason.to_json();
    auto& m = out.meta_info;
    m["id"] = h.rid();
    m["finish_reason"] = out.finish_reason;
    m["prompt_tokens"] = out.prompt_tokens;
    m["completion_tokens"] = out.completion_tokens;
    m["cached_tokens"] = out.cached_tokens;
    m["e2e_latency"] = timings.e2e_s;
    if (req.params.return_logprob) {
      auto triples = [](const std::vector<LogprobEntry>& v, bool text) {
        nlohmann::json a = nlohmann::json::array();
        for (const auto& e : v)
          a.push_back({std::isnan(e.logprob) ? nlohmann::json() : nlohmann::json(e.logprob),
                       e.token, text ? nlohmann::json(e.text) : nlohmann::json()});
        return a;
      };
      m["input_token_logprobs"] = triples(out.input_token_logprobs, with_text);
      m["output_token_logprobs"] = triples(out.output_token_logprobs, with_text);
    }
    return out;
  }

  runtime::Engine& engine_;
  std::atomic<uint64_t> counter_{0};
  std::atomic<int64_t> prompt_tokens_{0};
  std::atomic<int64_t> cached_tokens_{0};
};

}  // namespace

std::unique_ptr<Backend> make_engine_backend(runtime::Engine& engine) {
  return std::make_unique<EngineBackend>(engine);
}

Result<ChatRoles> chat_roles_from_template(const std::string& jinja_source,
                                           const std::string& bos_token,
                                           const std::string& eos_token) {
  SGL_ASSIGN_OR_RETURN(tokenizer::ChatTemplate tmpl, tokenizer::ChatTemplate::parse(jinja_source));
  tokenizer::ChatTemplateOptions opts;
  opts.bos_token = bos_token;
  opts.eos_token = eos_token;
  const std::string kSentinel = "\x01SGL_CONTENT\x01";
  auto msg = [](const std::string& role, const std::string& content) {
    nlohmann::ordered_json m;
    m["role"] = role;
    m["content"] = content;
    return m;
  };
  // The text a role adds after `history`: render(history + [role: sentinel]) minus
  // render(history), split at the sentinel.
  auto role_parts = [&](const nlohmann::ordered_json& history,
                        const std::string& role) -> Result<std::pair<std::string, std::string>> {
    std::string before;
    if (!history.empty()) {
      SGL_ASSIGN_OR_RETURN(before, tmpl.render(history, opts));
    }
    nlohmann::ordered_json with = history;
    with.push_back(msg(role, kSentinel));
    SGL_ASSIGN_OR_RETURN(std::string after, tmpl.render(with, opts));
    if (after.compare(0, before.size(), before) != 0)
      return invalid_argument(
          "the chat template does not render conversations incrementally; "
          "cannot derive the " +
          role + " role's prefix");
    std::string added = after.substr(before.size());
    const size_t at = added.find(kSentinel);
    if (at == std::string::npos)
      return invalid_argument("the chat template drops the " + role + " message's content");
    return std::make_pair(added.substr(0, at), added.substr(at + kSentinel.size()));
  };
  ChatRoles roles;
  nlohmann::ordered_json none = nlohmann::ordered_json::array();
  nlohmann::ordered_json sys = nlohmann::ordered_json::array({msg("system", "S")});
  nlohmann::ordered_json sys_user =
      nlohmann::ordered_json::array({msg("system", "S"), msg("user", "U")});
  SGL_ASSIGN_OR_RETURN(roles.roles["system"], role_parts(none, "system"));
  SGL_ASSIGN_OR_RETURN(roles.roles["user"], role_parts(sys, "user"));
  SGL_ASSIGN_OR_RETURN(roles.roles["assistant"], role_parts(sys_user, "assistant"));
  // Generations inside a role stop at the end-of-turn marker: the assistant suffix without
  // surrounding whitespace.
  std::string stop = roles.roles["assistant"].second;
  const size_t b = stop.find_first_not_of(" \n\t\r");
  const size_t e = stop.find_last_not_of(" \n\t\r");
  stop = b == std::string::npos ? "" : stop.substr(b, e - b + 1);
  if (!stop.empty()) roles.stop.push_back(stop);
  return roles;
}

}  // namespace sgl::lang
