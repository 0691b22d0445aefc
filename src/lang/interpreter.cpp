// The frontend interpreter: one Executor (worker thread + queue) per program state.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <future>
#include <set>

#include "lang/executor.h"
#include "sgl/lang.h"

namespace sgl::lang {

// ---------------------------------------------------------------- expressions

Expr& Expr::append(Expr e) {
  if (kind_ != kSeq) {
    Expr self = std::move(*this);
    *this = Expr();
    items_.push_back(std::move(self));
  }
  if (e.kind_ == kSeq) {
    for (auto& x : e.items_) items_.push_back(std::move(x));
  } else {
    items_.push_back(std::move(e));
  }
  return *this;
}

Expr operator+(Expr a, Expr b) {
  a.append(std::move(b));
  return a;
}

Expr gen(std::string name, GenOptions options) {
  const bool is_select = !options.choices.empty();
  return Expr::make(is_select ? Expr::kSelect : Expr::kGen, std::move(name), std::move(options));
}

Expr select(std::string name, std::vector<std::string> choices, SelectOptions options) {
  GenOptions o;
  o.choices = std::move(choices);
  o.temperature = options.temperature;
  o.choices_method = options.method;
  return Expr::make(Expr::kSelect, std::move(name), std::move(o));
}

Expr role_begin(std::string role) { return Expr::make(Expr::kRoleBegin, std::move(role)); }
Expr role_end(std::string role) { return Expr::make(Expr::kRoleEnd, std::move(role)); }

static Expr wrap_role(const char* role, Expr body) {
  Expr e = role_begin(role);
  e.append(std::move(body));
  e.append(role_end(role));
  return e;
}
Expr system(Expr body) { return wrap_role("system", std::move(body)); }
Expr user(Expr body) { return wrap_role("user", std::move(body)); }
Expr assistant(Expr body) { return wrap_role("assistant", std::move(body)); }

const char* dtype_regex(Dtype d) {
  // SGLang's regexes for gen(dtype=...).
  switch (d) {
    case Dtype::kInt:
      return R"([-+]?[0-9]+[ \n]*)";
    case Dtype::kFloat:
      return R"([-+]?[0-9]*\.?[0-9]+[ \n]*)";
    case Dtype::kBool:
      return "(True|False)";
    case Dtype::kString:
      return R"("[\w\d\s]*")";
  }
  return "";
}

// ---------------------------------------------------------------- backend default

Result<std::vector<GenResult>> Backend::generate_batch(const std::vector<GenRequest>& reqs) {
  std::vector<std::future<Result<GenResult>>> fs;
  for (const auto& r : reqs)
    fs.push_back(std::async(std::launch::async, [this, &r] { return generate(r, nullptr); }));
  std::vector<GenResult> out;
  Status first = Status::ok();
  for (auto& f : fs) {
    Result<GenResult> r = f.get();
    if (!r.is_ok()) {
      if (first.is_ok()) first = r.status();
      continue;
    }
    out.push_back(std::move(r).value());
  }
  if (!first.is_ok()) return first;
  return out;
}

namespace detail {

// ---------------------------------------------------------------- executor

Executor::Executor(Backend& backend, RunOptions options)
    : backend_(backend), opts_(std::move(options)) {
  worker_ = std::thread([this] { loop(); });
}

Executor::~Executor() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

std::shared_ptr<Executor> Executor::clone_for_fork() const {
  auto ex = std::make_shared<Executor>(backend_, opts_);
  std::lock_guard<std::mutex> lk(mu_);
  ex->text_ = text_;
  ex->vars_ = vars_;
  ex->lists_ = lists_;
  ex->meta_ = meta_;
  ex->messages_ = messages_;
  ex->role_stack_ = role_stack_;
  ex->roles_ = roles_;
  return ex;
}

void Executor::submit(Expr e) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    queue_.push_back(std::move(e));
  }
  cv_.notify_all();
}

Status Executor::sync() {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return queue_.empty() && !busy_; });
  return error_;
}

void Executor::loop() {
  for (;;) {
    Expr e;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      e = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
      if (!error_.is_ok()) {
        // A failed state skips the rest of its program.
        busy_ = false;
        cv_.notify_all();
        continue;
      }
    }
    Status s = execute(e);
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (!s.is_ok() && error_.is_ok()) error_ = s;
      busy_ = false;
    }
    cv_.notify_all();
  }
}

