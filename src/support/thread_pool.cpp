#include "support/thread_pool.h"

#include <fstream>
#include <set>
#include <string>
#include <utility>

#if defined(__linux__)
#include <sched.h>
#endif

#include "support/check.h"

namespace sgl {
namespace {

// True while the current thread is running a task of some pool (nested calls run inline).
thread_local bool t_in_task = false;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spin iterations before a worker sleeps (each is one pause, ~tens of ns): long enough to bridge
// the gap between consecutive kernels of a forward pass, short enough to idle quickly.
constexpr int kWorkerSpins = 1 << 15;
// Spin iterations before the caller yields while waiting for workers.
constexpr int kCallerSpins = 1 << 12;

constexpr uint64_t kClosedBit = uint64_t{1} << 31;
constexpr uint64_t kCountMask = kClosedBit - 1;

int read_int_file(const std::string& path, int fallback) {
  std::ifstream f(path);
  int v;
  if (f >> v) return v;
  return fallback;
}

}  // namespace

int ThreadPool::default_thread_count() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    std::set<std::pair<int, int>> cores;
    int n_cpus = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &set)) continue;
      ++n_cpus;
      const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
      const int pkg = read_int_file(base + "physical_package_id", 0);
      const int core = read_int_file(base + "core_id", cpu);
      cores.insert({pkg, core});
    }
    if (!cores.empty()) return static_cast<int>(cores.size());
    if (n_cpus > 0) return n_cpus;
  }
#endif
  const unsigned hc = std::thread::hardware_concurrency();
  return hc > 0 ? static_cast<int>(hc) : 1;
}

ThreadPool::ThreadPool(int n_threads) { start_workers(n_threads); }

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::set_n_threads(int n_threads) {
  std::lock_guard<std::mutex> lock(call_mu_);
  stop_workers();
  start_workers(n_threads);
}

void ThreadPool::start_workers(int n_threads) {
  SGL_CHECK(n_threads >= 0, "ThreadPool: negative thread count");
  n_threads_ = n_threads == 0 ? default_thread_count() : n_threads;
  stop_.store(false);
  workers_.reserve(static_cast<size_t>(n_threads_ - 1));
  // Workers start from the generation current now, so a job published before a worker thread
  // gets scheduled is still seen as new by it.
  const uint32_t gen0 = generation_.load(std::memory_order_seq_cst);
  for (int t = 1; t < n_threads_; ++t)
    workers_.emplace_back([this, t, gen0] { worker_main(t, gen0); });
}

void ThreadPool::stop_workers() {
  stop_.store(true, std::memory_order_seq_cst);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  generation_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
}

void ThreadPool::run_tasks(int thread) {
  const int n = job_n_tasks_;
  const TaskFn fn = job_fn_;
  void* ctx = job_ctx_;
  for (;;) {
    const int task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= n) break;
    fn(ctx, task, thread);
  }
}

void ThreadPool::run(int n_tasks, TaskFn fn, void* ctx) {
  if (t_in_task || n_threads_ == 1 || n_tasks == 1) {
    // Serial: nested call, single thread, or nothing to share.
    const bool was_in_task = t_in_task;
    t_in_task = true;
    for (int t = 0; t < n_tasks; ++t) fn(ctx, t, 0);
    t_in_task = was_in_task;
    return;
  }
  std::lock_guard<std::mutex> lock(call_mu_);
  job_fn_ = fn;
  job_ctx_ = ctx;
  job_n_tasks_ = n_tasks;
  next_task_.store(0, std::memory_order_relaxed);
  const uint32_t gen = generation_.load(std::memory_order_relaxed) + 1;
  job_state_.store(static_cast<uint64_t>(gen) << 32, std::memory_order_relaxed);
  // Publishes the job (seq_cst also orders it against the sleepers_ load below; see worker_main).
  generation_.store(gen, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) generation_.notify_all();

  t_in_task = true;
  run_tasks(0);
  t_in_task = false;

  // Close the job to latecomers, then wait only for the workers that joined it.
  job_state_.fetch_or(kClosedBit, std::memory_order_acq_rel);
  int spins = 0;
  while ((job_state_.load(std::memory_order_acquire) & kCountMask) != 0) {
    if (++spins < kCallerSpins) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

void ThreadPool::worker_main(int thread, uint32_t seen) {
  for (;;) {
    // Wait for a new generation: spin first, then sleep.
    uint32_t gen;
    int spins = 0;
    while ((gen = generation_.load(std::memory_order_acquire)) == seen) {
      if (++spins < kWorkerSpins) {
        cpu_relax();
        continue;
      }
      // Dekker-style handshake with run(): either the caller sees sleepers_ > 0 and notifies, or
      // this load sees the new generation and does not sleep.
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      while (generation_.load(std::memory_order_seq_cst) == seen) generation_.wait(seen);
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      spins = 0;
    }
    seen = gen;
    if (stop_.load(std::memory_order_acquire)) return;
    // Join the job unless it is already closed (or superseded); a worker that does not join
    // never touches the job's fields.
    uint64_t state = job_state_.load(std::memory_order_acquire);
    bool joined = false;
    while ((state >> 32) == gen && (state & kClosedBit) == 0) {
      if (job_state_.compare_exchange_weak(state, state + 1, std::memory_order_acq_rel)) {
        joined = true;
        break;
      }
    }
    if (!joined) continue;
    t_in_task = true;
    run_tasks(thread);
    t_in_task = false;
    job_state_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace sgl
