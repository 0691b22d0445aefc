#include "runtime/engine.h"

#include <algorithm>
#include <optional>
#include <span>
#include <utility>

#include "backend/cpu_backend.h"
#include "backend/forward_batch.h"
#include "models/loader.h"
#include "runtime/kv_pool.h"
#include "runtime/radix_cache.h"
#include "runtime/sampler.h"
#include "runtime/stop_checker.h"

namespace sgl::runtime {

namespace detail {
// The scheduler's inbox: new requests, commands and wake-ups (aborts) cross threads here.
struct Inbox {
  std::mutex mu;
  std::condition_variable cv;
  struct Pending {
    GenerateRequest req;
    std::shared_ptr<RequestHandle> handle;
  };
  std::deque<Pending> reqs;                  // guarded by mu
  std::deque<std::promise<Status>> flushes;  // guarded by mu
  bool stop = false;                         // guarded by mu
  bool wake = false;                         // guarded by mu

  void notify() {
    {
      std::lock_guard<std::mutex> lk(mu);
      wake = true;
    }
    cv.notify_one();
  }
};
}  // namespace detail

// ---------------------------------------------------------------- RequestHandle

RequestHandle::RequestHandle(std::string rid, std::shared_ptr<detail::Inbox> inbox)
    : rid_(std::move(rid)), inbox_(std::move(inbox)) {}

bool RequestHandle::next(RequestEvent* ev) {
  std::unique_lock<std::mutex> lk(mu_);
  if (finish_consumed_) return false;
  cv_.wait(lk, [&] { return !events_.empty(); });
  *ev = std::move(events_.front());
  events_.pop_front();
  if (ev->kind == RequestEvent::kFinish) finish_consumed_ = true;
  return true;
}

void RequestHandle::abort() {
  if (abort_.exchange(true, std::memory_order_acq_rel)) return;
  if (inbox_) inbox_->notify();
}

Result<GenerateOutput> RequestHandle::wait() {
  GenerateOutput out;
  RequestEvent ev;
  bool finished = false;
  while (next(&ev)) {
    out.text += ev.text_delta;
    if (ev.kind == RequestEvent::kToken) out.output_ids.push_back(ev.token);
    out.prompt_tokens = ev.prompt_tokens;
    out.completion_tokens = ev.completion_tokens;
    out.cached_tokens = ev.cached_tokens;
    if (ev.kind == RequestEvent::kFinish) {
      out.finish_reason = ev.finish;
      finished = true;
    }
  }
  if (!finished) return internal_error("request " + rid_ + ": events already consumed");
  return out;
}

void RequestHandle::push(RequestEvent ev) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (finish_pushed_) return;
    if (ev.kind == RequestEvent::kFinish) finish_pushed_ = true;
    events_.push_back(std::move(ev));
  }
  cv_.notify_all();
}

// ---------------------------------------------------------------- Engine::Req

struct Engine::Req {
  std::shared_ptr<RequestHandle> handle;
  GenerateParams params;
  SamplingParams sp;
  std::optional<SamplerState> sampler;
  std::optional<StopChecker> stop;
  std::vector<int32_t> tokens;  // prompt + sampled tokens
  int32_t prompt_len = 0;
  std::vector<int32_t> slots;   // KV slots of tokens[0, slots.size())
  int32_t n_past = 0;           // tokens whose K/V are written
  int32_t cached = 0;           // prompt tokens served by the radix cache
  RadixCache::Node* last_node = nullptr;  // locked while running
  uint64_t seq = 0;             // admission order
  bool admitted = false;
  bool done = false;
  int32_t chunk = 0;            // tokens in the current forward batch

  bool prefilling() const { return n_past < prompt_len; }
};

// ---------------------------------------------------------------- Engine

