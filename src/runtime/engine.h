// Engine: the runtime's front door. submit() validates a tokenized request and hands it to the
// scheduler thread, which owns all runtime state (KV pool, radix cache, running/waiting queues)
// and runs continuous batching: every step builds ONE ForwardBatch mixing prefill chunks
// (at most chunked_prefill_size prompt tokens per step) and one decode token per running request,
// samples, checks stops and streams events to each request's RequestHandle.
//
// RadixAttention reuse: admission matches the prompt (minus its last token, which is always
// recomputed: cached_tokens <= prompt_len - 1, SGLang's rule) against the radix cache and locks the
// matched path; a finished request inserts every token whose K/V was computed (prompt + output
// except the last sampled token) and unlocks. Under memory pressure unlocked LRU leaves are
// evicted; when a decode step still finds no slot the youngest running request is aborted with a
// clear message (retraction/requeue comes next).
//
// Not supported yet (submit() rejects them clearly): n > 1, regex / json_schema / ebnf,
// return_logprob.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "runtime/request.h"
#include "support/status.h"

namespace sgl::models {
struct LoadedModel;
}
namespace sgl::backend {
class CpuBackend;
}

namespace sgl::runtime {

class KvPool;
class RadixCache;

struct GenerateRequest {
  std::string rid;
  std::vector<int32_t> input_ids;  // already tokenized by the caller
  GenerateParams params;
};

// One event of a request's stream. kToken: one sampled token and the text it released (may be
// empty while a possible stop string is held back). kFinish: the last event; text_delta holds any
// text flushed at the end. The counts are current as of the event.
struct RequestEvent {
  enum Kind { kToken, kFinish };
  Kind kind = kToken;
  int32_t token = -1;
  std::string text_delta;
  FinishReason finish;  // kFinish only
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;
};

struct GenerateOutput {
  std::string text;  // concatenation of every event's text_delta
  std::vector<int32_t> output_ids;
  FinishReason finish_reason;
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;
};

namespace detail {
struct Inbox;
}

// Shared between the caller and the scheduler. Thread-safe.
class RequestHandle {
 public:
  RequestHandle(std::string rid, std::shared_ptr<detail::Inbox> inbox);

  const std::string& rid() const { return rid_; }
  // Blocks until the next event. Returns false once the finish event has been consumed.
  bool next(RequestEvent* ev);
  // Asks the scheduler to abort the request (any thread; idempotent). The request still ends
  // with a finish event {"type": "abort"} unless it had already finished.
  void abort();
  bool abort_requested() const { return abort_.load(std::memory_order_acquire); }
  // Consumes all remaining events and returns the collected output.
  Result<GenerateOutput> wait();

  // Scheduler side.
  void push(RequestEvent ev);

 private:
  std::string rid_;
  std::shared_ptr<detail::Inbox> inbox_;
  std::atomic<bool> abort_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RequestEvent> events_;  // guarded by mu_
  bool finish_pushed_ = false;       // guarded by mu_
  bool finish_consumed_ = false;     // guarded by mu_
};

struct EngineOptions {
  int threads = 0;  // backend threads; 0 = physical cores
  backend::KvDtype kv_dtype = backend::KvDtype::kF16;
  int64_t max_total_tokens = 0;  // KV pool size in tokens; 0 = backend default
  int32_t chunked_prefill_size = 512;
  int32_t max_running_requests = 64;
  bool disable_radix_cache = false;
};

struct EngineStats {
  int running = 0;
  int waiting = 0;
  int64_t kv_used = 0;
  int64_t kv_capacity = 0;
  int64_t cache_size = 0;         // tokens held by the radix cache
  int64_t cache_hit_tokens = 0;   // sum of cached_tokens over admitted requests
  int64_t prompt_tokens = 0;      // sum of prompt lengths over admitted requests
  int64_t evicted_tokens = 0;
  int64_t aborted_for_memory = 0;
  int64_t steps = 0;
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> create(std::string model_path, EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Validates and queues the request. Errors (kInvalidArgument / kUnsupported) queue nothing.
  Result<std::shared_ptr<RequestHandle>> submit(GenerateRequest req);
  // Clears the radix cache. Error while requests are waiting or running.
  Status flush_cache();
  EngineStats stats() const;
  // Aborts every request and joins the scheduler thread. Idempotent; the destructor calls it.
  void shutdown();

  const models::LoadedModel& model() const { return *model_; }
  int64_t max_total_tokens() const { return kv_capacity_; }

  struct Req;  // scheduler-private request state

 private:
  Engine() = default;
  void scheduler_loop();
  void step();
  void admit();
  bool alloc_slots(int64_t n, std::vector<int32_t>& out);
  void release(Req& r);
  void finish(Req& r, std::string_view delta, const FinishReason& reason);
  void abort_req(Req& r, const std::string& msg);
  void sweep();
  void publish_stats();

  std::unique_ptr<models::LoadedModel> model_;
  std::unique_ptr<backend::CpuBackend> backend_;
  EngineOptions opts_;
  int32_t n_vocab_ = 0;
  int32_t context_length_ = 0;
  int64_t kv_capacity_ = 0;

  std::shared_ptr<detail::Inbox> inbox_;
  std::thread thread_;
  std::atomic<bool> shut_down_{false};

  // Scheduler-thread state.
  std::unique_ptr<KvPool> pool_;
  std::unique_ptr<RadixCache> cache_;  // null with disable_radix_cache
  std::deque<std::unique_ptr<Req>> waiting_;
  std::vector<std::unique_ptr<Req>> running_;  // admission order (oldest first)
  uint64_t admit_seq_ = 0;
  uint64_t seed_counter_ = 0;
  EngineStats counters_;

  mutable std::mutex stats_mu_;
  EngineStats stats_;  // guarded by stats_mu_; published by the scheduler
};

}  // namespace sgl::runtime
