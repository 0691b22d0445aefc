// KvPool: the allocator of token-granular KV slots (page size 1). The backend owns the storage;
// this class owns which slot ids are free. Single-threaded: the scheduler thread owns it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "support/status.h"

namespace sgl::runtime {

class KvPool {
 public:
  explicit KvPool(int64_t capacity);

  int64_t capacity() const { return capacity_; }
  int64_t available() const { return static_cast<int64_t>(free_.size()); }
  int64_t used() const { return capacity_ - available(); }

  // Appends n free slot ids to `out`. Returns false (and changes nothing) if fewer than n are
  // free. Slots come out lowest id first after a reset (deterministic).
  bool alloc(int64_t n, std::vector<int32_t>& out);
  // Returns slots to the pool. REQUIRES: each was allocated and not yet freed (checked).
  void free(std::span<const int32_t> slots);
  // Frees everything.
  void reset();

 private:
  int64_t capacity_;
  std::vector<int32_t> free_;       // stack; back() is handed out next
  std::vector<uint8_t> allocated_;  // [capacity] 1 while a slot is out
};

}  // namespace sgl::runtime