void Executor::append_text(std::string_view t, const std::string& var) {
  if (t.empty()) return;
  {
    std::lock_guard<std::mutex> lk(mu_);
    text_.append(t);
    if (opts_.stream) {
      text_chunks_.emplace_back(t);
      if (!var.empty()) var_chunks_[var].emplace_back(t);
    }
  }
  cv_.notify_all();
}

Status Executor::execute(const Expr& e) {
  switch (e.kind()) {
    case Expr::kSeq:
      for (const Expr& x : e.items()) SGL_RETURN_IF_ERROR(execute(x));
      return Status::ok();
    case Expr::kText:
      append_text(e.text(), "");
      return Status::ok();
    case Expr::kRoleBegin: {
      SGL_RETURN_IF_ERROR(ensure_roles());
      auto it = roles_->roles.find(e.text());
      if (it == roles_->roles.end())
        return invalid_argument("the chat template has no role " + quote_for_message(e.text()));
      append_text(it->second.first, "");
      std::lock_guard<std::mutex> lk(mu_);
      role_stack_.push_back({e.text(), text_.size()});
      return Status::ok();
    }
    case Expr::kRoleEnd: {
      SGL_RETURN_IF_ERROR(ensure_roles());
      std::string content;
      {
        std::lock_guard<std::mutex> lk(mu_);
        if (role_stack_.empty() || role_stack_.back().first != e.text())
          return invalid_argument("role_end(" + e.text() + ") without a matching role_begin");
        content = text_.substr(role_stack_.back().second);
        role_stack_.pop_back();
        messages_.push_back({{"role", e.text()}, {"content", content}});
      }
      append_text(roles_->roles.at(e.text()).second, "");
      return Status::ok();
    }
    case Expr::kGen:
      return execute_gen(e.text(), e.options());
    case Expr::kSelect:
      return execute_select(e.text(), e.options());
  }
  return internal_error("unknown expression kind");
}

Status Executor::ensure_roles() {
  if (roles_) return Status::ok();
  SGL_ASSIGN_OR_RETURN(ChatRoles r, backend_.chat_roles());
  roles_ = std::make_shared<ChatRoles>(std::move(r));
  return Status::ok();
}

runtime::GenerateParams Executor::params_for(const GenOptions& o) {
  const GenOptions& d = opts_.defaults;
  runtime::GenerateParams p;
  p.max_new_tokens = o.max_tokens.value_or(d.max_tokens.value_or(128));
  p.min_new_tokens = o.min_tokens.value_or(d.min_tokens.value_or(0));
  p.stop = d.stop;
  p.stop.insert(p.stop.end(), o.stop.begin(), o.stop.end());
  p.stop_token_ids = o.stop_token_ids.empty() ? d.stop_token_ids : o.stop_token_ids;
  p.temperature = o.temperature.value_or(d.temperature.value_or(1.0f));
  p.top_p = o.top_p.value_or(d.top_p.value_or(1.0f));
  p.top_k = o.top_k.value_or(d.top_k.value_or(-1));
  p.min_p = o.min_p.value_or(d.min_p.value_or(0.0f));
  p.frequency_penalty = o.frequency_penalty.value_or(d.frequency_penalty.value_or(0.0f));
  p.presence_penalty = o.presence_penalty.value_or(d.presence_penalty.value_or(0.0f));
  p.ignore_eos = o.ignore_eos.value_or(d.ignore_eos.value_or(false));
  p.return_logprob = o.return_logprob;
  p.logprob_start_len = o.logprob_start_len;
  p.top_logprobs_num = o.top_logprobs_num;
  p.return_text_in_logprobs = o.return_text_in_logprobs;
  if (o.regex)
    p.regex = o.regex;
  else if (o.dtype)
    p.regex = dtype_regex(*o.dtype);
  if (o.json_schema) p.json_schema = o.json_schema;
  bool in_role;
  {
    std::lock_guard<std::mutex> lk(mu_);
    in_role = !role_stack_.empty();
  }
  if (in_role && roles_)
    for (const auto& s : roles_->stop)
      if (std::find(p.stop.begin(), p.stop.end(), s) == p.stop.end()) p.stop.push_back(s);
  return p;
}

std::string Executor::text_snapshot() const {
  std::lock_guard<std::mutex> lk(mu_);
  return text_;
}

