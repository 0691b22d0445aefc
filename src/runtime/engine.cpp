#include "sgl/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "backend/factory.h"
#include "backend/forward_batch.h"
#include "grammar/grammar.h"
#include "models/loader.h"
#include "runtime/kv_pool.h"
#include "runtime/radix_cache.h"
#include "runtime/sampler.h"
#include "runtime/stop_checker.h"
#include "support/log.h"

namespace sgl::runtime {

using Clock = std::chrono::steady_clock;

static double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// ---------------------------------------------------------------- schedule policies

Result<SchedulePolicy> parse_schedule_policy(std::string_view name) {
  if (name == "fcfs") return SchedulePolicy::kFcfs;
  if (name == "lpm") return SchedulePolicy::kLpm;
  if (name == "dfs-weight") return SchedulePolicy::kDfsWeight;
  if (name == "lof") return SchedulePolicy::kLof;
  if (name == "random") return SchedulePolicy::kRandom;
  return invalid_argument("unknown schedule policy " + quote_for_message(name) +
                          " (expected one of: lpm, dfs-weight, fcfs, lof, random)");
}

const char* schedule_policy_name(SchedulePolicy p) {
  switch (p) {
    case SchedulePolicy::kFcfs: return "fcfs";
    case SchedulePolicy::kLpm: return "lpm";
    case SchedulePolicy::kDfsWeight: return "dfs-weight";
    case SchedulePolicy::kLof: return "lof";
    case SchedulePolicy::kRandom: return "random";
  }
  return "fcfs";
}

namespace detail {
// The scheduler's inbox: new requests, commands and wake-ups (aborts) cross threads here.
struct Inbox {
  std::mutex mu;
  std::condition_variable cv;
  struct Pending {
    GenerateRequest req;
    std::shared_ptr<RequestHandle> handle;
    std::string base_rid;
    std::shared_ptr<void> group;  // shared by the n samples of one request (n > 1)
    bool leader = false;
    Clock::time_point t_submit;
    std::shared_ptr<const grammar::CompiledGrammar> grammar;  // constrained decoding
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

bool RequestHandle::try_next(RequestEvent* ev) {
  std::lock_guard<std::mutex> lk(mu_);
  if (finish_consumed_ || events_.empty()) return false;
  *ev = std::move(events_.front());
  events_.pop_front();
  if (ev->kind == RequestEvent::kFinish) finish_consumed_ = true;
  return true;
}

bool RequestHandle::finished() const {
  std::lock_guard<std::mutex> lk(mu_);
  return finish_consumed_;
}

void RequestHandle::set_listener(std::function<void()> fn) {
  bool pending = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    listener_ = fn;
    pending = !events_.empty();
  }
  if (pending && fn) fn();
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
    if (!ev.input_logprobs.empty()) out.input_logprobs = std::move(ev.input_logprobs);
    if (ev.kind == RequestEvent::kToken) {
      out.output_ids.push_back(ev.token);
      if (ev.logprobs) out.output_logprobs.push_back(std::move(*ev.logprobs));
    }
    out.prompt_tokens = ev.prompt_tokens;
    out.completion_tokens = ev.completion_tokens;
    out.cached_tokens = ev.cached_tokens;
    if (ev.kind == RequestEvent::kFinish) {
      out.finish_reason = ev.finish;
      out.timings = ev.timings;
      finished = true;
    }
  }
  if (!finished) return internal_error("request " + rid_ + ": events already consumed");
  return out;
}

void RequestHandle::push(RequestEvent ev) {
  std::function<void()> listener;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (finish_pushed_) return;
    if (ev.kind == RequestEvent::kFinish) finish_pushed_ = true;
    events_.push_back(std::move(ev));
    listener = listener_;
  }
  cv_.notify_all();
  if (listener) listener();
}

// ---------------------------------------------------------------- Engine::Req

namespace {
// The n samples of one request: the first (the leader) prefills the prompt and caches it; the
// others wait for that and then reuse it through the radix cache.
struct Group {
  bool prefilled = false;
  bool leader_gone = false;
};
}  // namespace

struct Engine::Req {
  std::shared_ptr<RequestHandle> handle;
  std::string base_rid;
  GenerateParams params;
  SamplingParams sp;
  std::optional<SamplerState> sampler;
  std::optional<StopChecker> stop;
  std::vector<int32_t> tokens;  // prompt + sampled tokens
  int32_t prompt_len = 0;
  // Tokens whose K/V must be computed before the next sample: the prompt at first admission,
  // prompt + output so far when a retracted request resumes.
  int32_t fill_len = 0;
  std::vector<int32_t> slots;   // KV slots of tokens[0, slots.size())
  int32_t n_past = 0;           // tokens whose K/V are written
  int32_t cached = 0;           // prompt tokens served by the radix cache at first admission
  bool ever_admitted = false;
  RadixCache::Node* last_node = nullptr;  // locked while running
  uint64_t seq = 0;             // admission order
  uint64_t arrival = 0;         // arrival order
  uint64_t enqueued_step = 0;   // step at which it (re)entered the waiting queue
  bool admitted = false;
  bool done = false;
  bool retracted = false;       // waiting again after a retraction
  int32_t chunk = 0;            // tokens in the current forward batch
  std::shared_ptr<Group> group;
  bool leader = false;
  // Constrained decoding: the request's matcher over its compiled grammar, and a mask buffer.
  std::optional<grammar::Matcher> matcher;
  std::vector<uint32_t> mask;
  // Logprobs.
  bool events_sent = false;               // the first event (which carries input logprobs) is out
  std::vector<PositionLogprobs> input_lp;  // prompt positions [logprob_start_len, prompt_len)
  // Timing.
  Clock::time_point t_submit;
  Clock::time_point t_admit;
  Clock::time_point t_first_token;
  bool has_first_token = false;
  int32_t retractions = 0;

  // Overlap schedule: the token sampled for row future_row of launch future_launch, not yet
  // processed (-1: none), at position tokens.size(); last_launch: the newest launch with a row
  // of this request.
  int32_t future_row = -1;
  uint64_t future_launch = 0;
  uint64_t last_launch = 0;