Result<std::unique_ptr<Engine>> Engine::create(std::string model_path, EngineOptions options) {
  if (options.chunked_prefill_size <= 0)
    return invalid_argument("chunked_prefill_size must be positive");
  if (options.max_running_requests <= 0)
    return invalid_argument("max_running_requests must be positive");
  if (options.max_total_tokens < 0) return invalid_argument("max_total_tokens must be >= 0");
  std::unique_ptr<Engine> e(new Engine());
  e->opts_ = options;
  SGL_ASSIGN_OR_RETURN(e->model_, models::load_model(model_path));
  backend::CpuBackendOptions bo;
  bo.n_threads = options.threads;
  bo.kv_dtype = options.kv_dtype;
  bo.kv_capacity = options.max_total_tokens;
  SGL_ASSIGN_OR_RETURN(e->backend_, backend::CpuBackend::create(*e->model_, bo));
  e->n_vocab_ = static_cast<int32_t>(e->backend_->config().n_vocab);
  e->context_length_ = static_cast<int32_t>(e->backend_->config().context_length);
  e->kv_capacity_ = e->backend_->kv_capacity();
  e->pool_ = std::make_unique<KvPool>(e->kv_capacity_);
  if (!options.disable_radix_cache) {
    KvPool* pool = e->pool_.get();
    e->cache_ = std::make_unique<RadixCache>(
        [pool](std::span<const int32_t> s) { pool->free(s); });
  }
  e->inbox_ = std::make_shared<detail::Inbox>();
  e->publish_stats();
  Engine* self = e.get();
  e->thread_ = std::thread([self] { self->scheduler_loop(); });
  return e;
}

Engine::~Engine() { shutdown(); }

void Engine::shutdown() {
  if (shut_down_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lk(inbox_->mu);
    inbox_->stop = true;
  }
  inbox_->cv.notify_one();
  if (thread_.joinable()) thread_.join();
}

Result<std::shared_ptr<RequestHandle>> Engine::submit(GenerateRequest req) {
  if (shut_down_.load()) return Status(StatusCode::kResourceExhausted, "engine is shut down");
  const GenerateParams& p = req.params;
  SGL_RETURN_IF_ERROR(p.validate(n_vocab_, context_length_));
  if (p.n != 1) return unsupported("n > 1 is not supported by the engine yet");
  if (p.regex || p.json_schema || p.ebnf)
    return unsupported("constrained decoding (regex / json_schema / ebnf) is not supported yet");
  if (p.return_logprob) return unsupported("return_logprob is not supported by the engine yet");
  if (req.input_ids.empty()) return invalid_argument("the prompt is empty");
  for (size_t i = 0; i < req.input_ids.size(); ++i) {
    const int32_t id = req.input_ids[i];
    if (id < 0 || id >= n_vocab_)
      return invalid_argument("input_ids[" + std::to_string(i) + "] = " + std::to_string(id) +
                              " is outside the vocabulary [0, " + std::to_string(n_vocab_) + ")");
  }
  const int64_t total = static_cast<int64_t>(req.input_ids.size()) + p.max_new_tokens;
  if (context_length_ > 0 && total > context_length_)
    return invalid_argument("prompt (" + std::to_string(req.input_ids.size()) +
                            " tokens) + max_new_tokens (" + std::to_string(p.max_new_tokens) +
                            ") exceeds the context length " + std::to_string(context_length_));
  if (total > kv_capacity_)
    return invalid_argument("prompt (" + std::to_string(req.input_ids.size()) +
                            " tokens) + max_new_tokens (" + std::to_string(p.max_new_tokens) +
                            ") exceeds the KV pool (max_total_tokens " +
                            std::to_string(kv_capacity_) + ")");
  auto handle = std::make_shared<RequestHandle>(req.rid, inbox_);
  {
    std::lock_guard<std::mutex> lk(inbox_->mu);
    if (inbox_->stop) return Status(StatusCode::kResourceExhausted, "engine is shut down");
    inbox_->reqs.push_back({std::move(req), handle});
  }
  inbox_->cv.notify_one();
  return handle;
}