Status Executor::execute_gen(const std::string& name, const GenOptions& o) {
  if (o.n < 1) return invalid_argument("gen(" + quote_for_message(name) + "): n must be >= 1");
  if (o.n > 1) return execute_gen_n(name, o);
  GenRequest req;
  req.text = text_snapshot();
  req.params = params_for(o);
  std::function<void(std::string_view)> on_delta;
  bool streamed = false;
  if (opts_.stream) {
    streamed = true;
    on_delta = [this, &name](std::string_view d) { append_text(d, name); };
  }
  Result<GenResult> r = backend_.generate(req, on_delta);
  if (!r.is_ok())
    return Status(r.status().code(),
                  "gen(" + quote_for_message(name) + "): " + r.status().message());
  if (!streamed) append_text(r->text, name);
  {
    std::lock_guard<std::mutex> lk(mu_);
    vars_[name] = r->text;
    meta_[name] = r->meta_info;
    var_done_.insert(name);
  }
  cv_.notify_all();
  return Status::ok();
}

Status Executor::execute_gen_n(const std::string& name, const GenOptions& o) {
  GenRequest req;
  req.text = text_snapshot();
  req.params = params_for(o);
  std::vector<GenRequest> reqs(static_cast<size_t>(o.n), req);
  Result<std::vector<GenResult>> rs = backend_.generate_batch(reqs);
  if (!rs.is_ok())
    return Status(rs.status().code(),
                  "gen(" + quote_for_message(name) + "): " + rs.status().message());
  append_text((*rs)[0].text, name);
  {
    std::lock_guard<std::mutex> lk(mu_);
    std::vector<std::string> all;
    for (const auto& r : *rs) all.push_back(r.text);
    lists_[name] = std::move(all);
    meta_[name] = (*rs)[0].meta_info;
    var_done_.insert(name);
  }
  cv_.notify_all();
  return Status::ok();
}

namespace {

// Scores of one choice's input logprobs (entries after the null first one).
struct Scored {
  std::vector<double> lps;  // conditional logprobs of the scored tokens
  std::vector<std::string> texts;
};

Scored scored_tokens(const GenResult& r, const std::string& prefix) {
  Scored s;
  for (const auto& e : r.input_token_logprobs) {
    if (std::isnan(e.logprob)) continue;
    s.lps.push_back(e.logprob);
    s.texts.push_back(e.text);
  }
  // The first scored token is the prefix's last token; drop it when it lies inside the prefix
  // (no token healing merged it with the choice).
  if (!s.lps.empty() && !s.texts[0].empty() && prefix.size() >= s.texts[0].size() &&
      prefix.compare(prefix.size() - s.texts[0].size(), s.texts[0].size(), s.texts[0]) == 0) {
    s.lps.erase(s.lps.begin());
    s.texts.erase(s.texts.begin());
  }
  return s;
}

double mean(const std::vector<double>& v) {
  if (v.empty()) return -INFINITY;
  double t = 0;
  for (double x : v) t += x;
  return t / static_cast<double>(v.size());
}

}  // namespace