  bool prefilling() const { return n_past < fill_len; }
  // Tokens known or in flight.
  size_t known_len() const { return tokens.size() + (future_row >= 0 ? 1 : 0); }
  // Whether it decodes in the next batch: not when its in-flight token is its last.
  bool decodes_next() const { return future_row < 0 || generated() + 1 < params.max_new_tokens; }
  // Needs its logits on the host, or its previous token on the host before the next batch
  // (grammar masks, jump-forward): never in a batch launched while another is in flight.
  bool needs_host() const {
    return matcher.has_value() || params.return_logprob || sp.has_penalties() ||
           !sp.logit_bias.empty();
  }
  int32_t generated() const { return static_cast<int32_t>(tokens.size()) - prompt_len; }
  bool wants_input_logprobs() const {
    return params.return_logprob && params.logprob_start_len >= 0 && !events_sent;
  }
  // Tokens a (re)admission may take from the radix cache: never the last one to fill (it is
  // recomputed to produce logits), nor prompt positions whose logprobs are still owed.
  int32_t match_limit() const {
    int32_t lim = static_cast<int32_t>(tokens.size()) - 1;
    if (wants_input_logprobs()) lim = std::min(lim, params.logprob_start_len);
    return std::max(lim, 0);
  }
  // KV slots this request may still need for decoding (the last sampled token never needs one).
  int64_t remaining_decode() const {
    const int64_t final_len = static_cast<int64_t>(prompt_len) + params.max_new_tokens - 1;
    return std::max<int64_t>(0, final_len - std::max<int64_t>(fill_len, slots.size()));
  }
  std::string tag() const { return "[" + handle->rid() + "]"; }
};

struct Engine::Row {
  Req* r;
  int32_t pos;  // position whose logits this row holds
  bool sample;  // the row samples the next token (else: an input logprob row)
};

struct Engine::Launch {
  uint64_t id = 0;      // launch_seq_
  uint64_t ticket = 0;  // Backend::launch_sample's
  std::vector<Row> rows;
};

// ---------------------------------------------------------------- logprobs

namespace {

// Logprobs of one position from logits: log-normalizer in double, top-n by (value desc, id asc).
PositionLogprobs position_logprobs(std::span<const float> lg, int32_t token, int32_t top_n,
                                   const std::vector<int32_t>& ids,
                                   std::vector<int32_t>& scratch) {
  float maxl = -INFINITY;
  for (float l : lg) maxl = std::max(maxl, l);
  double sum = 0;
  for (float l : lg) sum += std::exp(static_cast<double>(l) - maxl);
  const double lse = maxl + std::log(sum);
  auto lp = [&](int32_t t) { return static_cast<float>(static_cast<double>(lg[t]) - lse); };
  PositionLogprobs p;
  p.token = {lp(token), token};
  if (top_n > 0) {
    const int32_t n = static_cast<int32_t>(lg.size());
    const int32_t k = std::min(top_n, n);
    scratch.resize(n);
    std::iota(scratch.begin(), scratch.end(), 0);
    auto better = [&](int32_t a, int32_t b) { return lg[a] > lg[b] || (lg[a] == lg[b] && a < b); };
    std::partial_sort(scratch.begin(), scratch.begin() + k, scratch.end(), better);
    p.top.reserve(k);
    for (int32_t i = 0; i < k; ++i) p.top.push_back({lp(scratch[i]), scratch[i]});
  }
  p.by_id.reserve(ids.size());
  for (int32_t t : ids) p.by_id.push_back({lp(t), t});
  return p;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

// ---------------------------------------------------------------- Engine

Result<std::unique_ptr<Engine>> Engine::create(std::string model_path, EngineOptions options) {
  if (options.chunked_prefill_size <= 0)
    return invalid_argument("chunked_prefill_size must be positive");
  if (options.max_prefill_tokens <= 0)
    return invalid_argument("max_prefill_tokens must be positive");
  if (options.max_running_requests <= 0)
    return invalid_argument("max_running_requests must be positive");
  if (options.max_total_tokens < 0) return invalid_argument("max_total_tokens must be >= 0");
  if (!(options.schedule_conservativeness >= 0.0 && options.schedule_conservativeness <= 1.0))
    return invalid_argument("schedule_conservativeness must be in [0, 1]");
  if (options.max_wait_steps <= 0) return invalid_argument("max_wait_steps must be positive");
  std::unique_ptr<Engine> e(new Engine());
  e->opts_ = options;
  e->model_path_ = model_path;
  if (options.load_format != "auto" && options.load_format != "dummy")
    return invalid_argument("load_format must be auto or dummy, got '" + options.load_format +
                            "'");
  const bool dummy = options.load_format == "dummy";
  if (!dummy && !options.tokenizer_path.empty())
    return invalid_argument("tokenizer_path is only used with load_format dummy");
  if (dummy) {
    SGL_ASSIGN_OR_RETURN(e->model_, models::load_dummy_model(model_path, options.tokenizer_path));
  } else {
    SGL_ASSIGN_OR_RETURN(e->model_, models::load_model(model_path));
  }
  backend::BackendOptions bo;
  bo.device = options.device;
  bo.n_threads = options.threads;
  bo.kv_dtype = options.kv_dtype;
  bo.dtype = options.dtype;
  bo.kv_capacity = options.max_total_tokens;
  bo.mem_fraction_static = options.mem_fraction_static;
  bo.tp_size = options.tp_size;
  if (dummy) {
    SGL_ASSIGN_OR_RETURN(e->backend_, backend::create_dummy_backend(e->model_->config, bo));
  } else {
    SGL_ASSIGN_OR_RETURN(e->backend_, backend::create_backend(*e->model_, bo));
  }
  if (options.wrap_backend) {
    e->backend_ = options.wrap_backend(std::move(e->backend_));
    if (!e->backend_) return invalid_argument("wrap_backend returned no backend");
  }
  e->n_vocab_ = static_cast<int32_t>(e->backend_->config().n_vocab);
  e->tok_vocab_ = e->model_->tok().vocab_size();
  e->context_length_ = static_cast<int32_t>(e->backend_->config().context_length);
  e->kv_capacity_ = e->backend_->kv_capacity();
  e->pool_ = std::make_unique<KvPool>(e->kv_capacity_);
  if (!options.disable_radix_cache) {
    KvPool* pool = e->pool_.get();
    e->cache_ = std::make_unique<RadixCache>(
        [pool](std::span<const int32_t> s) { pool->free(s); });
  }
  e->overlap_ = !options.disable_overlap_schedule && e->backend_->supports_sampling() &&
                (e->backend_->supports_async() || options.overlap_sync_backend);
  e->rng_ = Rng(options.random_seed ^ 0x5ca1ab1eull);
  e->grammars_ = std::make_unique<grammar::GrammarCompiler>(
      grammar::TokenVocab::from_tokenizer(e->model_->tok()));
  e->inbox_ = std::make_shared<detail::Inbox>();
  e->publish_stats();
  Engine* self = e.get();
  e->thread_ = std::thread([self] { self->scheduler_loop(); });
  return e;
}

Engine::~Engine() { shutdown(); }

void Engine::shutdown() {
  if (shut_down_.exchange(true)) return;
  if (!inbox_) return;  // create() failed before the scheduler existed
  {
    std::lock_guard<std::mutex> lk(inbox_->mu);
    inbox_->stop = true;
  }
  inbox_->cv.notify_one();
  if (thread_.joinable()) thread_.join();
}

Status Engine::check_request(const GenerateRequest& req, std::vector<int32_t>* ids,
                             std::shared_ptr<const grammar::CompiledGrammar>* compiled) const {
  const GenerateParams& p = req.params;
  SGL_RETURN_IF_ERROR(p.validate(n_vocab_, context_length_));
  if (p.regex || p.json_schema || p.ebnf) {
    // Compile errors are the user's: they come back from submit() as kInvalidArgument.
    const auto kind = p.regex ? grammar::GrammarKind::kRegex
                      : p.json_schema ? grammar::GrammarKind::kJsonSchema
                                      : grammar::GrammarKind::kGbnf;
    const std::string& text = p.regex ? *p.regex : p.json_schema ? *p.json_schema : *p.ebnf;
    const char* field = p.regex ? "regex" : p.json_schema ? "json_schema" : "ebnf";
    Result<grammar::CompiledGrammarPtr> g = grammars_->compile(kind, text);
    if (!g.is_ok())
      return Status(g.status().code(), std::string(field) + ": " + g.status().message());
    *compiled = std::move(g).value();
  }
  if (req.text) {
    const auto& tok = model_->tok();
    *ids = tok.encode(*req.text, /*add_special=*/true, /*parse_special=*/true);
  } else {
    *ids = req.input_ids;
  }
  if (ids->empty()) return invalid_argument("the prompt is empty");
  for (size_t i = 0; i < ids->size(); ++i) {
    const int32_t id = (*ids)[i];
    if (id < 0 || id >= n_vocab_)
      return invalid_argument("input_ids[" + std::to_string(i) + "] = " + std::to_string(id) +
                              " is outside the vocabulary [0, " + std::to_string(n_vocab_) + ")");
  }
  const int64_t n = static_cast<int64_t>(ids->size());
  if (p.return_logprob && p.logprob_start_len >= n)
    return invalid_argument("logprob_start_len (" + std::to_string(p.logprob_start_len) +
                            ") must be less than the prompt length (" + std::to_string(n) +
                            " tokens)");
  const int64_t total = n + p.max_new_tokens;
  if (context_length_ > 0 && total > context_length_)
    return invalid_argument("prompt (" + std::to_string(n) + " tokens) + max_new_tokens (" +
                            std::to_string(p.max_new_tokens) + ") exceeds the context length " +
                            std::to_string(context_length_));
  if (total > kv_capacity_)
    return invalid_argument("prompt (" + std::to_string(n) + " tokens) + max_new_tokens (" +
                            std::to_string(p.max_new_tokens) +
                            ") exceeds the KV pool (max_total_tokens " +
                            std::to_string(kv_capacity_) + ")");
  return Status::ok();
}

Result<std::shared_ptr<RequestHandle>> Engine::submit(GenerateRequest req) {
  if (req.params.n != 1)
    return invalid_argument("submit() takes n = 1; use submit_batch() for n = " +
                            std::to_string(req.params.n));
  std::vector<GenerateRequest> one;
  one.push_back(std::move(req));
  SGL_ASSIGN_OR_RETURN(auto handles, submit_batch(std::move(one)));
  return handles.front();
}

Result<std::vector<std::shared_ptr<RequestHandle>>> Engine::submit_batch(
    std::vector<GenerateRequest> reqs) {
  if (shut_down_.load()) return Status(StatusCode::kResourceExhausted, "engine is shut down");
  std::vector<std::vector<int32_t>> ids(reqs.size());
  std::vector<grammar::CompiledGrammarPtr> compiled(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    Status s = check_request(reqs[i], &ids[i], &compiled[i]);
    if (!s.is_ok()) {
      if (reqs.size() == 1) return s;
      return Status(s.code(), "request " + std::to_string(i) + ": " + s.message());
    }
  }
  const auto now = Clock::now();
  std::vector<std::shared_ptr<RequestHandle>> handles;
  std::vector<detail::Inbox::Pending> pending;
  for (size_t i = 0; i < reqs.size(); ++i) {
    GenerateRequest& r = reqs[i];
    const int32_t n = r.params.n;
    std::shared_ptr<Group> group = n > 1 ? std::make_shared<Group>() : nullptr;
    for (int32_t k = 0; k < n; ++k) {
      detail::Inbox::Pending p;
      p.base_rid = r.rid;
      std::string rid = n > 1 ? r.rid + "-" + std::to_string(k) : r.rid;
      p.handle = std::make_shared<RequestHandle>(rid, inbox_);
      p.req.rid = std::move(rid);
      p.req.input_ids = k + 1 == n ? std::move(ids[i]) : ids[i];
      p.req.params = k + 1 == n ? std::move(r.params) : r.params;
      p.req.params.n = 1;
      // Each sample of a seeded n > 1 request draws from its own stream (seed, seed+1, ...), so
      // the samples differ yet the whole request stays reproducible.
      if (k > 0 && p.req.params.sampling_seed) *p.req.params.sampling_seed += static_cast<uint64_t>(k);
      p.group = group;
      p.leader = k == 0;
      p.t_submit = now;
      p.grammar = compiled[i];
      handles.push_back(p.handle);
      pending.push_back(std::move(p));
    }
  }
  {
    std::lock_guard<std::mutex> lk(registry_mu_);
    for (const auto& p : pending) {
      registry_.emplace(p.handle->rid(), p.handle);
      if (p.base_rid != p.handle->rid()) registry_.emplace(p.base_rid, p.handle);
    }
  }
  {
    std::lock_guard<std::mutex> lk(inbox_->mu);
    if (inbox_->stop) return Status(StatusCode::kResourceExhausted, "engine is shut down");
    for (auto& p : pending) inbox_->reqs.push_back(std::move(p));
  }
  inbox_->cv.notify_one();
  return handles;
}

int Engine::abort(std::string_view rid) {
  std::vector<std::shared_ptr<RequestHandle>> found;
  {
    std::lock_guard<std::mutex> lk(registry_mu_);
    auto [b, e] = registry_.equal_range(std::string(rid));
    for (auto it = b; it != e; ++it)
      if (auto h = it->second.lock()) found.push_back(std::move(h));
  }
  for (auto& h : found) h->abort();
  return static_cast<int>(found.size());
}

void Engine::abort_all() {
  std::vector<std::shared_ptr<RequestHandle>> found;
  {
    std::lock_guard<std::mutex> lk(registry_mu_);
    for (auto& [k, w] : registry_)
      if (auto h = w.lock()) found.push_back(std::move(h));
  }
  for (auto& h : found) h->abort();
}

void Engine::unregister(const Req& r) {
  std::lock_guard<std::mutex> lk(registry_mu_);
  for (const std::string& key : {r.handle->rid(), r.base_rid}) {
    auto [b, e] = registry_.equal_range(key);
    for (auto it = b; it != e;) {
      auto h = it->second.lock();
      if (!h || h == r.handle) it = registry_.erase(it);
      else ++it;
    }
  }
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
    // Nothing left to schedule: the launch in flight only has rows of finished requests.
    if (inflight_ && running_.empty() && waiting_.empty()) drain();
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
      r->base_rid = std::move(p.base_rid);
      r->params = std::move(p.req.params);
      r->sp = r->params.sampling();
      r->tokens = std::move(p.req.input_ids);
      r->prompt_len = static_cast<int32_t>(r->tokens.size());
      r->group = std::static_pointer_cast<Group>(p.group);
      r->leader = p.leader;
      r->t_submit = p.t_submit;
      r->arrival = ++arrival_seq_;
      r->enqueued_step = counters_.steps;
      const uint64_t seed = r->params.sampling_seed
                                ? *r->params.sampling_seed
                                : splitmix64(opts_.random_seed ^ (++seed_counter_ * 0x2545F4914F6CDD1Dull));
      r->sampler.emplace(r->sp, std::span<const int32_t>(r->tokens), seed);
      r->stop.emplace(model_->tok(), r->params);
      if (p.grammar) {
        r->matcher.emplace(std::move(p.grammar));
        r->mask.resize(r->matcher->mask_words());
      }
      waiting_.push_back(std::move(r));
    }
    // Aborts, flushes and shutdown act on settled requests: the launch in flight is
    // collected and processed first.
    if (inflight_) {
      bool settle = stop || !flushes.empty();
      for (auto& r : running_) settle = settle || (!r->done && r->handle->abort_requested());
      if (settle) drain();
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
    if (!running_.empty() || !waiting_.empty()) {
      const auto t0 = Clock::now();
      step();
      counters_.step_seconds += seconds_between(t0, Clock::now());
    }
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
  // Computed and known (a token still in flight is never inserted: its id is unknown).
  const size_t n = std::min(static_cast<size_t>(r.n_past), r.tokens.size());
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

void Engine::cache_prefix(Req& r) {
  // SGLang's cache_unfinished_req: put the computed prefix into the tree now, so requests that
  // share it (n > 1 samples, concurrent identical system prompts) reuse it while this one runs.
  const size_t n = static_cast<size_t>(r.n_past);
  std::span<const int32_t> toks(r.tokens.data(), n);
  cache_->insert(toks, std::span<const int32_t>(r.slots.data(), n));
  RadixCache::Match m = cache_->match_prefix(toks);
  SGL_CHECK(m.slots.size() == n, "radix cache lost a prefix that was just inserted");
  std::copy(m.slots.begin(), m.slots.end(), r.slots.begin());
  cache_->lock(m.last);
  if (r.last_node) cache_->unlock(r.last_node);
  r.last_node = m.last;
}

void Engine::fill_event(Req& r, RequestEvent& ev) {
  ev.prompt_tokens = r.prompt_len;
  ev.completion_tokens = r.stop->num_tokens();
  ev.cached_tokens = r.cached;
  if (!r.events_sent) {
    r.events_sent = true;
    if (r.params.return_logprob) ev.input_logprobs = std::move(r.input_lp);
    r.input_lp.clear();
  }
}

void Engine::finish(Req& r, std::string_view delta, const FinishReason& reason) {
  release(r);
  r.done = true;
  if (r.group && r.leader && !r.group->prefilled) r.group->leader_gone = true;
  ++counters_.finished;
  publish_stats();  // so a caller that saw the finish event sees the freed memory
  unregister(r);
  RequestEvent ev;
  ev.kind = RequestEvent::kFinish;
  ev.text_delta = std::string(delta);
  ev.finish = reason;
  fill_event(r, ev);
  const auto now = Clock::now();
  ev.timings.queued_s = r.ever_admitted ? seconds_between(r.t_submit, r.t_admit)
                                        : seconds_between(r.t_submit, now);
  ev.timings.first_token_s = r.has_first_token ? seconds_between(r.t_submit, r.t_first_token) : 0;
  ev.timings.e2e_s = seconds_between(r.t_submit, now);
  ev.timings.retractions = r.retractions;
  if (log_level() <= LogLevel::kDebug)
    log_line(LogLevel::kDebug, r.tag(),
             std::string("finished: ") + reason.type() + ", prompt " +
                 std::to_string(r.prompt_len) + ", cached " + std::to_string(r.cached) +
                 ", completion " + std::to_string(ev.completion_tokens) + ", e2e " +
                 std::to_string(ev.timings.e2e_s) + " s");
  r.handle->push(std::move(ev));
}

void Engine::abort_req(Req& r, const std::string& msg) {
  if (r.done) return;
  StopChecker::Step st = r.stop->abort(msg);
  finish(r, st.delta, st.finish_reason);
}

void Engine::retract(Req& r) {
  release(r);  // the computed prefix stays in the cache (unlocked) for the resume
  r.n_past = 0;
  r.fill_len = 0;
  r.retracted = true;
  ++r.retractions;
  ++counters_.retractions;
  if (!r.events_sent) r.input_lp.clear();
  new_token_ratio_ = kInitNewTokenRatio;
  SGL_LOG(kInfo, r.tag() + " retracted (KV pool full): " + std::to_string(r.generated()) +
                     " tokens generated so far; it resumes when memory frees up");
}

void Engine::sweep() {
  // Retracted requests go back to the front of the queue, oldest admission first.
  std::vector<std::unique_ptr<Req>> back;
  for (auto& r : running_)
    if (!r->done && !r->admitted) back.push_back(std::move(r));
  std::sort(back.begin(), back.end(), [](const auto& a, const auto& b) { return a->seq > b->seq; });
  for (auto& r : back) {
    r->enqueued_step = counters_.steps;
    waiting_.push_front(std::move(r));
  }
  // A finished request that an unprocessed launch has a row for lives on until that launch is
  // processed (which skips the row).
  for (auto& r : running_)
    if (r && r->done && r->last_launch > processed_launch_) retired_.push_back(std::move(r));
  running_.erase(std::remove_if(running_.begin(), running_.end(),
                                [](const std::unique_ptr<Req>& r) { return !r || r->done; }),
                 running_.end());
  waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(),
                                [](const std::unique_ptr<Req>& r) { return r->done; }),
                 waiting_.end());
}

std::vector<Engine::Req*> Engine::admission_order() {
  std::vector<Req*> first, rest;
  for (auto& rp : waiting_) {
    Req* r = rp.get();
    if (r->done) continue;
    const bool aged = counters_.steps - r->enqueued_step >= static_cast<uint64_t>(opts_.max_wait_steps);
    (r->retracted || aged ? first : rest).push_back(r);
  }
  std::stable_sort(first.begin(), first.end(), [](Req* a, Req* b) {
    if (a->retracted != b->retracted) return a->retracted;
    return a->arrival < b->arrival;
  });
  SchedulePolicy policy = opts_.schedule_policy;
  // Prefix-aware policies need the cache, and are skipped for long queues (as SGLang does) since
  // they cost a tree walk per waiting request.
  if ((policy == SchedulePolicy::kLpm || policy == SchedulePolicy::kDfsWeight) &&
      (!cache_ || rest.size() > 128))
    policy = SchedulePolicy::kFcfs;
  switch (policy) {
    case SchedulePolicy::kFcfs: break;
    case SchedulePolicy::kLof:
      std::stable_sort(rest.begin(), rest.end(), [](Req* a, Req* b) {
        return a->params.max_new_tokens > b->params.max_new_tokens;
      });
      break;
    case SchedulePolicy::kRandom:
      for (size_t i = rest.size(); i > 1; --i)
        std::swap(rest[i - 1], rest[rng_.next_u64() % i]);
      break;
    case SchedulePolicy::kLpm: {
      std::vector<std::pair<size_t, Req*>> keyed;
      for (Req* r : rest)
        keyed.push_back({cache_->peek_prefix(std::span<const int32_t>(r->tokens.data(),
                                                                      r->match_limit()))
                             .length,
                         r});
      std::stable_sort(keyed.begin(), keyed.end(),
                       [](const auto& a, const auto& b) { return a.first > b.first; });
      for (size_t i = 0; i < rest.size(); ++i) rest[i] = keyed[i].second;
      break;
    }
    case SchedulePolicy::kDfsWeight: {
      // Each request hangs at the deepest tree node its prompt fully matches; a node's weight is
      // the number of requests in its subtree. Walk the tree depth-first, heaviest child first,
      // emitting a node's requests after its children's (SGLang's order): requests that share a
      // prefix are admitted together while that prefix is hot, deepest matches first.
      std::unordered_map<const RadixCache::Node*, std::vector<Req*>> at;
      std::unordered_map<const RadixCache::Node*, int> weight;
      for (Req* r : rest) {
        const RadixCache::Node* node =
            cache_->peek_prefix(std::span<const int32_t>(r->tokens.data(), r->match_limit())).node;
        at[node].push_back(r);
        for (const RadixCache::Node* x = node; x != nullptr; x = x->parent) ++weight[x];
      }
      std::vector<Req*> out;
      std::vector<std::pair<const RadixCache::Node*, bool>> stack = {{cache_->root(), false}};
      while (!stack.empty()) {
        auto [x, expanded] = stack.back();
        stack.pop_back();
        if (expanded) {
          if (auto it = at.find(x); it != at.end())
            out.insert(out.end(), it->second.begin(), it->second.end());
          continue;
        }
        stack.push_back({x, true});
        std::vector<std::pair<int, const RadixCache::Node*>> kids;
        for (const auto& [t, c] : x->children)
          if (auto w = weight.find(c.get()); w != weight.end()) kids.push_back({w->second, c.get()});
        // Heaviest first; ties by first token for determinism. Pushed reversed onto the stack.
        std::sort(kids.begin(), kids.end(), [](const auto& a, const auto& b) {
          if (a.first != b.first) return a.first > b.first;
          return a.second->key[0] < b.second->key[0];
        });
        for (auto it = kids.rbegin(); it != kids.rend(); ++it) stack.push_back({it->second, false});
      }
      rest = std::move(out);
      break;
    }
  }
  first.insert(first.end(), rest.begin(), rest.end());
  return first;
}

void Engine::admit() {
  if (waiting_.empty()) return;
  int64_t running = 0;
  int64_t pending_fill = 0;     // prompt tokens of running requests not computed yet
  int64_t decode_reserve = 0;   // slots the running requests may still need for decoding
  const double ratio = new_token_ratio_ * opts_.schedule_conservativeness;
  for (auto& r : running_) {
    if (r->done) continue;
    ++running;
    if (r->prefilling()) pending_fill += r->fill_len - r->n_past;
    decode_reserve += static_cast<int64_t>(std::ceil(ratio * r->remaining_decode()));
  }
  int64_t admitted_tokens = 0;
  bool any = false;
  for (Req* rp : admission_order()) {
    Req& r = *rp;
    if (running >= opts_.max_running_requests) break;
    // Admit only while this step's prefill budget is not already spoken for.
    if (pending_fill >= opts_.chunked_prefill_size) break;
    // n > 1: the other samples wait until the first has cached the prompt.
    if (cache_ && r.group && !r.leader && !r.group->prefilled && !r.group->leader_gone) continue;

    r.fill_len = static_cast<int32_t>(r.tokens.size());
    std::vector<int32_t> slots;
    RadixCache::Node* node = nullptr;
    const int32_t limit = r.match_limit();
    if (cache_ && limit > 0 && defer_to_share(r, limit)) continue;
    if (cache_ && limit > 0) {
      RadixCache::Match m = cache_->match_prefix(std::span<const int32_t>(r.tokens.data(), limit));
      if (!m.slots.empty()) {
        node = m.last;
        slots = std::move(m.slots);
        cache_->lock(node);
      }
    }
    const int64_t cached = static_cast<int64_t>(slots.size());
    const int64_t need = r.fill_len - cached;
    const int64_t final_len = static_cast<int64_t>(r.prompt_len) + r.params.max_new_tokens - 1;
    const int64_t reserve =
        static_cast<int64_t>(std::ceil(ratio * std::max<int64_t>(0, final_len - r.fill_len)));
    const int64_t room = pool_->available() + (cache_ ? cache_->evictable_size() : 0);
    const bool budget_ok = !any || admitted_tokens + need <= opts_.max_prefill_tokens;
    // Memory: what it needs now, plus the decode room promised to everything running. An empty
    // engine always takes the head of the queue (submit() checked that it fits alone).
    const bool memory_ok = need + reserve + decode_reserve <= room || running == 0;
    if (!budget_ok || !memory_ok || !alloc_slots(need, slots)) {
      if (node) cache_->unlock(node);
      break;  // keep the policy's order: wait for memory / the next step
    }
    r.slots = std::move(slots);
    r.n_past = static_cast<int32_t>(cached);
    r.last_node = node;
    r.admitted = true;
    r.seq = ++admit_seq_;
    if (!r.ever_admitted) {
      r.ever_admitted = true;
      r.cached = static_cast<int32_t>(cached);
      r.t_admit = Clock::now();
      counters_.cache_hit_tokens += cached;
      counters_.prompt_tokens += r.prompt_len;
    }
    if (r.wants_input_logprobs()) {
      r.input_lp.clear();
      PositionLogprobs first;
      first.token = {std::numeric_limits<float>::quiet_NaN(), r.tokens[r.params.logprob_start_len]};
      r.input_lp.push_back(std::move(first));
    }
    r.retracted = false;
    if (log_level() <= LogLevel::kDebug)
      log_line(LogLevel::kDebug, r.tag(),
               "admitted: fill " + std::to_string(r.fill_len) + " tokens, cached " +
                   std::to_string(cached) + ", waited " +
                   std::to_string(counters_.steps - r.enqueued_step) + " steps");
    any = true;
    admitted_tokens += need;
    pending_fill += need;
    decode_reserve += reserve;
    ++running;
    for (auto& w : waiting_) {
      if (w.get() == rp) {
        running_.push_back(std::move(w));
        break;
      }
    }
  }
  waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(),
                                [](const std::unique_ptr<Req>& r) { return r == nullptr; }),
                 waiting_.end());
}

