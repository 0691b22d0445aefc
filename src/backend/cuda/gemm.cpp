#include "backend/cuda/gemm.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "backend/cuda/kernels.h"

namespace sgl::backend::cuda {

namespace {

Status lt_error(const char* what, cublasStatus_t s) {
  return internal_error(std::string("cuBLASLt: ") + what + " failed (status " +
                        std::to_string(static_cast<int>(s)) + ")");
}

#define SGL_LT(call, what)                                        \
  do {                                                            \
    cublasStatus_t st_ = (call);                                  \
    if (st_ != CUBLAS_STATUS_SUCCESS) return lt_error(what, st_); \
  } while (0)

}  // namespace

// Column-major view: D^T[m, n] = op(W^T)... i.e. A = W stored [k, m] column-major (ld k) with
// TRANSA = T, B = x stored [k, n] column-major (ld k), D [m, n] column-major (ld m): exactly the
// row-major y[n, m] = x[n, k] W[m, k]^T.
struct Gemm::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool gemv = false;  // launch_gemv instead of cuBLASLt (it was timed faster)
  ~Plan() {
    if (desc) cublasLtMatmulDescDestroy(desc);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (d) cublasLtMatrixLayoutDestroy(d);
  }
};

Gemm::Gemm() {
  const char* env = std::getenv("SGL_CUDA_GEMV");
  gemv_enabled_ = !(env != nullptr && std::string(env) == "0");
}

Result<std::unique_ptr<Gemm>> Gemm::create(size_t workspace_bytes, WeightElem elem) {
  std::unique_ptr<Gemm> g(new Gemm());
  g->elem_ = elem;
  cublasLtHandle_t h = nullptr;
  SGL_LT(cublasLtCreate(&h), "create");
  g->handle_ = h;
  if (workspace_bytes > 0) {
    if (cudaMalloc(&g->workspace_, workspace_bytes) != cudaSuccess) {
      cudaGetLastError();
      return Status(StatusCode::kResourceExhausted, "cuBLASLt: cannot allocate the workspace");
    }
  }
  g->workspace_bytes_ = workspace_bytes;
  return g;
}

Gemm::~Gemm() {
  plans_.clear();
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(static_cast<cublasLtHandle_t>(handle_));
}