Status Executor::execute_select(const std::string& name, const GenOptions& o) {
  const std::vector<std::string>& choices = o.choices;
  if (choices.empty())
    return invalid_argument("select(" + quote_for_message(name) + "): no choices");
  const std::string prefix = text_snapshot();
  auto fail = [&](const Status& s) {
    return Status(s.code(), "select(" + quote_for_message(name) + "): " + s.message());
  };
  // 1. Prefill the prefix once so every choice hits the cache.
  GenRequest pre;
  pre.text = prefix;
  pre.params.max_new_tokens = 0;
  pre.params.temperature = 0.0f;
  Result<GenResult> p = backend_.generate(pre, nullptr);
  if (!p.is_ok()) return fail(p.status());
  const int32_t start = std::max(p->prompt_tokens - 2, 0);
  // 2. Score every choice in one batch.
  std::vector<GenRequest> reqs;
  for (const auto& c : choices) {
    GenRequest r;
    r.text = prefix + c;
    r.params.max_new_tokens = 0;
    r.params.temperature = 0.0f;
    r.params.return_logprob = true;
    r.params.return_text_in_logprobs = true;
    r.params.logprob_start_len = start;
    reqs.push_back(std::move(r));
  }
  const bool uncond = o.choices_method == ChoicesMethod::kUnconditionalLikelihoodNormalized;
  if (uncond) {
    for (const auto& c : choices) {
      GenRequest r;
      r.text = c;
      r.params.max_new_tokens = 0;
      r.params.temperature = 0.0f;
      r.params.return_logprob = true;
      r.params.return_text_in_logprobs = true;
      r.params.logprob_start_len = 0;
      reqs.push_back(std::move(r));
    }
  }
  Result<std::vector<GenResult>> rs = backend_.generate_batch(reqs);
  if (!rs.is_ok()) return fail(rs.status());
  const size_t n = choices.size();
  std::vector<Scored> sc;
  for (size_t i = 0; i < n; ++i) sc.push_back(scored_tokens((*rs)[i], prefix));
  std::vector<double> normalized(n);
  for (size_t i = 0; i < n; ++i) normalized[i] = mean(sc[i].lps);
  size_t best = 0;
  switch (o.choices_method) {
    case ChoicesMethod::kTokenLengthNormalized:
      for (size_t i = 1; i < n; ++i)
        if (normalized[i] > normalized[best]) best = i;
      break;
    case ChoicesMethod::kGreedyTokenSelection: {
      // Highest first-token logprob; ties go to the next token, and so on.
      auto better = [&](size_t a, size_t b) {
        const auto& x = sc[a].lps;
        const auto& y = sc[b].lps;
        for (size_t k = 0; k < std::min(x.size(), y.size()); ++k) {
          if (x[k] != y[k]) return x[k] > y[k];
        }
        return x.size() > y.size();
      };
      for (size_t i = 1; i < n; ++i)
        if (better(i, best)) best = i;
      break;
    }
    case ChoicesMethod::kUnconditionalLikelihoodNormalized: {
      std::vector<double> score(n);
      for (size_t i = 0; i < n; ++i) {
        std::vector<double> u;
        for (const auto& e : (*rs)[n + i].input_token_logprobs)
          if (!std::isnan(e.logprob)) u.push_back(e.logprob);
        // Compare the choice's own tokens: the last |u| conditional ones.
        const auto& c = sc[i].lps;
        const size_t k = std::min(c.size(), u.size());
        double t = 0;
        for (size_t j = 0; j < k; ++j) t += c[c.size() - k + j] - u[u.size() - k + j];
        score[i] = k ? t / static_cast<double>(k) : -INFINITY;
      }
      for (size_t i = 1; i < n; ++i)
        if (score[i] > score[best]) best = i;
      break;
    }
  }
  nlohmann::json meta;
  meta["normalized_prompt_logprobs"] = normalized;
  nlohmann::json per = nlohmann::json::array();
  for (size_t i = 0; i < n; ++i) {
    nlohmann::json lp = nlohmann::json::array();
    for (const auto& e : (*rs)[i].input_token_logprobs)
      lp.push_back(
          {std::isnan(e.logprob) ? nlohmann::json() : nlohmann::json(e.logprob), e.token, e.text});
    per.push_back(std::move(lp));
  }
  meta["input_token_logprobs"] = std::move(per);
  meta["choice"] = choices[best];
  append_text(choices[best], name);
  {
    std::lock_guard<std::mutex> lk(mu_);
    vars_[name] = choices[best];
    meta_[name] = std::move(meta);
    var_done_.insert(name);
  }
  cv_.notify_all();
  return Status::ok();
}

std::string Executor::get_var(const std::string& name) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] {
    return vars_.count(name) || lists_.count(name) || !error_.is_ok() || (queue_.empty() && !busy_);
  });
  if (auto it = vars_.find(name); it != vars_.end()) return it->second;
  if (lists_.count(name))
    throw ProgramError(invalid_argument(
        "variable " + quote_for_message(name) +
        " holds several values (fork branches or n samples); read it with list()"));
  if (!error_.is_ok()) throw ProgramError(error_);
  throw ProgramError(invalid_argument("variable " + quote_for_message(name) +
                                      " was never produced by the program"));
}

std::vector<std::string> Executor::get_list(const std::string& name) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return lists_.count(name) || !error_.is_ok() || (queue_.empty() && !busy_); });
  if (auto it = lists_.find(name); it != lists_.end()) return it->second;
  if (auto it = vars_.find(name); it != vars_.end()) return {it->second};
  if (!error_.is_ok()) throw ProgramError(error_);
  throw ProgramError(invalid_argument("variable " + quote_for_message(name) +
                                      " was never produced by the program"));
}

bool Executor::has(const std::string& name) {
  (void)sync();
  std::lock_guard<std::mutex> lk(mu_);
  return vars_.count(name) || lists_.count(name);
}

nlohmann::json Executor::meta(const std::string& name) {
  get_var(name);
  std::lock_guard<std::mutex> lk(mu_);
  auto it = meta_.find(name);
  return it == meta_.end() ? nlohmann::json() : it->second;
}