bool Engine::emit_token(Req& r, int32_t tok, std::optional<PositionLogprobs> lp) {
  RequestEvent ev;
  ev.logprobs = std::move(lp);
  r.sampler->accept(tok);
  r.tokens.push_back(tok);
  ++counters_.generated_tokens;
  if (!r.has_first_token) {
    r.has_first_token = true;
    r.t_first_token = Clock::now();
  }
  StopChecker::Step st = r.stop->push(tok);
  ev.kind = RequestEvent::kToken;
  ev.token = tok;
  ev.text_delta = std::string(st.delta);
  fill_event(r, ev);
  const bool finished = st.finished;
  FinishReason reason = finished ? st.finish_reason : FinishReason();
  r.handle->push(std::move(ev));
  if (finished) finish(r, "", reason);
  return finished;
}

bool Engine::jump_forward(Req& r, int32_t tok, std::span<const float> lg,
                          std::vector<int32_t>& scratch_ids) {
  // The compressed FSM: when the grammar forces the bytes after the token just sampled, append
  // them as tokens now instead of one decode step each. The forced text is re-tokenized together
  // with the sampled token (the undecided tail), so the sequence is what the tokenizer itself
  // would produce: where the tokenizer merges the sampled token with forced bytes (`{` + `"name`
  // -> `{"`, `name`), the sampled token is replaced — the matcher is rolled back over it and
  // re-accepts the new tokens. The replacement must cover at least the sampled token's bytes, so
  // the model's choice is never undone. The last token of the encoding is held back: it could
  // merge with what the model writes next, so the model produces it (the mask forces it anyway).
  // The sampled token has not been emitted yet (nor computed: it enters the KV cache in the next
  // forward pass), so replacing it costs nothing. Returns true when it emitted the sampled
  // position itself; false leaves the sampled token to the caller.
  const std::string forced = r.matcher->forced_text();
  if (forced.empty()) return false;
  const auto& tk = model_->tok();
  const std::string piece(tk.token_to_piece(tok, false));
  const std::vector<int32_t> ids = tk.encode(piece + forced, /*add_special=*/false,
                                             /*parse_special=*/false);
  if (ids.size() < 2) return false;
  // Tokens appended now (the sampled position included), within max_new_tokens.
  const int64_t room = static_cast<int64_t>(r.prompt_len) + r.params.max_new_tokens -
                       static_cast<int64_t>(r.tokens.size());
  const size_t n = std::min<size_t>(ids.size() - 1, static_cast<size_t>(std::max<int64_t>(room, 1)));
  const bool replace = ids[0] != tok;
  if (!replace && n < 2) return false;
  if (replace) {
    size_t covered = 0;
    for (size_t k = 0; k < n; ++k) covered += tk.token_to_piece(ids[k], false).size();
    if (covered < piece.size()) return false;
    r.matcher->rollback(1);
  }
  // Accept everything first, so a failure (not expected: the tokens spell accepted and forced
  // bytes) leaves the matcher where it was and the sampled token to the caller.
  size_t accepted = 0;
  for (size_t k = replace ? 0 : 1; k < n; ++k, ++accepted) {
    if (!r.matcher->accept(ids[k])) {
      r.matcher->rollback(accepted);
      if (replace) SGL_CHECK(r.matcher->accept(tok));
      return false;
    }
  }
  for (size_t k = 0; k < n; ++k) {
    std::optional<PositionLogprobs> lp;
    if (r.params.return_logprob) {
      if (k == 0) {
        lp = position_logprobs(lg, ids[0], r.params.top_logprobs_num, r.params.token_ids_logprob,
                               scratch_ids);
      } else {
        // A forced token has probability 1 under the constraint.
        PositionLogprobs p;
        p.token = {0.0f, ids[k]};
        if (r.params.top_logprobs_num > 0) p.top.push_back(p.token);
        for (int32_t id : r.params.token_ids_logprob)
          p.by_id.push_back({id == ids[k] ? 0.0f : -INFINITY, id});
        lp = std::move(p);
      }
    }
    if (k > 0) ++counters_.jump_forward_tokens;
    if (emit_token(r, ids[k], std::move(lp))) break;
  }
  return true;
}

