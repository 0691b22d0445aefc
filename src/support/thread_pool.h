// A persistent fork-join thread pool for compute kernels.
//
// Threads are created once (constructor or set_n_threads) and reused; parallel_for() hands a
// batch of independent tasks to the calling thread plus the workers, which claim task indices
// dynamically from a shared counter and return when every task has run. Dispatch does no
// allocation and no thread creation: an idle worker spins briefly on a generation counter and
// then sleeps on it (futex via std::atomic::wait), so back-to-back calls from a decode loop cost
// well under a microsecond while an idle pool costs no CPU.
//
// Which thread runs which task is not deterministic; kernels that must be reproducible make each
// task's result independent of the thread that runs it.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace sgl {

class ThreadPool {
 public:
  // A pool of `n_threads` threads counting the caller (so n_threads - 1 workers);
  // 0 means default_thread_count().
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Threads taking part in parallel_for, the caller included (>= 1).
  int n_threads() const { return n_threads_; }

  // Replaces the workers with `n_threads` - 1 new ones (0 = default_thread_count()).
  // REQUIRES: no parallel_for is running on this pool.
  void set_n_threads(int n_threads);

  // Runs fn(task, thread) for every task in [0, n_tasks) exactly once and returns when all have
  // finished. `thread` is in [0, n_threads()): 0 is the caller, so per-thread scratch can be
  // indexed by it. Tasks run concurrently and in no particular order. fn must not throw.
  // A call from inside a task (nested) runs all of its tasks serially on the calling thread.
  // Calls from different threads are serialized.
  template <typename F>
  void parallel_for(int n_tasks, F&& fn) {
    if (n_tasks <= 0) return;
    using Fn = std::remove_reference_t<F>;
    run(
        n_tasks, [](void* ctx, int task, int thread) { (*static_cast<Fn*>(ctx))(task, thread); },
        const_cast<void*>(static_cast<const void*>(&fn)));
  }

  // Physical cores available to this process (distinct core ids among the CPUs in its affinity
  // mask), at least 1.
  static int default_thread_count();

 private:
  using TaskFn = void (*)(void* ctx, int task, int thread);

  void run(int n_tasks, TaskFn fn, void* ctx);
  void start_workers(int n_threads);
  void stop_workers();
  // `seen`: the generation before this worker's first job.
  void worker_main(int thread, uint32_t seen);
  // Claims and runs tasks of the current job until none is left.
  void run_tasks(int thread);

  int n_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex call_mu_;  // serializes parallel_for callers

  // The current job, published by bumping generation_ (release) and read by workers after they
  // observe the new generation (acquire).
  TaskFn job_fn_ = nullptr;
  void* job_ctx_ = nullptr;
  int job_n_tasks_ = 0;

  alignas(64) std::atomic<uint32_t> generation_{0};
  alignas(64) std::atomic<int> next_task_{0};
  // Join protocol, so the caller never waits for a worker that has not started: bits 32..63 the
  // current job's generation, bit 31 "closed" (no more joins), bits 0..30 workers inside the job.
  alignas(64) std::atomic<uint64_t> job_state_{0};
  alignas(64) std::atomic<int> sleepers_{0};  // workers blocked in generation_.wait()
  std::atomic<bool> stop_{false};
};

}  // namespace sgl
