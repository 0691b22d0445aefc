// sglang.cpp's in-process engine API: the runtime's front door.
//
// submit() validates a request (text or token ids plus SGLang's sampling and logprob options) and
// hands it to the scheduler thread, which owns all runtime state (KV pool, radix cache,
// running/waiting queues) and runs continuous batching: every step builds ONE ForwardBatch mixing
// prefill chunks (at most chunked_prefill_size prompt tokens per step, at most max_prefill_tokens
// newly admitted) and one decode token per running request, samples, checks stops and streams
// events to each request's RequestHandle.
//
// RadixAttention reuse: admission matches the prompt (minus its last token, which is always
// recomputed, and minus positions from logprob_start_len on when logprobs are asked: SGLang's
// cached_tokens rule) against the radix cache and locks the matched path. A request's prompt is
// inserted into the cache as soon as its prefill completes (so n > 1 samples and concurrent
// requests with the same prefix share it); a finished request inserts every token whose K/V was
// computed.
//
// Memory: admission reserves room for the tokens a request will still decode (SGLang's
// conservative estimate, discounted by --schedule-conservativeness); when a decode step still
// finds no free slot, unlocked cache leaves are evicted first, then the running request that loses
// least (fewest generated tokens, then the youngest) is retracted: its slots are freed (its
// computed prefix goes into the cache), and it is requeued at the front with its prompt + output so
// far, to resume exactly where it stopped. Retractions are counted in stats().
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "runtime/request.h"
#include "support/status.h"

namespace sgl::models {
struct LoadedModel;
}
namespace sgl::grammar {
class CompiledGrammar;
class GrammarCompiler;
}