bool Engine::defer_to_share(const Req& r, int32_t limit) {
  // A running request still computing a prompt that shares a longer prefix with this one than
  // the cache holds now: wait for it to finish that prefill (it enters the cache then) rather
  // than compute the same tokens twice. The deferral lasts at most one prefill.
  const size_t cached = cache_->peek_prefix(std::span<const int32_t>(r.tokens.data(), limit)).length;
  for (const auto& o : running_) {
    if (o->done || !o->prefilling()) continue;
    const size_t n = std::min<size_t>(limit, o->fill_len);
    size_t k = 0;
    while (k < n && r.tokens[k] == o->tokens[k]) ++k;
    if (k >= cached + kMinSharedPrefix) return true;
  }
  return false;
}

Engine::Req* Engine::pick_victim() {
  // The request that loses least: fewest generated tokens, then the most recently admitted.
  Req* victim = nullptr;
  for (auto& o : running_) {
    if (o->done || !o->admitted) continue;
    if (!victim || o->generated() < victim->generated() ||
        (o->generated() == victim->generated() && o->seq > victim->seq))
      victim = o.get();
  }
  return victim;
}

template <typename Rows>
bool Engine::samples_on_device(const Rows& rows) const {
  // The host path is needed by input logprob rows, by output logprobs (also of the first
  // jump-forward token), and by penalties and logit bias (applied to the host's logits rows).
  for (const auto& row : rows) {
    if (!row.sample) return false;
    const Req& r = *row.r;
    if (r.done) continue;
    if (r.params.return_logprob || r.sp.has_penalties() || !r.sp.logit_bias.empty()) return false;
  }
  return true;
}

