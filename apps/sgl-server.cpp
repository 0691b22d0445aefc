// sgl-server: an SGLang-compatible HTTP server over the in-process engine.
//
//   sgl-server --model-path MODEL [--host 127.0.0.1] [--port 30000] [options]   (see --help)
//
// Serves SGLang's native API (/generate, /health, /get_model_info, /get_server_info, /flush_cache,
// /abort_request, /tokenize, /detokenize, /metrics) and the OpenAI-compatible API (/v1/models,
// /v1/completions, /v1/chat/completions). The port is bound before the model loads (/health
// answers 503 until it is ready). SIGINT / SIGTERM stop it gracefully with exit status 0.
// docs/http_api.md describes every route.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "models/loader.h"
#include "server/http_server.h"
#include "server/server_args.h"
#include "sgl/engine.h"
#include "support/log.h"

namespace {

using sgl::server::ServerArgs;

std::string human(double v) {
  char buf[32];
  if (v >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2fG", v / 1e9);
  else if (v >= 1e6)
    std::snprintf(buf, sizeof buf, "%.1fM", v / 1e6);
  else if (v >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1fK", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

std::string mib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / (1024.0 * 1024.0));
  return buf;
}

// Parameter count of a llama-family decoder from its shape.
double param_count(const sgl::model::ModelConfig& c) {
  const double e = c.n_embd, v = c.n_vocab, hd = c.head_dim;
  const double attn = e * (c.n_head * hd) * 2 + e * (c.n_head_kv * hd) * 2;
  const double mlp = 3.0 * e * c.n_ff;
  return v * e * (c.tied_embeddings ? 1 : 2) + c.n_layer * (attn + mlp + 2 * e) + e;
}

// Runs Engine::create on a worker thread while showing elapsed time (a spinner on a terminal, a
// line every few seconds otherwise).
sgl::Result<std::unique_ptr<sgl::runtime::Engine>> load_with_progress(
    const ServerArgs& args, const sgl::runtime::EngineOptions& opts) {
  using Clock = std::chrono::steady_clock;
  auto fut = std::async(std::launch::async,
                        [&] { return sgl::runtime::Engine::create(args.model_path, opts); });
  const bool tty = isatty(STDERR_FILENO);
  const auto t0 = Clock::now();
  static const char* kSpin[] = {"|", "/", "-", "\\"};
  int tick = 0;
  double last_line = 0;
  while (fut.wait_for(std::chrono::milliseconds(200)) != std::future_status::ready) {
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (tty) {
      std::fprintf(stderr, "\r  loading %s %s %.1f s ", args.model_path.c_str(), kSpin[tick++ % 4],
                   s);
      std::fflush(stderr);
    } else if (s - last_line >= 2.0) {
      last_line = s;
      SGL_LOG(kInfo, "  still loading the model (" + std::to_string(static_cast<int>(s)) + " s)");
    }
  }
  if (tty && tick > 0) std::fprintf(stderr, "\r\033[K");
  auto r = fut.get();
  if (r.is_ok()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f s",
                  std::chrono::duration<double>(Clock::now() - t0).count());
    SGL_LOG(kInfo, std::string("model loaded in ") + buf);
  }
  return r;
}

std::string secs(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", s);
  return buf;
}

// Every connection holds a file descriptor: raise the soft limit to the hard one and warn when
// --max-connections cannot be reached.
void raise_fd_limit(const ServerArgs& args) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  const rlim_t needed = static_cast<rlim_t>(args.max_connections) + 64;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < needed)
    SGL_LOG(kWarn, "the open-file limit (" + std::to_string(rl.rlim_cur) +
                       ") is below --max-connections " + std::to_string(args.max_connections) +
                       " + 64; accept() will fail before that many connections");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> argv_s(argv + 1, argv + argc);
  bool help = false;
  auto parsed = sgl::server::parse_server_args(argv_s, &help);
  if (help) {
    std::fputs(sgl::server::server_args_help().c_str(), stdout);
    return 0;
  }
  if (!parsed.is_ok()) {
    std::fprintf(stderr, "sgl-server: %s\n", parsed.status().message().c_str());
    return 2;
  }
  ServerArgs args = std::move(*parsed);
  if (args.log_level == "debug")
    sgl::set_log_level(sgl::LogLevel::kDebug);
  else if (args.log_level == "warning")
    sgl::set_log_level(sgl::LogLevel::kWarn);
  else if (args.log_level == "error")
    sgl::set_log_level(sgl::LogLevel::kError);
  if (args.random_seed < 0) {
    std::random_device rd;
    args.random_seed = static_cast<int64_t>(rd() % (1u << 30));
  }
  auto opts = sgl::server::engine_options(args);
  if (!opts.is_ok()) {
    std::fprintf(stderr, "sgl-server: %s\n", opts.status().message().c_str());
    return 2;
  }

  SGL_LOG(kInfo, "sgl-server 0.1.0 (sglang.cpp), device " + args.device);
  raise_fd_limit(args);
  sgl::server::HttpServer server(args);
  if (sgl::Status s = server.start(); !s.is_ok()) {
    SGL_LOG(kError, s.message());
    return 1;
  }
  server.handle_signals();
  const std::string addr = "http://" + args.host + ":" + std::to_string(server.port());
  SGL_LOG(kInfo, "listening on " + addr + " (GET /health answers 503 until the model is loaded)");
  SGL_LOG(kInfo, "loading " + args.model_path);

  auto engine = load_with_progress(args, *opts);
  if (!engine.is_ok()) {
    SGL_LOG(kError, "cannot load the model: " + engine.status().message());
    return 1;
  }
  const sgl::runtime::Engine& e = **engine;
  const auto& c = e.model().config;
  const auto& tok = e.model().tok();
  const double kv_elem = opts->kv_dtype == sgl::backend::KvDtype::kF32 ? 4.0 : 2.0;
  const double kv_bytes = static_cast<double>(e.max_total_tokens()) * c.n_layer * 2.0 *
                          c.n_head_kv * c.head_dim * kv_elem;
  SGL_LOG(kInfo, "model: " + args.model_path + " (" +
                     sgl::models::model_format_name(e.model().format) + "), architecture " +
                     c.arch + ", " + human(param_count(c)) + " parameters, " +
                     std::to_string(c.n_layer) + " layers, hidden " + std::to_string(c.n_embd) +
                     ", heads " + std::to_string(c.n_head) + "/" + std::to_string(c.n_head_kv));
  SGL_LOG(kInfo, "tokenizer: " + std::string(tok.kind()) + ", vocab " +
                     std::to_string(tok.vocab_size()) + ", chat template " +
                     (args.chat_template.empty() ? (tok.chat_template() ? "from the model" : "none")
                                                 : args.chat_template));
  const int32_t ctx = args.context_length > 0 ? std::min(args.context_length, e.context_length())
                                              : e.context_length();
  SGL_LOG(kInfo, "context " + std::to_string(ctx) + " tokens; KV pool " +
                     std::to_string(e.max_total_tokens()) + " tokens (" + mib(kv_bytes) + ", " +
                     std::string(sgl::backend::kv_dtype_name(opts->kv_dtype)) + ")");
  SGL_LOG(kInfo, "scheduler: policy " + args.schedule_policy + ", max running requests " +
                     std::to_string(args.max_running_requests) + ", chunked prefill " +
                     std::to_string(args.chunked_prefill_size) + ", radix cache " +
                     (args.disable_radix_cache ? "off" : "on") + ", threads " +
                     (args.threads > 0 ? std::to_string(args.threads) : std::string("auto")) +
                     ", random seed " + std::to_string(args.random_seed) +
                     (args.disable_jump_forward ? ", jump-forward off" : ""));
  SGL_LOG(kInfo, "limits: queued sequences " +
                     (args.max_queued_requests > 0 ? std::to_string(args.max_queued_requests)
                                                   : std::string("unbounded")) +
                     ", connections " + std::to_string(args.max_connections) + ", body " +
                     std::to_string(args.max_body_bytes) + " bytes, n " +
                     std::to_string(args.max_n) + ", max_new_tokens " +
                     (args.max_new_tokens_limit > 0 ? std::to_string(args.max_new_tokens_limit)
                                                    : std::string("context")) +
                     "; timeouts: header " + secs(args.header_timeout_s) + ", body " +
                     secs(args.body_timeout_s) + ", keep-alive " + secs(args.keep_alive_timeout_s));
  if (sgl::Status s = server.set_engine(std::move(*engine)); !s.is_ok()) {
    SGL_LOG(kError, s.message());
    return 1;
  }
  SGL_LOG(kInfo, "ready: serving " + args.model_name() + " at " + addr +
                     (args.api_key.empty() ? "" : " (API key required)"));
  server.wait();
  SGL_LOG(kInfo, "stopped");
  return 0;
}
