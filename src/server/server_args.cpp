#include "server/server_args.h"

#include <cerrno>
#include <cstdlib>
#include <functional>
#include <map>

#include "server/protocol.h"

namespace sgl::server {

namespace {

struct Flag {
  const char* name;
  const char* meta;  // nullptr = boolean switch
  const char* help;
  std::function<Status(ServerArgs&, const std::string&)> set;
};

Status parse_i64(const std::string& flag, const std::string& v, int64_t lo, int64_t hi,
                 int64_t* out) {
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0)
    return invalid_argument(flag + ": expected an integer, got " + quote_for_message(v));
  if (x < lo || x > hi)
    return invalid_argument(flag + ": " + v + " is out of range [" + std::to_string(lo) + ", " +
                            std::to_string(hi) + "]");
  *out = x;
  return Status::ok();
}

template <typename T>
std::function<Status(ServerArgs&, const std::string&)> int_flag(const char* flag, T ServerArgs::*m,
                                                                int64_t lo, int64_t hi) {
  return [=](ServerArgs& a, const std::string& v) {
    int64_t x = 0;
    SGL_RETURN_IF_ERROR(parse_i64(flag, v, lo, hi, &x));
    a.*m = static_cast<T>(x);
    return Status::ok();
  };
}

std::function<Status(ServerArgs&, const std::string&)> str_flag(std::string ServerArgs::*m) {
  return [=](ServerArgs& a, const std::string& v) {
    a.*m = v;
    return Status::ok();
  };
}

std::function<Status(ServerArgs&, const std::string&)> bool_flag(bool ServerArgs::*m) {
  return [=](ServerArgs& a, const std::string&) {
    a.*m = true;
    return Status::ok();
  };
}

// A duration in seconds (fractions allowed) in (0, 86400].
std::function<Status(ServerArgs&, const std::string&)> seconds_flag(const char* flag,
                                                                    double ServerArgs::*m) {
  return [=](ServerArgs& a, const std::string& v) {
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !(x > 0.0 && x <= 86400.0))
      return invalid_argument(std::string(flag) + ": expected seconds in (0, 86400], got " +
                              quote_for_message(v));
    a.*m = x;
    return Status::ok();
  };
}

