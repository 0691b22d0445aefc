// Shared command line for the example programs: --endpoint URL (a running server's native API,
// default http://127.0.0.1:30000) or --model PATH (an in-process engine), plus the batch size.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "sgl/engine.h"
#include "sgl/lang.h"

namespace example {

struct Args {
  std::string endpoint = "http://127.0.0.1:30000";
  std::string model;  // set: run in-process
  std::string api_key;
  int batch = 4;    // programs per run_batch
  int threads = 0;  // run_batch threads (0 = all at once)
  bool no_prefix_hints = false;
  bool disable_radix_cache = false;  // in-process only
};

inline void usage(const char* prog, const char* what) {
  std::fprintf(stderr,
               "%s: %s\n\n"
               "usage: %s [--endpoint URL | --model PATH] [--api-key KEY] [--batch N]\n"
               "          [--threads N] [--no-prefix-hints] [--disable-radix-cache]\n"
               "  --endpoint URL          a running sgl-server (default http://127.0.0.1:30000)\n"
               "  --model PATH            run an in-process engine on this model instead\n"
               "  --batch N               programs to run as one batch (default 4)\n"
               "  --no-prefix-hints       do not pre-cache the programs' shared prefix\n"
               "  --disable-radix-cache   in-process engine without prefix reuse\n",
               prog, what, prog);
}

inline Args parse(int argc, char** argv, const char* what) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--endpoint")
      a.endpoint = val();
    else if (k == "--model")
      a.model = val();
    else if (k == "--api-key")
      a.api_key = val();
    else if (k == "--batch")
      a.batch = std::atoi(val().c_str());
    else if (k == "--threads")
      a.threads = std::atoi(val().c_str());
    else if (k == "--no-prefix-hints")
      a.no_prefix_hints = true;
    else if (k == "--disable-radix-cache")
      a.disable_radix_cache = true;
    else if (k == "-h" || k == "--help") {
      usage(argv[0], what);
      std::exit(0);
    } else {
      std::fprintf(stderr, "unknown argument %s\n", k.c_str());
      usage(argv[0], what);
      std::exit(2);
    }
  }
  if (a.batch < 1) a.batch = 1;
  return a;
}

// Owns the engine when running in-process.
struct Runtime {
  std::unique_ptr<sgl::runtime::Engine> engine;
  std::unique_ptr<sgl::lang::Backend> backend;
};

inline Runtime connect(const Args& a) {
  Runtime rt;
  if (!a.model.empty()) {
    sgl::runtime::EngineOptions o;
    o.disable_radix_cache = a.disable_radix_cache;
    o.max_total_tokens = 32768;
    auto e = sgl::runtime::Engine::create(a.model, o);
    if (!e.is_ok()) {
      std::fprintf(stderr, "error: %s\n", e.status().to_string().c_str());
      std::exit(1);
    }
    rt.engine = std::move(e).value();
    rt.backend = sgl::lang::make_engine_backend(*rt.engine);
  } else {
    auto b = sgl::lang::make_http_backend(a.endpoint, a.api_key);
    if (!b.is_ok()) {
      std::fprintf(stderr, "error: %s\n", b.status().to_string().c_str());
      std::exit(1);
    }
    rt.backend = std::move(b).value();
  }
  return rt;
}

inline sgl::lang::BatchOptions batch_options(const Args& a) {
  sgl::lang::BatchOptions o;
  o.num_threads = a.threads;
  o.precache_prefix = !a.no_prefix_hints;
  o.run.defaults.temperature = 0.0f;
  return o;
}

// Prints failures; returns the number of failed programs.
inline int report_errors(std::vector<sgl::lang::ProgramState>& states) {
  int failed = 0;
  for (size_t i = 0; i < states.size(); ++i) {
    sgl::Status s = states[i].status();
    if (!s.is_ok()) {
      ++failed;
      std::fprintf(stderr, "program %zu failed: %s\n", i, s.to_string().c_str());
    }
  }
  return failed;
}

inline void print_stats(sgl::lang::Backend& b, double seconds, size_t programs) {
  sgl::lang::CacheStats c = b.cache_stats();
  std::printf(
      "\n%zu programs in %.2f s (%.2f programs/s); prompt tokens %lld, cached %lld "
      "(cache hit rate %.1f%%)\n",
      programs, seconds, seconds > 0 ? programs / seconds : 0.0,
      static_cast<long long>(c.prompt_tokens), static_cast<long long>(c.cached_tokens),
      100.0 * c.hit_rate());
}

// Runs the programs as one batch, shows each result (show(index, state)), then prints the
// statistics. Returns the process exit code.
template <class Show>
int run_and_report(const Args& a, Runtime& rt, const std::vector<sgl::lang::Program>& programs,
                   Show show) {
  const auto t0 = std::chrono::steady_clock::now();
  auto states = sgl::lang::run_batch(*rt.backend, programs, batch_options(a));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int failed = report_errors(states);
  for (size_t i = 0; i < states.size(); ++i) show(i, states[i]);
  print_stats(*rt.backend, secs, programs.size());
  return failed ? 1 : 0;
}

}  // namespace example