backend::SampleRow Engine::device_sample_row(Req& r) {
  backend::SampleRow s;
  if (r.done) {  // finished while in the batch: its token is dropped; greedy costs least
    s.temperature = 0.0f;
    return s;
  }
  s.temperature = r.sp.temperature;
  s.top_k = r.sp.top_k;
  s.top_p = r.sp.top_p;
  s.min_p = r.sp.min_p;
  // The host path draws exactly once per non-greedy sample (Sampler::sample), so a seeded
  // request gets the same stream either way; the one difference is a row with nothing allowed,
  // where the host draws nothing, but such a request is aborted below anyway.
  if (!r.sp.greedy()) s.u = r.sampler->rng().next_double();
  if (tok_vocab_ < n_vocab_) s.vocab_limit = tok_vocab_;
  if (r.matcher) {
    r.matcher->fill_mask(r.mask);
    s.mask = r.mask.data();
    s.mask_words = static_cast<int32_t>(r.mask.size());
  }
  return s;
}

bool Engine::overlap_safe() const {
  for (const auto& r : running_)
    if (!r->done && r->needs_host()) return false;
  for (const auto& r : waiting_)
    if (!r->done && r->needs_host()) return false;
  return true;
}

bool Engine::alloc_decode_slots(bool may_retract) {
  // A slot for every decoding request's newest token (known, or in flight); under pressure evict
  // cache leaves, then retract running requests.
  for (size_t i = 0; i < running_.size(); ++i) {
    Req& r = *running_[i];
    if (r.done || !r.admitted || r.prefilling() || !r.decodes_next()) continue;
    while (r.admitted && r.slots.size() < r.known_len()) {
      if (alloc_slots(1, r.slots)) continue;  // several after a jump-forward
      // Retraction requeues prompt + output so far: it needs every token on the host.
      if (!may_retract) return false;
      Req* victim = pick_victim();
      SGL_CHECK(victim != nullptr, "no running request to retract");
      int live = 0;
      for (auto& o : running_) live += (!o->done && o->admitted) ? 1 : 0;
      if (live == 1) {
        // Alone and still no room: it can never fit (cannot happen for requests submit() took).
        ++counters_.aborted_for_memory;
        abort_req(*victim, "out of KV cache memory: the request does not fit in the KV pool (" +
                               std::to_string(pool_->capacity()) +
                               " tokens); raise --max-total-tokens");
        break;
      }
      retract(*victim);
    }
  }
  return true;
}