Status Engine::flush_cache() {
  std::future<Status> f;
  {
    std::lock_guard<std::mutex> lk(inbox_->mu);
    if (inbox_->stop) return Status(StatusCode::kResourceExhausted, "engine is shut down");
    inbox_->flushes.emplace_back();
    f = inbox_->flushes.back().get_future();
  }
  inbox_->cv.notify_one();
  return f.get();
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lk(stats_mu_);
  return stats_;
}

void Engine::publish_stats() {
  EngineStats s = counters_;
  for (const auto& r : running_) s.running += r->done ? 0 : 1;
  for (const auto& r : waiting_) s.waiting += r->done ? 0 : 1;
  s.kv_used = pool_->used();
  s.kv_capacity = pool_->capacity();
  s.cache_size = cache_ ? cache_->total_size() : 0;
  std::lock_guard<std::mutex> lk(stats_mu_);
  stats_ = s;
}

void Engine::scheduler_loop() {
  for (;;) {
    std::deque<detail::Inbox::Pending> fresh;
    std::deque<std::promise<Status>> flushes;
    bool stop = false;
    {
      std::unique_lock<std::mutex> lk(inbox_->mu);
      if (running_.empty() && waiting_.empty()) {
        inbox_->cv.wait(lk, [&] {
          return inbox_->stop || inbox_->wake || !inbox_->reqs.empty() ||
                 !inbox_->flushes.empty();
        });
      }
      inbox_->wake = false;
      fresh.swap(inbox_->reqs);
      flushes.swap(inbox_->flushes);
      stop = inbox_->stop;
    }
    for (auto& p : fresh) {
      auto r = std::make_unique<Req>();
      r->handle = std::move(p.handle);
      r->params = std::move(p.req.params);
      r->sp = r->params.sampling();
      r->tokens = std::move(p.req.input_ids);
      r->prompt_len = static_cast<int32_t>(r->tokens.size());
      const uint64_t seed = r->params.sampling_seed
                                ? *r->params.sampling_seed
                                : 0x9E3779B97F4A7C15ull * (++seed_counter_) + 0x5eed;
      r->sampler.emplace(r->sp, std::span<const int32_t>(r->tokens), seed);
      r->stop.emplace(model_->tok(), r->params);
      waiting_.push_back(std::move(r));
    }
    if (stop) {
      for (auto& r : running_) abort_req(*r, "engine shut down");
      for (auto& r : waiting_) abort_req(*r, "engine shut down");
      sweep();
      for (auto& f : flushes) f.set_value(Status(StatusCode::kResourceExhausted, "engine shut down"));
      publish_stats();
      return;
    }
    // Client aborts.
    for (auto& r : waiting_)
      if (r->handle->abort_requested()) abort_req(*r, "aborted by the client");
    for (auto& r : running_)
      if (!r->done && r->handle->abort_requested()) abort_req(*r, "aborted by the client");
    sweep();
    for (auto& f : flushes) {
      if (!running_.empty() || !waiting_.empty()) {
        f.set_value(invalid_argument("cannot flush the cache while " +
                                     std::to_string(running_.size() + waiting_.size()) +
                                     " requests are in flight"));
      } else {
        if (cache_) cache_->reset();
        publish_stats();
        f.set_value(Status::ok());
      }
    }
    if (!running_.empty() || !waiting_.empty()) step();
    publish_stats();
  }
}

bool Engine::alloc_slots(int64_t n, std::vector<int32_t>& out) {
  if (n <= 0) return true;
  if (pool_->alloc(n, out)) return true;
  if (cache_) {
    counters_.evicted_tokens += cache_->evict(n - pool_->available());
    return pool_->alloc(n, out);
  }
  return false;
}