Result<const Gemm::Plan*> Gemm::plan(int n, int m, int k, GemmOut out, const uint16_t* x,
                                     const uint16_t* w, void* y, cudaStream_t stream) {
  const auto key = std::make_tuple(n, m, k, static_cast<int>(out));
  if (auto it = plans_.find(key); it != plans_.end()) return it->second.get();
  // cuBLASLt's f32-compute GEMMs write bf16 only from bf16 inputs.
  if (elem_ == WeightElem::kF16 && out == GemmOut::kBF16)
    return invalid_argument("cuBLASLt: an f16 GEMM cannot write bf16 output");
  const cudaDataType_t in_type = elem_ == WeightElem::kF16 ? CUDA_R_16F : CUDA_R_16BF;
  const char* in_name = elem_ == WeightElem::kF16 ? "f16" : "bf16";
  auto p = std::make_unique<Plan>();
  SGL_LT(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "desc create");
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  SGL_LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)),
         "set transa");
  SGL_LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)),
         "set transb");
  const cudaDataType_t dt = out == GemmOut::kF32 ? CUDA_R_32F : CUDA_R_16BF;
  SGL_LT(cublasLtMatrixLayoutCreate(&p->a, in_type, k, m, k), "layout A");
  SGL_LT(cublasLtMatrixLayoutCreate(&p->b, in_type, k, n, k), "layout B");
  SGL_LT(cublasLtMatrixLayoutCreate(&p->d, dt, m, n, m), "layout D");
  cublasLtMatmulPreference_t pref = nullptr;
  SGL_LT(cublasLtMatmulPreferenceCreate(&pref), "preference create");
  uint64_t ws = workspace_bytes_;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                       sizeof(ws));
  constexpr int kCandidates = 8;
  cublasLtMatmulHeuristicResult_t res[kCandidates] = {};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(static_cast<cublasLtHandle_t>(handle_), p->desc, p->a, p->b,
                                     p->d, p->d, pref, kCandidates, res, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0)
    return internal_error(std::string("cuBLASLt: no algorithm for a ") + in_name +
                          " GEMM of n=" + std::to_string(n) + " m=" + std::to_string(m) +
                          " k=" + std::to_string(k));
  p->algo = res[0].algo;
  // Decode-sized shapes (few rows: bandwidth-bound GEMVs, where the heuristic's first choice is
  // often not the fastest) are timed: each candidate runs on the call's own buffers (the output
  // is rewritten by the real call after), the fastest median of 5 wins.
  // Our own weight-streaming GEMV (launch_gemv) joins the candidates for f32 outputs of up to
  // kGemvMaxRows rows.
  // Each run is timed as it runs in a forward pass, with the weights coming from HBM: before it,
  // a read of a scratch buffer of twice the L2 evicts them. Timed over the same matrix again and
  // again, a 32-67 MB shape (Llama-3.1-8B's QKV and O at n = 2..8) sat in the 50 MB L2 of an
  // H100 and the choice flipped between start-ups (docs/cuda.md, "GEMM planner timing"). A read,
  // not a write (memset): dirty lines would be written back during the timed run. The timed
  // kernel is queued behind that read when e0 fires, so the host's launch cost (larger for
  // cuBLASLt) is left out, as in a graph replay. Stream-ordered allocation: no device-wide
  // synchronization (NCCL kernels of other ranks may be in flight).
  // SGL_CUDA_GEMM_LOG=1 prints each timed plan (candidates' medians, choice, planning time).
  const bool try_gemv = gemv_enabled_ && out == GemmOut::kF32 && gemv_supported(n, m, k) &&
                        reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                        reinterpret_cast<uintptr_t>(w) % 16 == 0;
  if (n <= kTuneMaxRows && (found > 1 || try_gemv)) {
    const auto t_plan = std::chrono::steady_clock::now();
    const char* log_env = std::getenv("SGL_CUDA_GEMM_LOG");
    const bool log = log_env != nullptr && std::string(log_env) == "1";
    int dev = 0, l2_bytes = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, dev) != cudaSuccess)
      l2_bytes = 0;
    // Rows of argmax over the scratch as floats, then its int32 outputs.
    constexpr int kFlushRows = 4096;
    const size_t flush_cols = std::max<size_t>(
        1, (std::max<size_t>(l2_bytes, size_t{50} << 20) * 2) / (sizeof(float) * kFlushRows));
    const size_t flush_bytes =
        flush_cols * kFlushRows * sizeof(float) + kFlushRows * sizeof(int32_t);
    void* flush = nullptr;
    if (cudaMallocAsync(&flush, flush_bytes, stream) != cudaSuccess ||
        cudaMemsetAsync(flush, 0, flush_bytes, stream) != cudaSuccess) {
      if (flush) cudaFreeAsync(flush, stream);
      flush = nullptr;  // timed over L2-resident weights, as before: no worse than no timing
      cudaGetLastError();
    }
    auto evict_l2 = [&] {
      if (flush == nullptr) return;
      const float* f = static_cast<const float*>(flush);
      launch_argmax(f, kFlushRows, static_cast<int>(flush_cols),
                    reinterpret_cast<int32_t*>(static_cast<char*>(flush) +
                                               flush_cols * kFlushRows * sizeof(float)),
                    stream);
    };
    std::string trace;
    cudaEvent_t e0 = nullptr, e1 = nullptr;
    if (cudaEventCreate(&e0) == cudaSuccess && cudaEventCreate(&e1) == cudaSuccess) {
      const float alpha = 1.0f, beta = 0.0f;
      float best = 1e30f;
      // c == found: the GEMV.
      for (int c = 0; c < found + (try_gemv ? 1 : 0); ++c) {
        float times[5] = {1e30f, 1e30f, 1e30f, 1e30f, 1e30f};
        bool ok = true;
        for (int r = -1; r < 5 && ok; ++r) {  // r = -1: warm-up
          evict_l2();
          cudaEventRecord(e0, stream);
          if (c == found) {
            launch_gemv(x, w, static_cast<float*>(y), n, m, k, stream, 0, elem_);
            ok = cudaGetLastError() == cudaSuccess;
          } else {
            ok = cublasLtMatmul(static_cast<cublasLtHandle_t>(handle_), p->desc, &alpha, w, p->a, x,
                                p->b, &beta, y, p->d, y, p->d, &res[c].algo, workspace_,
                                workspace_bytes_, stream) == CUBLAS_STATUS_SUCCESS;
          }
          cudaEventRecord(e1, stream);
          if (ok && cudaEventSynchronize(e1) == cudaSuccess && r >= 0)
            cudaEventElapsedTime(&times[r], e0, e1);
        }
        if (!ok) continue;
        std::sort(times, times + 5);
        if (log) {
          char buf[48];
          std::snprintf(buf, sizeof(buf), " %s%.1f", c == found ? "gemv=" : "", times[2] * 1e3f);
          trace += buf;
        }
        if (times[2] < best) {
          best = times[2];
          p->gemv = c == found;
          if (c < found) p->algo = res[c].algo;
        }
      }
    }
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (flush) cudaFreeAsync(flush, stream);
    cudaGetLastError();
    if (log) {
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_plan)
              .count();
      std::fprintf(stderr,
                   "gemm plan n=%d m=%d k=%d out=%s l2_flush=%s: %s; medians us:%s; %.2f ms\n", n,
                   m, k, out == GemmOut::kF32 ? "f32" : "bf16", flush ? "yes" : "no",
                   p->gemv ? "gemv" : "cublaslt", trace.c_str(), ms);
    }
  }
  const Plan* raw = p.get();
  plans_.emplace(key, std::move(p));
  return raw;
}

Status Gemm::run(const uint16_t* x, const uint16_t* w, void* y, GemmOut out, int n, int m, int k,
                 cudaStream_t stream) {
  if (n <= 0 || m <= 0 || k <= 0) return Status::ok();
  SGL_ASSIGN_OR_RETURN(const Plan* p, plan(n, m, k, out, x, w, y, stream));
  if (p->gemv) {
    launch_gemv(x, w, static_cast<float*>(y), n, m, k, stream, 0, elem_);
    return Status::ok();
  }
  const float alpha = 1.0f, beta = 0.0f;
  SGL_LT(cublasLtMatmul(static_cast<cublasLtHandle_t>(handle_), p->desc, &alpha, w, p->a, x, p->b,
                        &beta, y, p->d, y, p->d, &p->algo, workspace_, workspace_bytes_, stream),
         "matmul");
  return Status::ok();
}

Result<bool> Gemm::prefers_gemv(const uint16_t* x, const uint16_t* w, float* y, int n, int m, int k,
                                cudaStream_t stream) {
  if (n <= 0 || m <= 0 || k <= 0) return false;
  SGL_ASSIGN_OR_RETURN(const Plan* p, plan(n, m, k, GemmOut::kF32, x, w, y, stream));
  return p->gemv;
}

}  // namespace sgl::backend::cuda