void Engine::step() {
  // Overlap schedule: batch k is built and launched while batch k - 1 is in flight, before its
  // tokens reach the host. Safe when nothing about batch k depends on those tokens beyond
  // their ids (future references, resolved on the device): otherwise settle first.
  if (inflight_ && !overlap_safe()) drain();
  admit();
  ++counters_.steps;
  new_token_ratio_ = std::max(kMinNewTokenRatio, new_token_ratio_ - kNewTokenRatioDecay);

  // Phase 1: KV slots for the decoding requests (retraction only once settled).
  if (!alloc_decode_slots(/*may_retract=*/inflight_ == nullptr)) {
    drain();
    alloc_decode_slots(/*may_retract=*/true);
  }
  sweep();

  // Phase 2: build one batch: decode tokens first, then prefill chunks in admission order.
  backend::ForwardBatch batch;
  std::vector<Req*> in_batch;
  std::vector<Row> rows;
  for (auto& rp : running_) {
    Req& r = *rp;
    if (r.done || r.prefilling()) continue;
    if (r.future_row >= 0) {
      // Its newest token is still in flight: this row reads it on the device.
      if (!r.decodes_next()) continue;
      SGL_CHECK(static_cast<size_t>(r.n_past) == r.tokens.size(), "in-flight token out of step");
      const int32_t future = -(r.future_row + 1);
      r.chunk = 1;
      batch.add_sequence(&future, 1, r.n_past, r.slots.data(), true);
      in_batch.push_back(&r);
      rows.push_back({&r, r.n_past, true});
      continue;
    }
    // One new token, or several after a jump-forward.
    r.chunk = static_cast<int32_t>(r.tokens.size()) - r.n_past;
    batch.add_sequence(r.tokens.data() + r.n_past, r.chunk, r.n_past, r.slots.data(), true);
    in_batch.push_back(&r);
    rows.push_back({&r, static_cast<int32_t>(r.tokens.size()) - 1, true});
  }
  int32_t budget = opts_.chunked_prefill_size;
  for (auto& rp : running_) {
    Req& r = *rp;
    if (r.done || !r.prefilling() || budget <= 0) continue;
    const int32_t n = std::min(budget, r.fill_len - r.n_past);
    const bool last = r.n_past + n == r.fill_len;
    const bool sample = last && r.params.max_new_tokens > 0;
    r.chunk = n;
    const int32_t base = batch.n_tokens();
    batch.add_sequence(r.tokens.data() + r.n_past, n, r.n_past, r.slots.data(), false);
    if (r.wants_input_logprobs()) {
      // Logits at position p give the logprob of prompt token p + 1, for p + 1 in
      // (logprob_start_len, prompt_len).
      const int32_t lo = std::max(r.n_past, r.params.logprob_start_len);
      const int32_t hi = std::min(r.n_past + n, r.prompt_len - 1);
      for (int32_t p = lo; p < hi; ++p) {
        if (sample && p == r.fill_len - 1) continue;
        batch.logit_rows.push_back(base + (p - r.n_past));
        rows.push_back({&r, p, false});
      }
    }
    if (sample) {
      batch.logit_rows.push_back(base + n - 1);
      rows.push_back({&r, r.fill_len - 1, true});
    }
    in_batch.push_back(&r);
    budget -= n;
  }
  if (in_batch.empty()) {
    if (inflight_) {
      // Every running request waits for its last token, in flight.
      drain();
      return;
    }
    // Nothing runs and the head of the queue still cannot be admitted: everything in the cache
    // was evictable, so it can never fit. Fail it rather than spin.
    if (running_.empty() && !waiting_.empty()) {
      ++counters_.aborted_for_memory;
      abort_req(*waiting_.front(), "the request does not fit in the KV pool (" +
                                       std::to_string(pool_->capacity()) + " tokens)");
    }
    sweep();
    return;
  }

  // Sampling on the device when the backend can and no row needs the logits on the host: then
  // only the tokens come back. Masks are filled and each request's RNG drawn here, before the
  // pass (neither depends on it), in the same order and number as the host path would.
  const bool device_ok = backend_->supports_sampling() && samples_on_device(rows);
  if (overlap_ && device_ok) {
    launch_async(batch, in_batch, std::move(rows));
    return;
  }
  // overlap_safe() admitted no request that needs the host path while a launch is in flight.
  SGL_CHECK(inflight_ == nullptr, "a host-path batch built while a launch is in flight");
  const bool on_device = device_ok && !rows.empty();
  std::vector<backend::SampleRow> sample_rows;
  std::vector<int32_t> device_tokens;
  if (on_device) {
    sample_rows.reserve(rows.size());
    for (const Row& row : rows) sample_rows.push_back(device_sample_row(*row.r));
  }
  backend::Logits& logits = logits_;  // reused: no per-step allocation of the rows
  const auto t0 = Clock::now();
  Status s = on_device ? backend_->forward_sample(batch, sample_rows, &device_tokens)
                       : backend_->forward(batch, &logits);
  counters_.forward_seconds += seconds_between(t0, Clock::now());
  if (!s.is_ok()) {
    for (Req* r : in_batch) abort_req(*r, "forward pass failed: " + s.to_string());
    sweep();
    return;
  }
  // Input logprob rows are collected before after_forward, so that the finish event of a
  // prefill-only request carries them.
  std::vector<int32_t> scratch_ids;
  for (Req* r : in_batch) {
    const bool was_prefilling = r->prefilling();
    r->n_past += r->chunk;
    if (was_prefilling && !r->prefilling()) {
      if (cache_) cache_prefix(*r);
      if (r->group && r->leader) r->group->prefilled = true;
    }
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& row = rows[i];
    if (row.sample || row.r->done) continue;
    std::span<const float> lg(logits.row(static_cast<int32_t>(i)), static_cast<size_t>(n_vocab_));
    row.r->input_lp.push_back(position_logprobs(lg, row.r->tokens[row.pos + 1],
                                                row.r->params.top_logprobs_num,
                                                row.r->params.token_ids_logprob, scratch_ids));
  }
  after_forward(in_batch);

  std::vector<std::pair<float, int32_t>> scratch;
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& row = rows[i];
    if (!row.sample) continue;
    Req& r = *row.r;
    if (r.done) continue;
    if (on_device) {
      ++counters_.device_sampled_tokens;
      process_sampled(r, device_tokens[i], {}, scratch_ids);
      continue;
    }
    std::span<float> lg(logits.row(static_cast<int32_t>(i)), static_cast<size_t>(n_vocab_));
    // Embedding rows past the tokenizer's vocabulary (padding, e.g. Qwen2's 151936 rows for
    // 151665 tokens) are never sampled: they have no text.
    if (tok_vocab_ < n_vocab_) std::fill(lg.begin() + tok_vocab_, lg.end(), -INFINITY);
    if (r.sp.has_penalties() || !r.sp.logit_bias.empty())
      Sampler::apply_penalties(lg, r.sp, *r.sampler);
    if (r.matcher) {
      r.matcher->fill_mask(r.mask);
      grammar::apply_mask(lg, r.mask);
    }
    process_sampled(r, Sampler::sample(lg, r.sp, *r.sampler, scratch), lg, scratch_ids);
  }
  sweep();
}

