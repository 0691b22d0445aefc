// Tensor parallelism over the GPUs of one host (--tp-size N): N CudaBackends, rank r on GPU
// device + r, each holding its shard of the weights and of the KV heads (CudaBackendOptions::
// tp_rank), joined by NCCL all-reduces (nccl.h) after the row-parallel O and down GEMMs.
//
// One persistent host thread per rank: every call (forward, forward_greedy, forward_sample) runs
// the same forward pass on every rank's thread, each enqueueing its kernels and its NCCL calls on
// its own stream; the call returns when all ranks are done. The residual stream, hence the logits,
// come out the same on every rank (the all-reduce gives every rank the same sums); rank 0's are
// returned, sampling runs on rank 0.
//
// Everything that can fail per batch (validation, sampling rows) is checked before the ranks
// start, so no rank is left waiting in an all-reduce that another skipped. A failure inside a
// rank's pass (a CUDA error, out of memory) aborts the NCCL communicators, which releases the
// ranks waiting for it, and stops the backend: later calls return that error. Decode CUDA graphs
// are off unless CudaBackendOptions::cuda_graphs and SGL_CUDA_TP_GRAPHS=1 (they then capture the
// NCCL calls too).
#pragma once

#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "models/loader.h"
#include "support/status.h"

namespace sgl::backend {

class TpCudaBackend final : public Backend {
 public:
  // options.device is rank 0's GPU; rank r takes options.device + r. options.tp_rank / tp_size /
  // all_reduce are set per rank here. tp_size >= 2.
  static Result<std::unique_ptr<TpCudaBackend>> create(const models::LoadedModel& model,
                                                       const CudaBackendOptions& options,
                                                       int tp_size);
  // Random weights of `config`'s shape (each rank draws its own shard: not the values that
  // CudaBackend::create_dummy with the same seed would hold).
  static Result<std::unique_ptr<TpCudaBackend>> create_dummy(const model::ModelConfig& config,
                                                             const CudaBackendOptions& options,
                                                             int tp_size, uint64_t seed = 1);
  ~TpCudaBackend() override;

  std::string_view name() const override { return "cuda"; }
  const model::ModelConfig& config() const override;
  // The smallest of the ranks' pools (they are sized from each GPU's free memory).
  int64_t kv_capacity() const override { return kv_capacity_; }
  Status forward(const ForwardBatch& batch, Logits* logits) override;
  Status forward_greedy(const ForwardBatch& batch, std::vector<int32_t>* tokens);
  bool supports_sampling() const override { return true; }
  Status forward_sample(const ForwardBatch& batch, std::span<const SampleRow> rows,
                        std::vector<int32_t>* tokens) override;

  int tp_size() const { return static_cast<int>(ranks_.size()); }
  const CudaBackend& rank(int r) const { return *ranks_[r]; }

 private:
  struct Impl;  // the NCCL communicators and the rank threads
  TpCudaBackend();
  static Result<std::unique_ptr<TpCudaBackend>> build(const model::ModelConfig& config,
                                                      const models::LoadedModel* model,
                                                      const CudaBackendOptions& options,
                                                      int tp_size, uint64_t seed);
  // Runs `rank0` on rank 0's thread and forward_no_output on the others'; the first error.
  Status run(const ForwardBatch& batch, const std::function<Status(CudaBackend&)>& rank0);

  std::unique_ptr<Impl> impl_;
  std::vector<std::unique_ptr<CudaBackend>> ranks_;
  int64_t kv_capacity_ = 0;
  // Set when a rank failed during a pass: the communicators were aborted, every later call
  // returns this.
  Status failed_;
};

}  // namespace sgl::backend
