#include "server/http_server.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "models/loader.h"
#include "server/admission.h"
#include "server/api_error.h"
#include "server/auth.h"
#include "server/json_fields.h"
#include "server/metrics.h"
#include "server/protocol.h"
#include "server/responses.h"
#include "support/log.h"
#include "support/utf8.h"
#include "tokenizer/chat_template.h"

namespace sgl::server {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using runtime::Engine;
using runtime::GenerateParams;
using runtime::GenerateRequest;
using runtime::RequestEvent;
using runtime::RequestHandle;

namespace {

constexpr const char* kVersion = "0.1.0";
constexpr size_t kHeaderLimit = 64 * 1024;
constexpr size_t kMaxPipelinedBytes = 1 << 20;  // read ahead while a generation runs
constexpr size_t kMaxStreamBacklog = 64 << 20;  // unsent stream bytes before we give up
// A client must take each write (a response, a stream chunk) within this time, or it is dropped.
constexpr auto kWriteTimeout = std::chrono::seconds(60);
// After an answer that closes the connection, the rest of what the client sends is read and
// dropped for at most this long (a lingering close): closing a socket with unread input resets
// the connection, and the client may then lose the answer (e.g. a 413 while it still uploads).
constexpr auto kLingerTimeout = std::chrono::seconds(3);
// Connections in a lingering close at most; beyond, they are closed at once.
constexpr int64_t kMaxLingering = 256;
constexpr int kRetryAfterSeconds = 1;  // Retry-After of a 503 for overload

std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}

std::string hex_id() {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}() ^
                             static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  uint64_t a, b;
  {
    std::lock_guard<std::mutex> lk(mu);
    a = rng();
    b = rng();
  }
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return buf;
}

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string url_decode(std::string_view s) {
  std::string o;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      o += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      o += s[i];
    }
  }
  return o;
}

}  // namespace

// A finished HTTP answer (non-streaming).
struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  bool close = false;
  int retry_after = 0;  // seconds; > 0 adds a Retry-After header
};

Reply json_reply(const Json& j, int status = 200) { return Reply{status, dump_json(j)}; }
Reply error_reply(const ApiError& e) { return Reply{e.status, error_body(e)}; }
Reply error_reply(int status, std::string msg) {
  return error_reply(ApiError{status, std::move(msg), ""});
}
Reply status_reply(const Status& s) { return error_reply(api_error_from_status(s)); }

// State shared by every connection.
struct ServerState {
  ServerArgs args;
  std::unique_ptr<Engine> engine_owner;
  std::atomic<Engine*> engine{nullptr};
  std::optional<tokenizer::ChatTemplate> chat_template;
  std::string chat_template_error;  // why there is none
  ServerMetrics metrics;
  std::atomic<bool> stopping{false};
  std::atomic<int> active_jobs{0};
  int32_t context_limit = 0;  // prompt + generated tokens per request
  int64_t created = unix_time();
  AdmissionGate sequences;    // --max-queued-requests, counted per choice
  AdmissionGate connections;  // --max-connections
  std::atomic<int64_t> lingering{0};

  explicit ServerState(ServerArgs a)
      : args(std::move(a)),
        metrics(args.model_name()),
        sequences(args.max_queued_requests),
        connections(args.max_connections) {}
  ServerGauges gauges() const {
    ServerGauges g;
    g.queued_sequences = sequences.in_flight();
    g.rejected_overload = sequences.rejected();
    g.open_connections = connections.in_flight();
    g.rejected_connections = connections.rejected();
    return g;
  }
  const tokenizer::Tokenizer& tok() const { return engine.load()->model().tok(); }
  std::string token_text(int32_t id) const {
    const auto& t = tok();
    if (!t.is_valid(id)) return "";
    return std::string(t.token_to_piece(id, true));
  }
};

// One generation in flight on a connection.
struct Job {
  enum Kind { kNative, kCompletion, kChat, kHealth };
  Kind kind = kNative;
  bool stream = false;
  bool list_response = false;  // native: answer with a JSON list
  std::vector<std::shared_ptr<RequestHandle>> handles;
  std::vector<ChoiceState> choices;
  std::vector<GenerateParams> params;  // per choice
  Clock::time_point t0 = Clock::now();
  std::atomic<bool> wake_pending{false};
  // OpenAI
  std::string id;
  int64_t created = 0;
  std::string model;
  bool include_usage = false;
  bool echo = false;
  int32_t logprobs = -1;  // completions: top-N; chat: top_logprobs when chat_logprobs
  bool chat_logprobs = false;
  std::vector<std::string> prompt_texts;  // echo, per prompt
  std::vector<size_t> text_offsets;       // completions logprobs text_offset cursor, per choice
  size_t finished = 0;
  bool done = false;
  // One unit of --max-queued-requests per choice, returned as each choice finishes (the rest when
  // the job goes away, e.g. after a disconnect aborted it).
  AdmissionTicket ticket;

  ~Job() {
    for (auto& h : handles)
      if (!h->finished()) h->abort();
  }
  void abort_all() {
    for (auto& h : handles) h->abort();
  }
};

class Connection;

struct HttpServer::Impl {
  std::unique_ptr<ServerState> st;
  std::unique_ptr<net::io_context> ioc;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<net::signal_set> signals;
  std::unique_ptr<net::steady_timer> drain_timer;
  std::unique_ptr<net::steady_timer> accept_timer;  // on the acceptor's strand
  std::vector<std::thread> threads;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  int bound_port = 0;
  Clock::time_point stop_started;

  void accept();
  void begin_stop();
  void poll_drained();
};

