#include "runtime/kv_pool.h"

#include <string>

namespace sgl::runtime {

KvPool::KvPool(int64_t capacity) : capacity_(capacity) {
  SGL_CHECK(capacity >= 0 && capacity < (int64_t{1} << 31), "KV pool capacity out of range");
  reset();
}

void KvPool::reset() {
  free_.resize(static_cast<size_t>(capacity_));
  for (int64_t i = 0; i < capacity_; ++i) free_[static_cast<size_t>(i)] = static_cast<int32_t>(capacity_ - 1 - i);
  allocated_.assign(static_cast<size_t>(capacity_), 0);
}

bool KvPool::alloc(int64_t n, std::vector<int32_t>& out) {
  if (n < 0 || n > available()) return false;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t s = free_.back();
    free_.pop_back();
    allocated_[static_cast<size_t>(s)] = 1;
    out.push_back(s);
  }
  return true;
}

void KvPool::free(std::span<const int32_t> slots) {
  for (int32_t s : slots) {
    SGL_CHECK(s >= 0 && s < capacity_, "KvPool::free: slot out of range");
    SGL_CHECK(allocated_[static_cast<size_t>(s)], "KvPool::free: slot " + std::to_string(s) +
                                                     " freed twice or never allocated");
    allocated_[static_cast<size_t>(s)] = 0;
    free_.push_back(s);
  }
}

}  // namespace sgl::runtime
