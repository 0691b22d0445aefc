#include "support/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace sgl {
namespace {

// Every index in [0, n) runs exactly once and `thread` is always in range.
void expect_each_task_once(ThreadPool& pool, int n) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  std::atomic<int> bad_thread{0};
  pool.parallel_for(n, [&](int task, int thread) {
    hits[static_cast<size_t>(task)].fetch_add(1, std::memory_order_relaxed);
    if (thread < 0 || thread >= pool.n_threads()) bad_thread.fetch_add(1);
  });
  for (int i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "task " << i;
  EXPECT_EQ(bad_thread.load(), 0);
}

TEST(ThreadPoolTest, EveryTaskRunsOnceWithOneThread) {
  ThreadPool pool(1);
  EXPECT_EQ(pool.n_threads(), 1);
  for (int n : {1, 2, 7, 1000}) expect_each_task_once(pool, n);
}

TEST(ThreadPoolTest, EveryTaskRunsOnceWithSeveralThreads) {
  for (int threads : {2, 3, 4}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.n_threads(), threads);
    for (int n : {1, 2, 3, 5, 64, 1000, 10007}) expect_each_task_once(pool, n);
  }
}

TEST(ThreadPoolTest, ZeroAndNegativeTaskCountsDoNothing) {
  ThreadPool pool(2);
  int calls = 0;
  pool.parallel_for(0, [&](int, int) { ++calls; });
  pool.parallel_for(-3, [&](int, int) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ThreadPoolTest, ManyBackToBackCalls) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  for (int call = 0; call < 20000; ++call) {
    pool.parallel_for(3,
                      [&](int task, int) { sum.fetch_add(task + 1, std::memory_order_relaxed); });
  }
  EXPECT_EQ(sum.load(), 20000 * 6);
}

TEST(ThreadPoolTest, WorkersTakePartWhenTasksAreSlow) {
  ThreadPool pool(2);
  std::set<int> threads_seen;
  std::mutex mu;
  pool.parallel_for(8, [&](int, int thread) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::lock_guard<std::mutex> lock(mu);
    threads_seen.insert(thread);
  });
  EXPECT_EQ(threads_seen.size(), 2u);
}

TEST(ThreadPoolTest, WakesAfterWorkersFellAsleep) {
  ThreadPool pool(2);
  expect_each_task_once(pool, 10);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // past the spin phase
  expect_each_task_once(pool, 10);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::set<int> threads_seen;
  std::mutex mu;
  pool.parallel_for(4, [&](int, int thread) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::lock_guard<std::mutex> lock(mu);
    threads_seen.insert(thread);
  });
  EXPECT_EQ(threads_seen.size(), 2u);
}

TEST(ThreadPoolTest, NestedCallsRunInline) {
  ThreadPool pool(2);
  std::atomic<int> inner{0};
  pool.parallel_for(4, [&](int, int) {
    pool.parallel_for(5, [&](int, int thread) {
      EXPECT_EQ(thread, 0);
      inner.fetch_add(1);
    });
  });
  EXPECT_EQ(inner.load(), 20);
}

TEST(ThreadPoolTest, ResizeAndConcurrentCallers) {
  ThreadPool pool(3);
  pool.set_n_threads(2);
  EXPECT_EQ(pool.n_threads(), 2);
  expect_each_task_once(pool, 100);
  // Two outside threads share the pool: calls are serialized, each sees all its tasks.
  std::atomic<int> total{0};
  auto caller = [&] {
    for (int i = 0; i < 500; ++i) pool.parallel_for(4, [&](int, int) { total.fetch_add(1); });
  };
  std::thread a(caller), b(caller);
  a.join();
  b.join();
  EXPECT_EQ(total.load(), 2 * 500 * 4);
}

TEST(ThreadPoolTest, DefaultThreadCountIsPositive) {
  EXPECT_GE(ThreadPool::default_thread_count(), 1);
  ThreadPool pool;
  EXPECT_EQ(pool.n_threads(), ThreadPool::default_thread_count());
}

}  // namespace
}  // namespace sgl