const std::vector<Flag>& flags() {
  static const std::vector<Flag> f = {
      {"--model-path", "PATH",
       "Model to serve: a GGUF file or a Hugging Face directory (required).",
       str_flag(&ServerArgs::model_path)},
      {"--host", "ADDR", "Address to listen on (default 127.0.0.1).", str_flag(&ServerArgs::host)},
      {"--port", "N", "TCP port (default 30000).", int_flag("--port", &ServerArgs::port, 0, 65535)},
      {"--api-key", "KEY",
       "Require 'Authorization: Bearer KEY' on every route except /health (401 otherwise).",
       str_flag(&ServerArgs::api_key)},
      {"--served-model-name", "NAME",
       "Model id reported by /v1/models and accepted in OpenAI requests (default: the model path).",
       str_flag(&ServerArgs::served_model_name)},
      {"--context-length", "N",
       "Maximum prompt + generated tokens per request (default and upper bound: the model's "
       "trained context).",
       int_flag("--context-length", &ServerArgs::context_length, 1, 1 << 24)},
      {"--max-running-requests", "N", "Requests decoded together at most (default 64).",
       int_flag("--max-running-requests", &ServerArgs::max_running_requests, 1, 1 << 20)},
      {"--max-total-tokens", "N",
       "KV cache pool size in tokens, shared by all requests and the prefix cache (default: the "
       "model's context length, at most 65536).",
       int_flag("--max-total-tokens", &ServerArgs::max_total_tokens, 1, int64_t(1) << 32)},
      {"--chunked-prefill-size", "N",
       "Prompt tokens computed per scheduler step, over all requests; long prompts are split into "
       "chunks of this size (default 512).",
       int_flag("--chunked-prefill-size", &ServerArgs::chunked_prefill_size, 1, 1 << 24)},
      {"--max-prefill-tokens", "N",
       "Prompt tokens newly admitted per step at most (default 16384).",
       int_flag("--max-prefill-tokens", &ServerArgs::max_prefill_tokens, 1, 1 << 24)},
      {"--schedule-policy", "NAME",
       "Order of admission from the waiting queue: fcfs (arrival), lpm (longest cached prefix), "
       "dfs-weight, lof (longest output first), random (default fcfs).",
       str_flag(&ServerArgs::schedule_policy)},
      {"--schedule-conservativeness", "X",
       "Share of max_new_tokens reserved when admitting, in [0, 1] (default 1; lower admits more "
       "and relies on retraction).",
       [](ServerArgs& a, const std::string& v) {
         char* end = nullptr;
         const double x = std::strtod(v.c_str(), &end);
         if (v.empty() || *end != '\0' || !(x >= 0.0 && x <= 1.0))
           return invalid_argument(
               "--schedule-conservativeness: expected a number in [0, 1], got " +
               quote_for_message(v));
         a.schedule_conservativeness = x;
         return Status::ok();
       }},
      {"--disable-radix-cache", nullptr,
       "Turn off prefix reuse (RadixAttention); every prompt is computed in full.",
       bool_flag(&ServerArgs::disable_radix_cache)},
      {"--disable-overlap-schedule", nullptr,
       "Turn off the overlap schedule (on by default where the backend launches asynchronously, "
       "i.e. CUDA): the scheduler then waits for every step's tokens before it prepares the next.",
       bool_flag(&ServerArgs::disable_overlap_schedule)},
      {"--stream-interval", "N",
       "Tokens between streamed events (default 1: every token; larger values send fewer, bigger "
       "chunks).",
       int_flag("--stream-interval", &ServerArgs::stream_interval, 1, 1 << 20)},
      {"--chat-template", "FILE",
       "Jinja chat template file for /v1/chat/completions (default: the model's own template).",
       str_flag(&ServerArgs::chat_template)},
      {"--enable-metrics", nullptr, "Serve Prometheus metrics at GET /metrics.",
       bool_flag(&ServerArgs::enable_metrics)},
      {"--log-requests", nullptr,
       "Log every generation request: id, prompt / cached / generated tokens, timings.",
       bool_flag(&ServerArgs::log_requests)},
      {"--log-level", "LEVEL", "debug, info, warning or error (default info).",
       str_flag(&ServerArgs::log_level)},
      {"--threads", "N", "CPU threads for the forward pass (default: physical cores).",
       int_flag("--threads", &ServerArgs::threads, 0, 4096)},
      {"--kv-cache-dtype", "TYPE",
       "KV cache element type: auto (f16), f16, bf16, f32, fp8_e4m3, fp8_e5m2 (fp8: --device "
       "cuda).",
       str_flag(&ServerArgs::kv_cache_dtype)},
      {"--dtype", "TYPE",
       "Weight type on the GPU (--device cuda): auto (float16 for a checkpoint whose weight "
       "matrices are all f16, else bfloat16), bfloat16, half or float16 (keeps f16 checkpoints "
       "exact; every weight must be within +-65504). float/float32 is refused; the CPU backend "
       "takes only auto.",
       str_flag(&ServerArgs::dtype)},
      {"--random-seed", "N",
       "Seed for requests without their own seed and for the random policy (default: drawn at "
       "startup and logged).",
       int_flag("--random-seed", &ServerArgs::random_seed, 0, INT64_MAX)},
      {"--http-threads", "N", "Threads serving HTTP connections (default 2; all I/O is async).",
       int_flag("--http-threads", &ServerArgs::http_threads, 1, 64)},
      {"--device", "NAME",
       "Compute backend: cpu (default), or cuda / cuda:N in builds configured with "
       "-DSGL_CUDA=ON.",
       str_flag(&ServerArgs::device)},
      {"--mem-fraction-static", "X",
       "cuda: share of free GPU memory for the weights and the KV pool, in (0, 1] (default "
       "0.85).",
       [](ServerArgs& a, const std::string& v) {
         char* end = nullptr;
         const double x = std::strtod(v.c_str(), &end);
         if (v.empty() || *end != '\0' || !(x > 0.0 && x <= 1.0))
           return invalid_argument("--mem-fraction-static: expected a number in (0, 1], got " +
                                   quote_for_message(v));
         a.mem_fraction_static = x;
         return Status::ok();
       }},
      {"--tp-size", "N",
       "cuda: tensor parallelism over N GPUs of this host (GPUs device..device+N-1, through "
       "NCCL, which is loaded at run time: libnccl.so.2 or $SGL_NCCL_LIBRARY); N must divide the "
       "model's attention heads, KV heads and MLP width (default 1).",
       int_flag("--tp-size", &ServerArgs::tp_size, 1, 64)},
      {"--load-format", "FORMAT",
       "auto (default: --model-path is a GGUF file or Hugging Face directory) or dummy "
       "(--model-path is a Hugging Face config.json; random weights of its shape, --device cuda "
       "only, with the tokenizer from --tokenizer-path: for benchmarks).",
       [](ServerArgs& a, const std::string& v) {
         if (v != "auto" && v != "dummy")
           return invalid_argument("--load-format: expected auto or dummy, got " +
                                   quote_for_message(v));
         a.load_format = v;
         return Status::ok();
       }},
      {"--tokenizer-path", "PATH",
       "With --load-format dummy: the tokenizer (a GGUF file or a Hugging Face directory).",
       str_flag(&ServerArgs::tokenizer_path)},
      {"--disable-jump-forward", nullptr,
       "Constrained decoding samples every token instead of appending grammar-forced text in one "
       "step.",
       bool_flag(&ServerArgs::disable_jump_forward)},
      {"--max-queued-requests", "N",
       "Generation sequences accepted and not yet finished (waiting + running, one per choice); "
       "requests beyond get 503 with Retry-After (default 1024; 0 = unbounded).",
       int_flag("--max-queued-requests", &ServerArgs::max_queued_requests, 0, 1 << 24)},
      {"--max-connections", "N",
       "Open client connections at most; more are answered 503 and closed (default 2048).",
       int_flag("--max-connections", &ServerArgs::max_connections, 1, 1 << 20)},
      {"--max-body-bytes", "N", "Largest request body in bytes; larger gets 413 (default 32 MiB).",
       int_flag("--max-body-bytes", &ServerArgs::max_body_bytes, 1024, int64_t(1) << 32)},
      {"--max-n", "N",
       "Most sequences one request may ask for, prompts x n (default and upper bound 1024).",
       int_flag("--max-n", &ServerArgs::max_n, 1, kMaxChoicesPerRequest)},
      {"--max-new-tokens-limit", "N",
       "Largest max_new_tokens / max_tokens a request may ask for, defaults included (default: "
       "the context length).",
       int_flag("--max-new-tokens-limit", &ServerArgs::max_new_tokens_limit, 1, 1 << 24)},
      {"--header-timeout", "S",
       "Seconds a client has from the first byte of a request to the end of its headers "
       "(default 10); slower connections are closed.",
       seconds_flag("--header-timeout", &ServerArgs::header_timeout_s)},
      {"--body-timeout", "S",
       "Seconds a client has to send a request body after its headers (default 60).",
       seconds_flag("--body-timeout", &ServerArgs::body_timeout_s)},
      {"--keep-alive-timeout", "S",
       "Seconds an idle keep-alive connection is kept open for the next request (default 30).",
       seconds_flag("--keep-alive-timeout", &ServerArgs::keep_alive_timeout_s)},
  };
  return f;
}

}  // namespace

