#include "server/admission.h"

#include <algorithm>

#include "support/check.h"

namespace sgl::server {

bool AdmissionGate::try_acquire(int64_t n) {
  SGL_CHECK(n >= 0);
  if (limit_ <= 0) {
    in_flight_.fetch_add(n, std::memory_order_relaxed);
    return true;
  }
  int64_t cur = in_flight_.load(std::memory_order_relaxed);
  while (true) {
    if (cur + n > limit_) {
      rejected_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (in_flight_.compare_exchange_weak(cur, cur + n, std::memory_order_relaxed)) return true;
  }
}

void AdmissionGate::release(int64_t n) {
  const int64_t before = in_flight_.fetch_sub(n, std::memory_order_relaxed);
  SGL_CHECK(before >= n);
}

AdmissionTicket& AdmissionTicket::operator=(AdmissionTicket&& o) noexcept {
  if (this != &o) {
    release_all();
    gate_ = o.gate_;
    n_ = o.n_;
    o.n_ = 0;
  }
  return *this;
}

void AdmissionTicket::release(int64_t n) {
  n = std::min(n, n_);
  if (n <= 0 || !gate_) return;
  n_ -= n;
  gate_->release(n);
}

}  // namespace sgl::server
