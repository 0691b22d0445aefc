// The remote backend: frontend programs against a server's native API (/generate,
// /get_model_info, /flush_cache), ours or upstream SGLang's. One HTTP/1.1 connection per call
// (Boost.Beast, synchronous: each state calls from its own worker thread).
#include <atomic>
#include <cmath>
#include <mutex>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "sgl/lang.h"

namespace sgl::lang {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// SGLang's native request body for one prompt: sampling_params plus the top-level logprob options.
nlohmann::json sampling_json(const runtime::GenerateParams& p) {
  nlohmann::json s;
  s["max_new_tokens"] = p.max_new_tokens;
  if (p.min_new_tokens) s["min_new_tokens"] = p.min_new_tokens;
  if (!p.stop.empty()) s["stop"] = p.stop;
  if (!p.stop_token_ids.empty()) s["stop_token_ids"] = p.stop_token_ids;
  s["temperature"] = p.temperature;
  if (p.top_p != 1.0f) s["top_p"] = p.top_p;
  if (p.top_k != -1) s["top_k"] = p.top_k;
  if (p.min_p != 0.0f) s["min_p"] = p.min_p;
  if (p.frequency_penalty != 0.0f) s["frequency_penalty"] = p.frequency_penalty;
  if (p.presence_penalty != 0.0f) s["presence_penalty"] = p.presence_penalty;
  if (p.repetition_penalty != 1.0f) s["repetition_penalty"] = p.repetition_penalty;
  if (p.ignore_eos) s["ignore_eos"] = true;
  if (!p.skip_special_tokens) s["skip_special_tokens"] = false;
  if (p.no_stop_trim) s["no_stop_trim"] = true;
  if (p.sampling_seed) s["sampling_seed"] = *p.sampling_seed;
  if (p.regex) s["regex"] = *p.regex;
  if (p.json_schema) s["json_schema"] = *p.json_schema;
  if (p.ebnf) s["ebnf"] = *p.ebnf;
  return s;
}

void add_logprob_options(nlohmann::json& body, const runtime::GenerateParams& p) {
  if (!p.return_logprob) return;
  body["return_logprob"] = true;
  body["logprob_start_len"] = p.logprob_start_len;
  if (p.top_logprobs_num) body["top_logprobs_num"] = p.top_logprobs_num;
  if (p.return_text_in_logprobs) body["return_text_in_logprobs"] = true;
}

std::vector<LogprobEntry> parse_triples(const nlohmann::json& a) {
  std::vector<LogprobEntry> out;
  if (!a.is_array()) return out;
  for (const auto& t : a) {
    if (!t.is_array() || t.size() < 2) continue;
    LogprobEntry e;
    e.logprob = t[0].is_number() ? t[0].get<double>() : NAN;
    e.token = t[1].is_number_integer() ? t[1].get<int32_t>() : -1;
    if (t.size() > 2 && t[2].is_string()) e.text = t[2].get<std::string>();
    out.push_back(std::move(e));
  }
  return out;
}

GenResult parse_result(const nlohmann::json& j) {
  GenResult r;
  r.text = j.value("text", "");
  if (j.contains("output_ids") && j["output_ids"].is_array())
    for (const auto& x : j["output_ids"])
      if (x.is_number_integer()) r.output_ids.push_back(x.get<int32_t>());
  if (j.contains("meta_info") && j["meta_info"].is_object()) {
    const auto& m = j["meta_info"];
    r.meta_info = m;
    r.finish_reason = m.value("finish_reason", nlohmann::json());
    r.prompt_tokens = m.value("prompt_tokens", 0);
    r.completion_tokens = m.value("completion_tokens", 0);
    r.cached_tokens = m.value("cached_tokens", 0);
    if (m.contains("input_token_logprobs"))
      r.input_token_logprobs = parse_triples(m["input_token_logprobs"]);
    if (m.contains("output_token_logprobs"))
      r.output_token_logprobs = parse_triples(m["output_token_logprobs"]);
  }
  return r;
}

Status server_error(unsigned status, const std::string& body) {
  std::string msg = body;
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    if (j.contains("message") && j["message"].is_string())
      msg = j["message"];
    else if (j.contains("error") && j["error"].is_object() && j["error"].contains("message"))
      msg = j["error"]["message"].get<std::string>();
  }
  const StatusCode code =
      status >= 400 && status < 500 ? StatusCode::kInvalidArgument : StatusCode::kInternal;
  return Status(code, "server answered " + std::to_string(status) + ": " + msg);
}