void Engine::release(Req& r) {
  if (!r.admitted) return;
  const size_t n = static_cast<size_t>(r.n_past);
  if (cache_) {
    size_t keep = 0;
    if (n > 0) {
      cache_->insert(std::span<const int32_t>(r.tokens.data(), n),
                     std::span<const int32_t>(r.slots.data(), n));
      keep = n;  // the cache owns these now (or freed its duplicates)
    }
    if (r.slots.size() > keep)
      pool_->free(std::span<const int32_t>(r.slots.data() + keep, r.slots.size() - keep));
    if (r.last_node) cache_->unlock(r.last_node);
    r.last_node = nullptr;
  } else if (!r.slots.empty()) {
    pool_->free(std::span<const int32_t>(r.slots));
  }
  r.slots.clear();
  r.admitted = false;
#ifndef NDEBUG
  if (cache_) {
    const Status v = cache_->validate();
    SGL_CHECK(v.is_ok(), "radix cache invariant broken: " + v.to_string());
  }
  SGL_CHECK(pool_->used() >= (cache_ ? cache_->total_size() : 0), "KV pool accounting broken");
#endif
}

void Engine::finish(Req& r, std::string_view delta, const FinishReason& reason) {
  release(r);
  r.done = true;
  publish_stats();  // so a caller that saw the finish event sees the freed memory
  RequestEvent ev;
  ev.kind = RequestEvent::kFinish;
  ev.text_delta = std::string(delta);
  ev.finish = reason;
  ev.prompt_tokens = r.prompt_len;
  ev.completion_tokens = r.stop->num_tokens();
  ev.cached_tokens = r.cached;
  r.handle->push(std::move(ev));
}

void Engine::abort_req(Req& r, const std::string& msg) {
  if (r.done) return;
  StopChecker::Step st = r.stop->abort(msg);
  finish(r, st.delta, st.finish_reason);
}

void Engine::sweep() {
  running_.erase(std::remove_if(running_.begin(), running_.end(),
                                [](const std::unique_ptr<Req>& r) { return r->done; }),
                 running_.end());
  waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(),
                                [](const std::unique_ptr<Req>& r) { return r->done; }),
                 waiting_.end());
}