// ------------------------------------------------------------------------------- Connection

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // `slot` is the connection's unit of --max-connections (empty for a refused connection).
  // A connection made over that limit (`refuse`) is answered 503 and closed.
  Connection(tcp::socket socket, ServerState& st, AdmissionTicket slot, bool refuse)
      : stream_(std::move(socket)), st_(st), slot_(std::move(slot)), refuse_(refuse) {}
  ~Connection() {
    if (job_) job_->abort_all();
    if (lingering_) st_.lingering.fetch_sub(1);
  }
  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (!self->refuse_) return self->read_header();
      Reply r =
          error_reply(503, "too many open connections (--max-connections " +
                               std::to_string(self->st_.args.max_connections) + "); retry later");
      r.close = true;
      r.retry_after = kRetryAfterSeconds;
      self->send(std::move(r));
    });
  }

 private:
  // ---- request reading. Timeouts: an idle keep-alive connection waits at most
  // --keep-alive-timeout for the first byte of its next request; from then (from the accept for
  // the first request) the headers must arrive within --header-timeout and the body within
  // --body-timeout after them, so a client trickling bytes (slowloris) cannot hold a connection.
  void do_read() {
    if (closing_) return close();
    if (buffer_.size() > 0) return read_header();  // pipelined bytes are waiting
    stream_.expires_after(seconds(st_.args.keep_alive_timeout_s));
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec) return self->close();  // idle timeout, EOF or reset
                              self->buffer_.commit(n);
                              self->read_header();
                            });
  }

  void read_header() {
    parser_.emplace();
    parser_->body_limit(static_cast<uint64_t>(st_.args.max_body_bytes));
    parser_->header_limit(kHeaderLimit);
    stream_.expires_after(seconds(st_.args.header_timeout_s));
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  // curl and others send "Expect: 100-continue" before a large body and wait for the interim
  // answer; give it, then read the body.
  void on_header(beast::error_code ec) {
    if (ec) return on_read(ec);
    auto read_body = [this] {
      stream_.expires_after(seconds(st_.args.body_timeout_s));
      http::async_read(
          stream_, buffer_, *parser_,
          [self = shared_from_this()](beast::error_code e, size_t) { self->on_read(e); });
    };
    const auto& h = parser_->get();
    auto it = h.find(http::field::expect);
    if (it != h.end() && beast::iequals(it->value(), "100-continue") && !parser_->is_done()) {
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      net::async_write(stream_, net::buffer(kContinue),
                       [self = shared_from_this(), read_body](beast::error_code e, size_t) {
                         if (e) return self->close();
                         read_body();
                       });
      return;
    }
    if (parser_->is_done()) return on_read(ec);
    read_body();
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
        ec == net::error::connection_reset || ec == net::error::operation_aborted)
      return close();
    if (ec) {
      int status = 400;
      std::string msg = "malformed HTTP request: " + ec.message();
      if (ec == http::error::body_limit) {
        status = 413;
        msg = "request body exceeds the limit of " + std::to_string(st_.args.max_body_bytes) +
              " bytes";
      } else if (ec == http::error::header_limit) {
        status = 431;
        msg = "request headers exceed the limit of " + std::to_string(kHeaderLimit) + " bytes";
      }
      Reply r = error_reply(status, msg);
      r.close = true;
      version_ = 11;
      req_ = {};  // not a HEAD left over from an earlier request: the body goes out
      return send(std::move(r));
    }
    req_ = parser_->release();
    version_ = req_.version();
    keep_alive_ = req_.keep_alive();
    Reply r;
    bool async = false;
    try {
      async = route(r);
    } catch (const std::exception& e) {
      SGL_LOG(kError, std::string("internal error while handling a request: ") + e.what());
      r = error_reply(500, std::string("internal error: ") + e.what());
      async = false;
    }
    if (!async) send(std::move(r));
  }

  // ---- routing. Returns true when a generation job took over the reply.
  bool route(Reply& r) {
    std::string_view target(req_.target().data(), req_.target().size());
    std::string path(target.substr(0, target.find('?')));
    const http::verb m = req_.method();
    const bool get = m == http::verb::get || m == http::verb::head;
    const bool post = m == http::verb::post || m == http::verb::put;
    if (!route_is_public(path) && !st_.args.api_key.empty()) {
      auto h = req_.find(http::field::authorization);
      std::string_view auth = h == req_.end()
                                  ? std::string_view()
                                  : std::string_view(h->value().data(), h->value().size());
      if (!authorized(auth, st_.args.api_key)) {
        r = error_reply(401,
                        "Unauthorized: a valid API key is required (Authorization: Bearer <key>)");
        return false;
      }
    }
    if (st_.stopping.load()) {
      r = error_reply(503, "the server is shutting down");
      r.close = true;
      return false;
    }
    Engine* engine = st_.engine.load();
    auto method_not_allowed = [&] {
      r = error_reply(405,
                      "method " + std::string(req_.method_string()) + " is not allowed on " + path);
      return false;
    };
    if (path == "/health") {
      if (!get) return method_not_allowed();
      r = engine ? Reply{200, ""} : error_reply(503, "the model is still loading");
      if (engine) r.content_type = "text/plain";
      return false;
    }
    static const char* kKnown[] = {"/health_generate", "/get_model_info",     "/model_info",
                                   "/get_server_info", "/server_info",        "/flush_cache",
                                   "/abort_request",   "/tokenize",           "/detokenize",
                                   "/metrics",         "/generate",           "/v1/models",
                                   "/v1/completions",  "/v1/chat/completions"};
    bool known = path.rfind("/v1/models/", 0) == 0;
    for (const char* k : kKnown) known = known || path == k;
    if (!known) {
      r = error_reply(404, "no route " + quote_for_message(path) + " (see docs/http_api.md)");
      return false;
    }
    if (!engine) {
      r = error_reply(503, "the model is still loading");
      return false;
    }
    if (path == "/generate") return post ? handle_generate(r) : method_not_allowed();
    if (path == "/v1/completions") return post ? handle_completions(r) : method_not_allowed();
    if (path == "/v1/chat/completions") return post ? handle_chat(r) : method_not_allowed();
    if (path == "/health_generate")
      return get || post ? handle_health_generate(r) : method_not_allowed();
    if (path == "/get_model_info" || path == "/model_info") {
      if (!get) return method_not_allowed();
      r = json_reply(model_info());
      return false;
    }
    if (path == "/get_server_info" || path == "/server_info") {
      if (!get) return method_not_allowed();
      r = json_reply(server_info());
      return false;
    }
    if (path == "/flush_cache") {
      if (!get && !post) return method_not_allowed();
      Status s = engine->flush_cache();
      if (s.is_ok()) {
        r = Reply{200,
                  "Cache flushed.\nPlease check backend logs for more details. (When there "
                  "are running or waiting requests, the operation will not be performed.)\n",
                  "text/plain"};
      } else {
        r = error_reply(400, "Cache not flushed: " + s.message());
      }
      return false;
    }
    if (path == "/abort_request") {
      if (!post) return method_not_allowed();
      auto body = parse_json_object(req_.body());
      if (!body.is_ok()) return r = status_reply(body.status()), false;
      auto a = parse_abort_request(*body);
      if (!a.is_ok()) return r = status_reply(a.status()), false;
      int n = 0;
      if (a->abort_all)
        engine->abort_all();
      else
        n = engine->abort(a->rid);
      r = json_reply(Json{{"aborted", a->abort_all ? Json("all") : Json(n)}});
      return false;
    }
    if (path == "/tokenize") {
      if (!post) return method_not_allowed();
      r = tokenize();
      return false;
    }
    if (path == "/detokenize") {
      if (!post) return method_not_allowed();
      r = detokenize();
      return false;
    }
    if (path == "/metrics") {
      if (!get) return method_not_allowed();
      if (!st_.args.enable_metrics) {
        r = error_reply(404, "metrics are disabled: start the server with --enable-metrics");
      } else {
        r = Reply{200, st_.metrics.render(engine->stats(), st_.gauges()),
                  "text/plain; version=0.0.4; charset=utf-8"};
      }
      return false;
    }
    if (path == "/v1/models") {
      if (!get) return method_not_allowed();
      r = json_reply(Json{{"object", "list"}, {"data", Json::array({model_card()})}});
      return false;
    }
    if (path.rfind("/v1/models/", 0) == 0) {
      if (!get) return method_not_allowed();
      const std::string id = url_decode(path.substr(std::string("/v1/models/").size()));
      if (!model_known(id)) {
        r = error_reply(404, "The model `" + id + "` does not exist.");
        r.body = error_body(ApiError{404, "The model `" + id + "` does not exist.", "model"});
      } else {
        r = json_reply(model_card());
      }
      return false;
    }
    r = error_reply(404, "no route " + quote_for_message(path));
    return false;
  }

  // ---- simple routes
  bool model_known(const std::string& id) const {
    return id == st_.args.model_name() || id == st_.args.model_path;
  }

  Json model_card() const {
    Json j = Json::object();
    j["id"] = st_.args.model_name();
    j["object"] = "model";
    j["created"] = st_.created;
    j["owned_by"] = "sglang";
    j["root"] = st_.args.model_path;
    j["parent"] = nullptr;
    j["max_model_len"] = st_.context_limit;
    return j;
  }

  Json model_info() const {
    const Engine& e = *st_.engine.load();
    const auto& cfg = e.model().config;
    Json j = Json::object();
    j["model_path"] = st_.args.model_path;
    j["tokenizer_path"] = st_.args.model_path;
    j["is_generation"] = true;
    j["preferred_sampling_params"] = nullptr;
    j["weight_version"] = "default";
    j["served_model_name"] = st_.args.model_name();
    j["architecture"] = cfg.arch;
    j["context_length"] = st_.context_limit;
    j["vocab_size"] = e.n_vocab();
    j["has_chat_template"] = st_.chat_template.has_value();
    // The frontend language derives its role prefixes from the template (our extension; SGLang's
    // frontend picks a template by model_path instead).
    if (st_.chat_template) {
      j["chat_template"] = st_.chat_template->source();
      const auto& tok = e.model().tok();
      j["bos_token"] = tok.bos_id() >= 0 ? tok.token_text(tok.bos_id()) : "";
      j["eos_token"] = tok.eos_id() >= 0 ? tok.token_text(tok.eos_id()) : "";
    }
    return j;
  }

  Json server_info() const {
    const Engine& e = *st_.engine.load();
    const runtime::EngineStats s = e.stats();
    Json j = server_args_json(st_.args);
    j["max_total_num_tokens"] = e.max_total_tokens();
    j["max_req_input_len"] =
        std::max<int64_t>(0, std::min<int64_t>(st_.context_limit, e.max_total_tokens()) - 1);
    j["version"] = kVersion;
    Json is = Json::object();
    is["num_running_reqs"] = s.running;
    is["num_queue_reqs"] = s.waiting;
    is["kv_used_tokens"] = s.kv_used;
    is["kv_cache_tokens"] = s.cache_size;
    is["kv_request_tokens"] = std::max<int64_t>(0, s.kv_used - s.cache_size);
    is["token_usage"] = s.kv_capacity > 0 ? static_cast<double>(s.kv_used) / s.kv_capacity : 0.0;
    is["cache_hit_rate"] = s.cache_hit_rate();
    is["evicted_tokens"] = s.evicted_tokens;
    is["retractions"] = s.retractions;
    is["finished_requests"] = s.finished;
    is["generated_tokens"] = s.generated_tokens;
    is["active_http_generations"] = st_.active_jobs.load();
    is["jump_forward_tokens"] = s.jump_forward_tokens;
    const ServerGauges g = st_.gauges();
    is["admitted_sequences"] = g.queued_sequences;
    is["overload_rejections"] = g.rejected_overload;
    is["open_connections"] = g.open_connections;
    is["rejected_connections"] = g.rejected_connections;
    j["internal_states"] = Json::array({is});
    return j;
  }

  Reply tokenize() {
    auto body = parse_json_object(req_.body());
    if (!body.is_ok()) return status_reply(body.status());
    auto t = parse_tokenize_request(*body);
    if (!t.is_ok()) return status_reply(t.status());
    Json tokens = Json::array(), counts = Json::array();
    for (const auto& text : t->texts) {
      auto ids = st_.tok().encode(text, t->add_special_tokens, /*parse_special=*/true);
      counts.push_back(ids.size());
      tokens.push_back(std::move(ids));
    }
    Json j = Json::object();
    j["tokens"] = t->batch ? tokens : tokens[0];
    j["count"] = t->batch ? counts : counts[0];
    j["max_model_len"] = st_.context_limit;
    return json_reply(j);
  }

  Reply detokenize() {
    auto body = parse_json_object(req_.body());
    if (!body.is_ok()) return status_reply(body.status());
    auto d = parse_detokenize_request(*body);
    if (!d.is_ok()) return status_reply(d.status());
    Json texts = Json::array();
    for (const auto& ids : d->ids) {
      auto text = st_.tok().decode(ids, d->skip_special_tokens);
      if (!text.is_ok()) return error_reply(400, "tokens: " + text.status().message());
      texts.push_back(utf8::sanitize(*text));
    }
    return json_reply(Json{{"text", d->batch ? texts : texts[0]}});
  }

  // ---- generation routes

  // Tokenizes `p` the way the engine would (BOS rule, special tokens parsed).
  std::vector<int32_t> prompt_ids(const PromptInput& p) const {
    if (p.text) return st_.tok().encode(*p.text, /*add_special=*/true, /*parse_special=*/true);
    return p.ids;
  }

  Status check_context(size_t prompt_len, int64_t max_new) const {
    const int64_t total = static_cast<int64_t>(prompt_len) + max_new;
    if (prompt_len >= static_cast<size_t>(st_.context_limit) || total > st_.context_limit)
      return invalid_argument(
          "Requested token count exceeds the model's maximum context length of " +
          std::to_string(st_.context_limit) + " tokens. You requested a total of " +
          std::to_string(total) + " tokens: " + std::to_string(prompt_len) +
          " tokens from the input messages and " + std::to_string(max_new) +
          " tokens for the completion. Please reduce the number of tokens in the input messages "
          "or the completion to fit within the limit.");
    return Status::ok();
  }

  // --max-new-tokens-limit.
  Status check_max_new(int64_t max_new) const {
    const int32_t limit = st_.args.max_new_tokens_limit;
    if (limit > 0 && max_new > limit)
      return invalid_argument("max_new_tokens (" + std::to_string(max_new) +
                              ") exceeds this server's limit of " + std::to_string(limit) +
                              " (--max-new-tokens-limit)");
    return Status::ok();
  }

  // --max-n, then admission under --max-queued-requests: reserves `choices` units for the job
  // (returned as its choices finish). On refusal fills `r`: 400 for a request that can never
  // fit, 503 with Retry-After while the server is full. Runs before tokenization and template
  // rendering, so an overloaded server refuses cheaply.
  bool admit(Job& job, int64_t choices, Reply& r) {
    const ServerArgs& a = st_.args;
    if (choices > a.max_n) {
      r = error_reply(400, "the request expands to " + std::to_string(choices) +
                               " sequences (prompts x n); this server allows at most " +
                               std::to_string(a.max_n) + " (--max-n)");
      return false;
    }
    if (a.max_queued_requests > 0 && choices > a.max_queued_requests) {
      r = error_reply(400, "the request expands to " + std::to_string(choices) +
                               " sequences, more than the server ever queues (" +
                               std::to_string(a.max_queued_requests) + ", --max-queued-requests)");
      return false;
    }
    if (!st_.sequences.try_acquire(choices)) {
      r = error_reply(503,
                      "the server is overloaded: " + std::to_string(st_.sequences.in_flight()) +
                          " sequences are queued or running (--max-queued-requests " +
                          std::to_string(a.max_queued_requests) + "); retry later");
      r.retry_after = kRetryAfterSeconds;
      return false;
    }
    job.ticket = AdmissionTicket(&st_.sequences, choices);
    return true;
  }

  // Submits and installs the job; on error fills `r` and returns false.
  bool launch(std::shared_ptr<Job> job, std::vector<GenerateRequest> reqs, Reply& r) {
    Engine* engine = st_.engine.load();
    std::vector<int> prompt_of;
    for (size_t i = 0; i < reqs.size(); ++i)
      for (int k = 0; k < reqs[i].params.n; ++k) prompt_of.push_back(static_cast<int>(i));
    std::vector<GenerateParams> params;
    for (const auto& q : reqs)
      for (int k = 0; k < q.params.n; ++k) params.push_back(q.params);
    auto handles = engine->submit_batch(std::move(reqs));
    if (!handles.is_ok()) {
      r = status_reply(handles.status());
      return false;
    }
    job->handles = std::move(*handles);
    job->params = std::move(params);
    job->choices.resize(job->handles.size());
    job->text_offsets.assign(job->handles.size(), 0);
    for (size_t i = 0; i < job->handles.size(); ++i) {
      job->choices[i].index = static_cast<int>(i);
      job->choices[i].prompt_index = prompt_of[i];
      job->choices[i].rid = job->handles[i]->rid();
    }
    job_ = job;
    st_.active_jobs.fetch_add(1);
    stream_.expires_never();
    if (job->stream) {
      start_stream();
      emit_stream_chunks(*job);  // chat: the role delta; echo: the prompt
    }
    start_monitor();
    auto self = shared_from_this();
    auto ex = stream_.get_executor();
    for (auto& h : job->handles) {
      // Runs on the scheduler thread: one coalesced wake-up per burst of events, nothing else.
      // Only weak references to the job: a finished job must not be kept alive by its handles.
      h->set_listener([self, ex, weak = std::weak_ptr<Job>(job)] {
        auto j = weak.lock();
        if (!j || j->wake_pending.exchange(true)) return;
        net::post(ex, [self, weak] {
          if (auto j = weak.lock()) self->on_events(j);
        });
      });
    }
    return true;
  }

  bool handle_generate(Reply& r) {
    auto body = parse_json_object(req_.body());
    if (!body.is_ok()) return r = status_reply(body.status()), false;
    auto g = parse_generate_request(*body);
    if (!g.is_ok()) return r = status_reply(g.status()), false;
    for (const auto& p : g->params)
      if (Status s = check_max_new(p.max_new_tokens); !s.is_ok()) return r = status_reply(s), false;
    auto job = std::make_shared<Job>();
    if (!admit(*job, g->choices(), r)) return false;
    std::vector<GenerateRequest> reqs;
    for (size_t i = 0; i < g->prompts.size(); ++i) {
      GenerateRequest q;
      q.rid = g->rids[i].empty() ? hex_id() : g->rids[i];
      q.input_ids = prompt_ids(g->prompts[i]);
      q.params = g->params[i];
      Status s = check_context(q.input_ids.size(), q.params.max_new_tokens);
      if (!s.is_ok()) {
        if (g->prompts.size() > 1)
          s = Status(s.code(), "request " + std::to_string(i) + ": " + s.message());
        return r = status_reply(s), false;
      }
      reqs.push_back(std::move(q));
    }
    job->kind = Job::kNative;
    job->stream = g->stream;
    job->list_response = g->batch || g->choices() > 1;
    return launch(job, std::move(reqs), r);
  }

  Status check_model(const std::string& model) const {
    if (model.empty() || model_known(model)) return Status::ok();
    return not_found("The model `" + model + "` does not exist.");
  }

  bool handle_completions(Reply& r) {
    auto body = parse_json_object(req_.body());
    if (!body.is_ok()) return r = status_reply(body.status()), false;
    auto c = parse_completion_request(*body);
    if (!c.is_ok()) return r = status_reply(c.status()), false;
    if (Status s = check_model(c->common.model); !s.is_ok()) return r = status_reply(s), false;
    if (Status s = check_max_new(c->common.max_tokens.value_or(16)); !s.is_ok())
      return r = status_reply(s), false;
    auto job = std::make_shared<Job>();
    if (!admit(*job, static_cast<int64_t>(c->prompts.size()) * c->common.params.n, r)) return false;
    job->kind = Job::kCompletion;
    job->stream = c->common.stream;
    job->include_usage = c->common.include_usage;
    job->echo = c->echo;
    job->logprobs = c->logprobs;
    job->id = "cmpl-" + hex_id();
    job->created = unix_time();
    job->model = st_.args.model_name();
    GenerateParams p = c->common.params;
    p.max_new_tokens = c->common.max_tokens.value_or(16);
    if (c->logprobs >= 0) {
      p.return_logprob = true;
      p.top_logprobs_num = c->logprobs;
      if (c->echo) p.logprob_start_len = 0;
    }
    std::vector<GenerateRequest> reqs;
    for (size_t i = 0; i < c->prompts.size(); ++i) {
      GenerateRequest q;
      q.rid = job->id + "-" + std::to_string(i);
      q.input_ids = prompt_ids(c->prompts[i]);
      q.params = p;
      if (Status s = check_context(q.input_ids.size(), p.max_new_tokens); !s.is_ok())
        return r = status_reply(s), false;
      if (c->echo) {
        if (c->prompts[i].text) {
          job->prompt_texts.push_back(*c->prompts[i].text);
        } else {
          auto t = st_.tok().decode(q.input_ids, true);
          job->prompt_texts.push_back(t.is_ok() ? utf8::sanitize(*t) : "");
        }
      }
      reqs.push_back(std::move(q));
    }
    return launch(job, std::move(reqs), r);
  }

  bool handle_chat(Reply& r) {
    auto body = parse_json_object(req_.body());
    if (!body.is_ok()) return r = status_reply(body.status()), false;
    auto c = parse_chat_request(*body);
    if (!c.is_ok()) return r = status_reply(c.status()), false;
    if (Status s = check_model(c->common.model); !s.is_ok()) return r = status_reply(s), false;
    if (!st_.chat_template) return r = error_reply(400, st_.chat_template_error), false;
    if (c->common.max_tokens)
      if (Status s = check_max_new(*c->common.max_tokens); !s.is_ok())
        return r = status_reply(s), false;
    auto job = std::make_shared<Job>();
    if (!admit(*job, c->common.params.n, r)) return false;
    const auto& tok = st_.tok();
    tokenizer::ChatTemplateOptions opts;
    opts.add_generation_prompt = true;
    if (tok.bos_id() >= 0) opts.bos_token = tok.token_text(tok.bos_id());
    if (tok.eos_id() >= 0) opts.eos_token = tok.token_text(tok.eos_id());
    opts.tools = c->tools;
    opts.extra_context = c->template_kwargs;
    auto text = st_.chat_template->render(c->messages, opts);
    if (!text.is_ok())
      return r = error_reply(400, "chat template: " + text.status().message()), false;
    GenerateRequest q;
    q.input_ids = tok.encode(*text, /*add_special=*/false, /*parse_special=*/true);
    q.params = c->common.params;
    const int64_t room =
        std::min<int64_t>(st_.context_limit, st_.engine.load()->max_total_tokens()) -
        static_cast<int64_t>(q.input_ids.size());
    int64_t default_max = std::max<int64_t>(room, 0);
    if (st_.args.max_new_tokens_limit > 0)
      default_max = std::min<int64_t>(default_max, st_.args.max_new_tokens_limit);
    q.params.max_new_tokens =
        c->common.max_tokens ? *c->common.max_tokens : static_cast<int32_t>(default_max);
    if (Status s = check_context(q.input_ids.size(), q.params.max_new_tokens); !s.is_ok())
      return r = status_reply(s), false;
    if (c->logprobs) {
      q.params.return_logprob = true;
      q.params.top_logprobs_num = c->top_logprobs;
    }
    job->kind = Job::kChat;
    job->stream = c->common.stream;
    job->include_usage = c->common.include_usage;
    job->chat_logprobs = c->logprobs;
    job->id = "chatcmpl-" + hex_id();
    job->created = unix_time();
    job->model = st_.args.model_name();
    q.rid = job->id;
    std::vector<GenerateRequest> reqs;
    reqs.push_back(std::move(q));
    return launch(job, std::move(reqs), r);
  }

  bool handle_health_generate(Reply& r) {
    const auto& tok = st_.tok();
    GenerateRequest q;
    q.rid = "HEALTH_CHECK_" + hex_id();
    q.input_ids = {tok.bos_id() >= 0 ? tok.bos_id() : 0};
    q.params.max_new_tokens = 1;
    q.params.temperature = 0.0f;
    auto job = std::make_shared<Job>();
    job->kind = Job::kHealth;
    std::vector<GenerateRequest> reqs;
    reqs.push_back(std::move(q));
    return launch(job, std::move(reqs), r);
  }

  // ---- events → responses
  TokenText token_text() const {
    return [st = &st_](int32_t id) { return st->token_text(id); };
  }

  void on_events(const std::shared_ptr<Job>& job) {
    if (job != job_) return;
    job->wake_pending.store(false);
    RequestEvent ev;
    for (size_t i = 0; i < job->handles.size(); ++i) {
      ChoiceState& c = job->choices[i];
      while (!c.finished && job->handles[i]->try_next(&ev)) {
        c.apply(ev);
        if (c.finished) {
          ++job->finished;
          job->ticket.release(1);
          record_finished(*job, c);
        }
      }
    }
    if (job->stream && !closing_) emit_stream_chunks(*job);
    if (job->finished == job->handles.size()) finish_job();
  }

  void record_finished(const Job& job, const ChoiceState& c) {
    const bool aborted = c.finish.kind == runtime::FinishReason::kAbort;
    st_.metrics.on_finished(c.prompt_tokens, c.completion_tokens, c.cached_tokens, c.timings.e2e_s,
                            aborted);
    if (c.timings.first_token_s > 0) st_.metrics.on_first_token(c.timings.first_token_s);
    if (c.completion_tokens > 1 && c.timings.first_token_s > 0)
      st_.metrics.on_tokens(c.timings.e2e_s - c.timings.first_token_s, c.completion_tokens - 1);
    if (st_.args.log_requests && job.kind != Job::kHealth) {
      char buf[256];
      std::snprintf(buf, sizeof buf,
                    "finish %s: prompt %d, cached %d, completion %d tokens; queued %.3f s, "
                    "first token %.3f s, e2e %.3f s",
                    c.finish.type(), c.prompt_tokens, c.cached_tokens, c.completion_tokens,
                    c.timings.queued_s, c.timings.first_token_s, c.timings.e2e_s);
      std::string msg = buf;
      if (aborted) msg += " (" + c.finish.message + ")";
      log_line(LogLevel::kInfo, "[" + c.rid + "]", msg);
    }
  }

  double elapsed(const Job& job) const {
    return std::chrono::duration<double>(Clock::now() - job.t0).count();
  }

  Json openai_base(const Job& job, const char* object) const {
    Json j = Json::object();
    j["id"] = job.id;
    j["object"] = object;
    j["created"] = job.created;
    j["model"] = job.model;
    return j;
  }

  // Logprobs of choice c for the output positions [from, to) (and, for an echoing completion's
  // first chunk, the prompt's).
  Json completion_lp(Job& job, ChoiceState& c, size_t from, size_t to, bool with_prompt) {
    if (job.logprobs < 0) return nullptr;
    const bool top = job.logprobs > 0;
    size_t& off = job.text_offsets[c.index];
    Json out = Json{{"text_offset", Json::array()},
                    {"token_logprobs", Json::array()},
                    {"tokens", Json::array()},
                    {"top_logprobs", top ? Json::array() : Json(nullptr)}};
    auto append = [&](const Json& part) {
      for (const char* k : {"text_offset", "token_logprobs", "tokens"})
        for (const auto& x : part[k]) out[k].push_back(x);
      if (top)
        for (const auto& x : part["top_logprobs"]) out["top_logprobs"].push_back(x);
    };
    if (with_prompt)
      append(completion_logprobs(c.input_lp, 0, c.input_lp.size(), top, token_text(), &off));
    append(completion_logprobs(c.output_lp, from, to, top, token_text(), &off));
    return out;
  }

  void emit_stream_chunks(Job& job) {
    std::string out;
    const int interval = std::max(1, st_.args.stream_interval);
    for (ChoiceState& c : job.choices) {
      if (c.final_sent) continue;
      const bool due = c.finished || c.unsent_tokens >= interval ||
                       (!c.started && (job.kind == Job::kChat || job.echo));
      if (!due) continue;
      const bool first = !c.started;
      c.started = true;
      const size_t lp_to = c.output_lp.size();
      std::string delta = c.text.substr(c.sent_text);
      if (job.kind == Job::kNative) {
        Json j = native_output(c, job.params[c.index], token_text(), elapsed(job));
        if (job.list_response) j["index"] = c.index;
        out += sse_event(j);
      } else if (job.kind == Job::kCompletion) {
        if (first && job.echo) delta = job.prompt_texts[c.prompt_index] + delta;
        Json ch = Json::object();
        ch["index"] = c.index;
        ch["text"] = delta;
        ch["logprobs"] = completion_lp(job, c, c.sent_lp, lp_to, first && job.echo);
        ch["finish_reason"] = openai_finish_reason(c);
        ch["matched_stop"] = openai_matched_stop(c);
        Json j = openai_base(job, "text_completion");
        j["choices"] = Json::array({ch});
        out += sse_event(j);
      } else if (job.kind == Job::kChat) {
        if (first) {
          Json ch = Json::object();
          ch["index"] = c.index;
          ch["delta"] = Json{{"role", "assistant"}, {"content", ""}};
          ch["logprobs"] = nullptr;
          ch["finish_reason"] = nullptr;
          Json j = openai_base(job, "chat.completion.chunk");
          j["choices"] = Json::array({ch});
          out += sse_event(j);
        }
        if (!delta.empty() || c.finished || lp_to > c.sent_lp) {
          Json ch = Json::object();
          ch["index"] = c.index;
          ch["delta"] = delta.empty() && c.finished ? Json::object() : Json{{"content", delta}};
          ch["logprobs"] = job.chat_logprobs && lp_to > c.sent_lp
                               ? chat_logprobs(c.output_lp, c.sent_lp, lp_to, token_text())
                               : Json(nullptr);
          ch["finish_reason"] = openai_finish_reason(c);
          ch["matched_stop"] = openai_matched_stop(c);
          Json j = openai_base(job, "chat.completion.chunk");
          j["choices"] = Json::array({ch});
          out += sse_event(j);
        }
      }
      c.sent_text = c.text.size();
      c.sent_lp = lp_to;
      c.unsent_tokens = 0;
      if (c.finished) c.final_sent = true;
    }
    if (job.finished == job.handles.size()) {
      if (job.kind != Job::kNative && job.include_usage) {
        Json j =
            openai_base(job, job.kind == Job::kChat ? "chat.completion.chunk" : "text_completion");
        j["choices"] = Json::array();
        j["usage"] = openai_usage(job.choices);
        out += sse_event(j);
      }
      out += kSseDone;
    }
    if (!out.empty()) stream_write(std::move(out));
  }

  Reply final_reply(Job& job) {
    if (job.kind == Job::kHealth) {
      const ChoiceState& c = job.choices[0];
      if (c.finished && c.finish.kind != runtime::FinishReason::kAbort)
        return Reply{200, "", "text/plain"};
      return error_reply(503, "health generation failed: " + c.finish.message);
    }
    if (job.kind == Job::kNative) {
      Json list = Json::array();
      for (const ChoiceState& c : job.choices)
        list.push_back(native_output(c, job.params[c.index], token_text(), elapsed(job)));
      return json_reply(job.list_response ? list : list[0]);
    }
    Json choices = Json::array();
    for (ChoiceState& c : job.choices) {
      Json ch = Json::object();
      ch["index"] = c.index;
      if (job.kind == Job::kCompletion) {
        ch["text"] = job.echo ? job.prompt_texts[c.prompt_index] + c.text : c.text;
        ch["logprobs"] = completion_lp(job, c, 0, c.output_lp.size(), job.echo);
      } else {
        ch["message"] = Json{{"role", "assistant"},
                             {"content", c.text},
                             {"reasoning_content", nullptr},
                             {"tool_calls", nullptr}};
        ch["logprobs"] = job.chat_logprobs
                             ? chat_logprobs(c.output_lp, 0, c.output_lp.size(), token_text())
                             : Json(nullptr);
      }
      ch["finish_reason"] = openai_finish_reason(c);
      ch["matched_stop"] = openai_matched_stop(c);
      choices.push_back(std::move(ch));
    }
    Json j = openai_base(job, job.kind == Job::kChat ? "chat.completion" : "text_completion");
    j["choices"] = std::move(choices);
    j["usage"] = openai_usage(job.choices);
    return json_reply(j);
  }

  void finish_job() {
    auto job = job_;
    if (!job || job->done) return;
    job->done = true;
    // Every handle has finished: drop the listeners, which hold this connection, so the done job
    // (kept in job_ until after_job) cannot keep the connection alive in a cycle when the socket
    // closes first (a leak LeakSanitizer found in the e2e suite).
    for (auto& h : job->handles) h->set_listener(nullptr);
    st_.active_jobs.fetch_sub(1);
    if (closing_) {
      job_.reset();
      return close();
    }
    if (job->stream) {
      if (!raw_stream_) out_pending_ += "0\r\n\r\n";  // last chunk
      stream_done_ = true;
      flush_stream();
      return;
    }
    pending_reply_ = final_reply(*job);
    after_job();
  }

  // Once the job's answer can go out: stop the disconnect monitor first (a read must not be
  // pending when the next request is read), then write / read on.
  void after_job() {
    if (monitor_pending_) {
      beast::error_code ec;
      stream_.socket().cancel(ec);  // on_monitor() calls after_job() again
      return;
    }
    job_.reset();
    if (pending_reply_) {
      Reply r = std::move(*pending_reply_);
      pending_reply_.reset();
      return send(std::move(r));
    }
    if (raw_stream_ || !keep_alive_) return close();
    do_read();
  }

  // ---- disconnect monitor
  void start_monitor() {
    if (monitor_pending_ || closing_ || buffer_.size() > kMaxPipelinedBytes) return;
    monitor_pending_ = true;
    // No read timeout while a generation runs (a stream write may be pending: then only the read
    // timer changes).
    stream_.expires_never();
    stream_.async_read_some(
        buffer_.prepare(4096),
        [self = shared_from_this()](beast::error_code ec, size_t n) { self->on_monitor(ec, n); });
  }

  void on_monitor(beast::error_code ec, size_t n) {
    monitor_pending_ = false;
    if (!ec) buffer_.commit(n);
    const bool job_running = job_ && !job_->done;
    if (ec && ec != net::error::operation_aborted) {
      // The client went away (EOF or reset): abort the generation; its KV slots are freed.
      closing_ = true;
      if (job_running) {
        job_->abort_all();
        return;  // finish_job() closes once the aborts are confirmed
      }
      return close();
    }
    if (job_running) return start_monitor();
    if (job_ && job_->done && (!job_->stream || stream_idle())) return after_job();
  }

  // ---- streaming output (chunked transfer encoding, or raw for HTTP/1.0)
  void start_stream() {
    raw_stream_ = version_ < 11;
    std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n";
    if (raw_stream_)
      head =
          "HTTP/1.0 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
          "Cache-Control: no-cache\r\nConnection: close\r\n\r\n";
    else
      head += std::string("Transfer-Encoding: chunked\r\n") +
              (keep_alive_ ? "" : "Connection: close\r\n") + "\r\n";
    out_pending_ += head;
    st_.metrics.on_http_request(200);
    flush_stream();
  }

  void stream_write(std::string data) {
    if (raw_stream_) {
      out_pending_ += data;
    } else {
      char hex[20];
      std::snprintf(hex, sizeof hex, "%zx\r\n", data.size());
      out_pending_ += hex;
      out_pending_ += data;
      out_pending_ += "\r\n";
    }
    if (out_pending_.size() > kMaxStreamBacklog) {
      // The client does not read: give up on it.
      closing_ = true;
      if (job_) job_->abort_all();
      return;
    }
    flush_stream();
  }

  bool stream_idle() const { return !writing_ && out_pending_.empty(); }

  void flush_stream() {
    if (writing_ || closing_) return;
    if (out_pending_.empty()) {
      if (stream_done_) {
        stream_done_ = false;
        after_job();
      }
      return;
    }
    writing_ = true;
    out_writing_.swap(out_pending_);
    out_pending_.clear();
    // Sets the write timer only: the disconnect monitor's read may be pending (basic_stream keeps
    // one timer per direction and leaves a pending operation's alone).
    stream_.expires_after(kWriteTimeout);
    net::async_write(stream_, net::buffer(out_writing_),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->writing_ = false;
                       self->out_writing_.clear();
                       if (ec) {
                         self->closing_ = true;
                         if (self->job_ && !self->job_->done)
                           self->job_->abort_all();
                         else
                           self->close();
                         return;
                       }
                       self->flush_stream();
                     });
  }

  // ---- plain responses
  void send(Reply r) {
    st_.metrics.on_http_request(r.status);
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(r.status), version_ ? version_ : 11);
    res->set(http::field::server, "sgl-server");
    res->set(http::field::content_type, r.content_type);
    const bool close_after = r.close || !keep_alive_;
    res->keep_alive(!close_after);
    if (req_.method() == http::verb::head) {
      res->content_length(r.body.size());
    } else {
      res->body() = std::move(r.body);
      res->prepare_payload();
    }
    if (r.retry_after > 0) res->set(http::field::retry_after, std::to_string(r.retry_after));
    stream_.expires_after(kWriteTimeout);
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res, close_after](beast::error_code ec, size_t) {
                        if (ec) return self->close();
                        if (close_after) return self->linger_close();
                        self->do_read();
                      });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
    // The job's handles hold listeners that keep this connection alive: drop the job (aborting
    // whatever is unfinished), or a client that hangs up right after its last event would leak
    // the connection and its socket.
    if (job_) {
      if (!job_->done) {
        job_->done = true;
        st_.active_jobs.fetch_sub(1);
      }
      job_->abort_all();
      job_.reset();
    }
  }

  // Ends our side, then reads and drops what the client still sends until it closes (or
  // kLingerTimeout), so the answer just written is not lost to a connection reset.
  void linger_close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec || lingering_ || st_.lingering.fetch_add(1) >= kMaxLingering) {
      if (!ec && !lingering_) st_.lingering.fetch_sub(1);
      return close();
    }
    lingering_ = true;
    stream_.expires_after(kLingerTimeout);
    drain();
  }

  void drain() {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(16384),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) return self->close();
                              self->drain();
                            });
  }

  beast::tcp_stream stream_;
  ServerState& st_;
  AdmissionTicket slot_;  // one unit of --max-connections while the connection lives
  bool refuse_ = false;
  bool lingering_ = false;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> req_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  std::shared_ptr<Job> job_;
  std::optional<Reply> pending_reply_;
  bool monitor_pending_ = false;
  bool closing_ = false;
  bool writing_ = false;
  bool raw_stream_ = false;
  bool stream_done_ = false;
  std::string out_pending_, out_writing_;
};

