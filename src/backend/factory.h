// create_backend: the one place applications turn a device name into a Backend. "cpu" is always
// available; "cuda" only in builds configured with -DSGL_CUDA=ON (otherwise a clear error says so).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "model/model_config.h"
#include "models/loader.h"
#include "support/status.h"

namespace sgl::backend {

struct BackendOptions {
  std::string device = "cpu";         // "cpu" or "cuda" ("cuda:N" picks GPU N)
  int n_threads = 0;                  // cpu: 0 = physical cores
  KvDtype kv_dtype = KvDtype::kF16;   // cuda: f16, bf16, fp8_e4m3 or fp8_e5m2; cpu: no fp8
  // --dtype: cuda: auto (= bfloat16), bfloat16 or float16 weights; cpu: auto only (it computes on
  // the checkpoint's own types).
  WeightDtype dtype = WeightDtype::kAuto;
  int64_t kv_capacity = 0;            // KV pool tokens; 0 = the backend's default
  double mem_fraction_static = 0.85;  // cuda: weights + KV pool share of GPU memory
  bool progress = true;               // cuda: print weight-loading progress to stderr
  // cuda: tensor parallelism over GPUs device..device+tp_size-1 of this host, through NCCL
  // (cuda/tp_backend.h); 1 = one GPU.
  int tp_size = 1;
};

// True iff this build contains the CUDA backend.
bool cuda_compiled();

// The backend for `options.device` over `model`'s weights. The model must outlive a CPU backend
// (it reads the mapping); the CUDA backend copies the weights and does not need it afterwards.
Result<std::unique_ptr<Backend>> create_backend(const models::LoadedModel& model,
                                                const BackendOptions& options);

// A backend with random weights of `config`'s shape (--load-format dummy): CUDA only.
Result<std::unique_ptr<Backend>> create_dummy_backend(const model::ModelConfig& config,
                                                      const BackendOptions& options,
                                                      uint64_t seed = 1);

}  // namespace sgl::backend