void Engine::after_forward(const std::vector<Req*>& in_batch) {
  // Prefill-only requests (max_new_tokens == 0) end once their prompt is computed (or, in an
  // async launch, enqueued: whatever reads those slots later runs after it).
  for (Req* r : in_batch) {
    if (r->params.max_new_tokens == 0 && !r->prefilling() && !r->done) {
      StopChecker::Step st = r->stop->finish_by_length();
      finish(*r, st.delta, st.finish_reason);
    }
  }
}

void Engine::process_sampled(Req& r, int32_t tok, std::span<float> lg,
                             std::vector<int32_t>& scratch_ids) {
  // lg: the row's processed logits on the host path; empty when sampled on the device (then
  // nothing needs them: no logprobs are asked).
  if (r.matcher && !r.matcher->accept(tok)) {
    // Only possible when the grammar allows nothing (every logit masked).
    abort_req(r, "constrained decoding: the grammar allows no token here");
    return;
  }
  if (r.matcher && !opts_.disable_jump_forward && jump_forward(r, tok, lg, scratch_ids)) return;
  std::optional<PositionLogprobs> lp;
  if (r.params.return_logprob)
    lp = position_logprobs(lg, tok, r.params.top_logprobs_num, r.params.token_ids_logprob,
                           scratch_ids);
  emit_token(r, tok, std::move(lp));
}