// ------------------------------------------------------------------------------- HttpServer

void HttpServer::Impl::accept() {
  acceptor->async_accept(net::make_strand(*ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
    if (!ec) {
      beast::error_code e2;
      socket.set_option(tcp::no_delay(true), e2);
      if (st->connections.try_acquire(1)) {
        std::make_shared<Connection>(std::move(socket), *st, AdmissionTicket(&st->connections, 1),
                                     /*refuse=*/false)
            ->start();
      } else if (st->lingering.load() < kMaxLingering) {
        std::make_shared<Connection>(std::move(socket), *st, AdmissionTicket(), /*refuse=*/true)
            ->start();
      } else {
        socket.close(e2);  // flooded: no answer at all
      }
    } else {
      // E.g. out of file descriptors: back off instead of spinning on the error.
      SGL_LOG(kWarn, "accept failed: " + ec.message());
      accept_timer->expires_after(std::chrono::milliseconds(100));
      accept_timer->async_wait([this](beast::error_code e) {
        if (!e && acceptor->is_open()) accept();
      });
      return;
    }
    accept();
  });
}

void HttpServer::Impl::begin_stop() {
  if (st->stopping.exchange(true)) return;
  SGL_LOG(kInfo, "shutting down: no new connections; aborting " +
                     std::to_string(st->active_jobs.load()) + " generation(s) in flight");
  // The acceptor lives on its own strand: close it there.
  net::post(acceptor->get_executor(), [this] {
    beast::error_code ec;
    acceptor->close(ec);
  });
  if (Engine* e = st->engine.load()) e->abort_all();
  stop_started = Clock::now();
  poll_drained();
}