void Engine::admit() {
  while (!waiting_.empty() &&
         static_cast<int32_t>(running_.size()) < opts_.max_running_requests) {
    // Admit only while this step's prefill budget is not already spoken for.
    int64_t pending = 0;
    for (auto& r : running_)
      if (r->prefilling()) pending += r->prompt_len - r->n_past;
    if (pending >= opts_.chunked_prefill_size) break;

    Req& r = *waiting_.front();
    std::vector<int32_t> slots;
    RadixCache::Node* node = nullptr;
    if (cache_ && r.prompt_len > 1) {
      // Never match the last prompt token: it is recomputed to produce the first logits.
      RadixCache::Match m =
          cache_->match_prefix(std::span<const int32_t>(r.tokens.data(), r.prompt_len - 1));
      if (!m.slots.empty()) {
        node = m.last;
        slots = std::move(m.slots);
        cache_->lock(node);
      }
    }
    const int32_t cached = static_cast<int32_t>(slots.size());
    if (!alloc_slots(r.prompt_len - cached, slots)) {
      if (node) cache_->unlock(node);
      break;  // FCFS: wait for memory
    }
    r.slots = std::move(slots);
    r.cached = cached;
    r.n_past = cached;
    r.last_node = node;
    r.admitted = true;
    r.seq = ++admit_seq_;
    counters_.cache_hit_tokens += cached;
    counters_.prompt_tokens += r.prompt_len;
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
}

void Engine::step() {
  admit();
  ++counters_.steps;

  // Phase 1: a slot for every decoding request's newest token.
  for (size_t i = 0; i < running_.size(); ++i) {
    Req& r = *running_[i];
    if (r.done || r.prefilling()) continue;
    while (!r.done && r.slots.size() < r.tokens.size()) {
      if (alloc_slots(1, r.slots)) break;
      Req* victim = nullptr;
      for (auto& o : running_)
        if (!o->done && (!victim || o->seq > victim->seq)) victim = o.get();
      SGL_CHECK(victim != nullptr, "no running request to abort");
      ++counters_.aborted_for_memory;
      abort_req(*victim,
                "out of KV cache memory: the KV pool (" + std::to_string(pool_->capacity()) +
                    " tokens) cannot hold all running requests; aborted the youngest "
                    "(raise --max-total-tokens or send fewer concurrent requests)");
    }
  }
  sweep();

  // Phase 2: build one batch: decode tokens first, then prefill chunks in admission order.
  backend::ForwardBatch batch;
  std::vector<Req*> in_batch;
  std::vector<Req*> rows;
  for (auto& rp : running_) {
    Req& r = *rp;
    if (r.prefilling()) continue;
    r.chunk = 1;
    batch.add_sequence(r.tokens.data() + r.n_past, 1, r.n_past, r.slots.data(), true);
    in_batch.push_back(&r);
    rows.push_back(&r);
  }
  int32_t budget = opts_.chunked_prefill_size;
  for (auto& rp : running_) {
    Req& r = *rp;
    if (!r.prefilling() || budget <= 0) continue;
    const int32_t n = std::min(budget, r.prompt_len - r.n_past);
    const bool last = r.n_past + n == r.prompt_len;
    const bool want = last && r.params.max_new_tokens > 0;
    r.chunk = n;
    batch.add_sequence(r.tokens.data() + r.n_past, n, r.n_past, r.slots.data(), want);
    in_batch.push_back(&r);
    if (want) rows.push_back(&r);
    budget -= n;
  }
  if (in_batch.empty()) {
    // Nothing runs and the head of the queue still cannot be admitted: everything in the cache
    // was evictable, so it can never fit. Fail it rather than spin.
    if (running_.empty() && !waiting_.empty())
      abort_req(*waiting_.front(), "the request does not fit in the KV pool (" +
                                       std::to_string(pool_->capacity()) + " tokens)");
    sweep();
    return;
  }

  backend::Logits logits;
  Status s = backend_->forward(batch, &logits);
  if (!s.is_ok()) {
    for (Req* r : in_batch) abort_req(*r, "forward pass failed: " + s.to_string());
    sweep();
    return;
  }
  for (Req* r : in_batch) r->n_past += r->chunk;

  // Prefill-only requests (max_new_tokens == 0) end once their prompt is computed.
  for (Req* r : in_batch) {
    if (r->params.max_new_tokens == 0 && !r->prefilling() && !r->done) {
      StopChecker::Step st = r->stop->finish_by_length();
      finish(*r, st.delta, st.finish_reason);
    }
  }

  std::vector<std::pair<float, int32_t>> scratch;
  for (size_t i = 0; i < rows.size(); ++i) {
    Req& r = *rows[i];
    if (r.done) continue;
    std::span<float> lg(logits.row(static_cast<int32_t>(i)), static_cast<size_t>(n_vocab_));
    if (r.sp.has_penalties() || !r.sp.logit_bias.empty())
      Sampler::apply_penalties(lg, r.sp, *r.sampler);
    const int32_t tok = Sampler::sample(lg, r.sp, *r.sampler, scratch);
    r.sampler->accept(tok);
    r.tokens.push_back(tok);
    StopChecker::Step st = r.stop->push(tok);
    RequestEvent ev;
    ev.kind = RequestEvent::kToken;
    ev.token = tok;
    ev.text_delta = std::string(st.delta);
    ev.prompt_tokens = r.prompt_len;
    ev.completion_tokens = r.stop->num_tokens();
    ev.cached_tokens = r.cached;
    const bool finished = st.finished;
    FinishReason reason = finished ? st.finish_reason : FinishReason();
    r.handle->push(std::move(ev));
    if (finished) finish(r, "", reason);
  }
  sweep();
}

}  // namespace sgl::runtime
