// Micro-benchmarks of the CUDA backend's building blocks on the current GPU, for sgl-bench
// (`sgl-bench cuda-kernels`) and docs/cuda.md: device memory bandwidth (a 16-byte copy kernel),
// the cuBLASLt bf16 GEMM rate, and the attention kernels (decode bandwidth, prefill TFLOP/s).
// Every figure is the median of timed repetitions (CUDA events) after a warm-up, on random data.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>

#include "backend/cuda/kernels.h"
#include "support/status.h"

namespace sgl::backend::cuda {

// {"bytes", "ms", "gb_per_s"}: copying `bytes` device-to-device; read + written bytes counted.
Result<nlohmann::json> bench_copy(int device, size_t bytes);
// {"n", "m", "k", "ms", "tflop_per_s"}: y[n, m] = x[n, k] W[m, k]^T, bf16 in/out.
Result<nlohmann::json> bench_gemm(int device, int n, int m, int k);
// {"batch", "kv_len", ..., "splits", "ms", "gb_per_s"}: one decode token per sequence, each over
// kv_len cached tokens at scattered slots (token-granular random permutation of the pool);
// bandwidth counts the K/V bytes read (kv_elem's bytes: 2 for bf16, 1 for fp8; "kv" names it).
// fixed_splits: 0 the planner's split count, > 0 that
// many (AttentionArgs::fixed_splits), < 0 the CUDA-graph decode path's (attention_fixed_splits);
// cuda_cores: the CUDA-core kernel
// (launch_attention_simple) instead of launch_attention. Small problems rotate over copies of
// the K/V pool (>= 256 MiB in all) so that they are read from HBM, not L2.
Result<nlohmann::json> bench_decode_attention(int device, int batch, int kv_len, int n_head,
                                              int n_head_kv, int head_dim, int fixed_splits = 0,
                                              bool cuda_cores = false,
                                              KvElem kv_elem = KvElem::kBF16);
// {"seq_len", ..., "tc_ms", "tc_tflop_per_s", "tc_variants_tflop_per_s", "simple_ms",
// "simple_tflop_per_s"}: causal prefill of one sequence of seq_len tokens by the tensor-core
// kernel (default and each tile-shape variant) and the general kernel (launch_attention; and
// "cuda_core_ms" for launch_attention_simple);
// FLOPs = 4 * n_head * head_dim * seq_len * (seq_len + 1) / 2 (as tests/cuda/bench_sdpa.py).
Result<nlohmann::json> bench_prefill_attention(int device, int seq_len, int n_head, int n_head_kv,
                                               int head_dim);

}  // namespace sgl::backend::cuda