void HttpServer::Impl::poll_drained() {
  const bool drained = st->active_jobs.load() == 0;
  if (drained || Clock::now() - stop_started > std::chrono::seconds(5)) {
    // Give the final writes a moment to reach the clients.
    drain_timer->expires_after(std::chrono::milliseconds(drained ? 50 : 0));
    drain_timer->async_wait([this](beast::error_code) {
      work.reset();
      ioc->stop();
    });
    return;
  }
  drain_timer->expires_after(std::chrono::milliseconds(20));
  drain_timer->async_wait([this](beast::error_code) { poll_drained(); });
}

HttpServer::HttpServer(ServerArgs args) : impl_(std::make_unique<Impl>()) {
  impl_->st = std::make_unique<ServerState>(std::move(args));
  impl_->ioc = std::make_unique<net::io_context>(impl_->st->args.http_threads);
  impl_->drain_timer = std::make_unique<net::steady_timer>(*impl_->ioc);
}

HttpServer::~HttpServer() {
  stop();
  wait();
  // The scheduler must not post to the io_context once it is gone.
  if (impl_->st->engine_owner) impl_->st->engine_owner->shutdown();
  impl_->signals.reset();
  impl_->accept_timer.reset();
  impl_->acceptor.reset();
  impl_->drain_timer.reset();
  impl_->ioc.reset();
}