std::string Executor::text() {
  (void)sync();
  return text_snapshot();
}

nlohmann::ordered_json Executor::messages() {
  (void)sync();
  std::lock_guard<std::mutex> lk(mu_);
  return messages_;
}

std::vector<std::string> Executor::var_names() {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<std::string> out;
  for (const auto& [k, v] : vars_) out.push_back(k);
  for (const auto& [k, v] : lists_) out.push_back(k);
  return out;
}

void Executor::gather(const std::vector<std::shared_ptr<Executor>>& children,
                      const std::vector<std::string>& parent_vars) {
  std::set<std::string> known(parent_vars.begin(), parent_vars.end());
  std::map<std::string, std::vector<std::string>> gathered;
  std::vector<std::string> order;
  for (const auto& c : children) {
    std::lock_guard<std::mutex> lk(c->mu_);
    for (const auto& [k, v] : c->vars_) {
      if (known.count(k)) continue;
      if (!gathered.count(k)) order.push_back(k);
      gathered[k].push_back(v);
    }
    // Lists a branch gathered from its own forks are flattened into the parent's list.
    for (const auto& [k, v] : c->lists_) {
      if (known.count(k)) continue;
      if (!gathered.count(k)) order.push_back(k);
      gathered[k].insert(gathered[k].end(), v.begin(), v.end());
    }
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& [k, v] : gathered) {
      vars_.erase(k);
      lists_[k] = std::move(v);
    }
  }
  cv_.notify_all();
}

void Executor::mark_program_done() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    program_done_ = true;
  }
  cv_.notify_all();
}

std::optional<std::string> Executor::next_chunk(const std::string& var) {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    std::deque<std::string>& q = var.empty() ? text_chunks_ : var_chunks_[var];
    if (!q.empty()) {
      std::string c = std::move(q.front());
      q.pop_front();
      return c;
    }
    const bool idle = queue_.empty() && !busy_;
    if (!var.empty() && var_done_.count(var)) return std::nullopt;
    if ((program_done_ && idle) || !error_.is_ok()) return std::nullopt;
    cv_.wait(lk);
  }
}

}  // namespace detail

// ---------------------------------------------------------------- State / Forks

State& State::operator+=(Expr e) {
  ex_->submit(std::move(e));
  return *this;
}
std::string State::operator[](const std::string& name) const { return ex_->get_var(name); }
std::vector<std::string> State::list(const std::string& name) const { return ex_->get_list(name); }
bool State::has(const std::string& name) const { return ex_->has(name); }
nlohmann::json State::meta_info(const std::string& name) const { return ex_->meta(name); }
std::string State::text() const { return ex_->text(); }
nlohmann::ordered_json State::messages() const { return ex_->messages(); }
Status State::sync() const { return ex_->sync(); }
std::optional<std::string> State::next_chunk(const std::string& var) {
  return ex_->next_chunk(var);
}

Forks State::fork(int n) {
  Status s = ex_->sync();
  if (!s.is_ok()) throw ProgramError(s);
  if (n < 1) throw ProgramError(invalid_argument("fork(n) needs n >= 1, got " + std::to_string(n)));
  const std::string prefix = ex_->text();
  if (n > 1 && !prefix.empty()) {
    // Commit the shared prefix once so every branch hits the prefix cache.
    GenRequest req;
    req.text = prefix;
    req.params.max_new_tokens = 0;
    Result<GenResult> r = ex_->backend().generate(req, nullptr);
    if (!r.is_ok()) throw ProgramError(Status(r.status().code(), "fork: " + r.status().message()));
  }
  std::vector<State> children;
  for (int i = 0; i < n; ++i) children.emplace_back(ex_->clone_for_fork());
  return Forks(*this, std::move(children), ex_->var_names());
}

void Forks::join() {
  std::vector<std::shared_ptr<detail::Executor>> exs;
  for (auto& c : children_) {
    Status s = c.sync();
    if (!s.is_ok()) throw ProgramError(s);
  }
  for (auto& c : children_) exs.push_back(c.executor().shared_from_this());
  parent_.executor().gather(exs, parent_vars_);
}

// ---------------------------------------------------------------- run

Status ProgramState::status() {
  if (worker_ && worker_->joinable()) worker_->join();
  return *status_;
}

std::string ProgramState::get(const std::string& name) {
  if (!status().is_ok() && !state_.executor().has(name)) return "";
  try {
    return state_[name];
  } catch (const ProgramError&) {
    return "";
  }
}

