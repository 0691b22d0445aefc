#include "server/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace sgl::server {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v, int64_t times) {
  if (times <= 0) return;
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  std::lock_guard<std::mutex> lk(mu_);
  counts_[i] += times;
  sum_ += v * static_cast<double>(times);
  total_ += times;
}

int64_t Histogram::count() const {
  std::lock_guard<std::mutex> lk(mu_);
  return total_;
}

std::string escape_label_value(std::string_view v) {
  std::string o;
  for (char c : v) {
    if (c == '\\')
      o += "\\\\";
    else if (c == '"')
      o += "\\\"";
    else if (c == '\n')
      o += "\\n";
    else
      o += c;
  }
  return o;
}

std::string format_metric_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

void Histogram::render(std::string& out, std::string_view name, std::string_view help,
                       std::string_view labels) const {
  std::vector<int64_t> counts;
  double sum;
  int64_t total;
  {
    std::lock_guard<std::mutex> lk(mu_);
    counts = counts_;
    sum = sum_;
    total = total_;
  }
  const std::string n(name);
  out.append("# HELP ").append(n).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(n).append(" histogram\n");
  int64_t cum = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cum += counts[i];
    const std::string le = i < bounds_.size() ? format_metric_value(bounds_[i]) : "+Inf";
    out.append(n).append("_bucket{").append(labels);
    if (!labels.empty()) out.append(",");
    out.append("le=\"").append(le).append("\"} ").append(std::to_string(cum)).append("\n");
  }
  std::string lb;
  if (!labels.empty()) lb.append("{").append(labels).append("}");
  out.append(n).append("_sum").append(lb).append(" ").append(format_metric_value(sum)).append("\n");
  out.append(n).append("_count").append(lb).append(" ").append(std::to_string(total)).append("\n");
}

ServerMetrics::ServerMetrics(std::string model_name)
    : labels_("model_name=\"" + escape_label_value(model_name) + "\""),
      ttft_({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25, 0.5,
             0.75,  1.0,   2.5,  5.0,  7.5,  10.0, 15.0, 20.0, 25.0, 30.0}),
      itl_({0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.05,
            0.075, 0.1,   0.15, 0.2,   0.3,  0.4,   0.5,  0.75,  1.0,  2.5}),
      e2e_({0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 40, 60, 80, 120, 160, 240}) {}

void ServerMetrics::on_finished(int prompt_tokens, int completion_tokens, int cached_tokens,
                                double e2e_s, bool aborted) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  if (aborted) aborted_.fetch_add(1, std::memory_order_relaxed);
  prompt_tokens_.fetch_add(prompt_tokens, std::memory_order_relaxed);
  generation_tokens_.fetch_add(completion_tokens, std::memory_order_relaxed);
  cached_tokens_.fetch_add(cached_tokens, std::memory_order_relaxed);
  e2e_.observe(e2e_s);
}

void ServerMetrics::on_first_token(double ttft_s) { ttft_.observe(ttft_s); }

void ServerMetrics::on_tokens(double interval_s, int tokens) {
  if (tokens > 0) itl_.observe(interval_s / tokens, tokens);
}

void ServerMetrics::on_http_request(int status) {
  if (status < 400)
    http_2xx_.fetch_add(1, std::memory_order_relaxed);
  else if (status < 500)
    http_4xx_.fetch_add(1, std::memory_order_relaxed);
  else
    http_5xx_.fetch_add(1, std::memory_order_relaxed);
}

std::string ServerMetrics::render(const runtime::EngineStats& s, const ServerGauges& g) const {
  std::string out;
  const std::string lb = "{" + labels_ + "}";
  auto metric = [&](const char* name, const char* type, const char* help, double v) {
    out += std::string("# HELP ") + name + " " + help + "\n";
    out += std::string("# TYPE ") + name + " " + type + "\n";
    out += std::string(name) + lb + " " + format_metric_value(v) + "\n";
  };
  auto ld = [](const std::atomic<int64_t>& a) {
    return static_cast<double>(a.load(std::memory_order_relaxed));
  };
  metric("sglang:num_requests_total", "counter", "Number of finished requests.", ld(requests_));
  metric("sglang:num_aborted_requests_total", "counter", "Number of aborted requests.",
         ld(aborted_));
  metric("sglang:prompt_tokens_total", "counter", "Number of prefill tokens processed.",
         ld(prompt_tokens_));
  metric("sglang:generation_tokens_total", "counter", "Number of generation tokens processed.",
         ld(generation_tokens_));
  metric("sglang:cached_tokens_total", "counter",
         "Number of prompt tokens served from the prefix cache.", ld(cached_tokens_));
  out += "# HELP sglang:http_responses_total HTTP responses by status class.\n";
  out += "# TYPE sglang:http_responses_total counter\n";
  out += "sglang:http_responses_total{" + labels_ + ",code=\"2xx\"} " +
         std::to_string(http_2xx_.load()) + "\n";
  out += "sglang:http_responses_total{" + labels_ + ",code=\"4xx\"} " +
         std::to_string(http_4xx_.load()) + "\n";
  out += "sglang:http_responses_total{" + labels_ + ",code=\"5xx\"} " +
         std::to_string(http_5xx_.load()) + "\n";
  metric("sglang:num_running_reqs", "gauge", "The number of running requests.", s.running);
  metric("sglang:num_queue_reqs", "gauge", "The number of requests in the waiting queue.",
         s.waiting);
  metric("sglang:num_used_tokens", "gauge", "The number of used KV cache tokens.",
         static_cast<double>(s.kv_used));
  metric("sglang:max_total_num_tokens", "gauge", "The KV pool size in tokens.",
         static_cast<double>(s.kv_capacity));
  metric("sglang:kv_cache_tokens", "gauge", "KV cache tokens held by the prefix cache.",
         static_cast<double>(s.cache_size));
  metric("sglang:kv_request_tokens", "gauge",
         "KV cache tokens held by requests outside the prefix cache (0 when idle).",
         static_cast<double>(std::max<int64_t>(0, s.kv_used - s.cache_size)));
  metric("sglang:num_admitted_sequences", "gauge",
         "Generation sequences accepted and not yet finished (bounded by --max-queued-requests).",
         static_cast<double>(g.queued_sequences));
  metric("sglang:num_overload_rejections_total", "counter",
         "Requests refused with 503 because --max-queued-requests was reached.",
         static_cast<double>(g.rejected_overload));
  metric("sglang:num_open_connections", "gauge", "Open client connections.",
         static_cast<double>(g.open_connections));
  metric("sglang:num_rejected_connections_total", "counter",
         "Connections refused because --max-connections was reached.",
         static_cast<double>(g.rejected_connections));
  metric("sglang:token_usage", "gauge", "The token usage (used / pool size).",
         s.kv_capacity > 0 ? static_cast<double>(s.kv_used) / s.kv_capacity : 0.0);
  metric("sglang:cache_hit_rate", "gauge", "The prefix cache hit rate (cached / prompt tokens).",
         s.cache_hit_rate());
  metric("sglang:num_retractions_total", "counter", "Requests retracted under KV pool pressure.",
         static_cast<double>(s.retractions));
  ttft_.render(out, "sglang:time_to_first_token_seconds",
               "Histogram of time to first token in seconds.", labels_);
  itl_.render(out, "sglang:inter_token_latency_seconds",
              "Histogram of inter-token latency in seconds.", labels_);
  e2e_.render(out, "sglang:e2e_request_latency_seconds",
              "Histogram of end-to-end request latency in seconds.", labels_);
  return out;
}

}  // namespace sgl::server
