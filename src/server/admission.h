// Admission control for sgl-server: a counting gate that bounds how much work the server holds
// at once, used twice: for generation sequences (--max-queued-requests: a request is counted per
// choice from the moment it is accepted until each choice finishes or is aborted, so the waiting
// queue cannot grow without bound) and for open client connections (--max-connections).
// try_acquire() never blocks: over the limit the caller answers 503 at once. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>

namespace sgl::server {

class AdmissionGate {
 public:
  // limit <= 0: unbounded (try_acquire always succeeds, in_flight() still counts).
  explicit AdmissionGate(int64_t limit) : limit_(limit) {}
  AdmissionGate(const AdmissionGate&) = delete;
  AdmissionGate& operator=(const AdmissionGate&) = delete;

  // Reserves n units iff in_flight() + n <= limit (or the gate is unbounded); on failure nothing
  // is reserved and rejected() grows by one. REQUIRES: n >= 0.
  bool try_acquire(int64_t n);
  // Returns n units reserved earlier. REQUIRES: they were reserved.
  void release(int64_t n);

  int64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  int64_t limit() const { return limit_; }
  // Refused try_acquire() calls so far.
  int64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }

 private:
  const int64_t limit_;
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> rejected_{0};
};

// Units reserved on an AdmissionGate, returned when released or destroyed. Move-only.
class AdmissionTicket {
 public:
  AdmissionTicket() = default;
  AdmissionTicket(AdmissionGate* gate, int64_t n) : gate_(gate), n_(n) {}
  AdmissionTicket(AdmissionTicket&& o) noexcept : gate_(o.gate_), n_(o.n_) { o.n_ = 0; }
  AdmissionTicket& operator=(AdmissionTicket&& o) noexcept;
  AdmissionTicket(const AdmissionTicket&) = delete;
  AdmissionTicket& operator=(const AdmissionTicket&) = delete;
  ~AdmissionTicket() { release_all(); }

  // Returns min(n, held()) units now.
  void release(int64_t n);
  void release_all() { release(n_); }
  int64_t held() const { return n_; }

 private:
  AdmissionGate* gate_ = nullptr;
  int64_t n_ = 0;
};

}  // namespace sgl::server
