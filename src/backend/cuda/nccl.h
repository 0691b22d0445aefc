// NCCL, loaded at run time: the build needs no nccl.h and no libnccl, and a binary built here runs
// on machines without NCCL as long as nobody asks for tensor parallelism. The few types and
// functions used are declared here with nccl.h's values (ncclFloat32 = 7, ncclBfloat16 = 9,
// ncclSum = 0, ncclSuccess = 0; ncclComm_t is an opaque pointer).
//
// The library: $SGL_NCCL_LIBRARY when set (a path), else "libnccl.so.2" through the dynamic
// loader's search path. (Python's nvidia-nccl-cu13 wheel has it under nvidia/nccl/lib.)
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "support/status.h"

namespace sgl::backend::cuda {

enum class NcclType { kFloat32 = 7, kBfloat16 = 9 };

// One communicator per GPU of this process, all made by one ncclCommInitAll. Each rank's
// all_reduce must be called from one thread per rank (or inside a group), every rank the same
// sequence of calls.
class NcclComms {
 public:
  // Loads NCCL (once per process) and makes communicators over `devices` (rank i = devices[i]).
  static Result<NcclComms> create(const std::vector<int>& devices);
  NcclComms();
  NcclComms(NcclComms&&) noexcept;
  NcclComms& operator=(NcclComms&&) noexcept;
  NcclComms(const NcclComms&) = delete;
  NcclComms& operator=(const NcclComms&) = delete;
  ~NcclComms();

  int size() const;
  // In-place sum over every rank of `count` elements at `data` (device memory of rank `rank`'s
  // GPU), enqueued on `stream` (a cudaStream_t of that GPU). The caller has set that device.
  // An error after abort().
  Status all_reduce_sum(int rank, void* data, size_t count, NcclType type, void* stream) const;
  // ncclCommAbort on every communicator: collectives still waiting for a rank that failed (and
  // will never join) end, so the threads blocked on them return. The communicators are gone
  // afterwards. Idempotent; from any thread.
  void abort();

 private:
  void release();  // destroys the communicators (unless aborted)
  struct State;    // the communicators, and a lock that keeps abort() out of an all-reduce call
  std::unique_ptr<State> s_;
};

// The loaded library's version as NCCL encodes it (e.g. 22803 for 2.28.3), or an error saying why
// NCCL could not be loaded.
Result<int> nccl_version();

}  // namespace sgl::backend::cuda
