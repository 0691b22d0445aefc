// sglang.cpp's frontend language: SGLang's primitives for LLM programs, embedded in C++.
//
// A program is a callable taking a State (and any arguments). Appending to the state never
// blocks: `s += "text"`, `s += gen("answer", {...})`, `s += select("pick", {"A", "B"})`,
// `s += user("...")`, `s += assistant(gen("reply"))`. Each state has its own worker thread that
// executes the appended items in order against a Backend (the in-process Engine, or a server's
// native HTTP API). Reading a variable, `s["answer"]`, blocks until it is produced. `fork(n)`
// commits the shared prefix once (a max_new_tokens = 0 request, so every branch hits the prefix
// cache) and returns n states; `join()` gathers the branches' new variables into the parent as
// lists (`s.list("name")`).
//
// Semantics follow SGLang's interpreter (see shared/reference/sglang-interfaces.md): select
// prefills the prefix once and scores every choice in one batched request with
// logprob_start_len = prefix tokens - 2; roles wrap text in the chat template's role prefix and
// suffix and add the template's stop string to generations inside a role; run_batch pre-caches a
// constant program prefix longer than 64 characters.
//
// Errors: a failing generation (backend error, invalid regex) marks the state failed; reading a
// variable of a failed state, or one that can never be produced, throws ProgramError inside the
// program, which run() catches and reports as the ProgramState's status. Exceptions never leave
// run() / run_batch().
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/request.h"
#include "support/status.h"

namespace sgl::runtime {
class Engine;
}

namespace sgl::lang {

// ---------------------------------------------------------------- backends

// One logprob triple as SGLang reports it: [logprob, token_id, text]. logprob is NaN for null.
struct LogprobEntry {
  double logprob = 0;
  int32_t token = -1;
  std::string text;
};

struct GenRequest {
  std::string text;                // the prompt
  runtime::GenerateParams params;  // SGLang's sampling + logprob options
};

struct GenResult {
  std::string text;
  std::vector<int32_t> output_ids;
  nlohmann::json finish_reason;  // SGLang's meta_info.finish_reason
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;
  std::vector<LogprobEntry> input_token_logprobs;
  std::vector<LogprobEntry> output_token_logprobs;
  nlohmann::json meta_info;  // everything, as SGLang's /generate returns it
};

// A chat template as role prefixes/suffixes (what SGLang's frontend calls a chat template).
struct ChatRoles {
  std::map<std::string, std::pair<std::string, std::string>> roles;  // role -> (prefix, suffix)
  std::vector<std::string> stop;  // added to every gen inside a role
};

struct CacheStats {
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;
  double hit_rate() const {
    return prompt_tokens > 0 ? static_cast<double>(cached_tokens) / prompt_tokens : 0.0;
  }
};

// What the interpreter needs from a runtime. Implementations must be thread-safe: every state
// calls from its own worker thread.
class Backend {
 public:
  virtual ~Backend() = default;
  // One generation. With on_delta, text deltas are streamed as they are produced.
  virtual Result<GenResult> generate(const GenRequest& req,
                                     const std::function<void(std::string_view)>& on_delta) = 0;
  // Several generations submitted together (one batch for the scheduler). Default: in parallel
  // through generate().
  virtual Result<std::vector<GenResult>> generate_batch(const std::vector<GenRequest>& reqs);
  virtual Result<ChatRoles> chat_roles() = 0;
  // Prompt/cached token totals since the backend was made (for the examples' statistics).
  virtual CacheStats cache_stats() = 0;
  virtual Status flush_cache() = 0;
};

// The in-process backend over an Engine (which must outlive it).
std::unique_ptr<Backend> make_engine_backend(runtime::Engine& engine);
// The remote backend: a server's native API (ours or upstream SGLang's) at e.g.
// "http://127.0.0.1:30000", with an optional API key.
Result<std::unique_ptr<Backend>> make_http_backend(const std::string& endpoint,
                                                   const std::string& api_key = "");

// Role prefixes/suffixes of a Jinja chat template, found by rendering conversations with
// sentinel contents.
Result<ChatRoles> chat_roles_from_template(const std::string& jinja_source,
                                           const std::string& bos_token,
                                           const std::string& eos_token);

// ---------------------------------------------------------------- expressions

enum class Dtype { kInt, kFloat, kBool, kString };
// SGLang's regexes for gen(dtype=...).
const char* dtype_regex(Dtype d);

enum class ChoicesMethod {
  kTokenLengthNormalized,  // default: highest mean token logprob
  kGreedyTokenSelection,   // highest first-token logprob, ties broken by the next tokens
  kUnconditionalLikelihoodNormalized,  // mean of (conditional - unconditional) token logprobs
};

// gen()'s options; unset fields take the program's defaults (RunOptions::defaults), then
// SGLang's.
struct GenOptions {
  std::optional<int32_t> max_tokens;
  std::optional<int32_t> min_tokens;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  std::optional<float> temperature;
  std::optional<float> top_p;
  std::optional<int32_t> top_k;
  std::optional<float> min_p;
  std::optional<float> frequency_penalty;
  std::optional<float> presence_penalty;
  std::optional<bool> ignore_eos;
  bool return_logprob = false;
  int32_t logprob_start_len = -1;
  int32_t top_logprobs_num = 0;
  bool return_text_in_logprobs = false;
  std::optional<std::string> regex;
  std::optional<std::string> json_schema;
  std::optional<Dtype> dtype;
  std::vector<std::string> choices;  // non-empty: this gen is a select
  ChoicesMethod choices_method = ChoicesMethod::kTokenLengthNormalized;
  // n > 1: n samples in one batch (sharing one prefill); the state continues with the first, and
  // all n are in list(name).
  int32_t n = 1;
};

struct SelectOptions {
  float temperature = 0.0f;
  ChoicesMethod method = ChoicesMethod::kTokenLengthNormalized;
};

// An item appended to a state: text, a generation, a selection, role markers, or a sequence.
class Expr {
 public:
  enum Kind { kText, kGen, kSelect, kRoleBegin, kRoleEnd, kSeq };
  Expr() : kind_(kSeq) {}
  Expr(const char* text) : kind_(kText), text_(text) {}             // NOLINT: implicit on purpose
  Expr(std::string text) : kind_(kText), text_(std::move(text)) {}  // NOLINT
  static Expr make(Kind k, std::string a, GenOptions o = {}) {
    Expr e;
    e.kind_ = k;
    e.text_ = std::move(a);
    e.opts_ = std::move(o);
    return e;
  }
  Kind kind() const { return kind_; }
  const std::string& text() const { return text_; }  // text, variable name, or role
  const GenOptions& options() const { return opts_; }
  const std::vector<Expr>& items() const { return items_; }
  Expr& append(Expr e);