class HttpBackend final : public Backend {
 public:
  HttpBackend(std::string host, std::string port, std::string api_key)
      : host_(std::move(host)), port_(std::move(port)), api_key_(std::move(api_key)) {}

  // One request/response. With on_event, the response is read as server-sent events and each
  // "data:" payload is passed on as it arrives; the returned string is then empty.
  Result<std::string> call(http::verb verb, const std::string& target, const std::string& body,
                           const std::function<void(std::string_view)>& on_event = {}) {
    try {
      net::io_context ioc;
      tcp::resolver resolver(ioc);
      beast::tcp_stream stream(ioc);
      stream.expires_after(std::chrono::seconds(10));
      stream.connect(resolver.resolve(host_, port_));
      stream.expires_never();
      http::request<http::string_body> req{verb, target, 11};
      req.set(http::field::host, host_);
      req.set(http::field::user_agent, "sglang.cpp-lang");
      req.set(http::field::content_type, "application/json");
      if (!api_key_.empty()) req.set(http::field::authorization, "Bearer " + api_key_);
      req.body() = body;
      req.prepare_payload();
      http::write(stream, req);
      beast::flat_buffer buffer;
      if (!on_event) {
        http::response_parser<http::string_body> parser;
        parser.body_limit(1ull << 30);
        http::read(stream, buffer, parser);
        auto res = parser.release();
        if (res.result_int() != 200) return server_error(res.result_int(), res.body());
        beast::error_code ec;
        stream.socket().shutdown(tcp::socket::shutdown_both, ec);
        return std::move(res.body());
      }
      http::response_parser<http::buffer_body> parser;
      parser.body_limit(1ull << 40);
      http::read_header(stream, buffer, parser);
      const unsigned status = parser.get().result_int();
      std::string pending;
      char chunk[8192];
      while (!parser.is_done()) {
        parser.get().body().data = chunk;
        parser.get().body().size = sizeof(chunk);
        beast::error_code ec;
        http::read(stream, buffer, parser, ec);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) throw beast::system_error(ec);
        pending.append(chunk, sizeof(chunk) - parser.get().body().size);
        if (status != 200) continue;
        // Events are separated by a blank line.
        for (size_t at; (at = pending.find("\n\n")) != std::string::npos;) {
          std::string ev = pending.substr(0, at);
          pending.erase(0, at + 2);
          if (ev.rfind("data:", 0) == 0) {
            std::string_view data(ev);
            data.remove_prefix(5);
            while (!data.empty() && data.front() == ' ') data.remove_prefix(1);
            on_event(data);
          }
        }
      }
      if (status != 200) return server_error(status, pending);
      return std::string();
    } catch (const std::exception& e) {
      return Status(StatusCode::kIoError, "cannot reach the server at http://" + host_ + ":" +
                                              port_ + target + ": " + e.what());
    }
  }

  Result<GenResult> generate(const GenRequest& req,
                             const std::function<void(std::string_view)>& on_delta) override {
    nlohmann::json body;
    body["text"] = req.text;
    body["sampling_params"] = sampling_json(req.params);
    add_logprob_options(body, req.params);
    if (!on_delta) {
      SGL_ASSIGN_OR_RETURN(std::string text, call(http::verb::post, "/generate", body.dump()));
      auto j = nlohmann::json::parse(text, nullptr, false);
      if (j.is_discarded() || !j.is_object())
        return internal_error("the server's /generate answer is not a JSON object");
      GenResult r = parse_result(j);
      count(r);
      return r;
    }
    body["stream"] = true;
    std::string so_far;
    nlohmann::json last;
    Status err = Status::ok();
    auto on_event = [&](std::string_view data) {
      if (data == "[DONE]") return;
      auto j = nlohmann::json::parse(data, nullptr, false);
      if (j.is_discarded() || !j.is_object()) return;
      if (j.contains("error")) {
        std::string m = j["error"].is_object() ? j["error"].value("message", "error") : "error";
        err = Status(StatusCode::kInternal, "the server reported: " + m);
        return;
      }
      // SGLang streams the cumulative text.
      const std::string text = j.value("text", "");
      if (text.size() > so_far.size() && text.compare(0, so_far.size(), so_far) == 0) {
        on_delta(std::string_view(text).substr(so_far.size()));
        so_far = text;
      }
      last = std::move(j);
    };
    SGL_ASSIGN_OR_RETURN(std::string ignored,
                         call(http::verb::post, "/generate", body.dump(), on_event));
    (void)ignored;
    if (!err.is_ok()) return err;
    if (!last.is_object()) return internal_error("the server's stream ended without a result");
    GenResult r = parse_result(last);
    count(r);
    return r;
  }

  Result<std::vector<GenResult>> generate_batch(const std::vector<GenRequest>& reqs) override {
    if (reqs.empty()) return std::vector<GenResult>{};
    // One /generate call with lists: the server schedules them together.
    nlohmann::json body;
    body["text"] = nlohmann::json::array();
    body["sampling_params"] = nlohmann::json::array();
    for (const auto& r : reqs) {
      body["text"].push_back(r.text);
      body["sampling_params"].push_back(sampling_json(r.params));
    }
    // Logprob options are per call in the native API; the frontend batches alike requests.
    add_logprob_options(body, reqs.front().params);
    SGL_ASSIGN_OR_RETURN(std::string text, call(http::verb::post, "/generate", body.dump()));
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_array() || j.size() != reqs.size())
      return internal_error("the server's batch /generate answer is not a list of " +
                            std::to_string(reqs.size()) + " results");
    std::vector<GenResult> out;
    for (const auto& x : j) {
      out.push_back(parse_result(x));
      count(out.back());
    }
    return out;
  }

  Result<ChatRoles> chat_roles() override {
    std::lock_guard<std::mutex> lk(roles_mu_);
    if (roles_) return *roles_;
    SGL_ASSIGN_OR_RETURN(std::string text, call(http::verb::get, "/get_model_info", ""));
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      return internal_error("the server's /get_model_info answer is not a JSON object");
    if (j.contains("chat_template") && j["chat_template"].is_string()) {
      SGL_ASSIGN_OR_RETURN(ChatRoles r,
                           chat_roles_from_template(j["chat_template"], j.value("bos_token", ""),
                                                    j.value("eos_token", "")));
      roles_ = r;
      return r;
    }
    // An upstream server does not send its template: pick one by the model path, as SGLang's
    // frontend does.
    std::string path = j.value("model_path", "");
    for (auto& c : path) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ChatRoles r;
    if (path.find("llama-3") != std::string::npos || path.find("llama3") != std::string::npos) {
      for (const char* role : {"system", "user", "assistant"})
        r.roles[role] = {std::string("<|start_header_id|>") + role + "<|end_header_id|>\n\n",
                         "<|eot_id|>"};
      r.stop = {"<|eot_id|>"};
    } else {
      for (const char* role : {"system", "user", "assistant"})
        r.roles[role] = {std::string("<|im_start|>") + role + "\n", "<|im_end|>\n"};
      r.stop = {"<|im_end|>"};
    }
    roles_ = r;
    return r;
  }

  CacheStats cache_stats() override {
    CacheStats s;
    s.prompt_tokens = prompt_tokens_.load();
    s.cached_tokens = cached_tokens_.load();
    return s;
  }

  Status flush_cache() override {
    auto r = call(http::verb::post, "/flush_cache", "");
    return r.is_ok() ? Status::ok() : r.status();
  }

 private:
  void count(const GenResult& r) {
    prompt_tokens_ += r.prompt_tokens;
    cached_tokens_ += r.cached_tokens;
  }

  std::string host_, port_, api_key_;
  std::atomic<int64_t> prompt_tokens_{0};
  std::atomic<int64_t> cached_tokens_{0};
  std::mutex roles_mu_;
  std::optional<ChatRoles> roles_;
};

}  // namespace

Result<std::unique_ptr<Backend>> make_http_backend(const std::string& endpoint,
                                                   const std::string& api_key) {
  std::string rest = endpoint;
  if (rest.rfind("http://", 0) == 0)
    rest = rest.substr(7);
  else if (rest.rfind("https://", 0) == 0)
    return unsupported(
        "https endpoints are not supported; use http:// (e.g. through a local "
        "TLS-terminating proxy)");
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find('/') != std::string::npos)
    return invalid_argument("the endpoint must be http://HOST:PORT, got " +
                            quote_for_message(endpoint));
  std::string host = rest, port = "80";
  if (auto c = rest.rfind(':'); c != std::string::npos) {
    host = rest.substr(0, c);
    port = rest.substr(c + 1);
  }
  if (host.empty() || port.empty() || port.find_first_not_of("0123456789") != std::string::npos)
    return invalid_argument("the endpoint must be http://HOST:PORT, got " +
                            quote_for_message(endpoint));
  return std::unique_ptr<Backend>(new HttpBackend(host, port, api_key));
}

}  // namespace sgl::lang