Status HttpServer::start() {
  Impl& m = *impl_;
  beast::error_code ec;
  auto addr = net::ip::make_address(m.st->args.host, ec);
  if (ec)
    return invalid_argument("--host: " + quote_for_message(m.st->args.host) +
                            " is not an IP address");
  tcp::endpoint ep(addr, static_cast<unsigned short>(m.st->args.port));
  m.acceptor = std::make_unique<tcp::acceptor>(net::make_strand(*m.ioc));
  m.accept_timer = std::make_unique<net::steady_timer>(m.acceptor->get_executor());
  m.acceptor->open(ep.protocol(), ec);
  if (!ec) m.acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) m.acceptor->bind(ep, ec);
  if (!ec) m.acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return io_error("cannot listen on " + m.st->args.host + ":" + std::to_string(m.st->args.port) +
                    ": " + ec.message());
  m.bound_port = m.acceptor->local_endpoint().port();
  m.work.emplace(m.ioc->get_executor());
  m.accept();
  for (int i = 0; i < m.st->args.http_threads; ++i) m.threads.emplace_back([&m] { m.ioc->run(); });
  return Status::ok();
}

void HttpServer::handle_signals() {
  Impl& m = *impl_;
  m.signals = std::make_unique<net::signal_set>(*m.ioc, SIGINT, SIGTERM);
  m.signals->async_wait([&m](beast::error_code ec, int sig) {
    if (ec) return;
    if (!m.st->engine.load()) {
      SGL_LOG(kInfo, std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                         " while loading; exiting");
      std::fflush(stderr);
      std::_Exit(0);
    }
    SGL_LOG(kInfo, std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM"));
    m.begin_stop();
  });
}

Status HttpServer::set_engine(std::unique_ptr<Engine> engine) {
  ServerState& st = *impl_->st;
  const int32_t model_ctx = engine->context_length();
  st.context_limit =
      st.args.context_length > 0 ? std::min(st.args.context_length, model_ctx) : model_ctx;
  if (st.args.context_length > model_ctx)
    SGL_LOG(kWarn, "--context-length " + std::to_string(st.args.context_length) +
                       " exceeds the model's context (" + std::to_string(model_ctx) + "); using " +
                       std::to_string(model_ctx));
  std::optional<std::string> source;
  std::string origin;
  if (!st.args.chat_template.empty()) {
    std::ifstream f(st.args.chat_template, std::ios::binary);
    if (!f)
      return io_error("--chat-template: cannot read " + quote_for_message(st.args.chat_template));
    std::stringstream ss;
    ss << f.rdbuf();
    source = ss.str();
    origin = st.args.chat_template;
  } else if (engine->model().tok().chat_template()) {
    source = *engine->model().tok().chat_template();
    origin = "the model";
  }
  if (source) {
    auto t = tokenizer::ChatTemplate::parse(*source);
    if (!t.is_ok()) {
      if (!st.args.chat_template.empty())
        return invalid_argument("--chat-template " + st.args.chat_template + ": " +
                                t.status().message());
      st.chat_template_error = "the model's chat template cannot be parsed (" +
                               t.status().message() +
                               "); start the server with --chat-template FILE";
      SGL_LOG(kWarn, st.chat_template_error);
    } else {
      st.chat_template.emplace(std::move(*t));
    }
  } else {
    st.chat_template_error =
        "the model has no chat template; start the server with --chat-template FILE";
  }
  st.engine_owner = std::move(engine);
  st.engine.store(st.engine_owner.get());
  return Status::ok();
}

void HttpServer::wait() {
  for (auto& t : impl_->threads)
    if (t.joinable()) t.join();
  impl_->threads.clear();
}

void HttpServer::stop() {
  Impl* m = impl_.get();
  if (!m->acceptor) return;
  net::post(*m->ioc, [m] { m->begin_stop(); });
}

int HttpServer::port() const { return impl_->bound_port; }

}  // namespace sgl::server