std::vector<std::string> ProgramState::list(const std::string& name) {
  (void)status();
  try {
    return state_.list(name);
  } catch (const ProgramError&) {
    return {};
  }
}

nlohmann::json ProgramState::meta_info(const std::string& name) {
  (void)status();
  try {
    return state_.meta_info(name);
  } catch (const ProgramError&) {
    return nlohmann::json();
  }
}

std::string ProgramState::text() {
  (void)status();
  return state_.executor().text();
}

nlohmann::ordered_json ProgramState::messages() {
  (void)status();
  return state_.executor().messages();
}

ProgramState run(Backend& backend, const Program& program, RunOptions options) {
  auto ex = std::make_shared<detail::Executor>(backend, options);
  State s(ex);
  auto status = std::make_shared<Status>(Status::ok());
  auto body = [program, s, status]() mutable {
    try {
      program(s);
      *status = s.sync();
    } catch (const ProgramError& e) {
      *status = e.status();
    } catch (const std::exception& e) {
      *status = internal_error(std::string("the program threw: ") + e.what());
    }
    s.executor().mark_program_done();
  };
  if (options.stream) {
    // The last copy of the ProgramState joins the program's thread.
    std::shared_ptr<std::thread> t(new std::thread(body), [](std::thread* th) {
      if (th->joinable()) th->join();
      delete th;
    });
    return ProgramState(s, std::move(t), status);
  }
  body();
  return ProgramState(s, nullptr, status);
}

namespace {

// Records the prompt of a program's first generation call, then fails it: a dry run that finds
// the text a program sends before anything depends on the model.
class RecordingBackend final : public Backend {
 public:
  explicit RecordingBackend(Backend& real) : real_(real) {}
  Result<GenResult> generate(const GenRequest& req,
                             const std::function<void(std::string_view)>&) override {
    std::lock_guard<std::mutex> lk(mu_);
    if (!first_) first_ = req.text;
    return Status(StatusCode::kInternal, "dry run");
  }
  Result<ChatRoles> chat_roles() override { return real_.chat_roles(); }
  CacheStats cache_stats() override { return {}; }
  Status flush_cache() override { return Status::ok(); }
  std::optional<std::string> first() {
    std::lock_guard<std::mutex> lk(mu_);
    return first_;
  }

 private:
  Backend& real_;
  std::mutex mu_;
  std::optional<std::string> first_;
};

}  // namespace

std::vector<ProgramState> run_batch(Backend& backend, const std::vector<Program>& programs,
                                    BatchOptions options) {
  RunOptions ro = options.run;
  ro.stream = false;
  if (options.precache_prefix && programs.size() > 1) {
    // SGLang's run_batch pre-caches the program's constant prefix when it is long enough.
    std::optional<std::string> common;
    for (const auto& p : programs) {
      RecordingBackend rec(backend);
      (void)run(rec, p, ro).status();
      std::optional<std::string> t = rec.first();
      if (!t) {
        common.reset();
        break;
      }
      if (!common) {
        common = *t;
      } else {
        size_t k = 0;
        while (k < common->size() && k < t->size() && (*common)[k] == (*t)[k]) ++k;
        common->resize(k);
      }
    }
    if (common && common->size() > 64) {
      GenRequest req;
      req.text = *common;
      req.params.max_new_tokens = 0;
      (void)backend.generate(req, nullptr);  // best effort: a failure only costs the reuse
    }
  }
  std::vector<std::optional<ProgramState>> results(programs.size());
  const size_t n_threads = options.num_threads > 0
                               ? std::min<size_t>(options.num_threads, programs.size())
                               : programs.size();
  std::atomic<size_t> next{0}, done{0};
  std::mutex out_mu;
  auto worker = [&] {
    for (;;) {
      const size_t i = next.fetch_add(1);
      if (i >= programs.size()) return;
      ProgramState st = run(backend, programs[i], ro);
      {
        std::lock_guard<std::mutex> lk(out_mu);
        results[i].emplace(std::move(st));
      }
      const size_t d = ++done;
      if (options.progress_bar) {
        std::fprintf(stderr, "\r[run_batch] %zu/%zu", d, programs.size());
        if (d == programs.size()) std::fprintf(stderr, "\n");
      }
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 0; t < n_threads; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  std::vector<ProgramState> out;
  for (auto& r : results) out.push_back(std::move(*r));
  return out;
}

}  // namespace sgl::lang
