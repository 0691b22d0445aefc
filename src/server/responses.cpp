#include "server/responses.h"

#include <cmath>
#include <set>

namespace sgl::server {

using runtime::PositionLogprobs;
using runtime::RequestEvent;
using runtime::TokenLogprob;

void ChoiceState::apply(RequestEvent& ev) {
  text += ev.text_delta;
  if (!ev.input_logprobs.empty()) input_lp = std::move(ev.input_logprobs);
  if (ev.kind == RequestEvent::kToken) {
    output_ids.push_back(ev.token);
    if (ev.logprobs) output_lp.push_back(std::move(*ev.logprobs));
    ++unsent_tokens;
  }
  prompt_tokens = ev.prompt_tokens;
  completion_tokens = ev.completion_tokens;
  cached_tokens = ev.cached_tokens;
  if (ev.kind == RequestEvent::kFinish) {
    finished = true;
    finish = ev.finish;
    timings = ev.timings;
  }
}

namespace {

Json finish_json(const runtime::FinishReason& f) {
  Json j = Json::object();
  j["type"] = f.type();
  switch (f.kind) {
    case runtime::FinishReason::kStop:
      if (const auto* id = std::get_if<int32_t>(&f.matched))
        j["matched"] = *id;
      else if (const auto* s = std::get_if<std::string>(&f.matched))
        j["matched"] = *s;
      else
        j["matched"] = nullptr;
      break;
    case runtime::FinishReason::kLength:
      j["length"] = f.length;
      break;
    case runtime::FinishReason::kAbort:
      j["message"] = f.message;
      break;
  }
  return j;
}

Json lp_value(float v) { return std::isnan(v) ? Json(nullptr) : Json(v); }

Json bytes_of(const std::string& s) {
  Json b = Json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

}  // namespace

Json logprob_triple(const TokenLogprob& t, bool with_text, const TokenText& tt) {
  return Json::array({lp_value(t.logprob), t.token, with_text ? Json(tt(t.token)) : Json(nullptr)});
}

Json native_output(const ChoiceState& c, const runtime::GenerateParams& p, const TokenText& tt,
                   double e2e_latency) {
  Json meta = Json::object();
  meta["id"] = c.rid;
  meta["finish_reason"] = c.finished ? finish_json(c.finish) : Json(nullptr);
  meta["prompt_tokens"] = c.prompt_tokens;
  meta["completion_tokens"] = c.completion_tokens;
  meta["cached_tokens"] = c.cached_tokens;
  meta["e2e_latency"] = c.finished ? c.timings.e2e_s : e2e_latency;
  if (p.return_logprob) {
    const bool wt = p.return_text_in_logprobs;
    auto triples = [&](const std::vector<PositionLogprobs>& v) {
      Json a = Json::array();
      for (const auto& x : v) a.push_back(logprob_triple(x.token, wt, tt));
      return a;
    };
    // Positions with no top / by-id entries (the first prompt position) are null.
    auto lists = [&](const std::vector<PositionLogprobs>& v, bool top) {
      Json a = Json::array();
      for (size_t i = 0; i < v.size(); ++i) {
        const auto& src = top ? v[i].top : v[i].by_id;
        if (src.empty() && std::isnan(v[i].token.logprob)) {
          a.push_back(nullptr);
          continue;
        }
        Json l = Json::array();
        for (const auto& t : src) l.push_back(logprob_triple(t, wt, tt));
        a.push_back(std::move(l));
      }
      return a;
    };
    meta["input_token_logprobs"] = triples(c.input_lp);
    meta["output_token_logprobs"] = triples(c.output_lp);
    if (p.top_logprobs_num > 0) {
      meta["input_top_logprobs"] = lists(c.input_lp, true);
      meta["output_top_logprobs"] = lists(c.output_lp, true);
    }
    if (!p.token_ids_logprob.empty()) {
      meta["input_token_ids_logprobs"] = lists(c.input_lp, false);
      meta["output_token_ids_logprobs"] = lists(c.output_lp, false);
    }
  }
  Json out = Json::object();
  out["text"] = c.text;
  out["output_ids"] = c.output_ids;
  out["meta_info"] = std::move(meta);
  return out;
}

Json openai_finish_reason(const ChoiceState& c) {
  if (!c.finished) return nullptr;
  return c.finish.type();
}

Json openai_matched_stop(const ChoiceState& c) {
  if (!c.finished || c.finish.kind != runtime::FinishReason::kStop) return nullptr;
  if (const auto* id = std::get_if<int32_t>(&c.finish.matched)) return *id;
  if (const auto* s = std::get_if<std::string>(&c.finish.matched)) return *s;
  return nullptr;
}

Json openai_usage(const std::vector<ChoiceState>& choices) {
  int64_t prompt = 0, completion = 0, cached = 0;
  std::set<int> seen;
  for (const auto& c : choices) {
    if (seen.insert(c.prompt_index).second) prompt += c.prompt_tokens;
    completion += c.completion_tokens;
    cached += c.cached_tokens;
  }
  Json u = Json::object();
  u["prompt_tokens"] = prompt;
  u["completion_tokens"] = completion;
  u["total_tokens"] = prompt + completion;
  u["prompt_tokens_details"] = Json{{"cached_tokens", cached}};
  return u;
}

Json completion_logprobs(const std::vector<PositionLogprobs>& lps, size_t from, size_t to,
                         bool with_top, const TokenText& tt, size_t* offset) {
  Json tokens = Json::array(), token_lps = Json::array(), tops = Json::array(),
       offsets = Json::array();
  for (size_t i = from; i < to && i < lps.size(); ++i) {
    const auto& p = lps[i];
    const std::string t = tt(p.token.token);
    tokens.push_back(t);
    token_lps.push_back(lp_value(p.token.logprob));
    offsets.push_back(*offset);
    *offset += t.size();
    if (with_top) {
      if (p.top.empty() && std::isnan(p.token.logprob)) {
        tops.push_back(nullptr);
      } else {
        Json d = Json::object();
        for (const auto& x : p.top) {
          std::string k = tt(x.token);
          if (!d.contains(k)) d[k] = lp_value(x.logprob);
        }
        tops.push_back(std::move(d));
      }
    }
  }
  Json j = Json::object();
  j["text_offset"] = std::move(offsets);
  j["token_logprobs"] = std::move(token_lps);
  j["tokens"] = std::move(tokens);
  j["top_logprobs"] = with_top ? std::move(tops) : Json(nullptr);
  return j;
}

Json chat_logprobs(const std::vector<PositionLogprobs>& lps, size_t from, size_t to,
                   const TokenText& tt) {
  Json content = Json::array();
  for (size_t i = from; i < to && i < lps.size(); ++i) {
    const auto& p = lps[i];
    const std::string t = tt(p.token.token);
    Json e = Json::object();
    e["token"] = t;
    e["logprob"] = lp_value(p.token.logprob);
    e["bytes"] = bytes_of(t);
    Json top = Json::array();
    for (const auto& x : p.top) {
      const std::string s = tt(x.token);
      top.push_back(Json{{"token", s}, {"logprob", lp_value(x.logprob)}, {"bytes", bytes_of(s)}});
    }
    e["top_logprobs"] = std::move(top);
    content.push_back(std::move(e));
  }
  return Json{{"content", std::move(content)}};
}

std::string sse_event(const Json& j) {
  std::string s = "data: ";
  s += dump_json(j);
  s += "\n\n";
  return s;
}

}  // namespace sgl::server