 private:
  Kind kind_;
  std::string text_;
  GenOptions opts_;
  std::vector<Expr> items_;  // kSeq
};
Expr operator+(Expr a, Expr b);

Expr gen(std::string name, GenOptions options = {});
Expr select(std::string name, std::vector<std::string> choices, SelectOptions options = {});
Expr system(Expr body = Expr());
Expr user(Expr body = Expr());
Expr assistant(Expr body = Expr());
Expr role_begin(std::string role);
Expr role_end(std::string role);

// ---------------------------------------------------------------- states

class ProgramError : public std::runtime_error {
 public:
  explicit ProgramError(Status s) : std::runtime_error(s.to_string()), status_(std::move(s)) {}
  const Status& status() const { return status_; }

 private:
  Status status_;
};

struct RunOptions {
  GenOptions defaults;  // program-wide gen defaults (e.g. temperature 0)
  bool stream = false;  // stream generated text into the state as it is produced
};

namespace detail {
class Executor;
}

class Forks;

// A handle on one program state. Copies share the state.
class State {
 public:
  explicit State(std::shared_ptr<detail::Executor> ex) : ex_(std::move(ex)) {}

  // Appends without blocking.
  State& operator+=(Expr e);
  // The value of a variable; blocks until it is produced. Throws ProgramError if the state
  // failed or the variable can never be produced.
  std::string operator[](const std::string& name) const;
  // A variable gathered by join(): one value per branch.
  std::vector<std::string> list(const std::string& name) const;
  bool has(const std::string& name) const;  // blocks until the queued work is done
  // Meta info of a generated variable (SGLang's meta_info: tokens, finish reason, logprobs).
  nlohmann::json meta_info(const std::string& name) const;
  // All text so far; blocks until the queued work is done.
  std::string text() const;
  // The chat messages written through roles: [{"role", "content"}...].
  nlohmann::ordered_json messages() const;
  // Waits for the queued work; the state's status (an error if a generation failed).
  Status sync() const;
  // Commits the text so far to the cache once, then returns n states continuing from it.
  Forks fork(int n);
  // Streaming (RunOptions::stream): the next piece of text (of the whole state, or of one
  // variable when `var` is given) as it is produced; nullopt at the end.
  std::optional<std::string> next_chunk(const std::string& var = "");

  detail::Executor& executor() const { return *ex_; }

 private:
  std::shared_ptr<detail::Executor> ex_;
};

class Forks {
 public:
  Forks(State parent, std::vector<State> children, std::vector<std::string> parent_vars)
      : parent_(std::move(parent)),
        children_(std::move(children)),
        parent_vars_(std::move(parent_vars)) {}
  State& operator[](size_t i) { return children_.at(i); }
  size_t size() const { return children_.size(); }
  std::vector<State>::iterator begin() { return children_.begin(); }
  std::vector<State>::iterator end() { return children_.end(); }
  // Waits for every branch and gathers the variables they created into the parent as lists.
  void join();

 private:
  State parent_;
  std::vector<State> children_;
  std::vector<std::string> parent_vars_;
};

// The outcome of one program run.
class ProgramState {
 public:
  ProgramState(State s, std::shared_ptr<std::thread> worker, std::shared_ptr<Status> status)
      : state_(std::move(s)), worker_(std::move(worker)), status_(std::move(status)) {}
  // Waits for the program; ok, or the first error.
  Status status();
  std::string operator[](const std::string& name) { return get(name); }
  // Like State::operator[] but returns "" instead of throwing when the program failed.
  std::string get(const std::string& name);
  std::vector<std::string> list(const std::string& name);
  nlohmann::json meta_info(const std::string& name);
  std::string text();
  nlohmann::ordered_json messages();
  // Streaming: see State::next_chunk.
  std::optional<std::string> next_chunk(const std::string& var = "") {
    return state_.next_chunk(var);
  }
  State& state() { return state_; }

 private:
  State state_;
  std::shared_ptr<std::thread> worker_;  // set when run() streams
  std::shared_ptr<Status> status_;
};

using Program = std::function<void(State&)>;

// Runs a program. Without streaming it returns when the program and its generations are done;
// with RunOptions::stream it returns at once and the program runs on (read next_chunk()).
ProgramState run(Backend& backend, const Program& program, RunOptions options = {});

struct BatchOptions {
  int num_threads = 0;          // programs in flight at once; 0 = all
  bool progress_bar = false;    // a progress line on stderr
  bool precache_prefix = true;  // commit a shared constant prefix (> 64 chars) once first
  RunOptions run;
};
// Runs one program per entry, concurrently. Results come back in order.
std::vector<ProgramState> run_batch(Backend& backend, const std::vector<Program>& programs,
                                    BatchOptions options = {});

}  // namespace sgl::lang