namespace sgl::runtime {

class KvPool;
class RadixCache;

// A request. Give either token ids or text (tokenized with the model's tokenizer, adding BOS when
// the model asks for it; special-token text such as "<|im_start|>" is parsed as special tokens).
struct GenerateRequest {
  std::string rid;                 // the caller's id; abort(rid) finds the request by it
  std::vector<int32_t> input_ids;  // used when text is not set
  std::optional<std::string> text;
  GenerateParams params;
};

// One logprob value: SGLang's [logprob, token_id, text] triple minus the text (decode the id when
// return_text_in_logprobs asks for it). logprob is NaN where SGLang reports null (the first
// prompt position of input_token_logprobs).
struct TokenLogprob {
  float logprob = 0.0f;
  int32_t token = -1;
};

// Logprobs of one position, from the same processed logits the sampler used (after penalties and
// logit bias, before temperature: SGLang's convention).
struct PositionLogprobs {
  TokenLogprob token;              // the chosen (output) or actual (prompt) token
  std::vector<TokenLogprob> top;   // top_logprobs_num best, best first, ties by lower id
  std::vector<TokenLogprob> by_id; // token_ids_logprob, in the order asked
};

// Per-request timing, seconds since submit().
struct RequestTimings {
  double queued_s = 0;       // until first admitted to the running batch
  double first_token_s = 0;  // until the first output token (0 if none)
  double e2e_s = 0;          // until the finish event
  int32_t retractions = 0;   // times the request was retracted under memory pressure
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
  // With return_logprob: the chosen token's logprobs (kToken events).
  std::optional<PositionLogprobs> logprobs;
  // With return_logprob: prompt positions [logprob_start_len, prompt_tokens) (logprob_start_len
  // -1 means none), carried by the request's first event (its first token event, or the finish
  // event when it produces no token). The first entry's logprob is NaN (null).
  std::vector<PositionLogprobs> input_logprobs;
  RequestTimings timings;  // kFinish only
};

struct GenerateOutput {
  std::string text;  // concatenation of every event's text_delta
  std::vector<int32_t> output_ids;
  FinishReason finish_reason;
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;
  std::vector<PositionLogprobs> input_logprobs;   // with return_logprob
  std::vector<PositionLogprobs> output_logprobs;  // with return_logprob, one per output token
  RequestTimings timings;
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
  // Non-blocking next(): false when no event is ready (or the finish event was consumed).
  bool try_next(RequestEvent* ev);
  // True once the finish event has been consumed.
  bool finished() const;
  // Registers a callback run after every event pushed from now on (on the scheduler thread: keep
  // it short, e.g. post to an event loop), and once right away if events are already waiting.
  // For callers that cannot block a thread per request (the HTTP server).
  void set_listener(std::function<void()> fn);
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
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RequestEvent> events_;  // guarded by mu_
  bool finish_pushed_ = false;       // guarded by mu_
  bool finish_consumed_ = false;     // guarded by mu_
  std::function<void()> listener_;   // guarded by mu_
};

// Order in which waiting requests are admitted (SGLang's --schedule-policy).
enum class SchedulePolicy {
  kFcfs,       // arrival order
  kLpm,        // longest cached prefix first
  kDfsWeight,  // depth-first over the radix tree, heaviest subtrees first
  kLof,        // longest output (max_new_tokens) first
  kRandom,     // seeded shuffle
};
// Parses "fcfs", "lpm", "dfs-weight", "lof", "random".
Result<SchedulePolicy> parse_schedule_policy(std::string_view name);
const char* schedule_policy_name(SchedulePolicy p);

struct EngineOptions {
  int threads = 0;  // backend threads; 0 = physical cores
  backend::KvDtype kv_dtype = backend::KvDtype::kF16;
  // Weight element type on the device (SGLang's --dtype; backend::WeightDtype): cuda: auto
  // (bf16), bf16 or f16; the CPU backend takes only auto.
  backend::WeightDtype dtype = backend::WeightDtype::kAuto;
  int64_t max_total_tokens = 0;  // KV pool size in tokens; 0 = backend default
  int32_t chunked_prefill_size = 512;   // prompt tokens computed per step, over all requests
  int32_t max_prefill_tokens = 16384;   // prompt tokens newly admitted per step
  int32_t max_running_requests = 64;
  bool disable_radix_cache = false;
  SchedulePolicy schedule_policy = SchedulePolicy::kFcfs;
  // Weight of not-yet-decoded tokens in the admission memory estimate (SGLang's
  // --schedule-conservativeness): 1 reserves all of max_new_tokens; lower admits more and relies
  // on retraction. In [0, 1].
  double schedule_conservativeness = 1.0;
  // A waiting request older than this many scheduler steps is admitted before any other,
  // whatever the policy (the guard against cache-friendly traffic starving the rest).
  int32_t max_wait_steps = 256;
  uint64_t random_seed = 0;  // seeds unseeded requests' samplers and the random policy
  // Constrained decoding appends grammar-forced text in one step (the compressed FSM) unless set.
  bool disable_jump_forward = false;
  // The compute backend: "cpu", or "cuda" / "cuda:N" in builds configured with -DSGL_CUDA=ON
  // (create() fails with a clear error otherwise).
  std::string device = "cpu";
  // cuda: the share of free GPU memory for weights + KV pool (SGLang's --mem-fraction-static).
  double mem_fraction_static = 0.85;
  // cuda: tensor parallelism over this many GPUs (device, device + 1, ...) through NCCL
  // (SGLang's --tp-size); 1 = one GPU. > 1 with device "cpu" is an error.
  int32_t tp_size = 1;
  // "auto": model_path is a model (GGUF file or Hugging Face directory). "dummy" (SGLang's
  // --load-format dummy, for benchmarks of a real shape without its weights): model_path is a
  // Hugging Face config.json (or its directory), the weights are random (CUDA backend only), and
  // the tokenizer comes from tokenizer_path.
  std::string load_format = "auto";
  std::string tokenizer_path;  // a GGUF file or a Hugging Face directory; dummy only
  // The overlap schedule (SGLang's default; --disable-overlap-schedule turns it off): the
  // scheduler launches step n + 1 on the device before it collects and processes step n's
  // tokens, which then reach step n + 1 as future references resolved on the device. Used
  // where the backend's launches are asynchronous (CUDA) and samples on the device; steps that
  // need the previous tokens on the host first (logprobs, penalties, logit bias, grammars,
  // retraction, aborts, flush_cache) run synchronously. Outputs are the same either way on a
  // batch-invariant backend; a request's stop is seen one step late (one discarded row).
  bool disable_overlap_schedule = false;
  // Tests: the overlap schedule also on a backend whose launches are synchronous (the CPU
  // backend), where it gains nothing and delays every token's event by one step.
  bool overlap_sync_backend = false;
  // Tests: replaces the backend once it is created, e.g. with a wrapper that injects faults
  // (tests/unit/engine/engine_fault_test.cpp). Null: the backend is used as created.
  std::function<std::unique_ptr<backend::Backend>(std::unique_ptr<backend::Backend>)>
      wrap_backend;
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
  int64_t retractions = 0;
  int64_t aborted_for_memory = 0;  // requests that can never fit the pool
  int64_t steps = 0;
  int64_t finished = 0;            // requests ended (any reason)
  int64_t generated_tokens = 0;
  int64_t jump_forward_tokens = 0; // output tokens appended by jump-forward, not decoded
  int64_t device_sampled_tokens = 0;  // tokens sampled by the backend (no logits copied back)
  int64_t overlapped_steps = 0;    // launches enqueued while the previous one was in flight
  double forward_seconds = 0;      // time inside backend forward passes
  double step_seconds = 0;         // total scheduler step time (forward included)
  double cache_hit_rate() const {
    return prompt_tokens > 0 ? static_cast<double>(cache_hit_tokens) / prompt_tokens : 0.0;
  }
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> create(std::string model_path, EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Validates and queues the request. Errors (kInvalidArgument / kUnsupported) queue nothing.
  // REQUIRES params.n == 1 (use submit_batch for n > 1).
  Result<std::shared_ptr<RequestHandle>> submit(GenerateRequest req);
  // Validates every request first (all or nothing), then queues them in order. A request with
  // params.n = k yields k handles (rids "<rid>-0" .. "<rid>-<k-1>" when k > 1) that share one
  // prefill of the prompt. Handles come back flattened in request order.
  Result<std::vector<std::shared_ptr<RequestHandle>>> submit_batch(
      std::vector<GenerateRequest> reqs);
  // Aborts the waiting or running requests with this rid (a request submitted with n > 1 is found
  // by its base rid too). Returns how many were found. Any thread.
  int abort(std::string_view rid);
  void abort_all();
  // Clears the radix cache. Error while requests are waiting or running.
  Status flush_cache();
  EngineStats stats() const;
  // Aborts every request and joins the scheduler thread. Idempotent; the destructor calls it.
  void shutdown();

  const models::LoadedModel& model() const { return *model_; }
  const std::string& model_path() const { return model_path_; }
  const EngineOptions& options() const { return opts_; }
  // Whether the scheduler runs the overlap schedule (options and backend permitting).
  bool overlap_schedule() const { return overlap_; }
  int64_t max_total_tokens() const { return kv_capacity_; }
  int32_t context_length() const { return context_length_; }
  int32_t n_vocab() const { return n_vocab_; }

  struct Req;  // scheduler-private request state
  struct Row;     // one logits row of a step's batch
  struct Launch;  // a launched batch whose tokens are not processed yet (overlap schedule)

 private:
  Engine() = default;
  // SGLang's adaptive estimate of how much of max_new_tokens running requests will still use.
  static constexpr double kInitNewTokenRatio = 0.7;
  static constexpr double kMinNewTokenRatio = 0.1;
  static constexpr double kNewTokenRatioDecay = 0.001;

  Status check_request(const GenerateRequest& req, std::vector<int32_t>* ids,
                       std::shared_ptr<const grammar::CompiledGrammar>* compiled) const;
  void unregister(const Req& r);
  void scheduler_loop();
  void step();
  void admit();
  std::vector<Req*> admission_order();
  Req* pick_victim();
  bool alloc_slots(int64_t n, std::vector<int32_t>& out);
  void release(Req& r);
  void cache_prefix(Req& r);
  void retract(Req& r);
  void fill_event(Req& r, RequestEvent& ev);
  bool emit_token(Req& r, int32_t tok, std::optional<PositionLogprobs> lp);
  bool jump_forward(Req& r, int32_t tok, std::span<const float> lg,
                    std::vector<int32_t>& scratch_ids);
  // Device sampling (Backend::forward_sample): whether this step's logit rows allow it, and
  // one row's parameters (fills its grammar mask and draws its random number).
  template <typename Rows>
  bool samples_on_device(const Rows& rows) const;
  backend::SampleRow device_sample_row(Req& r);
  bool defer_to_share(const Req& r, int32_t limit);
  // Shared prompt tokens with a running prefill worth waiting for instead of recomputing.
  static constexpr size_t kMinSharedPrefix = 32;
  void finish(Req& r, std::string_view delta, const FinishReason& reason);
  void abort_req(Req& r, const std::string& msg);
  void sweep();
  void publish_stats();
  // Overlap schedule. overlap_safe(): whether the next batch may be built while a launch is in
  // flight (no live request needs its tokens on the host first). drain(): collects and
  // processes the launch in flight, if any. alloc_decode_slots(): phase 1 of a step; without
  // may_retract it returns false instead of retracting.
  bool overlap_safe() const;
  void drain();
  void launch_async(const backend::ForwardBatch& batch, const std::vector<Req*>& in_batch,
                    std::vector<Row> rows);
  void collect_and_process(Launch& l);
  bool alloc_decode_slots(bool may_retract);
  void after_forward(const std::vector<Req*>& in_batch);
  void process_sampled(Req& r, int32_t tok, std::span<float> lg,
                       std::vector<int32_t>& scratch_ids);

  std::string model_path_;
  std::unique_ptr<models::LoadedModel> model_;
  std::unique_ptr<backend::Backend> backend_;
  std::unique_ptr<grammar::GrammarCompiler> grammars_;  // thread-safe compile cache
  EngineOptions opts_;
  int32_t n_vocab_ = 0;
  int32_t tok_vocab_ = 0;  // tokens the tokenizer knows (<= n_vocab_); ids past it are masked
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
  uint64_t arrival_seq_ = 0;
  uint64_t seed_counter_ = 0;
  double new_token_ratio_ = kInitNewTokenRatio;
  Rng rng_;
  EngineStats counters_;
  backend::Logits logits_;  // the last forward pass's rows, reused between steps
  bool overlap_ = false;
  std::unique_ptr<Launch> inflight_;  // the launch whose tokens are not processed yet
  uint64_t launch_seq_ = 0;           // ids of async launches
  uint64_t processed_launch_ = 0;     // every launch up to this id is processed
  // Finished requests that an unprocessed launch still has rows for (their tokens dropped).
  std::vector<std::unique_ptr<Req>> retired_;

  // rid -> handles, for abort(rid); a request with n > 1 is also listed under its base rid.
  std::mutex registry_mu_;
  std::unordered_multimap<std::string, std::weak_ptr<RequestHandle>> registry_;

  mutable std::mutex stats_mu_;
  EngineStats stats_;  // guarded by stats_mu_; published by the scheduler
};

}  // namespace sgl::runtime