std::string server_args_help() {
  std::string s =
      "sgl-server: an SGLang-compatible HTTP server (native /generate API and OpenAI-compatible "
      "/v1 API).\n\nusage: sgl-server --model-path MODEL [options]\n\noptions:\n";
  for (const Flag& f : flags()) {
    std::string head = std::string("  ") + f.name + (f.meta ? std::string(" ") + f.meta : "");
    if (head.size() < 32)
      head.resize(32, ' ');
    else
      head += "\n" + std::string(32, ' ');
    s += head + f.help + "\n";
  }
  std::string head = "  -h, --help";
  head.resize(32, ' ');
  s += head + "Show this help.\n";
  return s;
}

Result<ServerArgs> parse_server_args(const std::vector<std::string>& args, bool* help) {
  ServerArgs a;
  *help = false;
  std::map<std::string, const Flag*> by_name;
  for (const Flag& f : flags()) by_name[f.name] = &f;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg == "-h" || arg == "--help") {
      *help = true;
      return a;
    }
    std::string value;
    bool has_value = false;
    if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    auto it = by_name.find(arg);
    if (it == by_name.end())
      return invalid_argument("unknown option " + quote_for_message(arg) + " (see --help)");
    const Flag& f = *it->second;
    if (f.meta) {
      if (!has_value) {
        if (i + 1 >= args.size()) return invalid_argument(arg + " needs a value (" + f.meta + ")");
        value = args[++i];
      }
    } else if (has_value) {
      return invalid_argument(arg + " takes no value");
    }
    SGL_RETURN_IF_ERROR(f.set(a, value));
  }
  if (a.model_path.empty()) return invalid_argument("--model-path is required (see --help)");
  if (auto p = runtime::parse_schedule_policy(a.schedule_policy); !p.is_ok()) return p.status();
  if (a.kv_cache_dtype != "auto" && !backend::parse_kv_dtype(a.kv_cache_dtype).is_ok())
    return invalid_argument(
        "--kv-cache-dtype: expected auto, f16, bf16, f32, fp8_e4m3 or fp8_e5m2, got " +
        quote_for_message(a.kv_cache_dtype));
  if (auto d = backend::parse_weight_dtype(a.dtype); !d.is_ok())
    return invalid_argument(
        "--dtype: expected auto, half, float16, bfloat16, float or float32, "
        "got " +
        quote_for_message(a.dtype));
  if (a.log_level != "debug" && a.log_level != "info" && a.log_level != "warning" &&
      a.log_level != "error")
    return invalid_argument("--log-level: expected debug, info, warning or error");
  return a;
}

