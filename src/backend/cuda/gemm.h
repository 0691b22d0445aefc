// bf16 (or f16) GEMMs through cuBLASLt: y[n, m] = x[n, k] * W[m, k]^T (row-major activations times
// a row-major weight matrix of m output rows), f32 accumulation, f32 or bf16 output. x and W are
// both of the Gemm's element type (cuBLASLt wants A and B of one type): bf16, or f16 for
// --dtype float16. The algorithm
// for each (n, m, k, output type) is chosen once, on first use, and cached: cuBLASLt's heuristic,
// and for decode-sized shapes (n <= 16) the fastest of its top candidates, timed; for f32 outputs
// of n <= kGemvMaxRows rows the backend's own GEMV (launch_gemv) is one more candidate
// (SGL_CUDA_GEMV=0 leaves it out).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include <cuda_runtime_api.h>

#include "backend/cuda/kernels.h"
#include "support/status.h"

namespace sgl::backend::cuda {

enum class GemmOut { kF32, kBF16 };

class Gemm {
 public:
  // Creates the cuBLASLt handle and a workspace of `workspace_bytes` on the current device; every
  // GEMM of this object reads x and W as `elem`.
  static Result<std::unique_ptr<Gemm>> create(size_t workspace_bytes = size_t{32} << 20,
                                              WeightElem elem = WeightElem::kBF16);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // y = x * W^T. x: [n, k] elem (raw bits), w: [m, k] elem, y: [n, m] f32 or bf16 (bf16 output
  // with bf16 inputs only: an f16 Gemm refuses it).
  // REQUIRES: device pointers 16-byte aligned; k a multiple of 8.
  Status run(const uint16_t* x, const uint16_t* w, void* y, GemmOut out, int n, int m, int k,
             cudaStream_t stream);

  // Whether the shape (f32 output) runs on launch_gemv rather than cuBLASLt: plans it (timing on
  // the given buffers) if not yet planned. The backend asks this to use the GEMV's fused forms
  // (gate|up with SiLU) exactly where the plain GEMV won.
  Result<bool> prefers_gemv(const uint16_t* x, const uint16_t* w, float* y, int n, int m, int k,
                            cudaStream_t stream);

  // Number of distinct shapes planned so far.
  size_t n_plans() const { return plans_.size(); }
  WeightElem elem() const { return elem_; }

 private:
  struct Plan;
  Gemm();
  // The plan of a shape, made on first use: cuBLASLt's heuristic, and for n <= kTuneMaxRows the
  // fastest of its candidates timed on the given buffers.
  Result<const Plan*> plan(int n, int m, int k, GemmOut out, const uint16_t* x, const uint16_t* w,
                           void* y, cudaStream_t stream);
  static constexpr int kTuneMaxRows = 16;

  bool gemv_enabled_ = true;
  WeightElem elem_ = WeightElem::kBF16;
  void* handle_ = nullptr;  // cublasLtHandle_t
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::map<std::tuple<int, int, int, int>, std::unique_ptr<Plan>> plans_;
};

}  // namespace sgl::backend::cuda
