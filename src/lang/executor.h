// Executor: the private engine behind one frontend State. A worker thread takes appended
// expressions from a queue, in order, and runs them against the Backend; readers block on the
// condition variable until a variable appears, the queue drains, or the state fails.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sgl/lang.h"

namespace sgl::lang::detail {

class Executor : public std::enable_shared_from_this<Executor> {
 public:
  Executor(Backend& backend, RunOptions options);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  Backend& backend() const { return backend_; }
  // A new executor starting from a copy of this one's text, variables, messages and roles.
  // REQUIRES: idle (sync() returned).
  std::shared_ptr<Executor> clone_for_fork() const;

  void submit(Expr e);
  // Waits until the queue is drained; returns the state's status.
  Status sync();
  std::string get_var(const std::string& name);
  std::vector<std::string> get_list(const std::string& name);
  bool has(const std::string& name);
  nlohmann::json meta(const std::string& name);
  std::string text();
  nlohmann::ordered_json messages();
  std::vector<std::string> var_names();
  // Join: the children's variables not in parent_vars become lists here (branch order).
  void gather(const std::vector<std::shared_ptr<Executor>>& children,
              const std::vector<std::string>& parent_vars);
  void mark_program_done();
  std::optional<std::string> next_chunk(const std::string& var);

 private:
  void loop();
  Status execute(const Expr& e);
  Status execute_gen(const std::string& name, const GenOptions& o);
  Status execute_gen_n(const std::string& name, const GenOptions& o);
  Status execute_select(const std::string& name, const GenOptions& o);
  Status ensure_roles();
  runtime::GenerateParams params_for(const GenOptions& o);
  void append_text(std::string_view t, const std::string& var);
  std::string text_snapshot() const;

  Backend& backend_;
  const RunOptions opts_;
  std::shared_ptr<const ChatRoles> roles_;  // fetched on first use (worker thread)

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Expr> queue_;                                             // guarded by mu_
  bool busy_ = false;                                                  // guarded by mu_
  bool stop_ = false;                                                  // guarded by mu_
  Status error_ = Status::ok();                                        // guarded by mu_
  std::string text_;                                                   // guarded by mu_
  std::map<std::string, std::string> vars_;                            // guarded by mu_
  std::map<std::string, std::vector<std::string>> lists_;              // guarded by mu_
  std::map<std::string, nlohmann::json> meta_;                         // guarded by mu_
  std::set<std::string> var_done_;                                     // guarded by mu_
  nlohmann::ordered_json messages_ = nlohmann::ordered_json::array();  // guarded by mu_
  std::vector<std::pair<std::string, size_t>> role_stack_;  // guarded by mu_: role, content start
  // Streaming.
  bool program_done_ = false;                                  // guarded by mu_
  std::deque<std::string> text_chunks_;                        // guarded by mu_
  std::map<std::string, std::deque<std::string>> var_chunks_;  // guarded by mu_

  std::thread worker_;  // last: starts after every member above exists
};

}  // namespace sgl::lang::detail