void Engine::launch_async(const backend::ForwardBatch& batch, const std::vector<Req*>& in_batch,
                          std::vector<Row> rows) {
  std::vector<backend::SampleRow> sample_rows;
  sample_rows.reserve(rows.size());
  for (const Row& row : rows) sample_rows.push_back(device_sample_row(*row.r));
  const auto t0 = Clock::now();
  Result<uint64_t> ticket = backend_->launch_sample(batch, sample_rows);
  counters_.forward_seconds += seconds_between(t0, Clock::now());
  if (!ticket.is_ok()) {
    // The rows that read the launch in flight's tokens are not launched: settle it first. That
    // may finish requests of this batch (a stop token in flight) or, if it failed too, abort
    // every running one, and its sweep frees them: abort only those of the batch still running.
    const std::unordered_set<const Req*> failed(in_batch.begin(), in_batch.end());
    drain();
    for (auto& r : running_)
      if (failed.count(r.get()) != 0)
        abort_req(*r, "forward pass failed: " + ticket.status().to_string());
    sweep();
    return;
  }
  const uint64_t id = ++launch_seq_;
  // The batch's K/V writes are enqueued: later batches may read them (same in-order queue).
  for (Req* r : in_batch) {
    r->last_launch = id;
    const bool was_prefilling = r->prefilling();
    r->n_past += r->chunk;
    if (was_prefilling && !r->prefilling()) {
      if (cache_) cache_prefix(*r);
      if (r->group && r->leader) r->group->prefilled = true;
    }
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    rows[i].r->future_row = static_cast<int32_t>(i);
    rows[i].r->future_launch = id;
  }
  after_forward(in_batch);
  std::unique_ptr<Launch> prev = std::move(inflight_);
  inflight_ = std::make_unique<Launch>();
  inflight_->id = id;
  inflight_->ticket = *ticket;
  inflight_->rows = std::move(rows);
  if (prev) {
    ++counters_.overlapped_steps;
    collect_and_process(*prev);
  }
  sweep();
}

void Engine::collect_and_process(Launch& l) {
  std::vector<int32_t> tokens;
  const auto t0 = Clock::now();
  Status s = backend_->collect(l.ticket, &tokens);
  counters_.forward_seconds += seconds_between(t0, Clock::now());
  processed_launch_ = l.id;
  for (const Row& row : l.rows)
    if (row.r->future_launch == l.id) row.r->future_row = -1;
  if (s.is_ok() && tokens.size() != l.rows.size())
    s = internal_error("collect: " + std::to_string(tokens.size()) + " tokens for " +
                       std::to_string(l.rows.size()) + " rows");
  if (!s.is_ok()) {
    // A launch after this one (if any) read its tokens: everything running is suspect.
    if (inflight_) {
      std::vector<int32_t> dropped;
      (void)backend_->collect(inflight_->ticket, &dropped);
      processed_launch_ = inflight_->id;
      for (const Row& row : inflight_->rows) row.r->future_row = -1;
      inflight_.reset();
    }
    for (auto& r : running_) abort_req(*r, "forward pass failed: " + s.to_string());
    retired_.clear();
    sweep();
    // Prompts whose prefill was in these launches entered the cache when they were enqueued,
    // before their K/V was known to be computed: drop every unlocked entry rather than serve
    // a prefix that may hold garbage.
    if (cache_) cache_->evict(cache_->evictable_size());
    return;
  }
  std::vector<int32_t> scratch_ids;
  for (size_t i = 0; i < l.rows.size(); ++i) {
    Req& r = *l.rows[i].r;
    if (r.done) continue;  // finished while in flight: the token is dropped
    ++counters_.device_sampled_tokens;
    process_sampled(r, tokens[i], {}, scratch_ids);
  }
  retired_.erase(std::remove_if(retired_.begin(), retired_.end(),
                                [&](const std::unique_ptr<Req>& r) {
                                  return r->last_launch <= processed_launch_;
                                }),
                 retired_.end());
}

void Engine::drain() {
  if (!inflight_) return;
  std::unique_ptr<Launch> l = std::move(inflight_);
  collect_and_process(*l);
  sweep();
}

}  // namespace sgl::runtime
