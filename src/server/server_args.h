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
  int32_t stream_interval = 1;
  std::string chat_template;  // a Jinja file; "" = the model's template
  bool enable_metrics = false;
  bool log_requests = false;
  std::string log_level = "info";
  int threads = 0;  // backend threads; 0 = physical cores
  std::string kv_cache_dtype = "auto";
  int64_t random_seed = -1;  // -1 = pick one at startup (as SGLang)
  int http_threads = 2;      // io threads serving connections
  int64_t max_body_bytes = 32 << 20;

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