Result<runtime::EngineOptions> engine_options(const ServerArgs& a) {
  runtime::EngineOptions o;
  o.threads = a.threads;
  if (a.kv_cache_dtype != "auto") {
    SGL_ASSIGN_OR_RETURN(o.kv_dtype, backend::parse_kv_dtype(a.kv_cache_dtype));
  }
  SGL_ASSIGN_OR_RETURN(o.dtype, backend::parse_weight_dtype(a.dtype));
  o.max_total_tokens = a.max_total_tokens;
  o.chunked_prefill_size = a.chunked_prefill_size;
  o.max_prefill_tokens = a.max_prefill_tokens;
  o.max_running_requests = a.max_running_requests;
  o.disable_radix_cache = a.disable_radix_cache;
  o.disable_overlap_schedule = a.disable_overlap_schedule;
  SGL_ASSIGN_OR_RETURN(o.schedule_policy, runtime::parse_schedule_policy(a.schedule_policy));
  o.schedule_conservativeness = a.schedule_conservativeness;
  o.random_seed = a.random_seed < 0 ? 0 : static_cast<uint64_t>(a.random_seed);
  o.disable_jump_forward = a.disable_jump_forward;
  o.device = a.device;
  o.mem_fraction_static = a.mem_fraction_static;
  o.tp_size = a.tp_size;
  o.load_format = a.load_format;
  o.tokenizer_path = a.tokenizer_path;
  return o;
}

Json server_args_json(const ServerArgs& a) {
  Json j = Json::object();
  j["model_path"] = a.model_path;
  j["tokenizer_path"] = a.tokenizer_path.empty() ? a.model_path : a.tokenizer_path;
  j["host"] = a.host;
  j["port"] = a.port;
  j["served_model_name"] = a.model_name();
  j["api_key"] = a.api_key.empty() ? Json(nullptr) : Json("<set>");
  j["context_length"] = a.context_length > 0 ? Json(a.context_length) : Json(nullptr);
  j["max_running_requests"] = a.max_running_requests;
  j["max_total_tokens"] = a.max_total_tokens > 0 ? Json(a.max_total_tokens) : Json(nullptr);
  j["chunked_prefill_size"] = a.chunked_prefill_size;
  j["max_prefill_tokens"] = a.max_prefill_tokens;
  j["schedule_policy"] = a.schedule_policy;
  j["schedule_conservativeness"] = a.schedule_conservativeness;
  j["disable_radix_cache"] = a.disable_radix_cache;
  j["disable_overlap_schedule"] = a.disable_overlap_schedule;
  j["stream_interval"] = a.stream_interval;
  j["chat_template"] = a.chat_template.empty() ? Json(nullptr) : Json(a.chat_template);
  j["enable_metrics"] = a.enable_metrics;
  j["log_requests"] = a.log_requests;
  j["log_level"] = a.log_level;
  j["threads"] = a.threads;
  j["kv_cache_dtype"] = a.kv_cache_dtype;
  j["dtype"] = a.dtype;
  j["random_seed"] = a.random_seed;
  j["disable_jump_forward"] = a.disable_jump_forward;
  j["max_queued_requests"] =
      a.max_queued_requests > 0 ? Json(a.max_queued_requests) : Json(nullptr);
  j["max_connections"] = a.max_connections;
  j["max_body_bytes"] = a.max_body_bytes;
  j["max_n"] = a.max_n;
  j["max_new_tokens_limit"] =
      a.max_new_tokens_limit > 0 ? Json(a.max_new_tokens_limit) : Json(nullptr);
  j["header_timeout"] = a.header_timeout_s;
  j["body_timeout"] = a.body_timeout_s;
  j["keep_alive_timeout"] = a.keep_alive_timeout_s;
  j["device"] = a.device;
  j["mem_fraction_static"] = a.mem_fraction_static;
  j["tp_size"] = a.tp_size;
  j["load_format"] = a.load_format;
  return j;
}

}  // namespace sgl::server
