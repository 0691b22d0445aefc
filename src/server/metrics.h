// The server's Prometheus metrics (GET /metrics with --enable-metrics): counters and histograms
// the HTTP layer records per request, plus gauges read from the engine's stats at scrape time.
// Names follow SGLang's (`sglang:` prefix, a model_name label). Text exposition format 0.0.4,
// written by hand (no client library). Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "sgl/engine.h"

namespace sgl::server {

// A cumulative histogram with fixed upper bounds (the +Inf bucket is implicit).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v, int64_t times = 1);
  // Appends "# HELP", "# TYPE", the _bucket lines (cumulative, with le), _sum and _count.
  // `labels` is the label list without braces ("" for none).
  void render(std::string& out, std::string_view name, std::string_view help,
              std::string_view labels) const;
  int64_t count() const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<int64_t> counts_;  // guarded by mu_; one per bound plus +Inf
  double sum_ = 0;               // guarded by mu_
  int64_t total_ = 0;            // guarded by mu_
};

// Escapes a label value (backslash, quote, newline).
std::string escape_label_value(std::string_view v);
// Formats a sample value as Prometheus expects ("+Inf", "NaN", shortest round-trip otherwise).
std::string format_metric_value(double v);

// What the HTTP layer knows at scrape time (the engine's stats are passed separately).
struct ServerGauges {
  int64_t queued_sequences = 0;      // admitted and unfinished (--max-queued-requests)
  int64_t rejected_overload = 0;     // requests refused with 503 because of that limit
  int64_t open_connections = 0;      // client connections counted by --max-connections
  int64_t rejected_connections = 0;  // connections refused because of that limit
};

class ServerMetrics {
 public:
  explicit ServerMetrics(std::string model_name);

  // One finished engine request (one choice).
  void on_finished(int prompt_tokens, int completion_tokens, int cached_tokens, double e2e_s,
                   bool aborted);
  void on_first_token(double ttft_s);
  // `tokens` tokens arrived `interval_s` after the previous ones: each counts interval/tokens.
  void on_tokens(double interval_s, int tokens);
  void on_http_request(int status);

  // The whole exposition, with gauges from `s`.
  std::string render(const runtime::EngineStats& s, const ServerGauges& g = {}) const;

 private:
  std::string labels_;  // model_name="..."
  std::atomic<int64_t> requests_{0}, aborted_{0}, prompt_tokens_{0}, generation_tokens_{0},
      cached_tokens_{0}, http_2xx_{0}, http_4xx_{0}, http_5xx_{0};
  Histogram ttft_, itl_, e2e_;
};

}  // namespace sgl::server
