// sgl-server's command line: SGLang's flag names (--model-path, --port, --api-key, ...) parsed
// into ServerArgs, the --help text, and the JSON form that GET /get_server_info reports.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "server/api_error.h"
#include "sgl/engine.h"
#include "support/status.h"

namespace sgl::server {

struct ServerArgs {
  std::string model_path;
  std::string host = "127.0.0.1";
  int port = 30000;
  std::string api_key;            // "" = no authentication
  std::string served_model_name;  // "" = model_path
  int32_t context_length = 0;     // 0 = the model's; else at most the model's
  int32_t max_running_requests = 64;
  int64_t max_total_tokens = 0;  // KV pool tokens; 0 = engine default
  int32_t chunked_prefill_size = 512;
  int32_t max_prefill_tokens = 16384;
  std::string schedule_policy = "fcfs";
  double schedule_conservativeness = 1.0;
  bool disable_radix_cache = false;
  bool disable_overlap_schedule = false;
  int32_t stream_interval = 1;
  std::string chat_template;  // a Jinja file; "" = the model's template
  bool enable_metrics = false;
  bool log_requests = false;
  std::string log_level = "info";
  int threads = 0;  // backend threads; 0 = physical cores
  std::string kv_cache_dtype = "auto";
  std::string dtype = "auto";  // weights: auto, half / float16, bfloat16 (cuda); float refused
  std::string device = "cpu";         // "cpu", "cuda" or "cuda:N" (CUDA builds only)
  double mem_fraction_static = 0.85;  // cuda: share of free GPU memory for weights + KV pool
  int32_t tp_size = 1;                // cuda: tensor parallelism over this many GPUs (NCCL)
  std::string load_format = "auto";   // or "dummy": model_path is a config.json (cuda)
  std::string tokenizer_path;         // dummy: GGUF file or Hugging Face directory
  int64_t random_seed = -1;  // -1 = pick one at startup (as SGLang)
  int http_threads = 2;      // io threads serving connections
  bool disable_jump_forward = false;
  // Resource limits (docs/security.md).
  int64_t max_body_bytes = 32 << 20;  // request body bytes
  int32_t max_n = 1024;               // sequences per request (prompts x n), <= 1024
  int32_t max_new_tokens_limit = 0;   // per request; 0 = the context length
  // Generation sequences accepted and not yet finished or aborted (waiting + running, counted
  // per choice); more are refused with 503 + Retry-After. 0 = unbounded.
  int32_t max_queued_requests = 1024;
  int32_t max_connections = 2048;    // open client connections; more get 503 and are closed
  double header_timeout_s = 10;      // first request byte .. end of headers
  double body_timeout_s = 60;        // end of headers .. end of body
  double keep_alive_timeout_s = 30;  // idle keep-alive connection before the next request

  const std::string& model_name() const {
    return served_model_name.empty() ? model_path : served_model_name;
  }
};

// Parses argv[1..]. Sets *help and returns defaults when --help / -h is given. Errors name the
// flag.
Result<ServerArgs> parse_server_args(const std::vector<std::string>& args, bool* help);
std::string server_args_help();
// The engine options these arguments ask for (after random_seed was resolved).
Result<runtime::EngineOptions> engine_options(const ServerArgs& a);
Json server_args_json(const ServerArgs& a);

}  // namespace sgl::server
